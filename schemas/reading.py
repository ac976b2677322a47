"""Input-reading switches: faster ZLIB inflation for ROOT baskets when ``isal`` is installed.

Decompression is most of the cost of reading the AGC inputs (ZLIB-compressed ntuples and NanoAOD).
uproot can inflate ZLIB baskets with Intel ISA-L (``isal``), about 1.7× faster than the standard
``zlib`` module and byte-for-byte identical (lossless). uproot reads the choice from its
decompressor class (``uproot.compression._DecompressZLIB.library``; the public ``uproot.ZLIB``
subclass only affects writing), so the switch is process-wide; it is idempotent and is applied in
every worker process by calling it at the start of a chunk.
"""

from __future__ import annotations

import importlib.util

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
