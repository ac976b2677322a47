"""Run options, defined once: executor names, option checks and the memory-bounded chunk size.

Light on purpose (no coffea/dask import) so that the CLI can build its parser from these names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from analysis.execution.cluster import CLUSTER_KINDS, is_scheduler_address

__all__ = ["EXECUTORS", "MEMORY_FACTOR", "MEMORY_FRACTION", "clamp_chunksize", "option_problems", "resolve_executor"]

# Peak memory of a chunk ≈ MEMORY_FACTOR × (uncompressed input bytes of the chunk), measured with
# benchmarks/memory_scaling.py for TtbarAnalysis (measured ~24; 3 jet-pT variations, many weights), with margin.
EXECUTORS = ("iterative", "futures", "dask")
MEMORY_FACTOR = 30.0
MEMORY_FRACTION = 0.5  # a chunk may use at most this share of a worker's memory


def resolve_executor(executor: str | None, scheduler: str | None, cluster: str | None) -> str:
    """The executor to use: explicit, else ``dask`` when a scheduler or batch cluster is given, else futures."""
    if executor:
        return executor
    return "dask" if (scheduler or cluster) else "futures"


def option_problems(*, executor: str | None, workers: int | None, scheduler: str | None, cluster: str | None,
                    cluster_config: Any, chunksize: int, retries: int, checkpoint: str | Path | None) -> list[str]:
    """Every problem with the run options (reported together before any work)."""
    problems = []
    if executor is not None and executor not in EXECUTORS:
        problems.append(f"executor: unknown {executor!r} (choose from {', '.join(EXECUTORS)})")
    exe = resolve_executor(executor, scheduler, cluster)
    if not isinstance(chunksize, int) or isinstance(chunksize, bool) or chunksize < 1:
        problems.append(f"chunksize: must be a positive integer, got {chunksize!r}")
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        problems.append(f"workers: must be a positive integer, got {workers!r}")
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        problems.append(f"retries: must be a non-negative integer, got {retries!r}")
    if scheduler is not None and not is_scheduler_address(scheduler):
        problems.append(f"scheduler: {scheduler!r} is not a Dask scheduler address (e.g. tcp://host:8786)")
    if cluster is not None and cluster not in CLUSTER_KINDS:
        problems.append(f"cluster: unknown {cluster!r} (choose from {', '.join(CLUSTER_KINDS)})")
    if scheduler and cluster:
        problems.append("scheduler/cluster: give either an existing scheduler or a batch cluster, not both")
    if (scheduler or cluster) and exe != "dask":
        problems.append(f"executor: --scheduler/--cluster need the dask executor, not {exe!r}")
    if (scheduler or cluster) and workers is not None:
        problems.append("workers: the number of workers of an existing or batch cluster is set by that cluster, not --workers")
    if cluster and cluster_config is None:
        problems.append(f"cluster-config: --cluster {cluster} needs --cluster-config FILE")
    if cluster_config is not None and not cluster:
        problems.append("cluster-config: only used with --cluster htcondor|slurm")
    if checkpoint is not None and not str(checkpoint).startswith(("s3://", "root://", "gs://")) and Path(checkpoint).exists() \
            and not Path(checkpoint).is_dir():
        problems.append(f"checkpoint: {checkpoint} exists and is not a directory")
    return problems


def clamp_chunksize(requested: int, bytes_per_event: float | None, memory_per_worker: int | None) -> tuple[int, str | None]:
    """Largest chunk that fits the worker memory budget; a warning text when ``requested`` was reduced."""
    if not bytes_per_event or not memory_per_worker:
        return requested, None
    limit = max(1000, int(MEMORY_FRACTION * memory_per_worker / (MEMORY_FACTOR * bytes_per_event)))
    if requested <= limit:
        return requested, None
    need = requested * MEMORY_FACTOR * bytes_per_event
    return limit, (f"chunk size {requested} would need ~{need / 2**30:.1f} GiB per worker (memory limit "
                   f"{memory_per_worker / 2**30:.1f} GiB); clamped to {limit} events per chunk")

