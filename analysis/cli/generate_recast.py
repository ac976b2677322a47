"""``ana generate recast``: tiny RECAST inputs (preserved data/background archive, a selected new signal)."""

from __future__ import annotations

import argparse

from analysis.cli.types import non_negative_int, output_dir, positive_float, positive_int

def register(targets: argparse._SubParsersAction) -> None:
    """Add ``ana generate recast``."""
    p = targets.add_parser("recast", help="tiny RECAST inputs: preserved data/background and a selected new signal")
    p.add_argument("--out", type=output_dir, required=True, metavar="DIR")
    p.add_argument("--seed", type=non_negative_int, default=1)
    p.add_argument("--what", choices=("all", "preserved", "signal"), default="all")
    p.add_argument("--bins", type=positive_int, default=20, help="m_jj bins in [50, 250] GeV")
    p.add_argument("--background-events", type=positive_float, default=5000.0, help="expected background events")
    p.add_argument("--mc-events", type=positive_int, default=40000, help="background MC events")
    p.add_argument("--signal-mass", type=positive_float, default=125.0, metavar="GEV")
    p.add_argument("--signal-width", type=positive_float, default=4.0, metavar="GEV")
    p.add_argument("--signal-events", type=positive_int, default=20000, help="generated signal events")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """CLI entry: write the files and list them."""
    from fileset.generate.recast import generate_recast

    res = generate_recast(args.out, seed=args.seed, what=args.what, bins=args.bins,
                          background_events=args.background_events, mc_events=args.mc_events,
                          signal_mass_gev=args.signal_mass, signal_width_gev=args.signal_width,
                          signal_events=args.signal_events)
    for p in (res.preserved_file, res.signal_file, res.selection_json):
        if p is not None:
            print(f"wrote {p}")
    return 0
