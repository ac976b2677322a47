"""coffea's path: the chunks run through ``coffea.processor.Runner`` on the iterative, futures or Dask executor.

Used for every run the local fast path (:mod:`analysis.execution.fastpath`) does not take: process pools, Dask,
processors without ``process_columns``, custom schemas, RNTuple input. On top of coffea's Runner:

* the metadata cache is filled from the pre-flight, so coffea does not open the files again;
* chunks are re-cut on the basket boundaries found by the pre-flight (no basket inflated by two chunks);
* every chunk is retried and, when unreadable, skipped and recorded (:class:`~analysis.execution.retries._RetryingCall`);
* each process keeps the tree of the file it is reading open across that file's chunks and reads the declared
  branches in one pass per chunk (:mod:`analysis.execution.chunkread`);
* checkpoints: :class:`~analysis.execution.checkpoints.ChunkCheckpointer`.
"""

from __future__ import annotations

import dataclasses
import logging
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Iterator

from coffea import processor
from coffea.processor.executor import FileMeta, WorkItem

from analysis.console import progress_enabled
from analysis.execution.chunkread import close_open_trees, work_function
from analysis.execution.fastpath import reemit_warnings
from analysis.execution.executors import DaskExecutor, FuturesExecutor, IterativeExecutor
from analysis.execution.preflight import FileCheck
from analysis.execution.retries import RetryPolicy, _RetryingCall
from schemas.reading import basket_aligned_ranges

log = logging.getLogger(__name__)


@dataclass
class _ReliableRunner(processor.Runner):
    """coffea Runner whose per-chunk retry wrapper is :class:`_RetryingCall` (same for every executor)."""

    policy: RetryPolicy = field(default_factory=RetryPolicy)

    @property
    def automatic_retries(self):  # overrides coffea's staticmethod; the closure is pickled to workers
        return _RetryingCall(self.policy)

    # per chunk: coffea's work, with each file's tree kept open across its chunks (analysis.execution.chunkread)
    _work_function = staticmethod(work_function)


def _make_executor(name: str, workers: int, client, progress: bool):
    """The coffea executor (retries are done by :class:`_RetryingCall`, hence 0 here); local ones are
    :mod:`analysis.execution.executors` (their bars honour ``status`` and finish)."""
    progress = progress and progress_enabled()  # --no-progress / progress_setting(False) win
    if name == "iterative":
        return IterativeExecutor(status=progress, retries=0, desc="Processing chunks")
    if name == "futures":
        return FuturesExecutor(workers=workers, status=progress, retries=0, desc="Processing chunks")
    return DaskExecutor(client=client, status=progress, retries=0, desc="Processing chunks")  # bar on stderr, counts chunks


class _Chunked(processor.ProcessorABC):
    """Runs the wrapped processor per chunk and defers ``postprocess`` (done after the loss accounting)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    @property
    def columns_processor(self) -> Any:
        """The wrapped processor: the chunk reader gives it its declared branches as arrays when it offers
        ``process_columns`` (:func:`analysis.execution.chunkread.work_function`), as the local fast path does."""
        return self.inner

    def process(self, events):
        """Delegate to the wrapped processor."""
        return self.inner.process(events)

    def postprocess(self, accumulator):
        """Identity: the caller post-processes once losses are known."""
        return accumulator


@contextmanager
def _coffea_tracebacks_to_debug_log() -> Iterator[None]:
    """coffea's futures executor prints every failure's traceback to stderr before re-raising it; during a run
    those go to the debug log instead (``ana -v``), so that a user error stays one line. Scoped to the run."""
    import coffea.processor.executor as coffea_executor

    quiet = SimpleNamespace(**{name: getattr(traceback, name) for name in dir(traceback) if not name.startswith("__")})
    quiet.print_exc = lambda *a, **k: log.debug("coffea executor failure", exc_info=True)
    saved = coffea_executor.traceback
    coffea_executor.traceback = quiet
    try:
        yield
    finally:
        coffea_executor.traceback = saved


def basket_aligned(chunks: list[WorkItem], checks: list[FileCheck], limit: int) -> list[WorkItem]:
    """Re-cut each file's chunks on the basket boundaries found by the pre-flight (``schemas.reading``):
    no basket is inflated by two chunks. Files without boundaries or entries keep coffea's chunks."""
    bounds = {(c.dataset, c.path): (c.entries, c.basket_boundaries) for c in checks}
    out: list[WorkItem] = []
    done: set[tuple[str, str]] = set()
    for item in chunks:
        key = (item.dataset, item.filename)
        entries, boundaries = bounds.get(key, (None, None))
        if not entries or boundaries is None:
            out.append(item)
            continue
        if key in done:
            continue
        done.add(key)
        out.extend(dataclasses.replace(item, entrystart=a, entrystop=b)
                   for a, b in basket_aligned_ranges(boundaries, entries, limit))
    return out


def run_chunks(run_fileset: dict[str, dict[str, Any]], good: list[FileCheck], processor_instance: Any, *, exe_name: str,
               n_workers: int, client, progress: bool, schema, size: int, checkpointer, policy: RetryPolicy,
               wanted: list[str] | None, uproot_options: dict[str, Any]) -> tuple[dict, int, list[tuple[int, int]]]:
    """Run the fileset's chunks on coffea's Runner.

    Returns (coffea's wrapped output ``{"out", "metrics", "lost", ...}``, number of chunks, the (entrystart,
    entrystop) of chunks taken from the checkpoint).
    """
    cache = {}
    for c in good:
        if c.dataset in run_fileset:
            meta = dict(run_fileset[c.dataset].get("metadata") or {})
            meta.update({"numentries": c.entries, "uuid": c.uuid})
            cache[FileMeta(c.dataset, c.path, c.treename)] = meta
    exe = _make_executor(exe_name, n_workers, client, progress)
    runner = _ReliableRunner(executor=exe, schema=schema, chunksize=size, savemetrics=True,
                             metadata_cache=cache, checkpointer=checkpointer, policy=policy)
    chunks = basket_aligned(list(runner.preprocess(run_fileset, treename=None)), good, size)
    if wanted:  # read the declared branches in one pass per chunk (others stay lazy)
        chunks = [dataclasses.replace(ch, preload=tuple(wanted)) for ch in chunks]
    reused = [(ch.entrystart, ch.entrystop) for ch in chunks if checkpointer.exists(ch)] if checkpointer is not None else []
    try:
        with _coffea_tracebacks_to_debug_log():
            wrapped = runner.run(chunks, _Chunked(processor_instance), treename=None, uproot_options=uproot_options)
    finally:
        close_open_trees()  # the trees this process kept open across chunks (pool workers close with them)
        if client is not None:  # Dask workers outlive the run
            try:
                client.run(close_open_trees)
            except Exception:  # a worker gone already holds nothing
                log.debug("closing the Dask workers' open trees failed", exc_info=True)
    reemit_warnings(wrapped.pop("warnings", None))  # those of pool/Dask workers, now where the caller counts them
    return wrapped, len(chunks), reused
