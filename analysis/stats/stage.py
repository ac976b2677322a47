"""Stage messages: a rich spinner while a stage runs, and a one-line summary for stages longer than ~2 s,
with Minuit's C++ stream captured and summarised (see :mod:`analysis.stats.capture`)."""

from __future__ import annotations

import io
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from analysis.stats.capture import MinuitMessages, capture_minuit

LONG_STAGE_S = 2.0


@contextmanager
def stage(name: str, *, quiet: bool = False, verbose: bool = False, timing: dict | None = None,
          minuit: dict | None = None) -> Iterator[MinuitMessages]:
    """Run a stage under a spinner; print "✓ name (3.1 s)" when it took ≥ 2 s and Minuit's summary line.

    Args:
        name: stage name ("ranking", "scan", ...); quiet: no console output at all; verbose: show Minuit's lines.
        timing: dict receiving ``name → wall seconds``; minuit: dict receiving ``name → message counts``.
    """
    from rich.console import Console

    from analysis.console import progress_enabled

    quiet = quiet or not progress_enabled()  # --no-progress / progress_setting(False) silence stages everywhere
    try:  # spinner and "✓" go to a copy of stderr's descriptor (stderr itself is captured during the stage),
        # like every other progress message: stdout is for results
        out = os.fdopen(os.dup(sys.stderr.fileno()), "w")
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        out = None
    console = Console(file=out, highlight=False)
    t0 = time.perf_counter()
    status = console.status(f"{name} …") if (not quiet and console.is_terminal) else None
    if status is not None:
        status.start()
    try:
        with capture_minuit(verbose=verbose) as messages:
            yield messages
    finally:
        if status is not None:
            status.stop()
        if out is not None:
            out.flush()
        dt = time.perf_counter() - t0
        if timing is not None:
            timing[name] = round(dt, 3)
        if minuit is not None and messages.counts:
            minuit[name] = messages.to_dict()
        if not quiet:
            if dt >= LONG_STAGE_S:
                console.print(f"[green]✓[/green] {name} ({dt:.1f} s)")
            line = messages.summary(name)
            if line and not verbose:
                print(line, file=sys.stderr)
        if out is not None:
            out.close()
