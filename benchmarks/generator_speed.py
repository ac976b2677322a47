"""Speed of the synthetic AGC generator: events per CPU second (= per core) and per wall second.

For each size and process: ``generate_arrays`` alone, ``write_file`` alone (uproot + ISA-L level-1 ZLIB
baskets of 50k entries, to a temporary directory) and the two together, the median of ``--repeat``
runs after one warm-up. CPU seconds are those of this process (robust on a shared machine; numpy and
the compression here are single-threaded). ``--compression lz4`` measures the opt-in LZ4 baskets.

    /work/venv/bin/python benchmarks/generator_speed.py                     # this checkout
    /work/venv/bin/python benchmarks/generator_speed.py --code /work/main   # another checkout (before/after)
    /work/venv/bin/python benchmarks/generator_speed.py --compression lz4   # opt-in LZ4 baskets
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def _timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    """(median CPU seconds, median wall seconds, last result) over ``repeat`` calls after one warm-up."""
    result = fn()
    cpu, wall = [], []
    for _ in range(repeat):
        c0, w0 = time.process_time(), time.perf_counter()
        result = fn()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return statistics.median(cpu), statistics.median(wall), result


def measure(process: str, n: int, repeat: int, workdir: Path, compression: str = "zlib") -> dict[str, float]:
    """Rates in events/s (CPU and wall) of generation, writing and both, for ``n`` events of ``process``."""
    from fileset.generate.agc import generate_arrays, write_file

    g_cpu, g_wall, cols = _timed(lambda: generate_arrays(process, "nominal", n, 1, 0), repeat)
    path = workdir / f"{process}_{n}.root"
    options = {} if compression == "zlib" else {"compression": compression}  # older checkouts: ZLIB only
    w_cpu, w_wall, _ = _timed(lambda: write_file(path, cols, **options), repeat)
    size_mb = path.stat().st_size / 1e6
    return {
        "process": process, "events": n,
        "generate_per_cpu_s": n / g_cpu, "generate_per_wall_s": n / g_wall,
        "write_per_cpu_s": n / w_cpu, "write_per_wall_s": n / w_wall,
        "both_per_cpu_s": n / (g_cpu + w_cpu), "both_per_wall_s": n / (g_wall + w_wall),
        "file_mb": size_mb, "bytes_per_event": size_mb * 1e6 / n,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000], help="events per file")
    ap.add_argument("--processes", nargs="+", default=["ttbar"], help="AGC processes (nominal variation)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per measurement (median)")
    ap.add_argument("--code", type=Path, default=REPO, help="checkout whose fileset.generate.agc is measured")
    ap.add_argument("--compression", choices=["zlib", "lz4"], default="zlib", help="basket compression")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(args.code.resolve()))
    from fileset.generate import agc

    print(f"generator: {agc.__file__}")
    print(f"{'process':<20}{'events':>9}  {'gen M/s/core':>12}{'write':>8}{'gen+write':>10}   "
          f"{'(wall: gen':>10}{'gen+write)':>11}  {'B/event':>8}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for process in args.processes:
            for n in args.sizes:
                r = measure(process, n, args.repeat, Path(tmp), args.compression)
                rows.append(r)
                print(f"{process:<20}{n:>9}  {r['generate_per_cpu_s'] / 1e6:>12.3f}{r['write_per_cpu_s'] / 1e6:>8.3f}"
                      f"{r['both_per_cpu_s'] / 1e6:>10.3f}   {r['generate_per_wall_s'] / 1e6:>10.3f}"
                      f"{r['both_per_wall_s'] / 1e6:>11.3f}  {r['bytes_per_event']:>8.1f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"generator": agc.__file__, "results": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
