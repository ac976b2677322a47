"""Run options, defined once: executor names, the ``RunOptions`` model, option checks and the memory-bounded chunk size.

``RunOptions`` is the one definition of how a processor is run (executor, workers, Dask scheduler or batch
cluster, chunk size, retries, skipping, checkpoints); ``run_processor``, ``run_ttbar`` and ``ana run`` all
validate through it, and every problem is reported together in one line (``AnalysisError``).
Light on purpose (no coffea/dask import) so that the CLI can build its parser from these names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from analysis.errors import AnalysisError, UserError
from analysis.execution.cluster import CLUSTER_KINDS, check_cluster_config, is_scheduler_address, load_cluster_config

__all__ = ["EXECUTORS", "MEMORY_FACTOR", "MEMORY_FRACTION", "RunOptions", "clamp_chunksize", "model_errors",
           "option_problems", "resolve_executor"]

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



def model_errors(err: ValidationError) -> list[str]:
    """pydantic's errors as ``field: message`` texts (the project's one-line style)."""
    out = []
    for e in err.errors():
        where = "/".join(str(x) for x in e["loc"]) or "options"
        msg = e["msg"].removeprefix("Value error, ")
        out.append(msg if not e["loc"] else f"{where}: {msg}")
    return out


class RunOptions(BaseModel):
    """How a processor is run — the one definition used by ``run_processor``, ``run_ttbar`` and ``ana run``.

    Fields: ``executor`` (iterative, futures, dask; None: dask with a scheduler/cluster, else futures),
    ``workers`` (local worker processes), ``scheduler`` (address of an existing Dask scheduler), ``cluster``
    (htcondor/slurm via dask-jobqueue) with ``cluster_config`` (YAML path or its ``cluster`` section),
    ``chunksize`` (events per chunk, clamped to the worker memory), ``retries`` (extra attempts per chunk),
    ``skip_bad_files`` (skip-and-account unreadable files/chunks), ``checkpoint`` (per-chunk checkpoint
    directory), ``progress`` (progress bar), ``ship_code`` (upload the project code to Dask workers; None:
    for external schedulers and batch clusters).
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    executor: str | None = None
    workers: int | None = None
    scheduler: str | None = None
    cluster: str | None = None
    cluster_config: Any = None
    chunksize: int = 100_000
    retries: int = 3
    skip_bad_files: bool = False
    checkpoint: str | Path | None = None
    progress: bool = True
    ship_code: bool | None = None

    @model_validator(mode="before")
    @classmethod
    def _check_together(cls, data: Any) -> Any:
        """Every problem of the option set at once (before pydantic's per-field coercion)."""
        if isinstance(data, dict):
            known = set(cls.model_fields)
            unknown = sorted(set(data) - known)
            if unknown:
                raise ValueError(f"unknown run option(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
            full = {name: data.get(name, f.default) for name, f in cls.model_fields.items()}
            problems = option_problems(**{k: full[k] for k in ("executor", "workers", "scheduler", "cluster",
                                                                "cluster_config", "chunksize", "retries", "checkpoint")})
            if problems:
                raise ValueError("; ".join(problems))
        return data

    @classmethod
    def make(cls, options: "RunOptions | dict[str, Any] | None" = None, **overrides: Any) -> "RunOptions":
        """Validated options from a model, a mapping and/or keyword overrides (None values are not given).

        Raises:
            AnalysisError: ``invalid run options: <every problem>`` in one line.
        """
        base = options.model_dump() if isinstance(options, RunOptions) else dict(options or {})
        base.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls(**base)
        except ValidationError as err:
            raise AnalysisError("invalid run options: " + "; ".join(model_errors(err))) from None

    @classmethod
    def resolve(cls, options: "RunOptions | dict[str, Any] | None" = None, **overrides: Any) -> "RunOptions":
        """Like :meth:`make`, and the batch-cluster config read and validated (``cluster_config`` becomes its
        ``cluster`` section); option and cluster-config problems are reported together in one line.

        Raises:
            AnalysisError: every problem, ``; ``-separated.
        """
        problems, opts = [], None
        try:
            opts = cls.make(options, **overrides)
        except AnalysisError as err:
            problems.append(str(err))
        raw = options.model_dump() if isinstance(options, RunOptions) else dict(options or {})
        raw.update({k: v for k, v in overrides.items() if v is not None})
        section = None
        if raw.get("cluster") in CLUSTER_KINDS and raw.get("cluster_config") is not None:
            try:
                section = cls.model_construct(cluster=raw["cluster"], cluster_config=raw["cluster_config"]).cluster_section()
            except UserError as err:
                problems.append(str(err))
        if problems:
            raise AnalysisError("; ".join(problems))
        return opts.model_copy(update={"cluster_config": section}) if section is not None else opts

    @property
    def resolved_executor(self) -> str:
        """The executor actually used (see :func:`resolve_executor`)."""
        return resolve_executor(self.executor, self.scheduler, self.cluster)

    def cluster_section(self) -> dict[str, Any] | None:
        """The validated ``cluster`` section for ``cluster`` (None without a batch cluster).

        Raises:
            UserError: the config file is missing or invalid (every problem in one line).
        """
        if self.cluster not in CLUSTER_KINDS or self.cluster_config is None:
            return None
        if isinstance(self.cluster_config, dict):
            doc = self.cluster_config if "cluster" in self.cluster_config else {"cluster": self.cluster_config}
            return check_cluster_config(doc, self.cluster, "cluster_config")
        return load_cluster_config(self.cluster_config, self.cluster)

