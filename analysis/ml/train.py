"""Step 2 of the ML workflow: ttbar-vs-background classifiers on the 4j2b features.

:func:`train_classifiers` splits off a held-out test set (stratified, seeded), tunes the seed's baselines on a
validation part of the training set (kNN: k ∈ 3…13 on standardised inputs; decision tree: depth ∈ 5…45),
trains the default, a histogram gradient-boosted classifier, and evaluates every classifier on the test set
only (:func:`analysis.ml.evaluate.evaluate`). Computes only: nothing is written or drawn.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import sklearn
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from analysis.errors import AnalysisError
from analysis.ml.evaluate import Evaluation, evaluate
from processors.ml_features import FEATURES, SIGNAL_PROCESS
from processors.ml_model import feature_matrix, scores_of

__all__ = ["CLASSIFIERS", "DEFAULT_CLASSIFIER", "KNN_K", "TREE_DEPTHS", "TrainingResult", "make_classifier",
           "train_classifiers"]

CLASSIFIERS = ("gbdt", "knn", "tree")  # default first
DEFAULT_CLASSIFIER = "gbdt"
KNN_K = tuple(range(3, 15, 2))  # the seed's scan
TREE_DEPTHS = tuple(range(5, 50, 5))  # the seed's scan


def make_classifier(name: str, param: int | None = None, seed: int = 1) -> Any:
    """A fresh scikit-learn classifier.

    Args:
        name: ``gbdt`` (default; histogram gradient-boosted trees), ``knn`` (k = param, default 9, on
            standardised inputs) or ``tree`` (depth = param, default 5).
        param: the hyperparameter (ignored for ``gbdt``).
        seed: random state.

    Returns:
        An unfitted estimator with ``fit``/``predict_proba``.

    Raises:
        AnalysisError: unknown name.
    """
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


@dataclass(frozen=True, eq=False)
class TrainingResult:
    """All classifiers trained on one split, the split itself and the feature list.

    Attributes:
        features: feature names in matrix order; evaluations: name → :class:`Evaluation` (training order).
        y_test, w_test: labels and physics weights of the held-out set (n_test); y_train: labels (n_train).
        n_train, n_test: sizes of the split; seed: the split/training seed.
    """

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

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary of the whole training (the content of ``metrics.json`` without the model path)."""
        return {"features": self.features, "n_train": self.n_train, "n_test": self.n_test, "seed": self.seed,
                "n_test_signal": int(self.y_test.sum()), "n_test_background": int((self.y_test == 0).sum()),
                "signal_process": SIGNAL_PROCESS, "default_classifier": self.default.name,
                "classifiers": {k: e.to_dict() for k, e in self.evaluations.items()},
                "sklearn_version": sklearn.__version__}

    summary = to_dict  # the earlier name


def _tune(name: str, grid: Sequence[int], X: np.ndarray, y: np.ndarray, seed: int) -> tuple[int, dict[str, float]]:
    """Best hyperparameter of a baseline by AUC on a validation quarter of the training set."""
    X_fit, X_val, y_fit, y_val = train_test_split(X, y, test_size=0.25, random_state=seed + 1, stratify=y)
    scan = {str(p): float(roc_auc_score(y_val, scores_of(make_classifier(name, p, seed).fit(X_fit, y_fit), X_val)))
            for p in grid}
    best = max(grid, key=lambda p: (scan[str(p)], -p))
    return int(best), scan


def train_classifiers(columns: dict[str, np.ndarray], features: Sequence[str] = FEATURES, *,
                      classifiers: Sequence[str] = CLASSIFIERS, test_fraction: float = 0.25, seed: int = 1,
                      score_cut: float = 0.5, knn_k: Sequence[int] = KNN_K,
                      tree_depths: Sequence[int] = TREE_DEPTHS) -> TrainingResult:
    """Split (stratified, seeded), tune the baselines on validation, train, evaluate on the held-out set.

    Args:
        columns: name → array (n_events): the features, ``label`` (1 = ttbar) and optionally ``weight``.
        features: feature columns to train on, in order.
        classifiers: any of ``CLASSIFIERS``, trained in this order.
        test_fraction: held-out share in (0, 1).
        seed: random state of the split, the validation split and the estimators.
        score_cut: signal-probability cut for the quoted accuracy and efficiencies.
        knn_k, tree_depths: hyperparameter grids of the baselines.

    Returns:
        The :class:`TrainingResult`.

    Raises:
        AnalysisError: no features, unknown classifier, test fraction outside (0, 1), fewer than 20 events of a
            class; ProcessorError: a missing or non-finite feature column.
    """
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
        ev = evaluate(name, model, param, X_train, y_train, X_test, y_test, w[idx_test], score_cut, scan=scan)
        evaluations[name] = dataclasses.replace(ev, train_time_s=time.perf_counter() - t0)
    return TrainingResult(features, evaluations, y_test, w[idx_test], y_train, len(idx_train), len(idx_test), seed)
