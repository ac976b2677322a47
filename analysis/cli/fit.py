"""``ana fit``: histograms → cabinetry → pyhf workspace → fit (MINOS), impacts, scan, χ², plots; limits on request."""

from __future__ import annotations

import argparse
import sys
import time

from analysis.cli.types import output_dir, positive_int
def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``fit`` subcommand."""
    parser = sub.add_parser("fit", help="build the pyhf workspace with cabinetry and fit it")
    parser.add_argument("--config", default="cabinetry_config.yml", help="cabinetry config (YAML)")
    parser.add_argument("--histograms", required=True, help="histograms.root from `ana run`")
    parser.add_argument("--out", type=output_dir, required=True, help="output directory")
    parser.add_argument("--no-ranking", action="store_true", help="skip the impact ranking (faster)")
    parser.add_argument("--no-scan", action="store_true", help="skip the profile-likelihood scan of the POI")
    parser.add_argument("--significance", action="store_true", help="also compute the discovery significance")
    parser.add_argument("--limit", action="store_true", help="also compute CLs upper limits on the POI")
    parser.add_argument("--no-limit", action="store_true", help=argparse.SUPPRESS)  # limits are off by default now
    add_fit_controls(parser)
    parser.add_argument("--maxiter", type=positive_int, default=None, help="Minuit call limit per fit (default 100000)")
    parser.set_defaults(func=run)


def add_fit_controls(parser: argparse.ArgumentParser) -> None:
    """``--fix NAME=VALUE``, ``--prune NAME`` and ``--optimizer`` (as pyhf's CLI offers them)."""
    parser.add_argument("--fix", action="append", default=[], metavar="NAME=VALUE",
                        help="hold a parameter fixed at VALUE (repeatable)")
    parser.add_argument("--prune", action="append", default=[], metavar="NAME",
                        help="remove a modifier (or one shapesys/staterror bin NAME[i]) before fitting (repeatable)")
    parser.add_argument("--optimizer", choices=("minuit", "scipy"), default="minuit",
                        help="first optimiser of every fit; the other is the fallback (default minuit)")


def run(args: argparse.Namespace) -> int:
    """Run the fit step, print the POI interval, fit quality and warnings, and write DIR/report.html."""
    t0 = time.perf_counter()
    from analysis.agc.inference import run_fit
    from analysis.stats.likelihood import enable_compilation_cache

    enable_compilation_cache()  # compiled likelihoods kept on disk, as numba kernels are

    outcome = run_fit(args.config, args.histograms, args.out, ranking=not args.no_ranking, scan=not args.no_scan,
                      significance=args.significance, limit=args.limit and not args.no_limit, maxiter=args.maxiter,
                      fix=args.fix, prune=args.prune, optimizer=args.optimizer, quiet=False,
                      verbose=getattr(args, "verbose", False))
    print(outcome.poi_interval.text())
    g = outcome.gof
    print(f"goodness of fit (saturated model): χ²/ndf = {g.chi2:.1f}/{g.ndf}, p = {g.p_value:.3f}")
    if outcome.significance is not None:
        print(f"discovery significance: {outcome.significance.observed:.2f} σ observed, "
              f"{outcome.significance.expected:.2f} σ expected")
    if outcome.limit is not None:
        print(f"95% CL upper limit on {outcome.model.config.poi_name}: {outcome.limit.observed:.3f} observed, "
              f"{outcome.limit.expected[2]:.3f} expected")
    for w in outcome.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(f"wrote {args.out}/fit_results.json and plots")
    from analysis.agc.report import write_fit_report

    print(f"report: {write_fit_report(args.out, time.perf_counter() - t0)}")
    return 0
