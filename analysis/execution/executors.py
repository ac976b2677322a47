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
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Callable, Iterable

from coffea.processor import DaskExecutor as _CoffeaDaskExecutor
from coffea.processor import FuturesExecutor as _CoffeaFuturesExecutor
from coffea.processor import IterativeExecutor as _CoffeaIterativeExecutor
from coffea.processor.accumulator import Accumulatable, accumulate
from coffea.processor.executor import _compression_wrapper, _decompress

from analysis.console import progress_bar, stderr_console


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
    """coffea's Dask executor whose progress bar is drawn on stderr, like every other bar (stdout is for results).

    coffea's ``RichProgressBar`` builds its bar with ``coffea.util.rich_bar`` on coffea's stdout console; for the
    duration of the call the bar gets the same columns on the project's stderr console instead.
    """

    def __call__(self, items: Iterable, function: Callable, accumulator: Accumulatable):
        if not self.status:
            return super().__call__(items, function, accumulator)
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
