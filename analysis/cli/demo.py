"""``ana demo``: the README's main job — the whole AGC chain on synthetic data in about a minute."""

from __future__ import annotations

import argparse

from analysis.execution.options import EXECUTORS


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``demo`` subcommand."""
    parser = sub.add_parser("demo", help="generate → process → fit → plots → report.html on synthetic data")
    parser.add_argument("--out", default="demo", help="output directory (default: ./demo)")
    parser.add_argument("--events-per-file", type=int, default=25_000)
    parser.add_argument("--files-per-sample", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
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
    poi, err = res.fit.poi
    print(f"{res.fit.model.config.poi_name} = {poi:.3f} ± {err:.3f}")
    print(f"report: {res.report}")
    return 0
