"""argparse ``type=`` helpers: every numeric and path option is checked at the boundary.

A value that does not fit raises :class:`argparse.ArgumentTypeError`; the ``ana`` parser turns that into one
line ``ana CMD: error: argument --opt: <reason>`` and exit code 2, before any work starts. Light on purpose
(standard library only) so that building the parser stays cheap.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
from pathlib import Path
from typing import Callable

__all__ = [
    "count_or_all", "existing_file", "finite_float", "fraction", "int_at_least", "non_negative_float", "non_negative_int",
    "open_fraction", "output_dir", "output_file", "positive_float", "positive_int", "probability",
]


def _int(text: str) -> int:
    try:
        return int(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _float(text: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An integer ≥ 1 (counts of workers, bins, events, files, points)."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer (≥ 1), got {value}")
    return value


def non_negative_int(text: str) -> int:
    """An integer ≥ 0 (retries, seeds)."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer (≥ 0), got {value}")
    return value


def count_or_all(text: str) -> int:
    """A count ≥ 1, or −1 meaning "all" (e.g. ``--max-files``); 0 and other negatives are refused."""
    value = _int(text)
    if value < 1 and value != -1:
        raise argparse.ArgumentTypeError(f"must be ≥ 1, or -1 for all, got {value}")
    return value


def finite_float(text: str) -> float:
    """Any finite real number (NaN and ±inf refused)."""
    return _float(text)


def positive_float(text: str) -> float:
    """A finite number > 0 (cross-sections, luminosities, sums of weights, scales)."""
    value = _float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number (> 0), got {text}")
    return value


def non_negative_float(text: str) -> float:
    """A finite number ≥ 0."""
    value = _float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative number (≥ 0), got {text}")
    return value


def fraction(text: str) -> float:
    """A number in [0, 1) (relative uncertainties, score cuts)."""
    value = _float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def open_fraction(text: str) -> float:
    """A number in (0, 1) (test fractions)."""
    value = _float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1), got {text}")
    return value


def probability(text: str) -> float:
    """A number in (0, 1] (efficiencies, p-value thresholds)."""
    value = _float(text)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def existing_file(text: str) -> str:
    """A path to an existing regular file (remote URLs ``root://``, ``http(s)://``, ``s3://`` pass unchecked)."""
    if text.startswith(("root://", "http://", "https://", "s3://", "xroot://")):
        return text
    p = Path(text)
    if not p.exists():
        raise argparse.ArgumentTypeError(f"{text}: file not found")
    if not p.is_file():
        raise argparse.ArgumentTypeError(f"{text}: not a file")
    return text


def _probe_writable(directory: Path, text: str) -> None:
    """Create and remove a scratch directory in ``directory``: the real test (``os.access`` says yes to root even
    on /proc or a read-only mount)."""
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".ana-write-test-", dir=directory))
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise argparse.ArgumentTypeError(f"{text}: cannot write in directory {directory} ({reason})") from None


def _writable_ancestor(p: Path, text: str) -> None:
    """The nearest existing ancestor of ``p`` must be a writable directory (so the output can be created)."""
    for parent in p.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise argparse.ArgumentTypeError(f"{text}: {parent} is a file, not a directory")
            _probe_writable(parent, text)
            return


def output_dir(text: str) -> str:
    """An output directory: an existing writable directory or a path that can be created (not an existing file).

    Checked when the arguments are parsed, i.e. before any processing; nothing is left behind by the check.
    """
    if not text:
        raise argparse.ArgumentTypeError("empty path")
    if text.startswith(("root://", "s3://", "gs://")):
        return text
    p = Path(text)
    if p.exists() and not p.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: exists and is not a directory")
    if p.is_dir():
        _probe_writable(p, text)
    else:
        _writable_ancestor(p, text)
    return text


def output_file(text: str) -> str:
    """An output file: not an existing directory, and its folder exists writable or can be created; an existing
    file must be writable (it is replaced). Checked before any processing; nothing is left behind."""
    if not text:
        raise argparse.ArgumentTypeError("empty path")
    p = Path(text)
    if p.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: is a directory, expected a file name")
    if p.parent.is_dir():
        _probe_writable(p.parent, text)
    else:
        _writable_ancestor(p, text)
    if p.exists() and not os.access(p, os.W_OK):
        raise argparse.ArgumentTypeError(f"{text}: exists and is not writable")
    return text


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An integer ≥ ``minimum`` (e.g. scan points ≥ 3)."""
    def check(text: str) -> int:
        value = _int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer ≥ {minimum}, got {value}")
        return value
    check.__name__ = f"int_at_least_{minimum}"
    return check


def with_range(base: Callable[[str], float], lo: float, hi: float) -> Callable[[str], float]:
    """``base`` further restricted to [lo, hi]."""
    def check(text: str) -> float:
        value = base(text)
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be in [{lo:g}, {hi:g}], got {text}")
        return value
    check.__name__ = base.__name__
    return check
