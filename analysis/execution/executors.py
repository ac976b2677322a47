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

from coffea.processor import FuturesExecutor as _CoffeaFuturesExecutor
from coffea.processor import IterativeExecutor as _CoffeaIterativeExecutor
from coffea.processor.accumulator import Accumulatable, accumulate
from coffea.processor.executor import _compression_wrapper, _decompress

from analysis.console import progress_bar


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
