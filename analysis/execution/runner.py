"""Run a processor over a fileset on a coffea executor (iterative, futures, Dask), reliably and with metrics.

Reliability layer on top of ``coffea.processor.Runner`` (:mod:`analysis.execution.coffea_path`) or, for local
iterative runs of processors that offer ``process_columns``, of a direct uproot reader that does not import
coffea (:mod:`analysis.execution.fastpath`); the two give the same bits:

* pre-flight: every file is opened once (on the Dask workers when running on Dask) and checked for
  existence, ROOT structure, the tree, its entry count and truncation (all basket bytes inside the file);
  the metadata it reads feeds coffea's metadata cache, so coffea does not open the files again;
* unreadable files fail the run with the full list, or with ``skip_bad_files`` are left out and reported
  with the events lost; chunks whose data turn out unreadable while processing are handled the same way;
* every chunk is retried ``retries`` times (transient errors); a Dask worker that dies is replaced by the
  scheduler re-running its tasks (``distributed.scheduler.allowed-failures`` = ``retries``);
* ``checkpoint``: each finished chunk is stored (coffea's checkpointer, written atomically, keyed by the
  processor code, the chunk and its metadata), so a rerun only computes the missing chunks;
* each process keeps the tree of the file it is reading open across that file's chunks
  (:mod:`analysis.execution.chunkread`; one at a time, closed at the end) and reads the branches the processor
  declares in one pass per chunk;
* histogram sums are exact (see processors/accumulators.py), so any executor, chunking or merge order
  gives the same bits.
"""

from __future__ import annotations

import logging
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from analysis.errors import AnalysisError, UnreadableInputError, UserError
from analysis.execution.cluster import dask_client, default_workers, machine_memory_bytes, worker_memory_limit
from analysis.execution.options import RunOptions, clamp_chunksize, resolve_executor
from analysis.execution.preflight import Accounting, FileCheck, KeepOpen, _drop_bad_files, preflight
from analysis.execution.retries import RetryPolicy, _explain
from fileset.build import is_remote

log = logging.getLogger(__name__)


@dataclass
class _Execution:
    """Raw (not post-processed) output of a run, with its metrics and loss accounting."""

    output: dict
    metrics: dict[str, Any]
    accounting: Accounting
    fileset: dict[str, dict[str, Any]]


def input_format_of(fileset: dict[str, dict[str, Any]]) -> str | None:
    """The fileset's one input format (``metadata["format"]``, default ``ntuple``), None if it mixes formats."""
    formats = {(spec.get("metadata") or {}).get("format", "ntuple") for spec in fileset.values()}
    return formats.pop() if len(formats) == 1 else None


async def _import_modules(names: tuple[str, ...]) -> None:
    """Import ``names`` (run on each Dask worker by :func:`_warm_workers`; failures are left to the real run).
    A coroutine: distributed runs ``client.run(..., wait=False)`` only for those."""
    import importlib

    for name in names:
        try:
            importlib.import_module(name)
        except Exception:  # e.g. a user module not shipped yet: the chunk itself reports it
            pass


def _warm_workers(client: Any, modules: tuple[str, ...]) -> None:
    """Start importing ``modules`` on every connected Dask worker without waiting (fire and forget)."""
    try:
        client.run(_import_modules, tuple(modules), wait=False)
    except Exception:  # best effort only: the chunks import what they need anyway
        log.debug("warming the Dask workers failed", exc_info=True)


def expected_workers(connected: int, cluster_config: dict[str, Any] | None) -> int:
    """Worker processes a Dask run can expect: those connected, or for a batch cluster (dask-jobqueue) its jobs
    (``adaptive.maximum`` or ``jobs``) × worker processes per job (``processes``, else ``cores``), whichever is
    larger — an adaptive cluster starts with few or none."""
    if not cluster_config:
        return connected
    adaptive = cluster_config.get("adaptive") or {}
    jobs = adaptive.get("maximum", cluster_config.get("jobs", 1))
    return max(connected, int(jobs) * int(cluster_config.get("processes", cluster_config.get("cores", 1))))


def declared_branches(processor_instance: Any, fileset: dict[str, dict[str, Any]]) -> list[str] | None:
    """The branches the processor declares for the fileset's input format (``columns(format)``), else None (unknown)."""
    columns = getattr(processor_instance, "columns", None)
    formats = {(spec.get("metadata") or {}).get("format", "ntuple") for spec in fileset.values()}
    if not callable(columns) or len(formats) != 1:
        return None
    return list(columns(formats.pop()))


def reader_options(fileset: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """uproot options for reading the chunks.

    ``array_cache=None``: uproot's per-file array cache (100 MB by default) would keep every branch read
    alive in reference cycles of the file object until Python's cyclic collector runs, so a worker's memory
    grew with the number of chunks (73 → 400 MB anonymous memory over 72 chunks); each chunk reads a
    branch once, so the cache never hits anyway. Local files are memory-mapped (no I/O-thread hand-off
    per branch read, ~8 % less CPU than uproot's default source); remote files keep uproot's default.
    """
    import uproot

    options: dict[str, Any] = {"array_cache": None}
    if not any(is_remote(p) for spec in fileset.values() for p in spec["files"]):
        options["handler"] = uproot.source.file.MemmapSource
    return options


def execute(fileset: dict[str, dict[str, Any]], processor_instance: Any,
            options: RunOptions | dict[str, Any] | None = None, *, schema=None,
            expected: dict[str, dict[str, Any]] | None = None,
            adjust_fileset: Callable[[dict, list[FileCheck]], dict] | None = None,
            user_modules: tuple[str, ...] = (), fingerprint_of: Any = None,
            **option_kwargs: Any) -> _Execution:
    """Pre-flight, run all chunks with retries/skips/checkpoints; return the output *before* ``postprocess``.

    ``options`` (a :class:`RunOptions`, a mapping, and/or the same names as keywords) say how to run.
    ``expected`` maps file path → ``{"nevts": int, "location": str}`` (from the fileset json), used for the
    entry-count check and for the events lost with a bad file. ``adjust_fileset(fileset, good_checks)``
    may rewrite the fileset once bad files are removed (e.g. the normalisation's event count).
    ``user_modules`` are module names shipped to Dask workers besides the project code (user processors).
    ``fingerprint_of``: the processor whose code and settings key the checkpoints (default: ``processor_instance``;
    given when that is a wrapper). ``schema``: the NanoEvents schema (None: the fileset format's default,
    :func:`schema_for`).

    Iterative and Dask runs of processors that offer ``process_columns`` take the fast path
    (:mod:`analysis.execution.fastpath`, no coffea import); everything else runs on coffea's Runner
    (:mod:`analysis.execution.coffea_path`). Both give the same bits.
    """
    opts = RunOptions.make(options, **option_kwargs)
    executor, workers, scheduler, cluster = opts.executor, opts.workers, opts.scheduler, opts.cluster
    chunksize, retries, skip_bad_files, progress = opts.chunksize, opts.retries, opts.skip_bad_files, opts.progress
    checkpoint, ship_code = opts.checkpoint, opts.ship_code
    cluster_config = opts.cluster_section()
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
                                                           workers=workers, allowed_failures=retries, ship=ship_code,
                                                           user_modules=user_modules))
            n_workers = info.workers
        # 1. pre-flight: every file, all problems together (metadata only; also the needed branches' baskets)
        # (a local iterative run keeps the first files open for its reader: no second open and TTree parse)
        keep = KeepOpen(reader_options(fileset)) if exe_name == "iterative" and client is None else None
        checks = preflight(fileset, {p: e["nevts"] for p, e in expected.items()}, client=client, retries=retries,
                           branches=declared_branches(processor_instance, fileset), keep=keep)
        if client is not None:  # the workers import the chunk reader and the processor while this process plans
            # the chunks (and imports coffea if the run takes coffea's path): otherwise one after the other
            from analysis.execution.fastpath import columns_capable

            capable = columns_capable(processor_instance, input_format_of(fileset), schema)
            reader = "analysis.execution.fastpath" if capable else "analysis.execution.chunkread"
            _warm_workers(client, (reader, type(processor_instance).__module__))
        for c in checks:
            stack.callback(c.close)  # whatever the reader did not take (idempotent)
        accounting = Accounting()
        for c in checks:
            if not c.ok:
                accounting.bad_files.append({"dataset": c.dataset, "path": c.path,
                                             "location": expected.get(c.path, {}).get("location"),
                                             "reason": c.reason, "events_lost": expected.get(c.path, {}).get("nevts", c.entries)})
        if accounting.bad_files and not skip_bad_files:
            listing = "; ".join(f"{(r['location'] + ' ') if r['location'] else ''}{r['path']}: {r['reason']}"
                                for r in accounting.bad_files)
            raise UnreadableInputError(f"{len(accounting.bad_files)} unreadable input file(s): {listing}")
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
        # 3. chunks (basket-aligned) and checkpoints, on the fast path or coffea's
        ckpt = None
        if checkpoint is not None:
            from analysis.execution.checkpoints import ChunkCheckpointer, processor_fingerprint

            ckdir = str(checkpoint) if "://" in str(checkpoint) else str(Path(checkpoint).resolve())
            # keyed by the schema's code too (the same key on both paths; checkpointing imports coffea anyway)
            ckpt = ChunkCheckpointer(ckdir, processor_fingerprint(fingerprint_of or processor_instance,
                                                                  schema or schema_for(run_fileset)))
        wanted = declared_branches(processor_instance, run_fileset)
        from analysis.execution import fastpath

        fast = bool(wanted) and fastpath.eligible(processor_instance, input_format_of(run_fileset), schema, exe_name,
                                                  [c for c in good if c.dataset in run_fileset])
        metrics["fast_path"] = fast
        t_run = time.perf_counter()
        try:
            if fast:
                chunks = fastpath.plan_chunks(run_fileset, good, size)
                reused = [(ch.entrystart, ch.entrystop) for ch in chunks if ckpt.exists(ch)] if ckpt is not None else []
                if client is not None:
                    wrapped = fastpath.run_chunks_dask(chunks, processor_instance, wanted, reader_options(run_fileset),
                                                       policy, client, ckpt, progress,
                                                       workers=expected_workers(n_workers, cluster_config))
                    fastpath.reemit_warnings(wrapped.pop("warnings", None))  # the workers', where the caller counts them
                else:
                    wrapped = fastpath.run_chunks(chunks, processor_instance, wanted, reader_options(run_fileset),
                                                  policy, ckpt, progress, opened=good)
                n_chunks = len(chunks)
            else:
                for c in checks:  # coffea's path opens files itself
                    c.close()
                from analysis.execution import coffea_path

                wrapped, n_chunks, reused = coffea_path.run_chunks(
                    run_fileset, good, processor_instance, exe_name=exe_name, n_workers=n_workers, client=client,
                    progress=progress, schema=schema or schema_for(run_fileset), size=size, checkpointer=ckpt,
                    policy=policy, wanted=wanted, uproot_options=reader_options(run_fileset))
        except UserError:
            raise
        except Exception as err:
            user = _explain(err)
            if user is None:
                raise
            raise user from None
        from_ckpt = len(reused)
        events_from_ckpt = sum(b - a for a, b in reused)
        t_end = time.perf_counter()
    for rec in sorted((wrapped.get("lost") or {}).values(), key=lambda r: (r["path"], r["entry_start"])):
        accounting.lost_chunks.append(rec)
    coffea_metrics = wrapped.get("metrics") or {}
    metrics.update({k: (float(v) if isinstance(v, (int, float)) else v) for k, v in coffea_metrics.items()
                    if isinstance(v, (int, float, str))})
    metrics.update({
        "workers": n_workers,
        "chunksize": size,
        "chunks": n_chunks,
        "chunks_from_checkpoint": from_ckpt,
        "events_in_files": sum(c.entries or 0 for c in checks),
        "events_in_chunks": sum(c.entries or 0 for c in good if c.dataset in run_fileset),
        "events_from_checkpoint": events_from_ckpt,  # not processed in this run (throughput excludes them)
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


def run_processor(fileset: dict[str, dict[str, Any]], processor_instance: Any,
                  options: RunOptions | dict[str, Any] | None = None, *, schema=None,
                  user_modules: tuple[str, ...] = (), **option_kwargs: Any) -> tuple[dict, dict]:
    """Run any coffea processor over a coffea fileset with the whole reliability layer.

    Args:
        fileset: coffea fileset ``{dataset: {"files": [paths], "treename": str, "metadata": {...}}}``.
        processor_instance: any ``coffea.processor.ProcessorABC`` (or a processor offering ``process_columns``).
        options: :class:`RunOptions` (or a mapping of its fields); keywords of the same names override it.
        schema: NanoEvents schema class (None: the fileset format's default, :func:`schema_for`).
        user_modules: module names (not part of this project) to ship to Dask workers.
    Returns:
        (post-processed output, metrics dict).
    Raises:
        AnalysisError: invalid options, unreadable inputs, or nothing processed (one line).
    """
    ex = execute(fileset, processor_instance, options, schema=schema, user_modules=user_modules, **option_kwargs)
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
    from schemas.agc import AGCSchema

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

