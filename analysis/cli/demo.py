"""``ana demo``: the README's main job — the whole AGC chain on synthetic data in about a minute."""

from __future__ import annotations

import argparse

from analysis.cli.types import non_negative_int, output_dir, positive_int
from analysis.execution.options import EXECUTORS


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``demo`` subcommand."""
    parser = sub.add_parser("demo", help="generate → process → fit → plots → report.html on synthetic data")
    parser.add_argument("--out", type=output_dir, default="demo", help="output directory (default: ./demo)")
    parser.add_argument("--events-per-file", type=positive_int, default=25_000)
    parser.add_argument("--files-per-sample", type=positive_int, default=2)
    parser.add_argument("--seed", type=non_negative_int, default=1)
    parser.add_argument("--executor", choices=EXECUTORS, default="futures")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--no-ranking", action="store_true", help="skip the impact ranking (faster)")
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo and print where the report is."""
    from analysis.agc.demo import run_demo

    res = run_demo(args.out, events_per_file=args.events_per_file, files_per_sample=args.files_per_sample,
                   seed=args.seed, executor=args.executor, workers=args.workers, ranking=not args.no_ranking,
                   progress=not args.no_progress)
    import sys

    print(res.fit.poi_interval.text())
    g = res.fit.gof
    print(f"goodness of fit (saturated model): χ²/ndf = {g.chi2:.1f}/{g.ndf}, p = {g.p_value:.3f}")
    for w in res.fit.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(f"report: {res.report}")
    return 0
