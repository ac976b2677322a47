"""coffea's local executors with a progress display that honours ``status`` and always finishes.

coffea 2026.9's ``FuturesExecutor`` and ``IterativeExecutor`` draw their rich bars whatever ``status`` says
(``add_task(disable=…)`` is not a rich option), and the futures one leaves the "Merging (local)" bar frozen
part-way (rich's ``track`` with a task id restarts the count per batch). These subclasses keep coffea's pool,
compression and accumulation (``_compression_wrapper``, ``_decompress``, ``accumulate``) and replace only the
loop: chunks are merged in the main process as they finish, under one bar (``desc``/``unit``) that ends at
100 % and is closed, or under none when ``status`` is false.
"""

from __future__ import annotations

import concurrent.futures
import warnings
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Callable, Iterable

from coffea.processor import DaskExecutor as _CoffeaDaskExecutor
from coffea.processor import FuturesExecutor as _CoffeaFuturesExecutor
from coffea.processor import IterativeExecutor as _CoffeaIterativeExecutor
from coffea.processor.accumulator import Accumulatable, accumulate
from coffea.processor.executor import _compression_wrapper, _decompress, _reduce

from analysis.console import progress_bar, stderr_console
from analysis.execution.dask_tasks import tree_reduce, wait_counting_chunks


@dataclass
class FuturesExecutor(_CoffeaFuturesExecutor):
    """Local process pool; results merged as they arrive; one progress bar (``status``, ``desc``, ``unit``)."""

    def __call__(self, items: Iterable, function: Callable, accumulator: Accumulatable):
        """Run ``function`` on every item in the pool; return ``(merged accumulator, 0)``; re-raise the first error."""
        items = list(items)
        if not items:
            return accumulator, 0
        if self.compression is not None:
            function = _compression_wrapper(self.compression, function)
        with ExitStack() as stack:
            pool = self.pool if isinstance(self.pool, concurrent.futures.Executor) else \
                stack.enter_context(self.pool(max_workers=self.workers))
            futures = [pool.submit(function, item) for item in items]
            merged = accumulator
            try:
                with progress_bar(len(futures), self.desc, self.unit, enabled=self.status) as advance:
                    for fut in concurrent.futures.as_completed(futures):
                        out = _decompress(fut.result())
                        merged = out if merged is None else accumulate([out], merged)
                        advance(1)
            except BaseException:
                for fut in futures:
                    fut.cancel()
                raise
        return merged, 0


@dataclass
class IterativeExecutor(_CoffeaIterativeExecutor):
    """In-process loop over the chunks; one progress bar (``status``, ``desc``, ``unit``)."""

    def __call__(self, items: Iterable, function: Callable, accumulator: Accumulatable):
        """Run ``function`` on every item in order; return ``(merged accumulator, 0)``."""
        items = list(items)
        if not items:
            return accumulator, 0
        merged = accumulator
        with progress_bar(len(items), self.desc, self.unit, enabled=self.status) as advance:
            for item in items:
                out = function(item)
                merged = out if merged is None else accumulate([out], merged)
                advance(1)
        return merged, 0


@dataclass
class DaskExecutor(_CoffeaDaskExecutor):
    """coffea's Dask executor whose progress bar counts the chunks and is drawn on stderr, like every other bar.

    coffea's bar (``coffea.processor._dask.progress``, distributed's ``ProgressBar``) counts every task the result
    depends on, the tree-reduction tasks included (19/19 for 18 chunks), and draws on coffea's stdout console.
    Here the submission is coffea's — ``client.map`` of the (compression-wrapped) work function over the items,
    the processor sent once as ``heavy_input`` (coffea's Runner does this for Dask; that task was counted too),
    the tree reduction in groups of ``treereduction``, a ``KilledWorker`` named by its work item — and the bar
    is :func:`analysis.console.progress_bar` on stderr, advanced as each chunk's task finishes: it ends at
    ``len(items)``. ``worker_affinity`` and ``use_dataframes`` (not used by this project) keep coffea's own loop
    and bar (moved to stderr).
    """

    def __call__(self, items: Iterable, function: Callable, accumulator: Accumulatable):
        """Run ``function`` on every item on the Dask client; return ``(merged accumulator, 0)``; re-raise the
        first chunk error."""
        if not self.status:
            return super().__call__(items, function, accumulator)
        if self.worker_affinity or self.use_dataframes:
            return self._coffea_call_on_stderr(items, function, accumulator)
        items = list(items)
        if not items:
            return accumulator, 0
        from distributed import Client, as_completed

        if self.client is None:
            self.client = Client(threads_per_worker=1)
        reducer = _reduce(self.compression)
        if self.compression is not None:
            function = _compression_wrapper(self.compression, function, name=self.function_name)
        args: list = items
        if self.heavy_input is not None:  # one task holding it, each chunk's argument is (item, that future)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "Large object of size")
                heavy = self.client.submit(lambda x: x, self.heavy_input)  # as coffea: by value
            args = [(item, heavy) for item in items]
        chunks = self.client.map(function, args, pure=self.heavy_input is not None, priority=self.priority,
                                 retries=self.retries)
        key_to_item = {future.key: item for future, item in zip(chunks, items)}
        final = tree_reduce(self.client, chunks, reducer, self.treereduction, pure=True, priority=self.priority,
                            retries=self.retries)
        finished = as_completed(chunks)
        del chunks, args  # a chunk's output is released once its reducer has it (only `finished` holds it until then)
        merged = wait_counting_chunks(final, finished, len(items), self.desc, self.unit,
                                      name_of=lambda key: key_to_item.get(key, "(output reducer)"))
        out = merged if self.compression is None else _decompress(merged)
        return accumulate([out], accumulator), 0

    def _coffea_call_on_stderr(self, items: Iterable, function: Callable, accumulator: Accumulatable):
        """coffea's own ``__call__`` with its bar built on the project's stderr console instead of stdout."""
        import coffea.processor._dask as coffea_dask
        from rich.progress import Progress

        coffea_bar = coffea_dask.rich_bar

        def stderr_bar() -> Progress:
            return Progress(*coffea_bar().columns, auto_refresh=False, console=stderr_console())

        coffea_dask.rich_bar = stderr_bar
        try:
            return super().__call__(items, function, accumulator)
        finally:
            coffea_dask.rich_bar = coffea_bar
