"""``ana generate agc``: synthetic AGC ttbar ntuples and their ntuples.json."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``agc`` generator target."""
    parser = sub.add_parser("agc", help="synthetic CMS-open-data-style AGC ntuples (all nine sample sets)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--events-per-file", type=int, default=20_000)
    parser.add_argument("--files-per-sample", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--ttbar-scale", type=float, default=1.0, help="scale of ttbar in the pseudodata")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Generate files and print where the index is."""
    from analysis.errors import AnalysisError
    from fileset.generate.agc import generate_agc

    if args.events_per_file < 1 or args.files_per_sample < 1:
        raise AnalysisError("--events-per-file and --files-per-sample must be positive")
    if args.ttbar_scale < 0:
        raise AnalysisError("--ttbar-scale must be non-negative")
    path = generate_agc(args.out, args.events_per_file, args.files_per_sample, args.seed, args.ttbar_scale)
    print(f"wrote {path}")
    return 0
