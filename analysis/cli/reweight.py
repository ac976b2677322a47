"""``ana reweight derive|apply``: data-driven HT_all reweighting of tt+≥1b and applying it back."""

from __future__ import annotations

import argparse

from analysis.cli.types import output_dir
from analysis.cli.runflags import add_run_flags, run_options
from analysis.console import stage


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``reweight`` subcommand with ``derive`` and ``apply``."""
    parser = sub.add_parser("reweight", help="derive/apply the smooth HT_all reweighting of tt+>=1b")
    steps = parser.add_subparsers(dest="step", metavar="STEP")
    steps.required = True

    d = steps.add_parser("derive", help="derive the correction (correctionlib JSON, summary, plots)")
    d.add_argument("--fileset", default=None, help="ntuples.json with data (default: basePath/ntuples.json)")
    d.add_argument("--out", type=output_dir, required=True, help="output directory")
    d.add_argument("--config", default=None, help="reweight YAML (defaults: single-lepton 5j3b setup)")
    d.add_argument("--samples", default=None, help="samples YAML (cross-sections, luminosity)")
    add_run_flags(d, chunksize=False)
    d.add_argument("--no-plots", action="store_true")
    d.set_defaults(func=derive_with_report)

    a = steps.add_parser("apply", help="run the ttbar analysis with the correction and its ht_reweight_up/down variations")
    a.add_argument("--fileset", required=True, help="ntuples.json")
    a.add_argument("--correction", required=True, help="ht_reweighting.json from 'ana reweight derive'")
    a.add_argument("--out", type=output_dir, required=True, help="output directory (histograms.root, metrics.json)")
    a.add_argument("--samples", default=None, help="samples YAML (cross-sections, luminosity)")
    add_run_flags(a)
    a.add_argument("--nominal-only", action="store_true",
                   help="apply the nominal-sample correction to alternative ttbar samples too")
    a.set_defaults(func=run_apply)


def run_derive(args: argparse.Namespace) -> int:
    """Derive; print the normalisation, the function and closure per nJets bin, every warning, and the outputs."""
    import sys
    import warnings

    from analysis.reweighting.config import load_config
    from analysis.reweighting.derive import derive
    from analysis.reweighting.smooth import ReweightingWarning

    run = run_options(args)
    load_config(args.config)  # the reweight YAML checked before any work (one line naming file and keys)

    with warnings.catch_warnings(), stage("Deriving the HT reweighting (processing, fits, closure)"):
        warnings.simplefilter("ignore", ReweightingWarning)  # printed below, once, without a traceback-style prefix
        summary = derive(args.fileset, args.out, args.config, executor=run.resolved_executor, workers=run.workers,
                         samples_config=args.samples, plots=not args.no_plots)
    for v, doc in summary["variations"].items():
        norm = doc["normalisation"]
        blocks = "; ".join(f"{b['factor']:.4f} = {b['data_star_events']:.1f} data* / {b['mc_events_before']:.1f} MC "
                           f"({', '.join(b['njets_bins'])})" for b in norm["blocks"])
        print(f"{v}: MC [{norm['mc']}] scaled to data* [{norm['data_star']}] by {blocks}")
        for b in doc["njets_bins"]:
            fn, c = b["function"], b["closure"]
            shape = fn["method"]
            if fn["method"] == "polynomial":
                pol = fn["polynomial"]
                top = max(e["order"] for e in pol["order_scan"])
                shape = (f"AIC-averaged polynomial (orders 0-{top}, best {pol['order']})"
                         if pol["order_selection"] == "aic_average" else f"order-{pol['order']} polynomial")
            print(f"  {b['label']}: {len(b['k'])} bin{'s' if len(b['k']) != 1 else ''}, {shape} on {fn['populated_range_gev'][0]:.0f}–"
                  f"{fn['populated_range_gev'][1]:.0f} GeV; closure chi2/ndf before {c['chi2_before']:.1f}/{c['ndf']}, "
                  f"after {c['chi2_smooth']:.1f}/{c['ndf']}, KDE {c['chi2_kde']:.1f}/{c['ndf']}")
    for w in summary["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    print(f"wrote {summary['correction_file']} and {args.out}/derivation.json")
    return 0


def run_apply(args: argparse.Namespace) -> int:
    """Apply and print where the histograms are."""
    from analysis.reweighting.derive import apply_correction

    run = run_options(args)
    with stage("Applying the HT reweighting"):
        result = apply_correction(args.fileset, args.correction, args.out, executor=run.resolved_executor,
                                  workers=run.workers, chunksize=run.chunksize, samples_config=args.samples,
                                  use_alternative=not args.nominal_only)
    print(f"processed {result.metrics.get('events_processed', sum(result.nevents.values()))} events; "
          f"wrote {result.output_dir}/histograms.root")
    return 0


def derive_with_report(args: argparse.Namespace) -> int:
    """:func:`run_derive`, then ``DIR/report.html`` with the whole step's wall time."""
    import time

    from analysis.reweighting.report import write_reweight_report

    t0 = time.perf_counter()
    code = run_derive(args)
    print(f"report: {write_reweight_report(args.out, time.perf_counter() - t0)}")
    return code
