"""Capture Minuit's C++ message stream (written to file descriptor 2) and summarise it in one line.

Minuit prints diagnostics such as ``W FCN result is NaN for [...]`` or ``W MnPosDef Matrix forced pos-def``
straight from C++ to stderr, bypassing Python's logging.  :func:`capture_minuit` redirects the descriptor
to a temporary file for the duration of a stage, counts the Minuit lines by kind and re-emits every other
line unchanged (and, when ``verbose``, the Minuit lines too).  Captures nest: an inner capture adds its
counts to the enclosing one.  The redirection is process-wide, so wrap whole stages (also thread pools),
not individual fits running concurrently.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

_MINUIT_LINE = re.compile(r"^[EWIDT] [A-Z][A-Za-z0-9]+\b")
_KINDS = (
    ("NaN evaluations", re.compile(r"FCN result is NaN")),
    ("invalid minima", re.compile(r"FunctionMinimum is invalid")),
    ("forced positive-definite matrices", re.compile(r"forced pos-def")),
    ("calls above the limit", re.compile(r"call limit|exceeds? max(imum)? number", re.I)),
)
_STACK: list["MinuitMessages"] = []


@dataclass
class MinuitMessages:
    """Counts of Minuit's C++ messages by kind (filled when the capture ends)."""

    counts: Counter = field(default_factory=Counter)
    lines: list[str] = field(default_factory=list)

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
        return f"Minuit during the {stage}: {parts} (recovered or reported in fit_quality; -v shows every line)"

    def to_dict(self) -> dict[str, int]:
        """Counts as a JSON-ready dict."""
        return dict(self.counts)


@contextmanager
def capture_minuit(verbose: bool = False) -> Iterator[MinuitMessages]:
    """Redirect fd 2 into a temporary file; on exit count Minuit lines and re-emit the rest.

    Args:
        verbose: also re-emit Minuit's own lines (``ana -v``).

    Yields:
        The :class:`MinuitMessages` filled in when the block ends.
    """
    messages = MinuitMessages()
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real fd 2 (e.g. embedded interpreters): do not capture
        yield messages
        return
    tmp = tempfile.TemporaryFile(mode="w+b")
    os.dup2(tmp.fileno(), 2)
    _STACK.append(messages)
    try:
        yield messages
    finally:
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(saved, 2)
        os.close(saved)
        _STACK.pop()
        tmp.seek(0)
        text = tmp.read().decode(errors="replace")
        tmp.close()
        passthrough = []
        for line in text.splitlines(keepends=True):
            if _MINUIT_LINE.match(line):
                messages.add_line(line.rstrip("\n"))
                if verbose:
                    passthrough.append(line)
            else:
                passthrough.append(line)
        if _STACK and not verbose:  # verbose: the re-emitted lines are counted by the enclosing capture
            _STACK[-1].counts.update(messages.counts)
        if passthrough:
            sys.stderr.write("".join(passthrough))
            sys.stderr.flush()
