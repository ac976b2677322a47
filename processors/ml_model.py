"""A trained classifier as the processors see it: load a saved model and score columns of one chunk.

Kept in the processors layer so that a worker scoring events imports joblib and the estimator's own
classes only (no plotting, no training code). Models are written by ``analysis.ml.save_model``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from processors.errors import ProcessorError

MODEL_FORMAT = "hep-columnar-analysis/ml-model/1"


def check_columns(columns: dict[str, np.ndarray], needed: Sequence[str], source: str) -> None:
    """Every needed column present, numeric feature columns finite: else one ProcessorError naming them."""
    missing = [c for c in needed if c not in columns]
    if missing:
        raise ProcessorError(f"{source}: missing column(s) {', '.join(missing)} (has: {', '.join(columns)})")
    for c in needed:
        arr = np.asarray(columns[c])
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            row = int(np.flatnonzero(~np.isfinite(arr))[0])
            raise ProcessorError(f"{source}: column {c!r} has a non-finite value (first at row {row})")


def feature_matrix(columns: dict[str, np.ndarray], features: Sequence[str], source: str = "features") -> np.ndarray:
    """(n_events, n_features) float64 matrix of the named columns."""
    check_columns(columns, features, source)
    return np.column_stack([np.asarray(columns[f], dtype=np.float64) for f in features]) if features else \
        np.zeros((len(columns.get("label", [])), 0))


def scores_of(model, X: np.ndarray) -> np.ndarray:
    """Probability of the signal class (label 1) for each row."""
    return model.predict_proba(X)[:, list(model.classes_).index(1)]


@dataclass
class ScoreModel:
    """A trained classifier with the features it expects, in order."""

    estimator: Any
    features: list[str]
    classifier: str
    info: dict[str, Any] = field(default_factory=dict)

    def score(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        """Signal probability per row of ``columns`` (dict of equal-length arrays)."""
        X = feature_matrix(columns, self.features, f"model input ({self.classifier})")
        if X.shape[0] == 0:
            return np.zeros(0)
        return scores_of(self.estimator, X)


def load_model(path: str | Path) -> ScoreModel:
    """Load a model written by :func:`save_model`."""
    p = Path(path)
    if not p.is_file():
        raise ProcessorError(f"{p}: model file not found")
    from importlib.metadata import version

    import joblib

    try:
        doc = joblib.load(p)
    except Exception as err:  # joblib/pickle raise many types for foreign files
        raise ProcessorError(f"{p}: not a saved model ({type(err).__name__}: {err})") from None
    if not isinstance(doc, dict) or doc.get("format") != MODEL_FORMAT:
        raise ProcessorError(f"{p}: not a model saved by analysis.ml.save_model")
    if doc["sklearn_version"] != version("scikit-learn"):
        raise ProcessorError(f"{p}: saved with scikit-learn {doc['sklearn_version']}, running {version('scikit-learn')}; retrain")
    return ScoreModel(doc["estimator"], list(doc["features"]), doc["classifier"], doc.get("info", {}))
