"""``ana demo``: the README's main job — the whole AGC chain on synthetic data in about a minute."""

from __future__ import annotations

import argparse

from analysis.cli.types import output_dir


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``demo`` subcommand (options, types and defaults: ``analysis.agc.demo.DemoOptions``)."""
    parser = sub.add_parser("demo", help="generate → process → fit → plots → report.html on synthetic data")
    parser.add_argument("--out", type=output_dir, default="demo", help="output directory (default: ./demo)")
    parser.add_argument("--events-per-file", metavar="N", help="generated events per file (default 25000)")
    parser.add_argument("--files-per-sample", metavar="N", help="generated files per sample (default 2)")
    parser.add_argument("--seed", metavar="N", help="generator seed (default 1)")
    parser.add_argument("--executor", metavar="NAME", help="iterative, futures (default) or dask")
    parser.add_argument("--workers", metavar="N", help="worker processes (default: usable cores)")
    parser.add_argument("--no-ranking", action="store_true", help="skip the impact ranking (faster)")
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build the options (one place; invalid values: one line, exit 2), run the demo, print where the report is."""
    import sys

    from analysis.agc.demo import DemoOptions, run_demo
    from analysis.stats.likelihood import enable_compilation_cache

    enable_compilation_cache()  # compiled likelihoods kept on disk, as numba kernels are

    options = DemoOptions.from_args(args, ranking=not args.no_ranking, progress=not args.no_progress)
    res = run_demo(options=options)
    print(res.fit.poi_interval.text())
    g = res.fit.gof
    print(f"goodness of fit (saturated model): χ²/ndf = {g.chi2:.1f}/{g.ndf}, p = {g.p_value:.3f}")
    for w in res.fit.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(f"report: {res.report}")
    return 0
