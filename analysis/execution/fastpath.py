"""Fast path: run a processor's ``process_columns`` on its declared branches, read with uproot directly.

For the iterative (in-process) and Dask executors and processors that declare their input branches
(``columns(format)``) and offer ``process_columns(columns, metadata)`` (the same output as ``process(events)`` on
that chunk), the chunks are processed without coffea's Runner and NanoEvents — and without importing coffea at
all (in the client and in the workers), which costs ~0.8 s CPU per process (coffea.nanoevents imports numba).
Per chunk: one ``TTree.arrays`` call over the declared branches present in the file (basket-aligned chunk
boundaries from the pre-flight, the file and its TTree kept open across the file's chunks, closed at the end),
then ``process_columns``. On Dask (:func:`run_chunks_dask`) each task is a run of consecutive chunks of one file
and the outputs are merged on the workers by a tree reduction in chunk order.

The reliability layer is the same as on coffea's path: the pre-flight has run before (bad files left out
and accounted); every chunk is retried and, when unreadable, skipped and recorded with the events lost
(:class:`analysis.execution.retries._RetryingCall`); checkpoints use the same
:class:`~analysis.execution.checkpoints.ChunkCheckpointer` (same keys and stored format as coffea's path,
so a rerun on either path reuses them; that import loads coffea, only when checkpointing); outputs are
merged in chunk order with coffea's accumulate semantics, so histograms are bit-identical to coffea's path.

A processor opts out for a subclass that overrides ``process`` (or one of the hooks listed in its
``process_columns_replaces``) without overriding ``process_columns``: that subclass runs on coffea's path.
"""

from __future__ import annotations

import copy
import time
import uuid as uuidlib
import warnings
from collections import Counter
from collections.abc import MutableMapping, MutableSet
from dataclasses import dataclass, field
from typing import Any

from analysis.console import progress_bar, progress_enabled
from analysis.execution.dask_tasks import tree_reduce, wait_counting_chunks
from analysis.execution.retries import RetryPolicy, _RetryingCall
from schemas.reading import basket_aligned_ranges, use_inflate

# the schema each input format is read with by default; the fast path replaces exactly these
DEFAULT_SCHEMAS = {"ntuple": ("schemas.agc", "AGCSchema"), "nanoaod": ("schemas.nanoaod", "AGCNanoAODSchema")}


@dataclass(frozen=True)
class Chunk:
    """One chunk of one file (the fields of coffea's ``WorkItem`` that the reliability layer uses)."""

    dataset: str
    filename: str
    treename: str
    entrystart: int
    entrystop: int
    fileuuid: bytes
    usermeta: dict = field(default_factory=dict, hash=False, compare=False)

    def __repr__(self) -> str:  # the form coffea's error messages have (the runner parses filename='…')
        return (f"Chunk(dataset={self.dataset!r}, filename={self.filename!r}, treename={self.treename!r}, "
                f"entrystart={self.entrystart}, entrystop={self.entrystop})")


def _owner(cls: type, name: str) -> type | None:
    """The class in ``cls``'s MRO that defines ``name``."""
    return next((k for k in cls.__mro__ if name in vars(k)), None)


def columns_capable(processor_instance: Any, input_format: str | None, schema: Any) -> bool:
    """True if ``process_columns`` on the declared branches gives what ``process`` gives on NanoEvents.

    Conditions: an input format whose default schema is used (``schema`` None or that schema); the processor
    offers ``process_columns`` and no subclass overrides ``process`` (or a hook named in
    ``process_columns_replaces``) below the class defining ``process_columns``.
    """
    if input_format not in DEFAULT_SCHEMAS:
        return False
    if schema is not None and (getattr(schema, "__module__", None), getattr(schema, "__qualname__", None)) != DEFAULT_SCHEMAS[input_format]:
        return False
    cls = type(processor_instance)
    home = _owner(cls, "process_columns")
    if home is None or not callable(getattr(processor_instance, "process_columns", None)):
        return False
    for name in ("process", *getattr(processor_instance, "process_columns_replaces", ())):
        owner = _owner(cls, name)
        if owner is not None and not issubclass(home, owner):
            return False
    return True


#: executors with a fast path: in-process (:func:`run_chunks`) and Dask (:func:`run_chunks_dask`)
EXECUTORS = ("iterative", "dask")


def eligible(processor_instance: Any, input_format: str | None, schema: Any, executor: str, checks: list) -> bool:
    """True if the run can take the fast path.

    Conditions: an executor in :data:`EXECUTORS`; one input format and a processor that is :func:`columns_capable`;
    every file is a TTree whose basket boundaries the pre-flight found (RNTuple and other inputs take coffea's path).
    """
    if executor not in EXECUTORS or not checks or not columns_capable(processor_instance, input_format, schema):
        return False
    return all(c.basket_boundaries is not None and c.entries is not None for c in checks)


def plan_chunks(fileset: dict[str, dict[str, Any]], checks: list, size: int) -> list[Chunk]:
    """Basket-aligned chunks of every file, in fileset order (datasets, then files), as coffea's path plans them.

    User metadata is the dataset's fileset metadata (what coffea passes on with each chunk).
    """
    by_file = {(c.dataset, c.path): c for c in checks}
    out: list[Chunk] = []
    for dataset, spec in fileset.items():
        usermeta = dict(spec.get("metadata") or {})
        for path in spec["files"]:
            c = by_file[(dataset, path)]
            # an empty file is one empty chunk, as coffea plans it (its dataset still reports 0 events and zero histograms)
            ranges = basket_aligned_ranges(c.basket_boundaries, c.entries, size) if c.entries else [(0, 0)]
            out.extend(Chunk(dataset, path, spec["treename"], a, b, c.uuid or b"", usermeta) for a, b in ranges)
    return out


def chunk_metadata(item: Chunk) -> dict[str, Any]:
    """The metadata coffea gives a chunk's events (``events.metadata``)."""
    meta = {"dataset": item.dataset, "filename": item.filename, "treename": item.treename,
            "entrystart": item.entrystart, "entrystop": item.entrystop,
            "fileuuid": str(uuidlib.UUID(bytes=item.fileuuid)) if len(item.fileuuid) > 0 else ""}
    meta.update(item.usermeta)
    return meta


def merge(a: Any, b: Any) -> Any:
    """``b`` added into ``a`` as coffea's ``accumulate`` does (mappings key by key, new keys deep-copied in order;
    sets united; anything else ``a += b``); returns the result."""
    if isinstance(a, MutableMapping) and isinstance(b, MutableMapping):
        for key in b:
            a[key] = merge(a[key], b[key]) if key in a else copy.deepcopy(b[key])
        return a
    if isinstance(a, MutableSet) and isinstance(b, MutableSet):
        a |= b
        return a
    a += b
    return a


class _Reader:
    """Reads chunks of the declared branches, keeping one file (and its TTree) open across its chunks.

    A file the pre-flight kept open (``FileCheck.opened``, same reader options) is taken over instead of being
    opened and its TTree metadata parsed a second time."""

    def __init__(self, branches: list[str], uproot_options: dict[str, Any], opened: list | None = None) -> None:
        self.branches, self.options = branches, uproot_options
        self.key: tuple | None = None
        self.file = self.tree = None
        self.present: list[str] = []
        self.handoff = {(c.path, c.treename): c for c in opened or () if c.opened is not None}

    def close(self) -> None:
        """Close the open file (idempotent)."""
        if self.file is not None:
            self.file.close()
        self.key, self.file, self.tree = None, None, None

    def tree_for(self, item: Chunk):
        """The open TTree of ``item``'s file (opening it, and closing the previous one, if needed)."""
        import uproot

        key = (item.filename, item.treename)
        if key != self.key:
            self.close()
            check = self.handoff.pop(key, None)
            kept = check.take_opened() if check is not None else None
            if kept is not None:
                self.file, self.tree = kept
                self.key = key
            else:
                self.file = uproot.open(item.filename, **self.options)
                self.key = key
                try:
                    self.tree = self.file[item.treename]
                except Exception:
                    self.close()
                    raise
            self.present = [b for b in self.branches if b in self.tree]
        return self.tree

    def read(self, item: Chunk) -> dict:
        """The declared branches (those in the file) for the chunk's entries: name → array."""
        tree = self.tree_for(item)
        names = frozenset(self.present)
        return tree.arrays(filter_branch=lambda b: b.name in names, entry_start=item.entrystart,
                           entry_stop=item.entrystop, how=dict)


def _work(item: Chunk, processor_instance: Any, reader: _Reader, checkpointer) -> dict:
    """One chunk: checkpoint, or read + ``process_columns``; errors wrapped as coffea wraps them (the runner
    explains them); the reader's file is closed on failure, so a retry re-opens it."""
    metadata = chunk_metadata(item)
    if checkpointer is not None:
        out = checkpointer.load(metadata, processor_instance)
        if out is not None:
            return out
    try:
        try:
            reader.tree_for(item)
        except Exception as e:
            raise Exception(f"Failed to open file: {item!r}. The error was: {e!r}.") from e
        source = reader.file.file.source
        before = source.num_requested_bytes
        try:
            columns = reader.read(item)
        except Exception as e:
            raise Exception(f"Failed reading columns: {item!r}. The error was: {e!r}.") from e
        tic = time.time()
        try:
            out = processor_instance.process_columns(columns, metadata)
        except Exception as e:
            raise Exception(f"Failed processing file: {item!r}. The error was: {e!r}.") from e
    except BaseException:
        reader.close()
        raise
    if out is None:
        raise ValueError("Output of process_columns() should not be None; it must return an accumulator.")
    metrics = {"bytesread": source.num_requested_bytes - before, "columns": set(reader.present),
               "entries": item.entrystop - item.entrystart, "processtime": time.time() - tic}
    result = {"out": out, "metrics": metrics}
    if checkpointer is not None:
        checkpointer.save(result, metadata, processor_instance)
    return result


def run_chunks(chunks: list[Chunk], processor_instance: Any, branches: list[str], uproot_options: dict[str, Any],
               policy: RetryPolicy, checkpointer=None, progress: bool = True, opened: list | None = None) -> dict:
    """Process ``chunks`` in order (retries, skip-and-account, checkpoints); return
    ``{"out": merged output, "metrics": summed metrics, "lost": {key: lost-chunk record}}``.

    ``opened``: the pre-flight's ``FileCheck``s; files they kept open (opened with ``uproot_options``) are read
    without opening them again (each taken once; the caller closes any not taken)."""
    # the processor's ZLIB inflater before the first read (its process() selects it per chunk, after reading)
    use_inflate(getattr(processor_instance, "inflate", None))
    reader = _Reader(branches, uproot_options, opened)
    call = _RetryingCall(policy)
    merged: dict[str, Any] = {}
    try:
        with progress_bar(len(chunks), "Processing chunks", "chunk", enabled=progress and progress_enabled()) as advance:
            for item in chunks:
                res = call(0, False, _work, item, processor_instance, reader, checkpointer)
                merged = merge(merged, res) if merged else res
                advance(1)
    finally:
        reader.close()
    return _finish(merged, len(chunks))


def _finish(merged: dict, n_chunks: int) -> dict:
    """The merged chunk outputs as the runner reads them: chunk count and sorted column names in the metrics."""
    if "metrics" in merged:
        merged["metrics"]["chunks"] = n_chunks
        merged["metrics"]["columns"] = sorted(merged["metrics"]["columns"])
    return merged


# ---- Dask ------------------------------------------------------------------------------------------------------
#: tree reduction on the workers: outputs merged in groups of this many, in chunk order (as coffea's Dask executor)
TREE_REDUCTION = 20

#: per worker process: the reader of the current run (one open file and TTree, kept across that file's chunks)
_WORKER_READERS: dict[tuple, _Reader] = {}


def _worker_reader(branches: tuple[str, ...], uproot_options: dict[str, Any]) -> _Reader:
    """This worker process's reader for (branches, reader options), created on first use (one at a time)."""
    key = (branches, tuple(sorted((k, repr(v)) for k, v in uproot_options.items())))
    reader = _WORKER_READERS.get(key)
    if reader is None:
        close_worker_readers()
        reader = _WORKER_READERS[key] = _Reader(list(branches), uproot_options)
    return reader


def close_worker_readers() -> None:
    """Close the file this process's fast-path reader holds open (end of a Dask run; idempotent)."""
    while _WORKER_READERS:
        _WORKER_READERS.popitem()[1].close()


def dask_chunks(group: list[Chunk], processor_instance: Any, branches: tuple[str, ...], uproot_options: dict[str, Any],
                policy: RetryPolicy, checkpointer=None) -> dict:
    """Consecutive chunks of one file on a Dask worker: what :func:`run_chunks` does per chunk (retries,
    skip-and-record, checkpoint), merged in order, the file opened once for the group (and kept open for the
    worker's next group of the same file).

    Warnings raised while reading and processing come back with the output (``"warnings"``:
    ``{(category, message, filename, lineno): count}``, summed by the merge), to be re-emitted by the client
    (:func:`reemit_warnings`) instead of printed by the worker.
    """
    use_inflate(getattr(processor_instance, "inflate", None))  # the processor's inflater, before reading
    reader = _worker_reader(branches, uproot_options)
    call = _RetryingCall(policy)
    merged: dict = {}
    for item in group:
        with warnings.catch_warnings(record=True) as caught:  # per chunk, as coffea's path counts them
            res = call(0, False, _work, item, processor_instance, reader, checkpointer)
        if caught:
            res["warnings"] = warning_counts(caught)
        merged = merge(merged, res) if merged else res
    return merged


#: longest run of chunks in one Dask task (workers that join an adaptive cluster late still find tasks to take)
MAX_RUN = 8


def chunk_groups(chunks: list[Chunk], n_workers: int, groups_per_worker: int = 4) -> list[list[Chunk]]:
    """The Dask tasks: runs of consecutive chunks of one file, each at most ``ceil(len(chunks) / (groups_per_worker
    · n_workers))`` (and :data:`MAX_RUN`) chunks long, in chunk order. A worker then opens a file once for several of
    its chunks (not once per chunk, as when neighbouring chunks land on different workers), while every worker still
    gets about ``groups_per_worker`` tasks or more to balance the load."""
    size = min(MAX_RUN, max(1, -(-len(chunks) // (groups_per_worker * max(1, n_workers)))))
    groups: list[list[Chunk]] = []
    for item in chunks:
        last = groups[-1] if groups else None
        if last and len(last) < size and (last[-1].filename, last[-1].treename) == (item.filename, item.treename):
            last.append(item)
        else:
            groups.append([item])
    return groups


def warning_counts(caught: list[warnings.WarningMessage]) -> dict[tuple[str, str, str, int], int]:
    """Recorded warnings as ``{(category name, message, filename, lineno): count}`` (picklable, summed by
    :func:`merge`), for a worker process to return with a chunk's output."""
    return dict(Counter((w.category.__name__, str(w.message), str(w.filename), int(w.lineno or 0)) for w in caught))


def reemit_warnings(counts: dict[tuple[str, str, str, int], int] | None) -> None:
    """Raise again, in this process, the warnings worker processes collected with their chunks (:func:`dask_chunks`,
    ``analysis.execution.chunkread.work_function``; :func:`warning_counts`): each as often as it occurred, at its
    original file and line; categories other than the built-in ones as UserWarning."""
    import builtins

    for (category, message, filename, lineno), n in (counts or {}).items():
        cls = getattr(builtins, category, None)
        if not (isinstance(cls, type) and issubclass(cls, Warning)):
            cls = UserWarning
        for _ in range(int(n)):
            warnings.warn_explicit(message, cls, filename, lineno)


def _identity(x: Any) -> Any:
    """The argument itself (a task holding an object for the chunk tasks)."""
    return x


def merge_outputs(parts: list[dict]) -> dict:
    """Chunk outputs (or partial merges) merged in order with :func:`merge` (a reduction task on a worker)."""
    merged: dict = {}
    for part in parts:
        merged = merge(merged, part) if merged else part
    return merged


def run_chunks_dask(chunks: list[Chunk], processor_instance: Any, branches: list[str], uproot_options: dict[str, Any],
                    policy: RetryPolicy, client: Any, checkpointer=None, progress: bool = True,
                    workers: int | None = None) -> dict:
    """:func:`run_chunks` on a Dask cluster: one task per run of consecutive chunks of a file (:func:`chunk_groups`,
    :func:`dask_chunks`), the processor sent to the cluster once, outputs merged on the workers by a tree reduction
    in chunk order (:func:`merge_outputs`), so the result is the one of :func:`run_chunks` bit for bit (exact sums;
    categories in order of first appearance).
    Neither this process nor the workers import coffea.

    ``workers``: how many workers the run expects (e.g. an adaptive batch cluster's maximum, when few have started
    yet); the tasks are planned for the larger of it and the worker threads connected now.

    Returns ``{"out", "metrics", "lost", "warnings"}`` as :func:`run_chunks` (plus the workers' warnings).
    Raises the first failing chunk's error (user errors as they are; a worker that died more often than the
    cluster allows as a ``RuntimeError`` naming the chunk, as coffea's Dask executor words it).
    """
    from distributed import as_completed

    if not chunks:
        return {}
    # the processor as the result of a task (not scattered data): recomputable if the workers holding it leave an
    # adaptive cluster (coffea's Dask executor sends its heavy input the same way, coffea issue #465)
    processor_future = client.submit(_identity, processor_instance, pure=False)
    groups = chunk_groups(chunks, max(workers or 0, sum(client.nthreads().values())))
    futures = client.map(dask_chunks, groups, processor_instance=processor_future, branches=tuple(branches),
                         uproot_options=uproot_options, policy=policy, checkpointer=checkpointer, pure=False)
    group_of = {f.key: group for f, group in zip(futures, groups)}
    final = tree_reduce(client, futures, merge_outputs, TREE_REDUCTION, pure=False)
    finished = as_completed(futures) if progress and progress_enabled() else None  # the bar counts chunks
    del futures  # a chunk's output is released once its reduction task has it

    def name_of(key: Any) -> str:
        group = group_of.get(key)
        if not group:
            return repr(key)
        return repr(group[0]) + (f" (and the next {len(group) - 1} chunk(s) of the file)" if len(group) > 1 else "")

    try:
        merged = wait_counting_chunks(final, finished, len(chunks), "Processing chunks", "chunk",
                                      chunks_of=lambda key: len(group_of[key]), name_of=name_of)
    finally:
        try:
            client.run(close_worker_readers)
        except Exception:  # a worker gone already holds nothing
            pass
    return _finish(merged, len(chunks))
