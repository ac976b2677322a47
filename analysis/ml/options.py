"""The options of ``ana ml train`` / :func:`analysis.ml.train_and_evaluate`, defined once (:class:`TrainOptions`).

The CLI flags are these names with dashes (``--test-fraction``); invalid values are reported together in one line
naming each flag (exit 2 in the CLI), before any work. Validates only: nothing is read, trained or written.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from analysis.ml.train import CLASSIFIERS
from analysis.option_model import OptionModel

__all__ = ["TrainOptions"]


class TrainOptions(OptionModel):
    """Training options.

    Fields: ``classifiers`` (any of gbdt, knn, tree, each once, trained in this order; the saved model is the GBDT,
    else the first), ``test_fraction`` (held-out share in (0, 1)), ``score_cut`` (signal-probability cut in [0, 1)
    for the quoted accuracy and efficiencies), ``seed`` (≥ 0; split, validation split and estimators).
    """

    WHAT = "training options"

    classifiers: tuple[str, ...] = Field(CLASSIFIERS, min_length=1)
    test_fraction: float = Field(0.25, gt=0, lt=1)
    score_cut: float = Field(0.5, ge=0, lt=1)
    seed: int = Field(1, ge=0)

    @field_validator("classifiers")
    @classmethod
    def _classifiers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        """Known classifiers, each once."""
        unknown = [c for c in value if c not in CLASSIFIERS]
        if unknown:
            raise ValueError(f"unknown classifier(s) {', '.join(unknown)} (choose from {', '.join(CLASSIFIERS)})")
        if len(set(value)) != len(value):
            raise ValueError(f"repeated classifier in {list(value)}")
        return value
