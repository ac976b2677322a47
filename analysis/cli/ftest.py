"""``ana ftest``: background f-test and discrete-profiling envelope per category, categories in parallel."""

from __future__ import annotations

import argparse
import sys

from analysis.cli.types import (
    finite_float, non_negative_float, non_negative_int, output_dir, positive_int, probability,
)
from analysis.console import stage
from analysis.execution.options import EXECUTORS


def _categories(text: str) -> str | list[str]:
    """'auto' or a comma-separated list of category names."""
    return "auto" if text.strip() == "auto" else [c.strip() for c in text.split(",") if c.strip()]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``ftest`` subcommand."""
    p = sub.add_parser(
        "ftest",
        help="f-test over background function families and envelope (multi-pdf) per category",
        description="Histogram the observable per category (CSV, parquet or ROOT tree of events, or a ROOT file "
        "of histograms, one per category), run the f-test of every function family, build the discrete-"
        "profiling envelope and write DIR/<category>/envelope.json, ftest_table.{md,csv}, ftest.json, "
        "multipdf.{png,pdf} and splusb_blinded.{png,pdf}, plus DIR/summary.json. Options may also come from "
        "--config YAML (same names with underscores); flags win. A category with fewer than min_events (config, "
        "default 20) events in the fit bins (e.g. empty) is skipped and named. Exit code 1 if a category failed or was skipped "
        "(unless --keep-going), 2 for bad input, including when no category has enough events to fit "
        "(nothing is written then).",
    )
    p.add_argument("--input", help="CSV, parquet or ROOT file")
    p.add_argument("--observable", help="column with the mass observable (axis label for histogram files)")
    p.add_argument("--tree", help="tree name in a ROOT file with several trees")
    p.add_argument("--category-column", help="column whose values define the categories")
    p.add_argument("--categories", type=_categories, help="'auto' (default: the column's values) or a,b,c")
    p.add_argument("--range", nargs=2, type=finite_float, metavar=("LO", "HI"), help="fit range (default: data extent)")
    p.add_argument("--blind", nargs=2, type=finite_float, metavar=("LO", "HI"), help="blinded signal window, excluded from fits")
    p.add_argument("--weight-column", help="per-event weight column")
    p.add_argument("--bins", type=positive_int, help="number of bins (default 80 for events)")
    p.add_argument("--out", type=output_dir, required=True, metavar="DIR", help="output directory")
    p.add_argument("--executor", choices=EXECUTORS, help="iterative, futures (default) or dask")
    p.add_argument("--workers", type=positive_int, help="parallel workers (default: usable cores)")
    p.add_argument("--pseudodata", action="store_true", default=None,
                   help="input is background simulation: weighted histogram, then Poisson-fluctuated with --seed")
    p.add_argument("--seed", type=non_negative_int, help="random seed (pseudodata, toys, fit starts; default 0)")
    p.add_argument("--keep-going", action="store_true", default=None, help="exit 0 even if some categories failed")
    p.add_argument("--families", type=lambda s: [f.strip() for f in s.split(",") if f.strip()],
                   help="comma-separated families (default exponential,bernstein,laurent,powerlaw; also dijet)")
    p.add_argument("--pvalue-threshold", type=probability, help="f-test significance threshold (default 0.05)")
    p.add_argument("--correction", type=non_negative_float, help="envelope penalty per parameter (default 1)")
    p.add_argument("--ftest-2d", nargs=2, metavar=("FAM1", "FAM2"), help="also run the 2D f-test of FAM1 × FAM2")
    p.add_argument("--config", metavar="YAML", help="YAML file with any of the options above")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build the config, run every category, print one line per category; 1 if any failed (unless keep-going)."""
    from analysis.resonance.ftest_config import FTestConfig, make_config
    from analysis.resonance.ftest_workflow import run_ftest

    # the flags carry the option names of FTestConfig (the one definition); unset flags are None
    options = {name: getattr(args, name) for name in FTestConfig.model_fields if hasattr(args, name)}
    cfg = make_config(options, args.config)
    with stage(f"f-test and envelope per category of {cfg.input}"):
        result = run_ftest(cfg, args.out, progress=sys.stderr.isatty() and not getattr(args, "no_progress", False))
    for cat in result.categories:
        if cat["status"] == "ok":
            best = cat["best"]
            print(f"category {cat['category']}: envelope {', '.join(cat['envelope'])}; best {best['name']} "
                  f"({best['n_params']} parameter{'s' if best['n_params'] != 1 else ''})")
            if cat.get("fit_quality_warning"):
                print(f"ana ftest: warning: category {cat['category']}: {cat['fit_quality_warning']}", file=sys.stderr)
        elif cat["status"] == "skipped":
            print(f"ana ftest: category {cat['category']} skipped: {cat['error']}", file=sys.stderr)
        else:
            print(f"ana ftest: category {cat['category']} failed: {cat['error']}", file=sys.stderr)
    print(f"wrote {result.out_dir / 'summary.json'}; report: {result.out_dir / 'report.html'}")
    if result.failed and not cfg.keep_going:
        return 1
    return 0
