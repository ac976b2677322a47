"""Step 5 of the ML workflow: apply a saved model to a fileset and define a region by its score (m_bjj per
process of the 4j2b events with score > cut, yields and efficiencies per process). Computes only."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from analysis.errors import AnalysisError
from analysis.ml.features import FeatureTable, extract_features
from processors.ml_model import load_model

__all__ = ["apply_model", "region_yields"]


def region_yields(columns: dict[str, np.ndarray], score_cut: float) -> dict[str, dict[str, Any]]:
    """Per process: MC events in 4j2b and selected (score > cut), efficiency, expected events before/after.

    Args:
        columns: name → array (n_events) with ``process``, ``weight`` (xsec·lumi/N) and ``score``.
        score_cut: cut on the signal probability.

    Returns:
        process → {events_4j2b, events_selected, efficiency, expected_4j2b, expected_selected}.
    """
    procs = np.asarray(columns["process"], dtype=str)
    keep = columns["score"] > score_cut
    yields = {}
    for p in sorted(set(procs.tolist())):
        m = procs == p
        w = columns["weight"][m]
        yields[p] = {"events_4j2b": int(m.sum()), "events_selected": int((m & keep).sum()),
                     "efficiency": float((m & keep).sum() / m.sum()),
                     "expected_4j2b": float(w.sum()), "expected_selected": float(columns["weight"][m & keep].sum())}
    return yields


def apply_model(fileset_json: str | Path, model_path: str | Path, score_cut: float, *, executor: str = "futures",
                workers: int | None = None, chunksize: int = 100_000, max_files: int = -1) -> FeatureTable:
    """Process a fileset with the model: every 4j2b event gets a score; those above the cut fill the region.

    Args:
        fileset_json: AGC ``ntuples.json`` (nominal simulated samples are used).
        model_path: a model saved by :func:`analysis.ml.save_model`.
        score_cut: cut in [0, 1) on the signal probability.
        executor, workers, chunksize, max_files: how the processor runs.

    Returns:
        The :class:`FeatureTable` with a ``score`` column, ``hist`` = m_bjj per process of the selected events,
        and ``metrics["score_region"]`` = {model, score_cut, observable, yields (see :func:`region_yields`)}.

    Raises:
        AnalysisError: cut outside [0, 1) or bad fileset; ProcessorError: bad model file.
    """
    if not 0.0 <= score_cut < 1.0:
        raise AnalysisError(f"score cut must be in [0, 1), got {score_cut}")
    load_model(model_path)  # fail early on a bad model file
    table = extract_features(fileset_json, None, executor=executor, workers=workers, chunksize=chunksize,
                             max_files=max_files, model_path=model_path, score_cut=score_cut)
    doc = {"model": str(model_path), "score_cut": score_cut, "observable": "m_bjj",
           "yields": region_yields(table.columns, score_cut)}
    return dataclasses.replace(table, metrics={**table.metrics, "score_region": doc})
