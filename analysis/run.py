"""Run a processor over a fileset on a coffea executor (iterative, futures, Dask), reliably and with metrics.

Reliability layer on top of ``coffea.processor.Runner``:

* pre-flight: every file is opened once (on the Dask workers when running on Dask) and checked for
  existence, ROOT structure, the tree, its entry count and truncation (all basket bytes inside the file);
  the metadata it reads feeds coffea's metadata cache, so coffea does not open the files again;
* unreadable files fail the run with the full list, or with ``skip_bad_files`` are left out and reported
  with the events lost; chunks whose data turn out unreadable while processing are handled the same way;
* every chunk is retried ``retries`` times (transient errors); a Dask worker that dies is replaced by the
  scheduler re-running its tasks (``distributed.scheduler.allowed-failures`` = ``retries``);
* ``checkpoint``: each finished chunk is stored (coffea's checkpointer, written atomically, keyed by the
  processor code, the chunk and its metadata), so a rerun only computes the missing chunks;
* histogram sums are exact (see processors/accumulators.py), so any executor, chunking or merge order
  gives the same bits.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import hist
import uproot
from coffea import processor
from coffea.processor.checkpointer import SimpleCheckpointer
from coffea.processor.executor import FileMeta, WorkItem

from analysis.cluster import (
    CLUSTER_KINDS,
    check_cluster_config,
    dask_client,
    default_workers,
    is_scheduler_address,
    load_cluster_config,
    machine_memory_bytes,
    worker_memory_limit,
)
from analysis.errors import AnalysisError
from analysis.histio import save_histograms
from fileset.build import build_fileset, is_remote, load_ntuples_json
from processors.accumulators import Constant
from processors.ttbar import TtbarAnalysis
from schemas.agc import AGCSchema

log = logging.getLogger(__name__)

EXECUTORS = ("iterative", "futures", "dask")
# Peak memory of a chunk ≈ MEMORY_FACTOR × (uncompressed input bytes of the chunk), measured with
# benchmarks/memory_scaling.py for TtbarAnalysis (measured ~24; 3 jet-pT variations, many weights), with margin.
MEMORY_FACTOR = 30.0
MEMORY_FRACTION = 0.5  # a chunk may use at most this share of a worker's memory


# ---- results ------------------------------------------------------------------------------------

@dataclass
class RunResult:
    """What a processing run produced: the normalised histogram plus bookkeeping."""

    hist: hist.Hist
    nevents: dict[str, int]
    cutflow: dict[str, dict[str, int]]
    metrics: dict[str, Any]
    fileset: dict[str, dict[str, Any]]
    filled: set[tuple[str, str]] = field(default_factory=set)
    output_dir: Path | None = None


@dataclass
class FileCheck:
    """Pre-flight verdict on one input file."""

    dataset: str
    path: str
    treename: str
    reason: str | None = None
    entries: int | None = None
    uuid: bytes | None = None
    bytes_per_event: float | None = None

    @property
    def ok(self) -> bool:
        """True when the file can be processed."""
        return self.reason is None


@dataclass
class Accounting:
    """Where every expected event went: processed, or lost with a reason (bad file or unreadable chunk)."""

    bad_files: list[dict[str, Any]] = field(default_factory=list)
    lost_chunks: list[dict[str, Any]] = field(default_factory=list)

    def lost_per_dataset(self) -> dict[str, int]:
        """Events lost per dataset (files with an unknown entry count contribute nothing)."""
        out: dict[str, int] = {}
        for rec in self.bad_files + self.lost_chunks:
            out[rec["dataset"]] = out.get(rec["dataset"], 0) + (rec["events_lost"] or 0)
        return dict(sorted(out.items()))

    def summary_lines(self) -> list[str]:
        """One line per skipped file or chunk."""
        lines = [f"{r['path']}: {r['reason']} ({_n(r['events_lost'])} events lost)" for r in self.bad_files]
        lines += [f"{r['path']} entries {r['entry_start']}-{r['entry_stop']}: {r['reason']} ({r['events_lost']} events lost)"
                  for r in self.lost_chunks]
        return lines


def _n(x: int | None) -> str:
    """Event count or 'unknown'."""
    return "unknown" if x is None else str(x)


# ---- pre-flight ---------------------------------------------------------------------------------

def inspect_file(dataset: str, path: str, treename: str, expected_entries: int | None = None,
                 retries: int = 0, timeout: int = 60) -> FileCheck:
    """Open one file and check it can be processed: exists, ROOT, has the TTree, entry count, not truncated."""
    check = FileCheck(dataset, path, treename)
    if not is_remote(path) and not Path(path).is_file():
        check.reason = "file not found"
        return check
    attempts = retries + 1 if is_remote(path) else 1
    for attempt in range(attempts):
        try:
            _inspect_open(check, expected_entries, timeout)
            return check
        except Exception as err:  # uproot raises many types for damaged or unreachable files
            check.reason = f"not a readable ROOT file ({type(err).__name__}: {_first_line(err)})"
            if attempt + 1 < attempts:
                time.sleep(0.5 * 2**attempt)
    return check


def _inspect_open(check: FileCheck, expected_entries: int | None, timeout: int) -> None:
    """The body of :func:`inspect_file`: sets ``check.reason`` for structural problems."""
    with uproot.open(check.path, timeout=timeout) as f:
        size = os.path.getsize(check.path) if not is_remote(check.path) else getattr(f.file.source, "num_bytes", None)
        end = int(f.file.fEND)
        if size is not None and size < end:
            check.reason = f"truncated file ({size} of {end} bytes)"
            return
        if check.treename not in f:
            check.reason = f"no tree {check.treename!r} in file (has: {', '.join(f.keys(cycle=False)) or 'nothing'})"
            return
        tree = f[check.treename]
        if not isinstance(tree, uproot.behaviors.TTree.TTree):
            check.reason = f"{check.treename!r} is a {type(tree).__name__}, not a TTree"
            return
        limit = size if size is not None else end
        for branch in tree.itervalues(recursive=True):
            n = branch.num_baskets
            seeks, nbytes = branch.member("fBasketSeek")[:n], branch.member("fBasketBytes")[:n]
            for seek, nb in zip(seeks, nbytes):
                if int(seek) + int(nb) > limit:
                    check.reason = f"truncated file: basket of branch {branch.name!r} ends at byte {int(seek) + int(nb)}, file has {limit}"
                    return
        check.entries = int(tree.num_entries)
        if expected_entries is not None and check.entries != expected_entries:
            check.reason = f"has {check.entries} entries, the fileset says {expected_entries}"
            return
        check.uuid = f.file.fUUID
        check.bytes_per_event = float(tree.member("fTotBytes")) / max(check.entries, 1)


def _first_line(err: BaseException) -> str:
    """First line of an exception message (uproot's are long)."""
    text = str(err)
    return text.splitlines()[0] if text else ""


def preflight(fileset: dict[str, dict[str, Any]], expected: dict[str, int] | None = None, *, client=None,
              retries: int = 0, threads: int = 8) -> list[FileCheck]:
    """Inspect every file of the fileset (on the Dask workers if ``client`` is given, else in threads)."""
    expected = expected or {}
    jobs = [(ds, p, spec["treename"], expected.get(p)) for ds, spec in fileset.items() for p in spec["files"]]
    if client is not None:
        futures = [client.submit(inspect_file, *job, retries, pure=False) for job in jobs]
        return client.gather(futures)
    with ThreadPoolExecutor(max_workers=max(1, min(threads, len(jobs)))) as pool:
        return list(pool.map(lambda job: inspect_file(*job, retries), jobs))


def check_files(fileset: dict[str, dict[str, Any]], timeout: int = 60) -> None:
    """Open every file once: missing, corrupt, truncated or wrong tree → one error listing all of them."""
    bad = [c for c in preflight(fileset) if not c.ok]
    if bad:
        raise AnalysisError(f"{len(bad)} unreadable input file(s): " + "; ".join(f"{c.path}: {c.reason}" for c in bad))


# ---- retries, lost chunks, checkpoints ------------------------------------------------------------

_READ_ERROR_TYPES: tuple[type[BaseException], ...] = (OSError, EOFError, zlib.error,
                                                      uproot.deserialization.DeserializationError,
                                                      uproot.exceptions.KeyInFileError)
_READ_MODULES = ("uproot", "lz4", "zstandard", "cramjam", "xxhash", "isal", "deflate")


def _chain(err: BaseException) -> list[BaseException]:
    """The exception and its causes/contexts."""
    out, e = [], err
    while e is not None and e not in out:
        out.append(e)
        e = e.__cause__ or e.__context__
    return out


def is_read_error(err: BaseException) -> bool:
    """True if the failure comes from reading/decompressing the input (not from the analysis code)."""
    for e in _chain(err):
        if isinstance(e, AnalysisError):
            return False
        if isinstance(e, _READ_ERROR_TYPES):
            return True
        tb = e.__traceback__
        last = None
        while tb is not None:
            last, tb = tb.tb_frame.f_code.co_filename, tb.tb_next
        if last and any(f"{os.sep}{m}{os.sep}" in last for m in _READ_MODULES):
            return True
    return False


def _chunk_reason(err: BaseException) -> str:
    """Short reason for a failed chunk: the innermost exception."""
    root = _chain(err)[-1]
    mod = type(root).__module__
    name = type(root).__name__ if mod == "builtins" else f"{mod}.{type(root).__name__}"
    return f"{name}: {_first_line(root)}"


@dataclass(frozen=True)
class RetryPolicy:
    """How chunks are retried and whether unreadable ones are skipped (and reported) instead of failing."""

    retries: int = 3
    skip_bad: bool = False
    backoff_s: float = 0.2


class _RetryingCall:
    """Replaces ``Runner.automatic_retries``: retry any failure, then skip-and-record or raise a clear error."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy

    def __call__(self, _coffea_retries, _skipbadfiles, func, *args, use_result_type=False, **kwargs):
        item = args[0] if args else None
        if isinstance(item, tuple):  # Dask: (item, processor)
            item = item[0]
        last: BaseException | None = None
        for attempt in range(self.policy.retries + 1):
            try:
                return func(*args, **kwargs)
            except Exception as err:
                last = err
                if any(isinstance(e, AnalysisError) for e in _chain(err)):
                    break  # a user error does not go away by retrying
                if attempt < self.policy.retries:
                    log.warning("attempt %d of %d failed for %s: %s", attempt + 1, self.policy.retries + 1,
                                _describe(item), _chunk_reason(err))
                    time.sleep(self.policy.backoff_s * 2**attempt)
        assert last is not None
        if isinstance(item, WorkItem) and is_read_error(last):
            reason = _chunk_reason(last)
            if self.policy.skip_bad:
                key = f"{item.dataset}|{item.filename}|{item.entrystart}-{item.entrystop}"
                return {"out": {}, "lost": {key: {"dataset": item.dataset, "path": item.filename,
                                                  "entry_start": item.entrystart, "entry_stop": item.entrystop,
                                                  "events_lost": item.entrystop - item.entrystart,
                                                  "reason": reason}}}
            raise AnalysisError(f"{item.filename}: cannot read entries {item.entrystart}-{item.entrystop} after "
                                f"{self.policy.retries + 1} attempt(s) ({reason}); rerun with --skip-bad-files to skip it")
        raise last


def _describe(item: Any) -> str:
    """Human-readable chunk/file name for log messages."""
    if isinstance(item, WorkItem):
        return f"{item.filename} entries {item.entrystart}-{item.entrystop}"
    return str(item)


@dataclass
class _ReliableRunner(processor.Runner):
    """coffea Runner whose per-chunk retry wrapper is :class:`_RetryingCall` (same for every executor)."""

    policy: RetryPolicy = field(default_factory=RetryPolicy)

    @property
    def automatic_retries(self):  # overrides coffea's staticmethod; the closure is pickled to workers
        return _RetryingCall(self.policy)


class _Chunked(processor.ProcessorABC):
    """Runs the wrapped processor per chunk and defers ``postprocess`` (done after the loss accounting)."""

    def __init__(self, inner: processor.ProcessorABC) -> None:
        self.inner = inner

    def process(self, events):
        """Delegate to the wrapped processor."""
        return self.inner.process(events)

    def postprocess(self, accumulator):
        """Identity: the caller post-processes once losses are known."""
        return accumulator


def processor_fingerprint(proc: processor.ProcessorABC, schema) -> str:
    """Hash of the processor's configuration and the source of its package and schema (for checkpoints)."""
    import importlib
    import sys

    h = hashlib.sha256()
    h.update(f"{type(proc).__module__}.{type(proc).__qualname__}|{getattr(schema, '__name__', schema)}".encode())
    h.update(repr(sorted((k, repr(v)) for k, v in vars(proc).items())).encode())
    files: set[Path] = set()
    for mod_name in {type(proc).__module__, getattr(schema, "__module__", "")}:
        mod = sys.modules.get(mod_name) or (importlib.import_module(mod_name) if mod_name else None)
        if mod is not None and getattr(mod, "__file__", None):
            top = sys.modules.get(mod_name.split(".")[0])
            root = Path(top.__file__).parent if top is not None and getattr(top, "__file__", None) else Path(mod.__file__).parent
            files.update(root.rglob("*.py"))
    for path in sorted(files):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _chunk_metadata(item: WorkItem) -> dict[str, Any]:
    """The metadata coffea builds for a chunk (what the checkpointer sees)."""
    meta = {"dataset": item.dataset, "filename": item.filename, "treename": item.treename,
            "entrystart": item.entrystart, "entrystop": item.entrystop,
            "fileuuid": str(uuid.UUID(bytes=item.fileuuid)) if len(item.fileuuid) > 0 else ""}
    meta.update(item.usermeta or {})
    return meta


class ChunkCheckpointer(SimpleCheckpointer):
    """Per-chunk checkpoints under ``DIR/<processor fingerprint>/<dataset>/<file uuid>/<tree>/``, written atomically."""

    _CORE = ("dataset", "filename", "treename", "entrystart", "entrystop", "fileuuid")

    def __init__(self, checkpoint_dir: str, fingerprint: str) -> None:
        super().__init__(checkpoint_dir, verbose=False, overwrite=True)
        self.fingerprint = fingerprint

    def filepath(self, metadata: Any, processor_instance=None) -> str:
        """Checkpoint path; the chunk's user metadata (xsec, nevts, ...) is part of the name."""
        user = {k: v for k, v in metadata.items() if k not in self._CORE}
        tag = hashlib.sha256(json.dumps(user, sort_keys=True, default=str).encode()).hexdigest()[:12]
        return str(Path(self.checkpoint_dir) / self.fingerprint / metadata["dataset"] / (metadata["fileuuid"] or "nouuid")
                   / metadata["treename"] / f"{metadata['entrystart']}-{metadata['entrystop']}-{tag}.coffea")

    def save(self, output, metadata: Any, processor_instance=None) -> None:
        """Write to a temporary name, then rename: a killed run never leaves a half-written checkpoint."""
        import cloudpickle

        fpath = self.filepath(metadata, processor_instance)
        tmp = f"{fpath}.{uuid.uuid4().hex}.tmp"
        try:
            self.fs.mkdirs(str(Path(fpath).parent), exist_ok=True)
            with self.fs.open(tmp, "wb", compression="lz4") as fout:
                cloudpickle.dump(output, fout)
            self.fs.mv(tmp, fpath)
        except Exception as err:  # a failed checkpoint must not fail the chunk
            log.warning("could not write checkpoint %s: %s", fpath, err)

    def exists(self, item: WorkItem) -> bool:
        """True if a checkpoint for this chunk is stored."""
        return self.fs.exists(self.filepath(_chunk_metadata(item)))


# ---- options ------------------------------------------------------------------------------------

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


# ---- the run ------------------------------------------------------------------------------------

def _make_executor(name: str, workers: int, client, progress: bool):
    """The coffea executor (retries are done by :class:`_RetryingCall`, hence 0 here)."""
    if name == "iterative":
        return processor.IterativeExecutor(status=progress, retries=0)
    if name == "futures":
        return processor.FuturesExecutor(workers=workers, status=progress, retries=0)
    return processor.DaskExecutor(client=client, status=progress, retries=0)


def _explain(err: Exception) -> AnalysisError | None:
    """Turn a coffea-wrapped failure into a one-line user error naming the file, if it is an input problem."""
    chain = _chain(err)
    for e in chain:
        if isinstance(e, AnalysisError):
            m = re.search(r"filename='([^']*)'", str(err))
            return AnalysisError(f"{m.group(1)}: {e}" if m and m.group(1) not in str(e) else str(e))
    text = str(err)
    if "KilledWorker" in text:
        return AnalysisError(f"{text}: a worker died while processing this chunk more often than "
                             "--retries allows (out of memory? try a smaller --chunksize)")
    m = re.search(r"filename='([^']*)'", text)
    if m and ("Failed to open file" in text or "Failed creating nanoevents" in text or "Failed processing file" in text):
        root = chain[-1]
        if isinstance(root, (OSError, ValueError, KeyError, EOFError)) or "uproot" in type(root).__module__:
            return AnalysisError(f"{m.group(1)}: cannot read file ({type(root).__name__}: {_first_line(root)})")
    return None


def _drop_bad_files(fileset: dict[str, dict[str, Any]], bad: set[str]) -> dict[str, dict[str, Any]]:
    """Fileset without the bad files (datasets left empty are dropped)."""
    out = {}
    for ds, spec in fileset.items():
        files = [p for p in spec["files"] if p not in bad]
        if files:
            out[ds] = dict(spec, files=files)
    return out


@dataclass
class _Execution:
    """Raw (not post-processed) output of a run, with its metrics and loss accounting."""

    output: dict
    metrics: dict[str, Any]
    accounting: Accounting
    fileset: dict[str, dict[str, Any]]


def execute(fileset: dict[str, dict[str, Any]], processor_instance: processor.ProcessorABC, *,
            executor: str | None = "futures", workers: int | None = None, scheduler: str | None = None,
            cluster: str | None = None, cluster_config: dict[str, Any] | None = None, chunksize: int = 100_000,
            schema=AGCSchema, progress: bool = True, skip_bad_files: bool = False, retries: int = 3,
            checkpoint: str | Path | None = None, expected: dict[str, dict[str, Any]] | None = None,
            adjust_fileset: Callable[[dict, list[FileCheck]], dict] | None = None,
            ship_code: bool | None = None) -> _Execution:
    """Pre-flight, run all chunks with retries/skips/checkpoints; return the output *before* ``postprocess``.

    ``expected`` maps file path → ``{"nevts": int, "location": str}`` (from the fileset json), used for the
    entry-count check and for the events lost with a bad file. ``adjust_fileset(fileset, good_checks)``
    may rewrite the fileset once bad files are removed (e.g. the normalisation's event count).
    """
    problems = option_problems(executor=executor, workers=workers, scheduler=scheduler, cluster=cluster,
                               cluster_config=cluster_config, chunksize=chunksize, retries=retries, checkpoint=checkpoint)
    if problems:
        raise AnalysisError("invalid run options: " + "; ".join(problems))
    exe_name = resolve_executor(executor, scheduler, cluster)
    expected = expected or {}
    n_workers = 1 if exe_name == "iterative" else (workers or default_workers())
    policy = RetryPolicy(retries=retries, skip_bad=skip_bad_files)
    metrics: dict[str, Any] = {"executor": exe_name, "retries": retries, "skip_bad_files": skip_bad_files,
                               "chunksize_requested": chunksize, "warnings": []}
    t0 = time.perf_counter()
    with ExitStack() as stack:
        client, info = None, None
        if exe_name == "dask":
            client, info = stack.enter_context(dask_client(scheduler=scheduler, cluster=cluster, cluster_config=cluster_config,
                                                           workers=workers, allowed_failures=retries, ship=ship_code))
            n_workers = info.workers
        # 1. pre-flight: every file, all problems together
        checks = preflight(fileset, {p: e["nevts"] for p, e in expected.items()}, client=client, retries=retries)
        accounting = Accounting()
        for c in checks:
            if not c.ok:
                accounting.bad_files.append({"dataset": c.dataset, "path": c.path,
                                             "location": expected.get(c.path, {}).get("location"),
                                             "reason": c.reason, "events_lost": expected.get(c.path, {}).get("nevts", c.entries)})
        if accounting.bad_files and not skip_bad_files:
            listing = "; ".join(f"{(r['location'] + ' ') if r['location'] else ''}{r['path']}: {r['reason']}"
                                for r in accounting.bad_files)
            raise AnalysisError(f"{len(accounting.bad_files)} unreadable input file(s) (rerun with --skip-bad-files "
                                f"to skip them): {listing}")
        good = [c for c in checks if c.ok]
        run_fileset = _drop_bad_files(fileset, {c.path for c in checks if not c.ok})
        if adjust_fileset is not None:
            run_fileset = adjust_fileset(run_fileset, good)
        if not run_fileset:
            raise AnalysisError("no readable input files: " + "; ".join(Accounting(accounting.bad_files).summary_lines()))
        # 2. chunk size within the worker memory budget
        mem = worker_memory_limit(client) if client is not None else None
        if mem is None and cluster_config:  # batch workers may not have started yet
            from dask.utils import parse_bytes

            mem = parse_bytes(cluster_config["memory"]) // cluster_config.get("processes", cluster_config["cores"])
        if mem is None:
            mem = machine_memory_bytes() // max(1, n_workers if exe_name == "futures" else 1)
        bpe = max((c.bytes_per_event or 0.0) for c in good) if good else None
        size, warning = clamp_chunksize(chunksize, bpe, mem)
        if warning:
            log.warning(warning)
            metrics["warnings"].append(warning)
        # 3. coffea metadata cache from the pre-flight, chunks, checkpoints
        cache = {}
        for c in good:
            if c.dataset in run_fileset:
                meta = dict(run_fileset[c.dataset].get("metadata") or {})
                meta.update({"numentries": c.entries, "uuid": c.uuid})
                cache[FileMeta(c.dataset, c.path, c.treename)] = meta
        ckpt = None
        if checkpoint is not None:
            ckdir = str(checkpoint) if "://" in str(checkpoint) else str(Path(checkpoint).resolve())
            ckpt = ChunkCheckpointer(ckdir, processor_fingerprint(processor_instance, schema))
        exe = _make_executor(exe_name, n_workers, client, progress)
        runner = _ReliableRunner(executor=exe, schema=schema, chunksize=size, savemetrics=True,
                                 metadata_cache=cache, checkpointer=ckpt, policy=policy)
        chunks = list(runner.preprocess(run_fileset, treename=None))
        from_ckpt = sum(ckpt.exists(ch) for ch in chunks) if ckpt is not None else 0
        t_run = time.perf_counter()
        try:
            wrapped = runner.run(chunks, _Chunked(processor_instance), treename=None)
        except AnalysisError:
            raise
        except Exception as err:
            user = _explain(err)
            if user is None:
                raise
            raise user from None
        t_end = time.perf_counter()
    for rec in sorted((wrapped.get("lost") or {}).values(), key=lambda r: (r["path"], r["entry_start"])):
        accounting.lost_chunks.append(rec)
    coffea_metrics = wrapped.get("metrics") or {}
    metrics.update({k: (float(v) if isinstance(v, (int, float)) else v) for k, v in coffea_metrics.items()
                    if isinstance(v, (int, float, str))})
    metrics.update({
        "workers": n_workers,
        "chunksize": size,
        "chunks": len(chunks),
        "chunks_from_checkpoint": from_ckpt,
        "checkpoint_dir": ckpt.checkpoint_dir if ckpt is not None else None,
        "memory_per_worker_bytes": mem,
        "wall_time_s": t_end - t0,
        "processing_time_s": t_end - t_run,
        "bad_files": accounting.bad_files,
        "lost_chunks": accounting.lost_chunks,
    })
    if info is not None:
        metrics["cluster"] = asdict(info)
    return _Execution(wrapped.get("out") or {}, metrics, accounting, run_fileset)


def run_processor(fileset: dict[str, dict[str, Any]], processor_instance: processor.ProcessorABC, *,
                  executor: str | None = "futures", workers: int | None = None, scheduler: str | None = None,
                  chunksize: int = 100_000, schema=AGCSchema, progress: bool = True, cluster: str | None = None,
                  cluster_config: dict[str, Any] | None = None, skip_bad_files: bool = False, retries: int = 3,
                  checkpoint: str | Path | None = None, ship_code: bool | None = None) -> tuple[dict, dict]:
    """Run any processor over a coffea fileset; return (post-processed output, metrics). Input problems → AnalysisError."""
    ex = execute(fileset, processor_instance, executor=executor, workers=workers, scheduler=scheduler, cluster=cluster,
                 cluster_config=cluster_config, chunksize=chunksize, schema=schema, progress=progress,
                 skip_bad_files=skip_bad_files, retries=retries, checkpoint=checkpoint, ship_code=ship_code)
    if not ex.output:
        raise AnalysisError("no events processed: " + "; ".join(ex.accounting.summary_lines()))
    out = processor_instance.postprocess(ex.output)
    return (ex.output if out is None else out), ex.metrics


def schema_for(fileset: dict[str, dict[str, Any]]):
    """NanoEvents schema for the fileset's format (``ntuple`` → AGCSchema, ``nanoaod`` → NanoAODSchema)."""
    formats = {spec["metadata"].get("format", "ntuple") for spec in fileset.values()}
    if len(formats) > 1:
        raise AnalysisError(f"fileset mixes input formats {sorted(formats)}; use one format per run")
    if formats == {"nanoaod"}:
        from schemas.nanoaod import AGCNanoAODSchema

        return AGCNanoAODSchema
    return AGCSchema


def verify_event_counts(nevents: dict[str, int], fileset: dict[str, dict[str, Any]],
                        lost: dict[str, int] | None = None) -> None:
    """Fail loudly unless every dataset's processed + reported-lost events equal the fileset's nevts."""
    lost = lost or {}
    problems = []
    for dataset, spec in fileset.items():
        expected, got, gone = spec["metadata"]["nevts"], nevents.get(dataset, 0), lost.get(dataset, 0)
        if got + gone != expected:
            problems.append(f"{dataset}: processed {got}" + (f" + lost {gone}" if gone else "") + f" of {expected} events")
    if problems:
        raise AnalysisError("events lost: " + "; ".join(problems))


def expected_files(fileset_json: str | Path, max_files: int = -1) -> dict[str, dict[str, Any]]:
    """Per-file event counts and their place in the fileset json (``process/variation/files/i``)."""
    doc = load_ntuples_json(fileset_json)
    base = Path(fileset_json).resolve().parent
    out = {}
    for process, variations in doc.items():
        for variation, entry in variations.items():
            files = entry["files"] if max_files < 0 else entry["files"][:max_files]
            for i, f in enumerate(files):
                path = f["path"] if is_remote(f["path"]) else str((base / f["path"]).resolve())
                out[path] = {"nevts": int(f["nevts"]), "location": f"{fileset_json}:{process}/{variation}/files/{i}"}
    return out


def _renormalise_without(expected: dict[str, dict[str, Any]]) -> Callable[[dict, list[FileCheck]], dict]:
    """Fileset adjuster: each dataset's ``nevts`` becomes the total of its readable files (as if the bad ones were never listed)."""
    def adjust(fileset: dict, good: list[FileCheck]) -> dict:
        out = {}
        for ds, spec in fileset.items():
            meta = dict(spec["metadata"], nevts=int(sum(expected[p]["nevts"] for p in spec["files"])))
            out[ds] = dict(spec, metadata=meta)
        return out
    return adjust


def _correct_norms(output: dict, fileset: dict[str, dict[str, Any]], lost: dict[str, int]) -> None:
    """After unreadable chunks: normalise MC to the events actually processed (xsec·lumi / processed events)."""
    if not lost or "norms" not in output:
        return
    for key in list(output["norms"]):
        process, label = key.split("/", 1)
        dataset = f"{process}__{label}" if f"{process}__{label}" in fileset else f"{process}__nominal"
        gone = lost.get(dataset, 0)
        if gone and process != "data" and dataset in fileset:
            meta = fileset[dataset]["metadata"]
            output["norms"][key] = Constant(meta["xsec"] * meta["lumi"] / (meta["nevts"] - gone))


def run_ttbar(fileset_json: str | Path, out_dir: str | Path | None = None, *, executor: str | None = "futures",
              workers: int | None = None, scheduler: str | None = None, chunksize: int = 100_000,
              max_files: int = -1, samples_config: str | Path | None = None, progress: bool = True,
              cluster: str | None = None, cluster_config: str | Path | dict[str, Any] | None = None,
              skip_bad_files: bool = False, retries: int = 3, checkpoint: str | Path | None = None,
              ship_code: bool | None = None, processor_instance: TtbarAnalysis | None = None,
              input_format: str | None = None) -> RunResult:
    """AGC ttbar step: fileset json → TtbarAnalysis → histograms (written to ``out_dir`` if given).

    With ``skip_bad_files``, unreadable files/chunks are left out and listed in the metrics with the events
    lost, and MC is normalised to the events actually processed. processed + lost = fileset total, always.
    """
    # all configuration problems together, before any work
    problems = option_problems(executor=executor, workers=workers, scheduler=scheduler, cluster=cluster,
                               cluster_config=cluster_config, chunksize=chunksize, retries=retries, checkpoint=checkpoint)
    cfg = None
    if cluster in CLUSTER_KINDS and cluster_config is not None:
        try:
            if isinstance(cluster_config, dict):
                doc = cluster_config if "cluster" in cluster_config else {"cluster": cluster_config}
                cfg = check_cluster_config(doc, cluster, "cluster_config")
            else:
                cfg = load_cluster_config(cluster_config, cluster)
        except AnalysisError as err:
            problems.append(str(err))
    fileset = expected = None
    try:
        fileset = build_fileset(fileset_json, max_files, samples_config, input_format=input_format)
        expected = expected_files(fileset_json, max_files)
    except AnalysisError as err:
        problems.append(str(err))
    if problems:
        raise AnalysisError("; ".join(problems))
    proc = processor_instance if processor_instance is not None else TtbarAnalysis()
    ex = execute(fileset, proc, executor=executor, workers=workers, scheduler=scheduler, cluster=cluster,
                 cluster_config=cfg, chunksize=chunksize, schema=schema_for(fileset), progress=progress,
                 skip_bad_files=skip_bad_files, retries=retries, checkpoint=checkpoint, expected=expected,
                 adjust_fileset=_renormalise_without(expected), ship_code=ship_code)
    lost = ex.accounting.lost_per_dataset()
    nevents = dict(ex.output.get("nevents", {}))
    verify_event_counts(nevents, fileset, lost)  # processed + reported lost = total, per dataset
    if not ex.output:
        raise AnalysisError("no events processed: " + "; ".join(ex.accounting.summary_lines()))
    chunk_lost: dict[str, int] = {}
    for rec in ex.accounting.lost_chunks:
        chunk_lost[rec["dataset"]] = chunk_lost.get(rec["dataset"], 0) + rec["events_lost"]
    _correct_norms(ex.output, ex.fileset, chunk_lost)
    output = proc.postprocess(ex.output) or ex.output
    metrics = ex.metrics
    total_expected = sum(spec["metadata"]["nevts"] for spec in fileset.values())
    processed = sum(nevents.values())
    metrics.update({
        "events_expected": total_expected,
        "events_processed": processed,
        "events_lost": sum(lost.values()),
        "events_per_dataset": dict(sorted(nevents.items())),
        "events_lost_per_dataset": lost,
        "events_per_s": processed / metrics["processing_time_s"] if metrics["processing_time_s"] > 0 else 0.0,
    })
    filled = {tuple(k.split("/", 1)) for k in output["norms"]}
    result = RunResult(output["hist"], nevents, output["cutflow"], metrics, fileset, filled)
    if out_dir is not None:
        write_outputs(result, out_dir)
    return result


def ttbar_scale_of(fileset: dict[str, dict[str, Any]]) -> float:
    """The pseudodata ttbar scale recorded by the generator (1 unless requested)."""
    scales = {spec["metadata"].get("pseudodata_scale", 1.0) for spec in fileset.values()
              if spec["metadata"]["process"] == "ttbar" and spec["metadata"]["variation"] in ("ME_var", "PS_var")}
    return scales.pop() if len(scales) == 1 else 1.0


def write_outputs(result: RunResult, out_dir: str | Path) -> Path:
    """Write ``histograms.root`` and ``metrics.json`` (with the cutflow) into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    keys = save_histograms(result.hist, out / "histograms.root", result.filled, ttbar_scale_of(result.fileset))
    doc = dict(result.metrics, cutflow=result.cutflow, histogram_keys=keys)
    (out / "metrics.json").write_text(json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n")
    result.output_dir = out
    return out
