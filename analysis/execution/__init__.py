"""The only code that runs processors: options, pre-flight, retries, checkpoints, executors, Dask clusters.

``run_processor(fileset, processor, options)`` runs any coffea ``ProcessorABC`` over a coffea fileset on the
iterative, futures or Dask executor with the whole reliability layer (``options``: a ``RunOptions``);
``run_user_processor("my_module:MyProcessor", fileset_json, out_dir)`` adds loading your processor, the
fileset json (AGC- or coffea-style) and the schema, and writes histograms.root, output.coffea, metrics.json. Names are loaded on first use, so
``import analysis.execution`` stays light (the CLI builds its parser without importing coffea).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "EXECUTORS": "options", "MEMORY_FACTOR": "options", "MEMORY_FRACTION": "options",
    "clamp_chunksize": "options", "option_problems": "options", "resolve_executor": "options", "RunOptions": "options",
    "run_user_processor": "user", "load_processor": "user", "resolve_schema": "user", "UserRun": "user",
    "FileCheck": "preflight", "Accounting": "preflight", "inspect_file": "preflight", "preflight": "preflight",
    "check_files": "preflight",
    "RetryPolicy": "retries", "is_read_error": "retries",
    "ChunkCheckpointer": "checkpoints", "processor_fingerprint": "checkpoints",
    "execute": "runner", "run_processor": "runner", "schema_for": "runner", "verify_event_counts": "runner",
    "CLUSTER_KINDS": "cluster", "dask_client": "cluster", "ship_user_code": "cluster", "load_cluster_config": "cluster", "job_script": "cluster",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Load public names from their submodule on first access (PEP 562)."""
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"analysis.execution.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'analysis.execution' has no attribute {name!r}")
