"""Input reading: faster ZLIB inflation for ROOT baskets when ``isal`` is installed; basket-aligned chunks.

Decompression is most of the cost of reading the AGC inputs (ZLIB-compressed ntuples and NanoAOD).
uproot can inflate ZLIB baskets with Intel ISA-L (``isal``), about 1.7× faster than the standard
``zlib`` module and byte-for-byte identical (lossless). uproot reads the choice from its
decompressor class (``uproot.compression._DecompressZLIB.library``; the public ``uproot.ZLIB``
subclass only affects writing), so the switch is process-wide; it is idempotent and is applied in
every worker process by calling it at the start of a chunk.
"""

from __future__ import annotations

import bisect
import importlib.util
import zlib
from collections.abc import Sequence
from itertools import pairwise

import uproot.compression


def fast_inflate_available() -> bool:
    """True if the ``isal`` package is importable."""
    return importlib.util.find_spec("isal") is not None


def use_inflate(library: str | None = None) -> str:
    """Select uproot's ZLIB inflater: ``"isal"``, ``"zlib"``, or ``None`` for isal when installed; return it."""
    if library is None:
        library = "isal" if fast_inflate_available() else "zlib"
    if library not in ("isal", "zlib"):
        raise ValueError(f"unknown ZLIB library {library!r} (choose isal or zlib)")
    decompressor = getattr(uproot.compression, "_DecompressZLIB", None)
    if decompressor is None or not hasattr(decompressor, "library"):
        return "zlib"  # an uproot without the switch: keep its default
    # uproot.ZLIB (used for writing) inherits ``library`` from the decompressor class: pin its own value
    # first, so that switching the reader never changes how files are written (levels, basket layout)
    writer = uproot.compression.ZLIB
    if "library" not in vars(writer):
        writer.library = decompressor.library
    if decompressor.library != library:
        decompressor.library = library
    return library


def inflate_errors() -> tuple[type[BaseException], ...]:
    """The exception types a damaged ZLIB basket raises under either inflater: ``zlib.error`` and, when ``isal`` is
    installed, ISA-L's ``IsalError`` (not a ``zlib.error`` subclass). Readers that name a corrupt file catch these."""
    errors: tuple[type[BaseException], ...] = (zlib.error,)
    if fast_inflate_available():
        from isal import isal_zlib

        errors += (isal_zlib.error,)
    return errors


def basket_aligned_ranges(boundaries: Sequence[int], num_entries: int, limit: int) -> list[tuple[int, int]]:
    """Chunk entry ranges that start and stop on basket boundaries.

    Args:
        boundaries: entry numbers at which every needed branch starts a new basket (uproot's
            ``TTree.common_entry_offsets``), sorted; 0 and ``num_entries`` are added if missing.
        num_entries: entries in the tree.
        limit: target chunk size (entries), e.g. the requested chunk size after the memory clamp.

    Returns:
        Consecutive ``(start, stop)`` ranges covering ``[0, num_entries)``. Each chunk is the longest run
        of whole baskets within ``limit`` entries, so no basket is inflated by two chunks. A single
        basket longer than ``limit`` is cut as coffea cuts a file (``round(length / limit)`` parts of
        ``ceil(length / parts)`` entries), so memory stays what the chunk size promises. Empty for an
        empty tree.

    Raises:
        ValueError: ``limit`` < 1.
    """
    if limit < 1:
        raise ValueError(f"chunk limit must be positive, got {limit}")
    if num_entries <= 0:
        return []
    edges = sorted({0, num_entries} | {int(b) for b in boundaries if 0 < int(b) < num_entries})
    out: list[tuple[int, int]] = []
    i = 0
    while i < len(edges) - 1:
        start = edges[i]
        j = bisect.bisect_right(edges, start + limit) - 1  # furthest boundary within the limit
        if j > i:
            out.append((start, edges[j]))
            i = j
            continue
        stop = edges[i + 1]  # one basket longer than the limit
        parts = max(round((stop - start) / limit), 1)
        step = -(-(stop - start) // parts)
        cuts = list(range(start, stop, step)) + [stop]
        out.extend(pairwise(cuts))
        i += 1
    return out
