"""Capture Minuit's C++ message stream (file descriptors 1 and 2) and summarise it in one line.

Minuit prints diagnostics such as ``W FCN result is NaN for [...]`` or ``W MnPosDef Matrix forced pos-def``
straight from C++ to stdout, bypassing Python.  :func:`capture_minuit` redirects both descriptors to
temporary files for the duration of a stage, counts the Minuit lines by kind and re-emits every other
line unchanged to its own stream, after the stage (and, when ``verbose``, the Minuit lines too).  Captures nest: an inner capture adds its
counts to the enclosing one.  The redirection is process-wide, so wrap whole stages (also thread pools),
not individual fits running concurrently.
"""

from __future__ import annotations

import io
import logging
import os
import re
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

_MINUIT_LINE = re.compile(r"^[EWIDT] [A-Z][A-Za-z0-9]+\b")
_KINDS = (
    ("NaN evaluations", re.compile(r"FCN result is NaN")),
    ("invalid minima", re.compile(r"FunctionMinimum is invalid")),
    ("forced positive-definite matrices", re.compile(r"forced pos-def")),
    ("calls above the limit", re.compile(r"call limit|exceeds? max(imum)? number", re.IGNORECASE)),
)
_STACK: list[MinuitMessages] = []


@dataclass
class MinuitMessages:
    """Counts of Minuit's C++ messages by kind (filled when the capture ends)."""

    counts: Counter = field(default_factory=Counter)
    lines: list[str] = field(default_factory=list)
    verbose: bool = False

    def add_line(self, line: str) -> None:
        """Classify one Minuit line."""
        self.lines.append(line)
        for kind, pattern in _KINDS:
            if pattern.search(line):
                self.counts[kind] += 1
                return
        self.counts["other Minuit warnings"] += 1

    def summary(self, stage: str) -> str | None:
        """One line such as ``"Minuit during the ranking: 42 NaN evaluations, 3 invalid minima"`` (None if quiet)."""
        if not self.counts:
            return None
        parts = ", ".join(f"{n} {kind}" for kind, n in self.counts.most_common())
        return f"Minuit/pyhf during the {stage}: {parts} (recovered or reported in fit_quality; -v shows every line)"

    def to_dict(self) -> dict[str, int]:
        """Counts as a JSON-ready dict."""
        return dict(self.counts)


@contextmanager
def capture_minuit(verbose: bool = False) -> Iterator[MinuitMessages]:
    """Redirect fds 1 and 2 into temporary files; on exit count Minuit lines and re-emit the rest.

    Args:
        verbose: also re-emit Minuit's own lines (``ana -v``).

    Yields:
        The :class:`MinuitMessages` filled in when the block ends.
    """
    messages = MinuitMessages(verbose=verbose)
    streams = ((1, sys.stdout), (2, sys.stderr))  # re-emission goes to the streams of the caller
    saved: list[tuple[int, Any, int, Any]] = []
    try:
        _flush_c_stdio()
        for fd, stream in streams:
            stream.flush()
            tmp = tempfile.TemporaryFile(mode="w+b")  # noqa: SIM115 - closed in _restore
            copy = os.dup(fd)
            os.dup2(tmp.fileno(), fd)
            saved.append((fd, stream, copy, tmp))
    except (OSError, ValueError, AttributeError):  # no real descriptors (embedded interpreters): do not capture
        _restore(saved)
        yield messages
        return
    # libraries may also write through Python's sys.stdout/sys.stderr (pybind11 stream redirection)
    py_streams = (sys.stdout, sys.stderr)
    buffers = (io.StringIO(), io.StringIO())
    sys.stdout, sys.stderr = buffers
    _STACK.append(messages)
    try:
        yield messages
    finally:
        sys.stdout, sys.stderr = py_streams
        texts = [t + b.getvalue() for t, b in zip(_restore(saved), buffers)]
        _STACK.pop()
        for (fd, stream), text in zip(streams, texts):
            passthrough = []
            for line in text.splitlines(keepends=True):
                if _MINUIT_LINE.match(line):
                    messages.add_line(line.rstrip("\n"))
                    if verbose:
                        passthrough.append(line)
                else:
                    passthrough.append(line)
            if passthrough:
                stream.write("".join(passthrough))
                stream.flush()
        if _STACK and not verbose:  # verbose: the re-emitted lines are counted by the enclosing capture
            _STACK[-1].counts.update(messages.counts)


def _flush_c_stdio() -> None:
    """Flush C stdio buffers (Minuit writes through std::cout, fully buffered when not a terminal)."""
    try:
        import ctypes

        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):  # pragma: no cover - no libc symbols (non-POSIX)
        pass


def _restore(saved: list) -> list[str]:
    """Put the original descriptors back; return what was written to each temporary file."""
    _flush_c_stdio()
    texts = []
    for fd, stream, copy, tmp in saved:
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
        os.dup2(copy, fd)
        os.close(copy)
        tmp.seek(0)
        texts.append(tmp.read().decode(errors="replace"))
        tmp.close()
    return texts


class _RecordList(logging.Handler):
    """Keeps the ERROR records of a library logger (the failed-fit dumps of ``pyhf.optimize``)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def capture_fit_errors(logger_name: str = "pyhf.optimize", kind: str = "failed pyhf fits (retried)") -> Iterator[list[str]]:
    """Capture a library's ERROR log records (pyhf logs every failed minimisation as a multi-line dump).

    The records do not reach the console unless the enclosing :func:`capture_minuit` is verbose (``ana -v``) or,
    outside any capture, the root logger shows INFO; each is counted under ``kind`` in the enclosing capture, so
    the stage's one summary line includes it.

    Args:
        logger_name: the library logger to capture (with its children).
        kind: label of the count in the stage summary.

    Yields:
        A list that receives the first line of every captured record's message (filled as records arrive).
    """
    verbose = _STACK[-1].verbose if _STACK else logging.getLogger().isEnabledFor(logging.INFO)
    logger = logging.getLogger(logger_name)
    handler = _RecordList()
    propagate = logger.propagate
    logger.addHandler(handler)
    if not verbose:
        logger.propagate = False
    first_lines: list[str] = []

    try:
        yield first_lines
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
        for record in handler.records:
            text = str(record.getMessage()).strip().splitlines()
            first_lines.append(" ".join(t.strip() for t in text[:2]) if text else "")
        if handler.records and _STACK:
            _STACK[-1].counts[kind] += len(handler.records)
