"""The ML workflow as ``ana ml train`` / ``ana ml region`` run it: the steps chained, then (only when given an
output directory) plots, model, JSON and report.html written.

Steps, one module each: :mod:`analysis.ml.features` (feature table), :mod:`analysis.ml.train` (split, tune,
train), :mod:`analysis.ml.evaluate` (held-out ROC/AUC/efficiencies), :mod:`analysis.ml.model` (persistence,
selection), :mod:`analysis.ml.region` (score-defined region), :mod:`analysis.ml.plots` (figures from results).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from analysis.ml.features import FeatureTable, read_features
from analysis.ml.plots import region_plot, roc_plot, score_plot
from analysis.ml.model import save_model
from analysis.ml.options import TrainOptions
from analysis.ml.region import apply_model
from analysis.ml.report import write_ml_report
from analysis.ml.train import TrainingResult, train_classifiers
from analysis.plotting import save_figure
from processors.ml_features import FEATURES

__all__ = ["score_region", "train_and_evaluate"]


def train_and_evaluate(features: str | Path | dict[str, np.ndarray], out_dir: str | Path | None = None, *,
                       options: TrainOptions | Mapping[str, Any] | None = None,
                       feature_names: Sequence[str] = FEATURES, classifiers: Sequence[str] | None = None,
                       test_fraction: float | None = None, seed: int | None = None,
                       score_cut: float | None = None) -> TrainingResult:
    """Train and evaluate every classifier on a feature table; with ``out_dir`` write the outputs.

    Args:
        features: ``features.parquet`` from :func:`analysis.ml.extract_features`, or its columns.
        out_dir: when given: ``metrics.json``, ``roc``/``scores`` plots (png, pdf), ``model.joblib`` (the
            default classifier) and ``report.html``; None writes nothing.
        options: a :class:`analysis.ml.options.TrainOptions` (or mapping); the keyword arguments below override
            it; None = not given (the model's default).
        feature_names: feature columns to train on, in order.
        classifiers, test_fraction, seed, score_cut: see :class:`analysis.ml.options.TrainOptions`.

    Returns:
        The :class:`TrainingResult`.

    Raises:
        AnalysisError / ProcessorError: invalid training options (one line naming each, before any work),
            unreadable table (see the steps).
    """
    t0 = time.perf_counter()
    base = options.model_dump() if isinstance(options, TrainOptions) else dict(options or {})
    opts = TrainOptions.make(base, classifiers=classifiers, test_fraction=test_fraction, seed=seed, score_cut=score_cut)
    columns = read_features(features) if isinstance(features, (str, Path)) else features
    result = train_classifiers(columns, feature_names, classifiers=opts.classifiers, test_fraction=opts.test_fraction,
                               seed=opts.seed, score_cut=opts.score_cut)
    if out_dir is None:
        return result
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_figure(roc_plot(result), out, "roc")
    save_figure(score_plot(result), out, "scores")
    model = save_model(result.default, result.features, out / "model.joblib",
                       {"trained_on": str(features) if isinstance(features, (str, Path)) else "columns"})
    doc = dict(result.to_dict(), model=str(model))
    (out / "metrics.json").write_text(json.dumps(doc, indent=2) + "\n")
    write_ml_report(out, wall_time_s=time.perf_counter() - t0)
    return result


def score_region(fileset_json: str | Path, model_path: str | Path, score_cut: float, out_dir: str | Path | None = None,
                 *, executor: str = "futures", workers: int | None = None, chunksize: int = 100_000,
                 max_files: int = -1) -> FeatureTable:
    """Apply a saved model (:func:`analysis.ml.region.apply_model`); with ``out_dir`` write the region's plot
    (``score_region.png/pdf``), yields (``score_region.json``) and ``report.html``.

    Args:
        fileset_json, model_path, score_cut, executor, workers, chunksize, max_files: see ``apply_model``.
        out_dir: output directory, or None to write nothing.

    Returns:
        The :class:`FeatureTable` with ``score``, ``hist`` and ``metrics["score_region"]``.

    Raises:
        AnalysisError / ProcessorError: see ``apply_model``.
    """
    t0 = time.perf_counter()
    table = apply_model(fileset_json, model_path, score_cut, executor=executor, workers=workers, chunksize=chunksize,
                        max_files=max_files)
    if out_dir is None:
        return table
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_figure(region_plot(table.hist, score_cut), out, "score_region")
    (out / "score_region.json").write_text(json.dumps(table.metrics["score_region"], indent=2) + "\n")
    write_ml_report(out, wall_time_s=time.perf_counter() - t0)
    return table
