"""``ana ml features|train|region``: 4j2b feature table, ttbar classifiers, score-defined region."""

from __future__ import annotations

import argparse

from analysis.cli.runflags import add_run_flags, run_options
from analysis.cli.types import count_or_all, fraction, output_dir
from analysis.console import stage


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``ana ml`` with its three steps."""
    parser = sub.add_parser("ml", help="ttbar classifier: features, training (kNN, tree, GBDT), score region")
    steps = parser.add_subparsers(dest="ml_step", metavar="STEP")
    steps.required = True

    p = steps.add_parser("features", help="per-event 4j2b features + labels of the nominal MC → features.parquet")
    _run_options(p)
    p.set_defaults(func=run_features)

    p = steps.add_parser("train", help="train kNN, decision tree and GBDT; ROC/AUC on a held-out set; save model")
    p.add_argument("--features", required=True, help="features.parquet from `ana ml features`")
    p.add_argument("--out", type=output_dir, required=True, metavar="DIR")
    # options, types and defaults: analysis.ml.options.TrainOptions (validated there, once)
    p.add_argument("--classifiers", nargs="+", metavar="NAME",
                   help="any of gbdt, knn, tree (default: all three); first one trained is saved when gbdt is absent")
    p.add_argument("--test-fraction", metavar="F", help="held-out share in (0, 1) (default 0.25)")
    p.add_argument("--score-cut", metavar="CUT", help="cut in [0, 1) for the quoted efficiencies (default 0.5)")
    p.add_argument("--seed", metavar="N", help="split and training seed (default 1)")
    p.set_defaults(func=run_train)

    p = steps.add_parser("region", help="select 4j2b events with classifier score > cut and histogram m_bjj")
    _run_options(p)
    p.add_argument("--model", required=True, help="model.joblib from `ana ml train`")
    p.add_argument("--cut", type=fraction, required=True, help="score cut in [0, 1)")
    p.set_defaults(func=run_region)


def _run_options(p: argparse.ArgumentParser) -> None:
    """Input and processing options shared by the processing steps."""
    p.add_argument("--input", required=True, help="AGC ntuples.json (nominal samples are used)")
    p.add_argument("--out", type=output_dir, required=True, metavar="DIR")
    add_run_flags(p)
    p.add_argument("--max-files", type=count_or_all, default=-1, help="files per sample (-1: all)")


def run_features(args: argparse.Namespace) -> int:
    """Extract the feature table."""
    from analysis.ml import extract_features

    run = run_options(args)
    table = extract_features(args.input, args.out, executor=run.resolved_executor, workers=run.workers,
                             chunksize=run.chunksize, max_files=args.max_files)
    print(f"{len(table)} events in 4j2b: {table.metrics['events_in_region_per_process']}")
    print(f"wrote {table.path}")
    return 0


def run_train(args: argparse.Namespace) -> int:
    """Build the options, train and evaluate; print the AUCs."""
    from analysis.ml import train_and_evaluate
    from analysis.ml.options import TrainOptions

    options = TrainOptions.from_args(args)  # one place; invalid values: one line naming the flag, exit 2
    with stage("Training and evaluating the classifiers"):
        result = train_and_evaluate(args.features, args.out, options=options)
    for name, ev in result.evaluations.items():
        print(f"{name:5s} AUC = {ev.auc:.3f} ± {ev.auc_uncertainty:.3f}  accuracy = {ev.accuracy:.3f}  "
              f"eff(sig) = {ev.signal_efficiency:.3f}  eff(bkg) = {ev.background_efficiency:.3f} at score > {ev.score_cut:g}")
    print(f"wrote {args.out}/metrics.json, roc, scores, model.joblib ({result.default.name}) and report.html")
    return 0


def run_region(args: argparse.Namespace) -> int:
    """Apply the model and fill the score-defined region."""
    from analysis.ml import score_region

    run = run_options(args)
    table = score_region(args.input, args.model, args.cut, args.out, executor=run.resolved_executor,
                         workers=run.workers, chunksize=run.chunksize, max_files=args.max_files)
    for proc, y in table.metrics["score_region"]["yields"].items():
        print(f"{proc:20s} efficiency {y['efficiency']:.3f}  expected {y['expected_selected']:.1f} of {y['expected_4j2b']:.1f}")
    print(f"wrote {args.out}/score_region.json, score_region.png/pdf and report.html")
    return 0
