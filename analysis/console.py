"""What a user sees while a workflow runs: progress bars, stage messages, library warnings, logging setup.

* ``progress_setting(enabled)`` — the ``--no-progress`` / ``progress=False`` switch for everything below it
  (bars and stage messages); a context variable, so nested workflows and threads inherit it.
* ``stage(message)`` — a spinner on stderr while a long step runs (fit, limits, toys, derivation; terminals) and
  one line with its duration afterwards when it took ≥ 2 s; nothing when progress is off.
* ``progress_bar(total, desc, unit)`` — a rich bar on stderr that always ends at total (never left frozen).
* ``library_noise(verbose)`` — the CLI's filter: warnings and WARNING log records of the libraries underneath
  (cabinetry, pyhf, coffea, dask, …) are counted and summarised in one line at the end; ``verbose`` shows them.
* ``set_logging(level, libraries)`` — the same choice for notebooks and scripts, in one call.

Nothing here changes global state at import.
"""

from __future__ import annotations

import logging
import sys
import time
import warnings
from collections import Counter
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from pathlib import Path
from typing import Callable, Iterator

# Loggers of the libraries the workflows drive; their WARNINGs are implementation detail for most users.
LIBRARY_LOGGERS = ("cabinetry", "pyhf", "matplotlib", "distributed", "dask", "dask_jobqueue", "coffea", "uproot",
                   "numba", "fsspec", "asyncio", "jax", "iminuit", "packtivity", "yadage", "adage", "sklearn")
OWN_PACKAGES = ("analysis", "processors", "schemas", "fileset")
_ROOT = Path(__file__).resolve().parents[1]

_PROGRESS: ContextVar[bool] = ContextVar("analysis_progress", default=True)
_console = None


def _stderr_console():
    """The rich console on stderr shared by bars and stage messages (created on first use)."""
    global _console
    if _console is None or _console.file is not sys.stderr:
        from rich.console import Console

        _console = Console(file=sys.stderr, soft_wrap=True)  # long paths stay on one line
    return _console


def stderr_console():
    """The project's rich console on stderr (for libraries' bars that would otherwise draw on stdout)."""
    return _stderr_console()


def progress_enabled() -> bool:
    """Whether progress bars and stage messages are shown (``progress_setting``; default True)."""
    return _PROGRESS.get()


@contextmanager
def progress_setting(enabled: bool) -> Iterator[None]:
    """Show (``True``) or hide (``False``) progress bars and stage messages inside the block."""
    token = _PROGRESS.set(bool(enabled))
    try:
        yield
    finally:
        _PROGRESS.reset(token)


@contextmanager
def stage(message: str, min_seconds: float = 2.0) -> Iterator[None]:
    """Announce a possibly long step on stderr: a spinner while it runs (terminal), and ``✓ message (t s)`` when
    it took at least ``min_seconds`` (terminal and log files). Silent when progress is off."""
    if not progress_enabled():
        yield
        return
    con = _stderr_console()
    t0 = time.perf_counter()
    with con.status(message) if con.is_terminal else nullcontext():
        yield  # an error inside propagates without a line from here (user errors stay one line)
    dt = time.perf_counter() - t0
    if dt >= min_seconds:
        con.print(f"[green]✓[/green] {message} ({dt:.1f} s)", highlight=False)


def staged(message: str, func: Callable, *args, **kwargs):
    """``func(*args, **kwargs)`` inside :func:`stage` (``message``); returns its result."""
    with stage(message):
        return func(*args, **kwargs)


@contextmanager
def progress_bar(total: int, desc: str = "Processing", unit: str = "items",
                 enabled: bool | None = None) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr; yields ``advance(n=1)``. The bar is completed and closed on exit, or
    removed if the block fails (the error is then the only output)."""
    show = progress_enabled() if enabled is None else (enabled and progress_enabled())
    if not show:
        yield lambda n=1: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn(unit),
               TimeElapsedColumn(), TextColumn("<"), TimeRemainingColumn())
    with Progress(*columns, console=_stderr_console(), transient=False) as bar:
        task = bar.add_task(desc, total=total)
        try:
            yield lambda n=1: bar.advance(task, n)
        except BaseException:
            bar.live.transient = True  # a failed run: no bar frozen part-way above the one-line error
            raise
        bar.update(task, completed=total, refresh=True)


def _is_own(filename: str) -> bool:
    """Whether a warning was raised in this project's code (those are always shown)."""
    try:
        rel = Path(filename).resolve().relative_to(_ROOT)
    except (ValueError, OSError):
        return False
    return bool(rel.parts) and rel.parts[0] in OWN_PACKAGES


def _library_of(filename: str) -> str:
    """Top-level package a warning came from (the directory after site-packages), else ``python``."""
    parts = Path(filename).parts
    if "site-packages" in parts:
        i = len(parts) - 1 - parts[::-1].index("site-packages")
        if i + 1 < len(parts):
            return parts[i + 1].removesuffix(".py")
    return "python"


class _CountingHandler(logging.Handler):
    """Counts log records by logger name (and keeps them for the summary) instead of printing them."""

    def __init__(self, counter: Counter) -> None:
        super().__init__(logging.WARNING)
        self.counter = counter

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR:  # errors are shown, not counted
            sys.stderr.write(f"{record.levelname} {record.name}: {record.getMessage()}\n")
        else:
            self.counter[f"{record.name.split('.')[0]} {record.levelname}"] += 1


@contextmanager
def library_noise(verbose: bool = False, stream=None) -> Iterator[Counter]:
    """Count the libraries' warnings and WARNING log records inside the block; print one summary line at the end
    (not after an error: the error stays the only line). Deprecation warnings are ignored, as Python does.

    With ``verbose`` everything is shown as it happens (nothing is counted). Warnings raised in this project's
    own code are always shown. Yields the counter (keys ``"<library> <kind>"``).
    """
    counter: Counter = Counter()
    if verbose:
        yield counter
        return
    handler = _CountingHandler(counter)
    saved = []
    for name in LIBRARY_LOGGERS:
        lg = logging.getLogger(name)
        saved.append((lg, lg.propagate, lg.level))
        lg.addHandler(handler)
        lg.propagate = False
        if lg.level == logging.NOTSET or lg.level < logging.WARNING:
            lg.setLevel(logging.WARNING)
    caught: list = []
    failed = False
    try:
        with warnings.catch_warnings(record=True) as recorded:
            warnings.simplefilter("default")
            for developer_only in (DeprecationWarning, PendingDeprecationWarning):  # hidden by Python too
                warnings.filterwarnings("ignore", category=developer_only)
            try:
                yield counter
            except BaseException:
                failed = True  # the error is the user's one line; no summary after it
                raise
            finally:
                caught = list(recorded)
    finally:
        for w in caught:  # outside catch_warnings: showing one must not record it again
            if _is_own(w.filename):
                warnings.showwarning(w.message, w.category, w.filename, w.lineno)
            else:
                counter[f"{_library_of(w.filename)} {w.category.__name__}"] += 1
        for lg, propagate, level in saved:
            lg.removeHandler(handler)
            lg.propagate = propagate
            lg.setLevel(level)
        if counter and not failed:
            total = sum(counter.values())
            kinds = ", ".join(f"{n}× {k}" for k, n in counter.most_common(4))
            more = "" if len(counter) <= 4 else f", … ({len(counter) - 4} more kinds)"
            print(f"({total} library warning(s) hidden: {kinds}{more}; rerun with -v to see them)",
                  file=stream or sys.stderr)


def set_logging(level: str | int = "WARNING", libraries: str = "quiet") -> None:
    """Set up logging for a notebook or script in one call (instead of silencing loggers one by one).

    Args:
        level: level of this project's own messages (``"INFO"`` shows the workflows' progress notes).
        libraries: ``"quiet"`` — the libraries underneath (cabinetry, pyhf, coffea, dask, matplotlib, …) log
            only errors and their Python warnings are ignored; ``"verbose"`` — their warnings and log records are
            shown (the libraries' own defaults).
    Raises:
        ValueError: an unknown ``libraries`` choice or level name.
    """
    if libraries not in ("quiet", "verbose"):
        raise ValueError(f"libraries must be 'quiet' or 'verbose', got {libraries!r}")
    lvl = logging.getLevelName(level.upper()) if isinstance(level, str) else int(level)
    if not isinstance(lvl, int):
        raise ValueError(f"unknown logging level {level!r}")
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    for name in OWN_PACKAGES:
        logging.getLogger(name).setLevel(lvl)
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR if libraries == "quiet" else logging.NOTSET)
    for name in LIBRARY_LOGGERS:
        pattern = rf"{name}(\..*)?$"
        if libraries == "quiet":
            warnings.filterwarnings("ignore", module=pattern)
        else:
            warnings.filters[:] = [f for f in warnings.filters if not (f[0] == "ignore" and f[3] is not None
                                                                        and getattr(f[3], "pattern", None) == pattern)]
