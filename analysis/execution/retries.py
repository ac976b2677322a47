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

from analysis.errors import AnalysisError, UnreadableInputError, UserError
from analysis.execution.preflight import _first_line

log = logging.getLogger(__name__)

_READ_ERROR_TYPES: tuple[type[BaseException], ...] = (OSError, EOFError, zlib.error,
                                                      uproot.deserialization.DeserializationError,
                                                      uproot.exceptions.KeyInFileError)
_READ_MODULES = ("uproot", "lz4", "zstandard", "cramjam", "xxhash", "isal", "deflate")
# Decompressors whose failure means the stored bytes are damaged (same bytes, same failure on every attempt).
_DECOMPRESS_MODULES = ("compression.py", f"{os.sep}lz4{os.sep}", f"{os.sep}zstandard{os.sep}", f"{os.sep}cramjam",
                       f"{os.sep}isal{os.sep}", f"{os.sep}deflate")


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


def _last_frame_file(err: BaseException) -> str:
    tb, last = err.__traceback__, ""
    while tb is not None:
        last, tb = tb.tb_frame.f_code.co_filename, tb.tb_next
    return last


def is_corrupt_data(err: BaseException, filename: str | None = None) -> bool:
    """True if the input's stored bytes are damaged: a decompression failure (``zlib.error``, ISA-L's error,
    uproot's ``unrecognized compression algorithm``, lz4/zstd errors) or an undecodable object. Deterministic
    for a local file, so not worth retrying; remote files (``scheme://``) are always retried (a short read can
    look like corruption)."""
    if filename is not None and "://" in str(filename):
        return False
    for e in _chain(err):
        if isinstance(e, UserError):
            return False
        if isinstance(e, (zlib.error, uproot.deserialization.DeserializationError)):
            return True
        if type(e).__name__ == "IsalError" or type(e).__module__.split(".")[0] in ("lz4", "zstandard", "cramjam"):
            return True
        if isinstance(e, ValueError) and any(m in _last_frame_file(e) for m in _DECOMPRESS_MODULES):
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
        attempts = 0
        for attempt in range(self.policy.retries + 1):
            attempts = attempt + 1
            try:
                return func(*args, **kwargs)
            except Exception as err:
                last = err
                if any(isinstance(e, UserError) for e in _chain(err)):
                    break  # a user error does not go away by retrying
                if _is_chunk(item) and is_corrupt_data(err, item.filename):
                    break  # damaged bytes decompress the same way every time
                if attempt < self.policy.retries:
                    # INFO (shown with -v): the final outcome is what the user needs, in one line
                    log.info("attempt %d of %d failed for %s: %s", attempt + 1, self.policy.retries + 1,
                             _describe(item), _chunk_reason(err))
                    time.sleep(self.policy.backoff_s * 2**attempt)
        assert last is not None
        user = next((e for e in _chain(last) if isinstance(e, UserError)), None)
        if user is not None and _is_chunk(item) and str(item.filename) not in str(user):
            # name the file on every executor (as _explain does for errors raised outside the chunk)
            cls = UnreadableInputError if isinstance(user, UnreadableInputError) else AnalysisError
            raise cls(f"{item.filename}: {user}") from None
        if _is_chunk(item) and is_read_error(last):
            reason = _chunk_reason(last)
            if self.policy.skip_bad:
                key = f"{item.dataset}|{item.filename}|{item.entrystart}-{item.entrystop}"
                return {"out": {}, "lost": {key: {"dataset": item.dataset, "path": item.filename,
                                                  "entry_start": item.entrystart, "entry_stop": item.entrystop,
                                                  "events_lost": item.entrystop - item.entrystart,
                                                  "reason": reason}}}
            how = (": the stored data are corrupt" if attempts == 1 and self.policy.retries and is_corrupt_data(last)
                   else f" after {attempts} attempt(s)")
            raise UnreadableInputError(f"{item.filename}: cannot read entries {item.entrystart}-{item.entrystop}{how} "
                                       f"({reason})")
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
            cls = UnreadableInputError if isinstance(e, UnreadableInputError) else AnalysisError
            return cls(f"{m.group(1)}: {e}" if m and m.group(1) not in str(e) else str(e))
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
            return UnreadableInputError(f"{m.group(1)}: cannot read file ({type(root).__name__}: {_first_line(root)})")
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
    cls = UnreadableInputError if m.group(1) == "UnreadableInputError" else AnalysisError
    try:
        return cls(str(ast.literal_eval(m.group(2))))
    except (ValueError, SyntaxError):
        return None
