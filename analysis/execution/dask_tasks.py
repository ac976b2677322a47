"""Dask task plumbing shared by both paths (coffea's Runner and the fast path): the chunk outputs merged on the
workers by a tree reduction, a progress bar that counts chunks (not reduction tasks) while the client waits, and a
worker that died too often named by its chunk. No coffea import (the fast path's client must not load it)."""

from __future__ import annotations

from typing import Any, Callable, Iterable

from analysis.console import progress_bar


def tree_reduce(client: Any, futures: list, reducer: Callable[[list], Any], width: int, **map_options: Any) -> Any:
    """The future of ``reducer`` applied level by level to groups of ``width`` consecutive futures (in order), on
    the workers, as coffea's Dask executor reduces; ``futures`` itself when there is one (``map_options``: passed
    to ``client.map``, e.g. ``pure``, ``priority``, ``retries``)."""
    work = list(futures)
    while len(work) > 1:
        work = client.map(reducer, [work[i:i + width] for i in range(0, len(work), width)], **map_options)
    return work[0]


def wait_counting_chunks(final: Any, finished: Iterable | None, total: int, desc: str, unit: str,
                         chunks_of: Callable[[Any], int] = lambda key: 1,
                         name_of: Callable[[Any], str] = str) -> Any:
    """``final.result()``, with a bar of ``total`` chunks advanced by ``chunks_of(key)`` as each task of
    ``finished`` (``distributed.as_completed`` of the chunk tasks; None: no bar) completes.

    The caller holds no other reference to the chunk futures, so that a chunk's output is released once its
    reduction task has it. A failed chunk task ends the bar; the result then raises its error.

    Raises:
        RuntimeError: a worker died more often than the cluster allows while running task ``key``: "Work item
            ``name_of(key)`` caused a KilledWorker exception …", as coffea's Dask executor words it.
    """
    from distributed.scheduler import KilledWorker

    try:
        if finished is not None:
            with progress_bar(total, desc, unit, enabled=True) as advance:
                for future in finished:
                    failed, key = future.status == "error", future.key
                    del future
                    if failed:
                        break  # the result below raises the chunk's error (the reduction depends on it)
                    advance(chunks_of(key))
        return final.result()
    except KilledWorker as err:
        raise RuntimeError(f"Work item {name_of(err.task)} caused a KilledWorker exception (likely a segfault or "
                           "out-of-memory issue)") from None
