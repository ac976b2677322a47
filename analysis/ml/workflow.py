"""ttbar-vs-background classifiers on the 4j2b features: train, evaluate on a held-out set, save, apply.

Seed 004 trained a kNN and a decision tree on per-event features and quoted their accuracy. Here:

* features come from ``processors.ml_features.MLFeatures`` (:func:`extract_features` → parquet);
* :func:`train_classifiers` splits off a held-out test set (stratified, seeded), tunes the seed's
  baselines on a validation part of the training set (kNN: k ∈ 3…13 on standardised inputs;
  decision tree: depth ∈ 5…45) and trains the default, a histogram gradient-boosted classifier;
* every classifier is evaluated on the test set only: ROC curve, AUC (with its Hanley–McNeil
  uncertainty, and weighted by the physics weight xsec·lumi/N), accuracy (the seed's "efficiency"),
  signal/background efficiencies at a score cut and background efficiency at fixed signal efficiency;
* :func:`save_model` / :func:`load_model` store the estimator with its feature list (joblib); a loaded
  model scores columns, and ``MLFeatures(model_path=..., score_cut=...)`` or :func:`score_region`
  defines a region by its score.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import hist
import joblib
import matplotlib.pyplot as plt
import numpy as np
import sklearn
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from analysis.errors import AnalysisError
from analysis.ml.report import write_ml_report
from analysis.plotting import label, ordered_processes, process_style, save_figure, use_style
from processors.ml_features import FEATURES, SIGNAL_PROCESS, MLFeatures
from processors.ml_model import MODEL_FORMAT, ScoreModel, check_columns, feature_matrix, load_model, scores_of

CLASSIFIERS = ("gbdt", "knn", "tree")  # default first
DEFAULT_CLASSIFIER = "gbdt"
KNN_K = tuple(range(3, 15, 2))  # the seed's scan
TREE_DEPTHS = tuple(range(5, 50, 5))  # the seed's scan
SIGNAL_EFFICIENCIES = (0.5, 0.7, 0.9)  # working points reported as background efficiency
PRETTY = {"gbdt": "Gradient-boosted trees", "knn": "k nearest neighbours", "tree": "Decision tree"}


# ---- features -----------------------------------------------------------------------------------

@dataclass
class FeatureTable:
    """Per-event columns of the 4j2b region (features, label, weight, process, ...) and run metrics."""

    columns: dict[str, np.ndarray]
    metrics: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    hist: hist.Hist | None = None

    def __len__(self) -> int:
        """Number of events (rows)."""
        return int(len(self.columns["label"])) if "label" in self.columns else 0


def extract_features(fileset_json: str | Path, out_dir: str | Path | None = None, *, executor: str = "futures",
                     workers: int | None = None, chunksize: int = 100_000, max_files: int = -1,
                     model_path: str | Path | None = None, score_cut: float | None = None,
                     progress: bool = False) -> FeatureTable:
    """Run ``MLFeatures`` over the nominal MC samples of an AGC fileset json; write ``features.parquet``.

    With ``model_path``/``score_cut`` the table gets a ``score`` column and ``hist`` holds the
    observable of the score-defined region per process.
    """
    from analysis.execution.runner import run_processor, schema_for
    from fileset.build import build_fileset

    fileset = {k: v for k, v in build_fileset(fileset_json, max_files).items()
               if v["metadata"]["variation"] == "nominal" and v["metadata"]["process"] != "data"}
    if not fileset:
        raise AnalysisError(f"{fileset_json}: no nominal simulated samples to extract features from")
    formats = {v["metadata"].get("format", "ntuple") for v in fileset.values()}
    if formats != {"ntuple"}:
        raise AnalysisError(f"{fileset_json}: ML features need AGC ntuples, got format(s) {sorted(formats)}")
    proc = MLFeatures(model_path=model_path, score_cut=score_cut)
    output, metrics = run_processor(fileset, proc, executor=executor, workers=workers, chunksize=chunksize,
                                    schema=schema_for(fileset), progress=progress)
    columns = output["columns"]
    table = FeatureTable(columns, _table_metrics(columns, output.get("nevents", {}), metrics), hist=output.get("hist"))
    if len(table) == 0:
        raise AnalysisError(f"{fileset_json}: no event passes the 4j2b selection (1 lepton, >= 4 jets, >= 2 b-tags)")
    if out_dir is not None:
        out = Path(out_dir)
        table.path = write_features(columns, out / "features.parquet")
        (out / "features.json").write_text(json.dumps(table.metrics, indent=2, default=str) + "\n")
    return table


def _table_metrics(columns: dict[str, np.ndarray], nevents: dict[str, int], run_metrics: dict[str, Any]) -> dict[str, Any]:
    """Events per process in the region, events processed per dataset and the processing time."""
    procs, counts = np.unique(np.asarray(columns["process"], dtype=str), return_counts=True)
    return {"events_in_region_per_process": {str(p): int(c) for p, c in zip(procs, counts)},
            "events_in_region": int(len(columns["label"])), "events_processed_per_dataset": dict(sorted(nevents.items())),
            "features": list(FEATURES), "signal_process": SIGNAL_PROCESS,
            "processing_time_s": run_metrics.get("processing_time_s"), "executor": run_metrics.get("executor")}


def write_features(columns: dict[str, np.ndarray], path: str | Path) -> Path:
    """Write the columns as a parquet table."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table({k: (np.asarray(v, dtype=str) if np.asarray(v).dtype == object else np.asarray(v))
                      for k, v in columns.items()})
    pq.write_table(table, p)
    return p


def read_features(path: str | Path) -> dict[str, np.ndarray]:
    """Read a feature table written by :func:`write_features` (strings come back as object arrays)."""
    import pyarrow.parquet as pq

    p = Path(path)
    if not p.is_file():
        raise AnalysisError(f"{p}: feature table not found")
    try:
        table = pq.read_table(p)
    except Exception as err:  # pyarrow raises several types for non-parquet files
        raise AnalysisError(f"{p}: not a parquet feature table ({type(err).__name__}: {err})") from None
    out = {}
    for name in table.column_names:
        col = table.column(name)
        out[name] = np.asarray(col.to_pylist(), dtype=object) if col.type in (_string_types()) else col.to_numpy()
    check_columns(out, ["label"], str(p))
    return out


def _string_types() -> tuple:
    """Arrow string types."""
    import pyarrow as pa

    return (pa.string(), pa.large_string())


# ---- classifiers --------------------------------------------------------------------------------

def make_classifier(name: str, param: int | None = None, seed: int = 1):
    """A fresh scikit-learn classifier: ``gbdt`` (default), ``knn`` (k = param), ``tree`` (depth = param)."""
    if name == "gbdt":
        # small trees, slow learning and early stopping: little overtraining on O(10³) events
        return HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05, max_leaf_nodes=8, min_samples_leaf=50,
                                              early_stopping=True, validation_fraction=0.2, n_iter_no_change=15,
                                              random_state=seed)
    if name == "knn":
        return make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=param or 9))
    if name == "tree":
        return DecisionTreeClassifier(max_depth=param or 5, random_state=seed)
    raise AnalysisError(f"unknown classifier {name!r} (choose from {', '.join(CLASSIFIERS)})")


@dataclass
class Evaluation:
    """Held-out performance of one classifier."""

    name: str
    model: Any
    param: int | None
    auc: float
    auc_uncertainty: float
    auc_weighted: float
    accuracy: float
    score_cut: float
    signal_efficiency: float
    background_efficiency: float
    background_efficiency_at: dict[str, float]
    fpr: np.ndarray
    tpr: np.ndarray
    test_scores: np.ndarray
    train_scores: np.ndarray
    scan: dict[str, float] = field(default_factory=dict)
    train_time_s: float = 0.0

    def summary(self) -> dict[str, Any]:
        """JSON-ready numbers (no arrays except the hyperparameter scan)."""
        return {"classifier": self.name, "hyperparameter": self.param, "auc": self.auc,
                "auc_uncertainty": self.auc_uncertainty, "auc_weighted": self.auc_weighted,
                "accuracy": self.accuracy, "score_cut": self.score_cut,
                "signal_efficiency_at_cut": self.signal_efficiency,
                "background_efficiency_at_cut": self.background_efficiency,
                "background_efficiency_at_signal_efficiency": self.background_efficiency_at,
                "validation_auc_scan": self.scan, "train_time_s": self.train_time_s}


@dataclass
class TrainingResult:
    """All classifiers trained on one split, the split itself and the feature list."""

    features: list[str]
    evaluations: dict[str, Evaluation]
    y_test: np.ndarray
    w_test: np.ndarray
    y_train: np.ndarray
    n_train: int
    n_test: int
    seed: int

    @property
    def default(self) -> Evaluation:
        """The default classifier's evaluation (GBDT if trained, else the first)."""
        return self.evaluations.get(DEFAULT_CLASSIFIER) or next(iter(self.evaluations.values()))

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary of the whole training."""
        return {"features": self.features, "n_train": self.n_train, "n_test": self.n_test, "seed": self.seed,
                "n_test_signal": int(self.y_test.sum()), "n_test_background": int((self.y_test == 0).sum()),
                "signal_process": SIGNAL_PROCESS, "default_classifier": self.default.name,
                "classifiers": {k: e.summary() for k, e in self.evaluations.items()},
                "sklearn_version": sklearn.__version__}


def auc_uncertainty(auc: float, n_pos: int, n_neg: int) -> float:
    """Hanley–McNeil standard error of an AUC estimated from n_pos signal and n_neg background events."""
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc)) / (n_pos * n_neg)
    return float(np.sqrt(max(var, 0.0)))


def _tune(name: str, grid: Sequence[int], X: np.ndarray, y: np.ndarray, seed: int) -> tuple[int, dict[str, float]]:
    """Best hyperparameter of a baseline by AUC on a validation quarter of the training set."""
    X_fit, X_val, y_fit, y_val = train_test_split(X, y, test_size=0.25, random_state=seed + 1, stratify=y)
    scan = {str(p): float(roc_auc_score(y_val, scores_of(make_classifier(name, p, seed).fit(X_fit, y_fit), X_val)))
            for p in grid}
    best = max(grid, key=lambda p: (scan[str(p)], -p))
    return int(best), scan


def evaluate(name: str, model, param: int | None, X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray,
             y_test: np.ndarray, w_test: np.ndarray, score_cut: float = 0.5) -> Evaluation:
    """ROC, AUC (± Hanley–McNeil, and physics-weighted), accuracy and efficiencies on the test set."""
    s = scores_of(model, X_test)
    fpr, tpr, _ = roc_curve(y_test, s)
    auc = float(roc_auc_score(y_test, s))
    n_pos, n_neg = int(y_test.sum()), int((y_test == 0).sum())
    sig, bkg = s[y_test == 1], s[y_test == 0]
    at = {f"{e:.2f}": float(np.interp(e, tpr, fpr)) for e in SIGNAL_EFFICIENCIES}
    return Evaluation(
        name=name, model=model, param=param, auc=auc, auc_uncertainty=auc_uncertainty(auc, n_pos, n_neg),
        auc_weighted=float(roc_auc_score(y_test, s, sample_weight=w_test)),
        accuracy=float(np.mean((s > score_cut) == (y_test == 1))), score_cut=score_cut,
        signal_efficiency=float(np.mean(sig > score_cut)), background_efficiency=float(np.mean(bkg > score_cut)),
        background_efficiency_at=at, fpr=fpr, tpr=tpr, test_scores=s, train_scores=scores_of(model, X_train))


def train_classifiers(columns: dict[str, np.ndarray], features: Sequence[str] = FEATURES, *,
                      classifiers: Sequence[str] = CLASSIFIERS, test_fraction: float = 0.25, seed: int = 1,
                      score_cut: float = 0.5, knn_k: Sequence[int] = KNN_K,
                      tree_depths: Sequence[int] = TREE_DEPTHS) -> TrainingResult:
    """Split (stratified, seeded), tune the baselines on validation, train, evaluate on the held-out set."""
    features = list(features)
    if not features:
        raise AnalysisError("no features selected for training")
    unknown = [c for c in classifiers if c not in CLASSIFIERS]
    if unknown:
        raise AnalysisError(f"unknown classifier(s) {', '.join(unknown)} (choose from {', '.join(CLASSIFIERS)})")
    if not 0.0 < test_fraction < 1.0:
        raise AnalysisError(f"test fraction must be in (0, 1), got {test_fraction}")
    X = feature_matrix(columns, features)
    y = np.asarray(columns["label"]).astype(np.int64)
    w = np.asarray(columns["weight"], dtype=np.float64) if "weight" in columns else np.ones(len(y))
    classes, counts = np.unique(y, return_counts=True)
    if set(classes.tolist()) != {0, 1} or counts.min() < 20:
        raise AnalysisError(f"training needs at least 20 signal and 20 background events, got "
                            f"{dict(zip(classes.tolist(), counts.tolist()))} (label: {SIGNAL_PROCESS} = 1)")
    idx_train, idx_test = train_test_split(np.arange(len(y)), test_size=test_fraction, random_state=seed, stratify=y)
    X_train, y_train, X_test, y_test = X[idx_train], y[idx_train], X[idx_test], y[idx_test]
    evaluations: dict[str, Evaluation] = {}
    for name in classifiers:
        t0 = time.perf_counter()
        grid = {"knn": knn_k, "tree": tree_depths}.get(name)
        param, scan = _tune(name, grid, X_train, y_train, seed) if grid else (None, {})
        model = make_classifier(name, param, seed).fit(X_train, y_train)
        ev = evaluate(name, model, param, X_train, y_train, X_test, y_test, w[idx_test], score_cut)
        ev.scan, ev.train_time_s = scan, time.perf_counter() - t0
        evaluations[name] = ev
    return TrainingResult(features, evaluations, y_test, w[idx_test], y_train, len(idx_train), len(idx_test), seed)


# ---- model persistence --------------------------------------------------------------------------

def save_model(evaluation: Evaluation, features: Sequence[str], path: str | Path, info: dict[str, Any] | None = None) -> Path:
    """Store the estimator, its feature list and metadata with joblib (load only files you trust)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump({"format": MODEL_FORMAT, "estimator": evaluation.model, "features": list(features),
                 "classifier": evaluation.name, "sklearn_version": sklearn.__version__,
                 "signal_process": SIGNAL_PROCESS, "info": dict(info or {}, **evaluation.summary())}, p)
    return p


def select_by_score(columns: dict[str, np.ndarray], model: ScoreModel, score_cut: float) -> np.ndarray:
    """Boolean mask of the rows whose score exceeds ``score_cut``."""
    return model.score(columns) > score_cut


# ---- plots --------------------------------------------------------------------------------------

def roc_plot(result: TrainingResult) -> plt.Figure:
    """ROC curves of all classifiers on the held-out set (signal vs background efficiency, AUC in legend)."""
    use_style()
    fig, ax = plt.subplots(figsize=(8, 7))
    for ev in result.evaluations.values():
        ax.plot(ev.fpr, ev.tpr, lw=2, label=f"{PRETTY[ev.name]} (AUC = {ev.auc:.3f} ± {ev.auc_uncertainty:.3f})")
    ax.plot([0, 1], [0, 1], ls=":", color="grey", label="random guess")
    ax.set_xlabel("Background efficiency (single top, W+jets)")
    ax.set_ylabel(r"Signal efficiency ($t\bar{t}$)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.05)
    ax.legend(loc="lower right", fontsize=13, frameon=False)
    label(ax, "Simulation")
    return fig


def score_plot(result: TrainingResult, name: str | None = None, bins: int = 25) -> plt.Figure:
    """Score distributions (unit area) of signal and background, test (filled) vs training (points)."""
    use_style()
    ev = result.evaluations[name] if name else result.default
    fig, ax = plt.subplots(figsize=(8, 6))
    edges = np.linspace(0, 1, bins + 1)
    centers = 0.5 * (edges[1:] + edges[:-1])
    for cls, colour, text in ((1, process_style("ttbar")[0], process_style("ttbar")[1]), (0, "#717581", "background")):
        test = ev.test_scores[result.y_test == cls]
        train = ev.train_scores[result.y_train == cls]
        h_test, _ = np.histogram(test, edges, density=True)
        ax.stairs(h_test, edges, fill=True, alpha=0.35, color=colour, label=f"{text} (test)")
        n_train, _ = np.histogram(train, edges)
        width = np.diff(edges)
        dens = n_train / max(n_train.sum(), 1) / width
        err = np.sqrt(n_train) / max(n_train.sum(), 1) / width
        ax.errorbar(centers, dens, yerr=err, fmt="o", ms=4, color=colour, label=f"{text} (train)")
    ax.axvline(ev.score_cut, color="black", ls="--", lw=1, label=f"cut {ev.score_cut:g}")
    ax.set_xlabel(f"{PRETTY[ev.name]} score")
    ax.set_ylabel("Probability density")
    ax.set_ylim(0, 1.45 * ax.get_ylim()[1])
    ax.legend(fontsize=12, frameon=False, ncol=2, loc="upper left")
    label(ax, "Simulation")
    return fig


def region_plot(h: hist.Hist, score_cut: float, observable: str = "m_bjj") -> plt.Figure:
    """Observable of the score-defined region stacked per process (ttbar analysis colours), MC stat. band."""
    import mplhep

    use_style()
    fig, ax = plt.subplots(figsize=(8, 6))
    procs = ordered_processes(list(h.axes["process"]))
    if procs:
        parts = [h[:, p] for p in procs]
        styles = [process_style(p, index=i) for i, p in enumerate(procs)]
        mplhep.histplot(parts, stack=True, histtype="fill", label=[st[1] for st in styles],
                        color=[st[0] for st in styles], ax=ax, edgecolor="black", linewidth=0.4)
        total = sum(p.values() for p in parts)
        err = np.sqrt(sum(p.variances() for p in parts))
        ax.stairs(total + err, h.axes["observable"].edges, baseline=total - err, fill=False, hatch="////",
                  color="#555555", linewidth=0, label="MC stat. unc. (√Σw²)")
    ax.set_xlabel(r"$m_{bjj}$ [GeV]" if observable == "m_bjj" else f"{observable}")
    ax.set_ylabel("Events / bin")
    ax.legend(frameon=False, fontsize=12, title=f"4j2b, classifier score > {score_cut:g}", title_fontsize=13)
    label(ax, "Simulation")
    return fig


# ---- workflows ----------------------------------------------------------------------------------

def train_and_evaluate(features: str | Path | dict[str, np.ndarray], out_dir: str | Path, *,
                       feature_names: Sequence[str] = FEATURES, classifiers: Sequence[str] = CLASSIFIERS,
                       test_fraction: float = 0.25, seed: int = 1, score_cut: float = 0.5) -> TrainingResult:
    """Train on a feature table; write ``metrics.json``, ``roc``/``scores`` plots, ``model.joblib`` and report.html."""
    t0 = time.perf_counter()
    columns = read_features(features) if isinstance(features, (str, Path)) else features
    result = train_classifiers(columns, feature_names, classifiers=classifiers, test_fraction=test_fraction,
                               seed=seed, score_cut=score_cut)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_figure(roc_plot(result), out, "roc")
    save_figure(score_plot(result), out, "scores")
    model = save_model(result.default, result.features, out / "model.joblib",
                       {"trained_on": str(features) if isinstance(features, (str, Path)) else "columns"})
    doc = dict(result.summary(), model=str(model))
    (out / "metrics.json").write_text(json.dumps(doc, indent=2) + "\n")
    write_ml_report(out, wall_time_s=time.perf_counter() - t0)
    return result


def score_region(fileset_json: str | Path, model_path: str | Path, score_cut: float, out_dir: str | Path, *,
                 executor: str = "futures", workers: int | None = None, chunksize: int = 100_000,
                 max_files: int = -1) -> FeatureTable:
    """Process a fileset with the model: 4j2b events with score > cut fill the region histogram (+ plot, yields,
    report.html)."""
    t0 = time.perf_counter()
    if not 0.0 <= score_cut < 1.0:
        raise AnalysisError(f"score cut must be in [0, 1), got {score_cut}")
    load_model(model_path)  # fail early on a bad model file
    table = extract_features(fileset_json, None, executor=executor, workers=workers, chunksize=chunksize,
                             max_files=max_files, model_path=model_path, score_cut=score_cut)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_figure(region_plot(table.hist, score_cut), out, "score_region")
    procs = np.asarray(table.columns["process"], dtype=str)
    keep = table.columns["score"] > score_cut
    yields = {}
    for p in sorted(set(procs.tolist())):
        m = procs == p
        w = table.columns["weight"][m]
        yields[p] = {"events_4j2b": int(m.sum()), "events_selected": int((m & keep).sum()),
                     "efficiency": float((m & keep).sum() / m.sum()),
                     "expected_4j2b": float(w.sum()), "expected_selected": float(table.columns["weight"][m & keep].sum())}
    doc = {"model": str(model_path), "score_cut": score_cut, "observable": "m_bjj", "yields": yields}
    (out / "score_region.json").write_text(json.dumps(doc, indent=2) + "\n")
    table.metrics["score_region"] = doc
    write_ml_report(out, wall_time_s=time.perf_counter() - t0)
    return table
