"""The executor flags shared by the processing subcommands (``ana reweight``, ``ana ml``), and the one place
where they become :class:`analysis.execution.options.RunOptions` (values, bounds and defaults are defined there)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from analysis.execution.options import RunOptions


def add_run_flags(p: argparse.ArgumentParser, chunksize: bool = True) -> None:
    """``--executor``, ``--workers`` (and ``--chunksize``); unset flags stay None (= the RunOptions default)."""
    p.add_argument("--executor", help="iterative, futures (default) or dask")
    p.add_argument("--workers", type=int, help="worker processes (default: usable cores)")
    if chunksize:
        p.add_argument("--chunksize", type=int, help="events per chunk (default 100000)")


def run_options(args: argparse.Namespace) -> "RunOptions":
    """The run options from the flags (invalid: ``invalid run options: <option>: ...``, one line, exit 2)."""
    from analysis.execution.options import RunOptions

    return RunOptions.make(executor=getattr(args, "executor", None), workers=getattr(args, "workers", None),
                           chunksize=getattr(args, "chunksize", None))
