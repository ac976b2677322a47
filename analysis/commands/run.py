"""``ana run ttbar``: process a fileset into histograms on a chosen executor."""

from __future__ import annotations

import argparse

from analysis.run import EXECUTORS


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``run`` subcommand."""
    parser = sub.add_parser("run", help="run a processor over a fileset and save histograms")
    parser.add_argument("workflow", choices=["ttbar"], help="which processor to run")
    parser.add_argument("--fileset", required=True, help="AGC-style ntuples.json (local or remote paths)")
    parser.add_argument("--out", required=True, help="output directory (histograms.root, metrics.json)")
    parser.add_argument("--executor", choices=EXECUTORS, default="futures")
    parser.add_argument("--workers", type=int, default=None, help="parallel workers (default: all cores)")
    parser.add_argument("--scheduler", default=None, help="Dask scheduler address, e.g. tcp://host:8786")
    parser.add_argument("--chunksize", type=int, default=100_000, help="events per chunk")
    parser.add_argument("--max-files", type=int, default=-1, help="N_FILES_MAX_PER_SAMPLE (-1: all)")
    parser.add_argument("--samples", default=None, help="samples YAML (cross-sections, luminosity)")
    parser.add_argument("--no-progress", action="store_true", help="disable the progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the ttbar processor and print a short summary."""
    from analysis.run import run_ttbar

    result = run_ttbar(args.fileset, args.out, executor=args.executor, workers=args.workers,
                       scheduler=args.scheduler, chunksize=args.chunksize, max_files=args.max_files,
                       samples_config=args.samples, progress=not args.no_progress)
    m = result.metrics
    print(f"processed {m['events_processed']} events in {m['wall_time_s']:.1f} s "
          f"({m['events_per_s']:.0f} events/s) with {args.executor}; wrote {result.output_dir}/histograms.root")
    return 0
