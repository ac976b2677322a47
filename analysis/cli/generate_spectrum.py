"""``ana generate spectrum``: m_γγ events in categories (falling background + H→γγ-like peak) for ``ana ftest``."""

from __future__ import annotations

import argparse

from analysis.cli.types import output_file


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``spectrum`` generator target."""
    p = sub.add_parser("spectrum", help="m_γγ events in three categories (parquet/CSV), the input of `ana ftest`",
                       description="Write a table with columns mgg [GeV], cat and weight: per category a falling "
                       "spectrum on [100, 180] GeV plus a small Gaussian peak at --signal-mass.")
    p.add_argument("--out", required=True, type=output_file, metavar="FILE", help="output .parquet or .csv")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--scale", type=float, default=1.0, help="multiply the event counts (default 1: 38000 events)")
    p.add_argument("--signal-mass", type=float, default=125.0, metavar="GEV")
    p.add_argument("--no-signal", action="store_true", help="background only")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the table and say where."""
    from fileset.generate.spectrum import generate_spectrum

    path = generate_spectrum(args.out, seed=args.seed, scale=args.scale,
                             signal_mass=None if args.no_signal else args.signal_mass)
    print(f"wrote {path}")
    return 0
