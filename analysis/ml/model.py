"""Step 4 of the ML workflow: store a trained classifier with its feature list, and select events by its score.
Models load back with :func:`processors.ml_model.load_model` (what a worker uses)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import joblib
import numpy as np
import sklearn

from analysis.ml.evaluate import Evaluation
from processors.ml_features import SIGNAL_PROCESS
from processors.ml_model import MODEL_FORMAT, ScoreModel

__all__ = ["save_model", "select_by_score"]


def save_model(evaluation: Evaluation, features: Sequence[str], path: str | Path, info: dict[str, Any] | None = None) -> Path:
    """Store the estimator, its feature list and metadata with joblib (load only files you trust).

    Args:
        evaluation: the classifier to store (its ``model`` and numbers).
        features: the feature names in the order the estimator expects.
        path: output file (parent directories are created).
        info: extra metadata stored under ``info`` together with the evaluation's numbers.

    Returns:
        The written path.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump({"format": MODEL_FORMAT, "estimator": evaluation.model, "features": list(features),
                 "classifier": evaluation.name, "sklearn_version": sklearn.__version__,
                 "signal_process": SIGNAL_PROCESS, "info": dict(info or {}, **evaluation.to_dict())}, p)
    return p


def select_by_score(columns: dict[str, np.ndarray], model: ScoreModel, score_cut: float) -> np.ndarray:
    """Boolean mask (n_events) of the rows whose signal probability exceeds ``score_cut``.

    Args:
        columns: name → array (n_events) holding at least the model's features.
        model: a loaded :class:`processors.ml_model.ScoreModel`.
        score_cut: cut on the signal probability.
    """
    return model.score(columns) > score_cut
