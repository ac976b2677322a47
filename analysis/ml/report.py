"""Report of ``ana ml train`` / ``ana ml region``, built from the output directory.

``metrics.json`` (training: held-out AUCs, efficiencies, hyperparameter scans) and ``score_region.json``
(score-defined region yields) are each optional; a directory holding both gets one page with both parts.
Unknown keys are ignored.
"""

from __future__ import annotations

from pathlib import Path


from analysis.errors import AnalysisError
from analysis.plotting import process_style
from analysis.report import PM_MEANING, Quantity, Report, add_remaining_figures, format_duration, pm, read_json

PRETTY = {"gbdt": "Gradient-boosted trees", "knn": "k nearest neighbours", "tree": "Decision tree"}


def _plain(label: str) -> str:
    """A process label without mathtext, for HTML tables."""
    return label.replace("$t\\bar{t}$", "tt̄")


def write_ml_report(out_dir: str | Path, wall_time_s: float | None = None) -> Path:
    """Write ``out_dir/report.html`` from metrics.json and/or score_region.json and the plots there.

    Args:
        out_dir: output directory of ``ana ml train`` and/or ``ana ml region``.
        wall_time_s: wall time of the step in seconds (shown when given).

    Returns:
        The report path.

    Raises:
        AnalysisError: neither metrics.json nor score_region.json is in ``out_dir``.
    """
    out = Path(out_dir)
    train = read_json(out / "metrics.json") if (out / "metrics.json").is_file() else None
    region = read_json(out / "score_region.json") if (out / "score_region.json").is_file() else None
    if train is None and region is None:
        raise AnalysisError(f"{out}: neither metrics.json (ana ml train) nor score_region.json (ana ml region) found")
    rep = Report("ttbar classifier", subtitle=f"output: {out}")
    if train is not None:
        default = train.get("default_classifier")
        clf = train.get("classifiers", {})
        rep.section("Training and held-out evaluation")
        d = clf.get(default, {})
        if d:
            rep.headline(f"{PRETTY.get(default, default)}: AUC = {pm(d['auc'], d['auc_uncertainty'])} "
                         f"({PM_MEANING['hanley_mcneil']}) on the held-out test set")
        rep.numbers({
            "signal process": Quantity(train.get("signal_process"), "", "label 1; every other process is background"),
            "training / test events": Quantity(f"{train.get('n_train')} / {train.get('n_test')}", "events",
                                               f"test: {train.get('n_test_signal')} signal, "
                                               f"{train.get('n_test_background')} background (stratified split)"),
            "features": Quantity(", ".join(train.get("features", []))),
            "saved model": Quantity(Path(str(train.get("model", "model.joblib"))).name, "", f"the {default} classifier"),
            "seed / scikit-learn": Quantity(f"{train.get('seed')} / {train.get('sklearn_version')}"),
        })
        rows = []
        for name, e in clf.items():
            at = e.get("background_efficiency_at_signal_efficiency", {})
            rows.append([PRETTY.get(name, name), "–" if e.get("hyperparameter") is None else e["hyperparameter"],
                         pm(e["auc"], e["auc_uncertainty"]), f"{e.get('auc_weighted', float('nan')):.3f}",
                         f"{e.get('accuracy', float('nan')):.3f}", f"{e.get('signal_efficiency_at_cut', float('nan')):.3f}",
                         f"{e.get('background_efficiency_at_cut', float('nan')):.3f}",
                         ", ".join(f"{float(k):.0%}: {v:.3f}" for k, v in at.items()),
                         f"{e.get('train_time_s', float('nan')):.1f}"])
        cut = next(iter(clf.values()), {}).get("score_cut", 0.5)
        rep.table(["classifier", "hyperparameter", "AUC", "AUC (physics-weighted)", "accuracy", f"ε_sig (score > {cut:g})",
                   f"ε_bkg (score > {cut:g})", "ε_bkg at ε_sig", "training time [s]"], rows,
                  caption=f"All numbers on the held-out test set. AUC ± {PM_MEANING['hanley_mcneil']} standard error; the "
                          "weighted AUC uses the xsec·lumi/N event weights; hyperparameter: k for kNN, depth for the tree "
                          "(tuned on a validation part of the training set).")
        for name, e in clf.items():
            scan = e.get("validation_auc_scan") or {}
            if scan:
                rep.table(["hyperparameter", "validation AUC"], [[k, f"{v:.4f}"] for k, v in scan.items()],
                          collapsed=f"{PRETTY.get(name, name)}: hyperparameter scan")
        for stem, cap in (("roc", "ROC curves of every classifier on the held-out test set (signal vs background "
                                  "efficiency); AUC ± Hanley–McNeil standard error in the legend."),
                          ("scores", f"Score distributions of the {default} classifier, unit area: test set (filled) vs "
                                     "training set (points, √N errors) — agreement means no visible overtraining; "
                                     "dashed: the score cut.")):
            if (out / f"{stem}.png").is_file():
                rep.figure(out / f"{stem}.png", cap)
    if region is not None:
        cut = region.get("score_cut")
        rep.section(f"Score-defined region (score > {cut:g})")
        ys = region.get("yields", {})
        rows = []
        for i, (proc, y) in enumerate(ys.items()):
            rows.append([_plain(process_style(proc, index=i)[1]), y.get("events_4j2b"), y.get("events_selected"),
                         f"{y.get('efficiency', float('nan')):.3f}", f"{y.get('expected_4j2b', float('nan')):.1f}",
                         f"{y.get('expected_selected', float('nan')):.1f}"])
        rep.table(["process", "MC events in 4j2b", "MC events selected", "efficiency", "expected in 4j2b",
                   "expected selected"], rows,
                  caption=f"Model {Path(str(region.get('model', '?'))).name}; expected = Σ of the xsec·lumi/N weights "
                          "(events at the sample's luminosity).")
        if (out / "score_region.png").is_file():
            rep.figure(out / "score_region.png", f"{region.get('observable', 'm_bjj')} of the 4j2b events with classifier "
                       f"score > {cut:g}, stacked per process (same colours as every other plot); hatched: MC stat. unc. "
                       "(√Σw²).")
    if wall_time_s is not None:
        rep.section("Run")
        rep.numbers({"wall time of the step": Quantity(format_duration(wall_time_s), "", "from start to report")})
    add_remaining_figures(rep, out)
    return rep.write(out / "report.html")
