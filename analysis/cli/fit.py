"""``ana fit``: histograms → cabinetry → pyhf workspace → fit, ranking, scan, significance, limit, plots."""

from __future__ import annotations

import argparse
import time


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``fit`` subcommand."""
    parser = sub.add_parser("fit", help="build the pyhf workspace with cabinetry and fit it")
    parser.add_argument("--config", default="cabinetry_config.yml", help="cabinetry config (YAML)")
    parser.add_argument("--histograms", required=True, help="histograms.root from `ana run`")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--no-ranking", action="store_true", help="skip the impact ranking (faster)")
    parser.add_argument("--no-limit", action="store_true", help="skip the CLs upper limit")
    parser.add_argument("--maxiter", type=int, default=None, help="Minuit call limit per fit (default 100000)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the fit step, print the POI and write DIR/report.html."""
    t0 = time.perf_counter()
    from analysis.agc.inference import run_fit

    outcome = run_fit(args.config, args.histograms, args.out, ranking=not args.no_ranking, limit=not args.no_limit,
                      maxiter=args.maxiter)
    poi, err = outcome.poi
    print(f"{outcome.model.config.poi_name} = {poi:.3f} ± {err:.3f}")
    if outcome.significance is not None:
        print(f"discovery significance: {outcome.significance.observed_significance:.2f} σ observed, "
              f"{outcome.significance.expected_significance:.2f} σ expected")
    if outcome.limit is not None:
        print(f"95% CL upper limit on {outcome.model.config.poi_name}: {outcome.limit.observed_limit:.3f} observed, "
              f"{outcome.limit.expected_limit[2]:.3f} expected")
    print(f"wrote {args.out}/fit_results.json and plots")
    from analysis.agc.report import write_fit_report

    print(f"report: {write_fit_report(args.out, time.perf_counter() - t0)}")
    return 0
