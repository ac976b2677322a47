"""Dask clusters for ``ana run``: a LocalCluster, an existing scheduler, or HTCondor/Slurm via dask-jobqueue.

The project's own packages (``analysis``, ``processors``, ``schemas``, ``fileset``) are zipped and sent to
every worker with ``Client.upload_file`` (a worker plugin, so workers that join later, e.g. adaptive batch
jobs, receive them too). Workers need the same third-party environment (coffea, uproot, numba, ...), e.g.
the same venv or container; only the project code travels. A user's own processor module (``ana run
--processor my_module:MyProcessor``) travels the same way, always (also to a LocalCluster, whose worker
processes do not import files by path): a single-file module as its ``.py``, a package as a zip of it;
modules installed in the environment (site-packages) are not sent.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import tempfile
import zipfile
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from analysis.errors import AnalysisError
from analysis.config import load_yaml
from fileset.loaders import schema_problems

log = logging.getLogger(__name__)

CLUSTER_KINDS = ("htcondor", "slurm")
PROJECT_PACKAGES = ("analysis", "processors", "schemas", "fileset")
_SIZE = r"^\s*[0-9]+(\.[0-9]+)?\s*([kKMGTP]i?B|[kKMGTP]|B)?\s*$"
_WALLTIME = r"^([0-9]+-)?[0-9]{1,3}:[0-9]{2}:[0-9]{2}$"


def default_workers() -> int:
    """Workers for local parallel executors: the usable cores."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def machine_memory_bytes() -> int:
    """Physical memory of this machine in bytes (POSIX ``sysconf``, the number psutil reports; psutil elsewhere:
    its import costs a single-core run ~7 ms)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        import psutil

        return int(psutil.virtual_memory().total)


# ---- cluster configuration ----------------------------------------------------------------------

def cluster_schema(kind: str) -> dict[str, Any]:
    """JSON schema of a ``--cluster-config`` YAML file for ``kind`` (htcondor or slurm)."""
    strings = {"type": "array", "items": {"type": "string"}}
    props: dict[str, Any] = {
        "cores": {"type": "integer", "minimum": 1},
        "memory": {"type": "string", "pattern": _SIZE},
        "processes": {"type": "integer", "minimum": 1},
        "walltime": {"type": "string", "pattern": _WALLTIME},
        "queue": {"type": "string", "minLength": 1},
        "jobs": {"type": "integer", "minimum": 1},
        "adaptive": {
            "type": "object", "additionalProperties": False, "required": ["maximum"],
            "properties": {"minimum": {"type": "integer", "minimum": 0}, "maximum": {"type": "integer", "minimum": 1}},
        },
        "python": {"type": "string", "minLength": 1},
        "job_script_prologue": strings,
        "worker_extra_args": strings,
        "log_directory": {"type": "string", "minLength": 1},
        "local_directory": {"type": "string", "minLength": 1},
        "interface": {"type": "string", "minLength": 1},
        "death_timeout": {"type": "number", "exclusiveMinimum": 0},
    }
    if kind == "slurm":
        props["account"] = {"type": "string", "minLength": 1}
        props["job_extra_directives"] = strings
    else:
        props["disk"] = {"type": "string", "pattern": _SIZE}
        props["job_extra_directives"] = {"type": "object",
                                         "additionalProperties": {"type": ["string", "number", "boolean"]}}
    section = {"type": "object", "additionalProperties": False, "required": ["cores", "memory"], "properties": props}
    return {"type": "object", "additionalProperties": False, "required": ["cluster"], "properties": {"cluster": section}}


# HTCondor's +JobFlavour values (CERN batch documentation: max runtime 20 min … 1 week)
HTCONDOR_JOB_FLAVOURS = ("espresso", "microcentury", "longlunch", "workday", "tomorrow", "testmatch", "nextweek")


def check_cluster_config(doc: dict[str, Any], kind: str, source: str) -> dict[str, Any]:
    """Validate a parsed cluster config; return its ``cluster`` section.

    Schema problems (unknown keys, wrong types, missing ``cores``/``memory``) and the cross-field rules
    (processes ≤ cores, jobs xor adaptive, adaptive minimum ≤ maximum, HTCondor +JobFlavour) are all collected
    first, so that one line reports every problem of the file with its key path.

    Raises:
        AnalysisError: unknown ``kind``, or one line ``SOURCE: invalid config: PATH: problem; PATH: problem; ...``.
    """
    if kind not in CLUSTER_KINDS:
        raise AnalysisError(f"unknown cluster kind {kind!r} (choose from {', '.join(CLUSTER_KINDS)})")
    problems = schema_problems(doc, cluster_schema(kind))
    section = doc.get("cluster") if isinstance(doc, dict) else None
    cfg = dict(section) if isinstance(section, dict) else {}

    def number(value: Any) -> bool:  # the cross-field rules only compare values of the right type
        return isinstance(value, int) and not isinstance(value, bool)

    if number(cfg.get("processes")) and number(cfg.get("cores")) and cfg["processes"] > cfg["cores"]:
        problems.append(f"cluster/processes: {cfg['processes']} worker processes need at least as many cores "
                        f"(cores: {cfg['cores']})")
    if "adaptive" in cfg and "jobs" in cfg:
        problems.append("cluster: give either 'jobs' (fixed) or 'adaptive' (minimum/maximum), not both")
    ad = cfg.get("adaptive")
    if isinstance(ad, dict) and number(ad.get("minimum")) and number(ad.get("maximum")) \
            and ad["minimum"] > ad["maximum"]:
        problems.append(f"cluster/adaptive: minimum {ad['minimum']} exceeds maximum {ad['maximum']}")
    queue = cfg.get("queue")
    if kind == "htcondor" and isinstance(queue, str) and queue not in HTCONDOR_JOB_FLAVOURS:
        problems.append(f"cluster/queue: {queue!r} is not an HTCondor +JobFlavour (choose from "
                        f"{', '.join(HTCONDOR_JOB_FLAVOURS)})")
    if problems:
        raise AnalysisError(f"{source}: invalid config: " + "; ".join(problems))
    return cfg


def load_cluster_config(path: str | Path, kind: str) -> dict[str, Any]:
    """Read and validate a ``--cluster-config`` YAML file; return its ``cluster`` section."""
    return check_cluster_config(load_yaml(path), kind, str(path))


def _walltime_seconds(walltime: str) -> int:
    """``[D-]HH:MM:SS`` → seconds."""
    days, _, hms = walltime.rpartition("-")
    h, m, s = (int(x) for x in hms.split(":"))
    return (int(days) if days else 0) * 86400 + h * 3600 + m * 60 + s


def jobqueue_kwargs(kind: str, cfg: dict[str, Any]) -> dict[str, Any]:
    """Translate a validated cluster section into dask-jobqueue constructor arguments."""
    kw: dict[str, Any] = {
        "cores": cfg["cores"],
        "memory": cfg["memory"],
        "processes": cfg.get("processes", cfg["cores"]),  # one single-threaded worker per core (GIL-bound work)
    }
    for key in ("python", "job_script_prologue", "worker_extra_args", "log_directory", "local_directory",
                "interface", "death_timeout"):
        if key in cfg:
            kw[key] = cfg[key]
    if kind == "slurm":
        for key in ("queue", "account", "walltime"):
            if key in cfg:
                kw[key] = cfg[key]
        kw["job_extra_directives"] = list(cfg.get("job_extra_directives", []))
    else:
        kw["disk"] = cfg.get("disk", cfg["memory"])
        extra = dict(cfg.get("job_extra_directives", {}))
        if "walltime" in cfg:
            extra.setdefault("+MaxRuntime", _walltime_seconds(cfg["walltime"]))
        if "queue" in cfg:
            extra.setdefault("+JobFlavour", f'"{cfg["queue"]}"')
        kw["job_extra_directives"] = extra
    return kw


#: the command dask-jobqueue submits worker jobs with, per batch system
SUBMIT_COMMANDS = {"slurm": "sbatch", "htcondor": "condor_submit"}


def require_submit_command(kind: str) -> None:
    """Fail in one line if this machine cannot submit ``kind`` batch jobs (dask-jobqueue would raise
    ``FileNotFoundError`` from its event loop and wait for workers that never come).

    Raises:
        AnalysisError: the batch system's submit command is not on ``PATH``.
    """
    import shutil

    command = SUBMIT_COMMANDS.get(kind)
    if command is not None and shutil.which(command) is None:
        raise AnalysisError(f"--cluster {kind}: {command} not found on this machine; run from a submit (login) node "
                            f"of the {kind} batch system (--print-job-script shows the job without submitting it)")


def make_jobqueue_cluster(kind: str, cfg: dict[str, Any]):
    """Create (but do not scale) an HTCondorCluster or SLURMCluster from a validated cluster section."""
    try:
        import dask_jobqueue
    except ImportError:
        raise AnalysisError(f"--cluster {kind} needs dask-jobqueue: pip install dask-jobqueue") from None
    cls = dask_jobqueue.SLURMCluster if kind == "slurm" else dask_jobqueue.HTCondorCluster
    return cls(**jobqueue_kwargs(kind, cfg), scheduler_options={"dashboard_address": None})


def job_script(kind: str, cfg: dict[str, Any]) -> str:
    """The batch job script dask-jobqueue would submit for this configuration (nothing is submitted).

    The scheduler dask-jobqueue starts for this is an implementation detail: its INFO log lines are held back.
    """
    import logging

    quiet = not logging.getLogger().isEnabledFor(logging.INFO)  # the user did not ask for INFO (ana -v)
    if quiet:
        logging.disable(logging.INFO)
    try:
        cluster = make_jobqueue_cluster(kind, cfg)
        try:
            return cluster.job_script()
        finally:
            cluster.close()
    finally:
        if quiet:
            logging.disable(logging.NOTSET)


# ---- shipping the project code -------------------------------------------------------------------

def package_zip(dest_dir: str | Path) -> Path:
    """Zip the project packages (sources only) into ``dest_dir``; the name carries a content hash."""
    import importlib

    entries = []
    for name in PROJECT_PACKAGES:
        root = Path(importlib.import_module(name).__file__).parent
        entries += [(f"{name}/{path.relative_to(root).as_posix()}", path) for path in sorted(root.rglob("*"))
                    if not (path.is_dir() or "__pycache__" in path.parts or path.suffix in (".pyc", ".nbi", ".nbc"))]
    return _write_zip(entries, dest_dir, "ana_code")


def _write_zip(entries: list[tuple[str, Path]], dest_dir: str | Path, stem: str) -> Path:
    """A reproducible zip (fixed timestamps) of ``(archive name, file)`` entries, named ``stem_<content hash>.zip``."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for arcname, path in entries:
            info = zipfile.ZipInfo(arcname, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())
    data = buf.getvalue()
    out = Path(dest_dir) / f"{stem}_{hashlib.sha256(data).hexdigest()[:12]}.zip"
    out.write_bytes(data)
    return out


def ship_code(client) -> str:
    """Upload the project packages to all current and future workers; return the zip's name."""
    with tempfile.TemporaryDirectory() as tmp:
        path = package_zip(tmp)
        client.upload_file(str(path), load=True)
    return path.name


def user_code_path(module_name: str, dest_dir: str | Path) -> Path | None:
    """What to upload for a user module: its ``.py`` (single file) or a zip of its top-level package.

    None when the module is part of this project (shipped with it) or installed in the environment.
    """
    import importlib
    import sys
    import sysconfig

    top_name = module_name.split(".")[0]
    if top_name in PROJECT_PACKAGES:
        return None
    top = sys.modules.get(top_name) or importlib.import_module(top_name)
    origin = getattr(top, "__file__", None)
    if origin is None:
        return None
    origin = Path(origin).resolve()
    installed = [Path(sysconfig.get_paths()[k]).resolve() for k in ("purelib", "platlib", "stdlib")]
    if any(origin.is_relative_to(root) for root in installed):
        return None
    if not hasattr(top, "__path__"):  # single-file module: upload_file imports it by its stem
        dest = Path(dest_dir) / f"{top_name}.py"
        dest.write_bytes(origin.read_bytes())
        return dest
    root = origin.parent
    entries = [(f"{top_name}/{path.relative_to(root).as_posix()}", path) for path in sorted(root.rglob("*.py"))
               if "__pycache__" not in path.parts]
    return _write_zip(entries, dest_dir, top_name)


def ship_user_code(client, module_names: tuple[str, ...] | list[str]) -> list[str]:
    """Upload user modules (see :func:`user_code_path`) to all current and future workers; return their names."""
    from distributed.diagnostics.plugin import UploadFile

    shipped = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in dict.fromkeys(module_names):
            path = user_code_path(name, tmp)
            if path is not None:
                # workers only: Client.upload_file would also import it into the scheduler, which for a
                # LocalCluster is this process (replacing the user's module here)
                client.register_plugin(UploadFile(str(path), load=True), name=f"ana-user-code-{path.name}")
                shipped.append(path.name)
    return shipped


# ---- clients ------------------------------------------------------------------------------------

@dataclass
class ClusterInfo:
    """What kind of Dask cluster a run used (recorded in metrics.json)."""

    kind: str
    address: str
    workers: int
    code_shipped: str | None = None
    user_code_shipped: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


def worker_memory_limit(client) -> int | None:
    """Smallest per-worker memory limit among connected workers (None: unknown or unlimited)."""
    limits = [w.get("memory_limit") or 0 for w in client.scheduler_info().get("workers", {}).values()]
    limits = [x for x in limits if x > 0]
    return min(limits) if limits else None


@contextmanager
def dask_client(*, scheduler: str | None = None, cluster: str | None = None,
                cluster_config: dict[str, Any] | None = None, workers: int | None = None,
                allowed_failures: int = 3, ship: bool | None = None,
                user_modules: tuple[str, ...] | list[str] = ()) -> Iterator[tuple[Any, ClusterInfo]]:
    """A Dask client: LocalCluster (default), ``scheduler`` address, or a jobqueue ``cluster``; closed on exit.

    The one place a Dask cluster is set up (``ana run``, ``ana ftest`` and every other Dask user).
    ``user_modules``: names of the user's own modules to ship to every worker (see :func:`ship_user_code`).

    ``allowed_failures`` is how often a task may be running on a worker that dies before the run fails; it
    applies to the clusters created here (an external scheduler uses its own configuration).
    ``ship`` uploads the project code (default: for external schedulers and batch clusters).
    """
    import dask
    from distributed import Client, LocalCluster

    with ExitStack() as stack:
        stack.enter_context(dask.config.set({"distributed.scheduler.allowed-failures": allowed_failures}))
        dask_log = logging.getLogger("distributed")
        verbose = logging.getLogger().isEnabledFor(logging.INFO)
        if not verbose:  # scheduler chatter and workers' task-failure logs only with verbose logging; failures
            # reach the user as the run's one-line error anyway
            stack.callback(dask_log.setLevel, dask_log.level)
            dask_log.setLevel(logging.ERROR)
        if scheduler:
            try:
                timeout = dask.config.get("distributed.comm.timeouts.connect")
                client = stack.enter_context(Client(scheduler, timeout=timeout))
            except (OSError, TimeoutError) as err:
                raise AnalysisError(f"cannot connect to Dask scheduler {scheduler}: {err}") from None
            info = ClusterInfo("scheduler", scheduler, len(client.scheduler_info().get("workers", {})))
        elif cluster:
            if cluster_config is None:
                raise AnalysisError(f"--cluster {cluster} needs --cluster-config FILE")
            require_submit_command(cluster)
            jq = stack.enter_context(make_jobqueue_cluster(cluster, cluster_config))
            ad = cluster_config.get("adaptive")
            if ad:
                jq.adapt(minimum_jobs=ad.get("minimum", 0), maximum_jobs=ad["maximum"])
            else:
                jq.scale(jobs=cluster_config.get("jobs", 1))
            client = stack.enter_context(Client(jq))
            info = ClusterInfo(cluster, jq.scheduler_address, 0, details={"jobqueue": jobqueue_kwargs(cluster, cluster_config)})
        else:
            n = workers or default_workers()
            # no dashboard here, so nobody reads the workers' statistical profiler (a stack sample every 10 ms
            # per worker, a few % of a chunk's CPU): off for the workers this cluster starts
            stack.enter_context(dask.config.set({"distributed.worker.profile.enabled": False}))
            local = stack.enter_context(LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                                     dashboard_address=None, memory_limit="auto",
                                                     silence_logs=logging.ERROR if verbose else logging.CRITICAL))
            client = stack.enter_context(Client(local))
            info = ClusterInfo("local", local.scheduler_address, n)
        if ship if ship is not None else (info.kind != "local" and not _scheduler_in_this_process(info.address)):
            info.code_shipped = ship_code(client)
            log.info("shipped project code to the workers as %s", info.code_shipped)
        if user_modules:
            info.user_code_shipped = ship_user_code(client, user_modules)
        yield client, info


def _scheduler_in_this_process(address: str | None) -> bool:
    """True if the scheduler at ``address`` runs in this process (a LocalCluster started in the same notebook or
    script): it imports from this process's files already, and code uploaded to it would be put on this
    process's ``sys.path`` from its scratch directory — gone, and breaking imports, once that cluster closes."""
    from distributed import Scheduler

    return any(getattr(s, "address", None) == address for s in list(getattr(Scheduler, "_instances", ())))


def is_scheduler_address(text: str) -> bool:
    """Loose check for a Dask scheduler address (``tcp://host:port``, ``tls://...``, ``inproc://...``)."""
    return re.match(r"^(tcp|tls|ucx|inproc|ws|wss)://[^\s]+$", text) is not None
