"""Retries and skip-and-account: every chunk is retried; unreadable chunks are skipped (with
``skip_bad_files``) and recorded with the events lost, or fail the run with one line naming the file."""

from __future__ import annotations

import logging
import os
import re
import time
import zlib
from dataclasses import dataclass
from typing import Any

import uproot

from analysis.errors import AnalysisError, UserError
from analysis.execution.preflight import _first_line

log = logging.getLogger(__name__)

_READ_ERROR_TYPES: tuple[type[BaseException], ...] = (OSError, EOFError, zlib.error,
                                                      uproot.deserialization.DeserializationError,
                                                      uproot.exceptions.KeyInFileError)
_READ_MODULES = ("uproot", "lz4", "zstandard", "cramjam", "xxhash", "isal", "deflate")


def _chain(err: BaseException) -> list[BaseException]:
    """The exception and its causes/contexts."""
    out, e = [], err
    while e is not None and e not in out:
        out.append(e)
        e = e.__cause__ or e.__context__
    return out


def is_read_error(err: BaseException) -> bool:
    """True if the failure comes from reading/decompressing the input (not from the analysis code)."""
    for e in _chain(err):
        if isinstance(e, UserError):
            return False
        if isinstance(e, _READ_ERROR_TYPES):
            return True
        tb = e.__traceback__
        last = None
        while tb is not None:
            last, tb = tb.tb_frame.f_code.co_filename, tb.tb_next
        if last and any(f"{os.sep}{m}{os.sep}" in last for m in _READ_MODULES):
            return True
    return False


def _chunk_reason(err: BaseException) -> str:
    """Short reason for a failed chunk: the innermost exception."""
    root = _chain(err)[-1]
    mod = type(root).__module__
    name = type(root).__name__ if mod == "builtins" else f"{mod}.{type(root).__name__}"
    return f"{name}: {_first_line(root)}"


@dataclass(frozen=True)
class RetryPolicy:
    """How chunks are retried and whether unreadable ones are skipped (and reported) instead of failing."""

    retries: int = 3
    skip_bad: bool = False
    backoff_s: float = 0.2


def _is_chunk(item: Any) -> bool:
    """True for a chunk of a file (coffea's ``WorkItem`` or the fast path's ``Chunk``)."""
    return all(hasattr(item, name) for name in ("dataset", "filename", "entrystart", "entrystop"))


class _RetryingCall:
    """Replaces ``Runner.automatic_retries``: retry any failure, then skip-and-record or raise a clear error."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy

    def __call__(self, _coffea_retries, _skipbadfiles, func, *args, use_result_type=False, **kwargs):
        item = args[0] if args else None
        if isinstance(item, tuple):  # Dask: (item, processor)
            item = item[0]
        last: BaseException | None = None
        for attempt in range(self.policy.retries + 1):
            try:
                return func(*args, **kwargs)
            except Exception as err:
                last = err
                if any(isinstance(e, UserError) for e in _chain(err)):
                    break  # a user error does not go away by retrying
                if attempt < self.policy.retries:
                    log.warning("attempt %d of %d failed for %s: %s", attempt + 1, self.policy.retries + 1,
                                _describe(item), _chunk_reason(err))
                    time.sleep(self.policy.backoff_s * 2**attempt)
        assert last is not None
        if _is_chunk(item) and is_read_error(last):
            reason = _chunk_reason(last)
            if self.policy.skip_bad:
                key = f"{item.dataset}|{item.filename}|{item.entrystart}-{item.entrystop}"
                return {"out": {}, "lost": {key: {"dataset": item.dataset, "path": item.filename,
                                                  "entry_start": item.entrystart, "entry_stop": item.entrystop,
                                                  "events_lost": item.entrystop - item.entrystart,
                                                  "reason": reason}}}
            raise AnalysisError(f"{item.filename}: cannot read entries {item.entrystart}-{item.entrystop} after "
                                f"{self.policy.retries + 1} attempt(s) ({reason}); rerun with --skip-bad-files to skip it")
        raise last


def _describe(item: Any) -> str:
    """Human-readable chunk/file name for log messages."""
    if _is_chunk(item):
        return f"{item.filename} entries {item.entrystart}-{item.entrystop}"
    return str(item)


def _explain(err: Exception) -> AnalysisError | None:
    """Turn a coffea-wrapped failure into a one-line user error naming the file, if it is an input problem."""
    chain = _chain(err)
    for e in chain:
        if isinstance(e, UserError):
            m = re.search(r"filename='([^']*)'", str(err))
            return AnalysisError(f"{m.group(1)}: {e}" if m and m.group(1) not in str(e) else str(e))
    text = str(err)
    remote = _remote_user_error(text)
    if remote is not None:
        return remote
    if "KilledWorker" in text:
        return AnalysisError(f"{text}: a worker died while processing this chunk more often than "
                             "--retries allows (out of memory? try a smaller --chunksize)")
    m = re.search(r"filename='([^']*)'", text)
    if m and any(phrase in text for phrase in ("Failed to open file", "Failed creating nanoevents", "Failed reading columns",
                                               "Failed processing file")):
        root = chain[-1]
        if isinstance(root, (OSError, ValueError, KeyError, EOFError)) or "uproot" in type(root).__module__:
            return AnalysisError(f"{m.group(1)}: cannot read file ({type(root).__name__}: {_first_line(root)})")
    return None



def _subclasses(cls: type) -> set[type]:
    """All subclasses of ``cls``, recursively."""
    out = set()
    for sub in cls.__subclasses__():
        out |= {sub} | _subclasses(sub)
    return out


def _remote_user_error(text: str) -> AnalysisError | None:
    """A user error raised in a process-pool worker arrives only as text (``The error was: ProcessorError('…')``)."""
    import ast

    m = re.search(r"The error was: (\w+)\((['\"].*['\"])\)\.?\s*$", text, re.S)
    if m is None or m.group(1) not in {c.__name__ for c in _subclasses(UserError)}:
        return None
    try:
        return AnalysisError(str(ast.literal_eval(m.group(2))))
    except (ValueError, SyntaxError):
        return None
