"""Step 1 of the ML workflow: the per-event 4j2b feature table (``processors.ml_features.MLFeatures``) and its
parquet I/O. Writes only when given an output directory."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hist
import numpy as np

from analysis.errors import AnalysisError
from processors.ml_features import FEATURES, SIGNAL_PROCESS, MLFeatures
from processors.ml_model import check_columns

__all__ = ["FeatureTable", "extract_features", "read_features", "write_features"]


@dataclass(frozen=True, eq=False)
class FeatureTable:
    """Per-event columns of the 4j2b region and the run's metrics.

    Attributes:
        columns: name → array of length n_events (features in GeV / unitless, ``label`` 1 = ttbar, ``weight``
            = xsec·lumi/N, ``process``, ``dataset``, ``event``; ``score`` when a model was applied).
        metrics: events per process in the region, events processed per dataset, processing time [s], ...
        path: the written ``features.parquet`` (None when nothing was written).
        hist: observable of the score-defined region per process (only when a model and cut were applied).
    """

    columns: dict[str, np.ndarray]
    metrics: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    hist: hist.Hist | None = None

    def __len__(self) -> int:
        """Number of events (rows)."""
        return int(len(self.columns["label"])) if "label" in self.columns else 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: number of events, column names, metrics and the parquet path (no arrays)."""
        return {"events": len(self), "columns": list(self.columns), "path": None if self.path is None else str(self.path),
                **self.metrics}


def extract_features(fileset_json: str | Path, out_dir: str | Path | None = None, *, executor: str = "futures",
                     workers: int | None = None, chunksize: int = 100_000, max_files: int = -1,
                     model_path: str | Path | None = None, score_cut: float | None = None,
                     progress: bool = False) -> FeatureTable:
    """Run ``MLFeatures`` over the nominal simulated samples of an AGC fileset.

    Args:
        fileset_json: AGC ``ntuples.json`` (only ``nominal`` non-data samples are used; AGC ntuple format).
        out_dir: when given, ``features.parquet`` and ``features.json`` (the metrics) are written there.
        executor, workers, chunksize: how the processor runs (see :class:`analysis.execution.RunOptions`).
        max_files: files per sample (-1: all).
        model_path, score_cut: a model saved by :func:`analysis.ml.save_model` and a cut in [0, 1): the table
            gets a ``score`` column and ``hist`` holds m_bjj of the events with score > cut per process.
        progress: show a progress bar.

    Returns:
        The :class:`FeatureTable` (``path`` set when written).

    Raises:
        AnalysisError: no nominal simulated samples, not AGC ntuples, or no event in the 4j2b region.
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
    output, run_metrics = run_processor(fileset, proc, executor=executor, workers=workers, chunksize=chunksize,
                                        schema=schema_for(fileset), progress=progress)
    columns = output["columns"]
    metrics = _table_metrics(columns, output.get("nevents", {}), run_metrics)
    if len(columns.get("label", ())) == 0:
        raise AnalysisError(f"{fileset_json}: no event passes the 4j2b selection (1 lepton, >= 4 jets, >= 2 b-tags)")
    path = None
    if out_dir is not None:
        out = Path(out_dir)
        path = write_features(columns, out / "features.parquet")
        (out / "features.json").write_text(json.dumps(metrics, indent=2, default=str) + "\n")
    return FeatureTable(columns, metrics, path, hist=output.get("hist"))


def _table_metrics(columns: dict[str, np.ndarray], nevents: dict[str, int], run_metrics: dict[str, Any]) -> dict[str, Any]:
    """Events per process in the region, events processed per dataset and the processing time."""
    procs, counts = np.unique(np.asarray(columns["process"], dtype=str), return_counts=True)
    return {"events_in_region_per_process": {str(p): int(c) for p, c in zip(procs, counts)},
            "events_in_region": int(len(columns["label"])), "events_processed_per_dataset": dict(sorted(nevents.items())),
            "features": list(FEATURES), "signal_process": SIGNAL_PROCESS,
            "processing_time_s": run_metrics.get("processing_time_s"), "executor": run_metrics.get("executor")}


def write_features(columns: dict[str, np.ndarray], path: str | Path) -> Path:
    """Write equal-length columns as a parquet table (object columns as strings).

    Args:
        columns: name → 1-d array, all of the same length.
        path: parquet file to write (parent directories are created).

    Returns:
        The written path.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table({k: (np.asarray(v, dtype=str) if np.asarray(v).dtype == object else np.asarray(v))
                      for k, v in columns.items()})
    pq.write_table(table, p)
    return p


def read_features(path: str | Path) -> dict[str, np.ndarray]:
    """Read a feature table written by :func:`write_features`.

    Args:
        path: the parquet file.

    Returns:
        name → 1-d array (strings come back as object arrays).

    Raises:
        AnalysisError: file missing or not parquet; ProcessorError: no ``label`` column.
    """
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
