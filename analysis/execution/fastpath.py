"""Local fast path: run a processor's ``process_columns`` on its declared branches, read with uproot directly.

For the iterative (in-process) executor and processors that declare their input branches (``columns(format)``)
and offer ``process_columns(columns, metadata)`` (the same output as ``process(events)`` on that chunk), the
chunks are processed without coffea's Runner and NanoEvents — and without importing coffea at all, which
costs ~0.8 s CPU per process (coffea.nanoevents imports numba). Per chunk: one ``TTree.arrays`` call
over the declared branches present in the file (basket-aligned chunk boundaries from the pre-flight, the
file and its TTree kept open across the file's chunks, closed at the end), then ``process_columns``.

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
from collections.abc import MutableMapping, MutableSet
from dataclasses import dataclass, field
from typing import Any

from analysis.console import progress_bar, progress_enabled
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


def eligible(processor_instance: Any, input_format: str | None, schema: Any, executor: str, checks: list) -> bool:
    """True if the run can take the fast path.

    Conditions: iterative executor; one input format and a processor that is :func:`columns_capable`; every
    file is a TTree whose basket boundaries the pre-flight found (RNTuple and other inputs take coffea's path).
    """
    if executor != "iterative" or not checks or not columns_capable(processor_instance, input_format, schema):
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
    if "metrics" in merged:
        merged["metrics"]["chunks"] = len(chunks)
        merged["metrics"]["columns"] = sorted(merged["metrics"]["columns"])
    return merged
