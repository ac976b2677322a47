"""Step 3 of the ML workflow: held-out performance of one trained classifier (ROC, AUC with its Hanley–McNeil
uncertainty and physics-weighted, accuracy, efficiencies at a score cut and at fixed signal efficiency)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from processors.ml_model import scores_of

__all__ = ["SIGNAL_EFFICIENCIES", "Evaluation", "auc_uncertainty", "evaluate"]

SIGNAL_EFFICIENCIES = (0.5, 0.7, 0.9)  # working points reported as background efficiency


@dataclass(frozen=True, eq=False)
class Evaluation:
    """Held-out performance of one classifier.

    Attributes:
        name: classifier name (``gbdt``, ``knn``, ``tree``); model: the fitted estimator; param: its tuned
            hyperparameter (k or depth; None for GBDT).
        auc, auc_uncertainty, auc_weighted: test-set AUC, its Hanley–McNeil standard error, and the AUC with the
            xsec·lumi/N weights.
        accuracy, signal_efficiency, background_efficiency: at ``score_cut``.
        background_efficiency_at: background efficiency at the signal efficiencies of ``SIGNAL_EFFICIENCIES``
            (keys "0.50", ...).
        fpr, tpr: ROC curve (arrays of equal length); test_scores, train_scores: signal probabilities per event.
        scan: validation AUC per hyperparameter value; train_time_s: tuning + training + evaluation [s].
    """

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

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready numbers (no arrays except the hyperparameter scan)."""
        return {"classifier": self.name, "hyperparameter": self.param, "auc": self.auc,
                "auc_uncertainty": self.auc_uncertainty, "auc_weighted": self.auc_weighted,
                "accuracy": self.accuracy, "score_cut": self.score_cut,
                "signal_efficiency_at_cut": self.signal_efficiency,
                "background_efficiency_at_cut": self.background_efficiency,
                "background_efficiency_at_signal_efficiency": self.background_efficiency_at,
                "validation_auc_scan": self.scan, "train_time_s": self.train_time_s}

    summary = to_dict  # the earlier name


def auc_uncertainty(auc: float, n_pos: int, n_neg: int) -> float:
    """Hanley–McNeil standard error of an AUC (Radiology 143 (1982) 29, eq. 2).

    Args:
        auc: the AUC in [0, 1]; n_pos, n_neg: numbers of signal and background events it was estimated from.

    Returns:
        The standard error (≥ 0).
    """
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc)) / (n_pos * n_neg)
    return float(np.sqrt(max(var, 0.0)))


def evaluate(name: str, model: Any, param: int | None, X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray,
             y_test: np.ndarray, w_test: np.ndarray, score_cut: float = 0.5, *, scan: dict[str, float] | None = None,
             train_time_s: float = 0.0) -> Evaluation:
    """ROC, AUC (± Hanley–McNeil, and physics-weighted), accuracy and efficiencies on the test set.

    Args:
        name, model, param: classifier name, fitted estimator (``predict_proba``), its hyperparameter.
        X_train, y_train: (n_train, n_features) inputs and 0/1 labels of the training set (its scores are kept
            for the overtraining plot).
        X_test, y_test, w_test: (n_test, n_features) inputs, labels and physics weights of the held-out set.
        score_cut: cut on the signal probability for accuracy and efficiencies.
        scan, train_time_s: stored as given (validation scan, time spent).

    Returns:
        The :class:`Evaluation`.
    """
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
        background_efficiency_at=at, fpr=fpr, tpr=tpr, test_scores=s, train_scores=scores_of(model, X_train),
        scan=dict(scan or {}), train_time_s=train_time_s)
