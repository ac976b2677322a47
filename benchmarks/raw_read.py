"""The read limit: ``uproot.iterate`` over exactly the given branches of every file of a fileset json.

Reads and decompresses the branches chunk by chunk into awkward arrays and does nothing else; it
imports only uproot (the branch list is passed in, so that no analysis code is imported). ZLIB baskets
are inflated with ISA-L when ``isal`` is installed (``--inflate auto``) and local files are
memory-mapped (``--source memmap``), as ``ana run`` does, so the limit reads the way the product reads.

    python benchmarks/raw_read.py FILESET_JSON --branches jet_pt,jet_eta,... [--chunksize 100000] [--tree events]

Prints one JSON line: {"events": N}.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import uproot


def main(argv: list[str] | None = None) -> dict:
    """Iterate over all files; print and return the number of events read."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("fileset", type=Path)
    ap.add_argument("--branches", required=True, help="comma-separated branch names")
    ap.add_argument("--chunksize", type=int, default=100_000)
    ap.add_argument("--tree", default="events")
    ap.add_argument("--inflate", choices=["auto", "isal", "zlib"], default="auto")
    ap.add_argument("--source", choices=["memmap", "default"], default="memmap")
    args = ap.parse_args(argv)
    inflate = args.inflate if args.inflate != "auto" else ("isal" if importlib.util.find_spec("isal") else "zlib")
    uproot.compression._DecompressZLIB.library = inflate  # the reader's inflater (uproot's switch)
    doc = json.loads(args.fileset.read_text())
    files = {str((args.fileset.parent / f["path"]).resolve()): args.tree
             for variations in doc.values() for entry in variations.values() for f in entry["files"]}
    events = 0
    options = {"handler": uproot.source.file.MemmapSource} if args.source == "memmap" else {}
    for arrays in uproot.iterate(files, args.branches.split(","), step_size=args.chunksize, **options):
        events += len(arrays)
    print(json.dumps({"events": events, "inflate": inflate}))
    return {"events": events, "inflate": inflate}


if __name__ == "__main__":
    main()
