"""Throughput scaling: events/s of ``ana run ttbar`` on a Dask LocalCluster with 1, 2, ... worker processes.

The same synthetic AGC files are processed with each worker count (cluster start-up excluded: the time is
coffea's processing of all chunks). Prints events/s per worker count and the speed-up over one worker.

    python benchmarks/scaling.py --events-per-file 200000 --files-per-sample 2
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from analysis.execution.cluster import default_workers
from analysis.agc.run import run_ttbar
from fileset.generate.agc import generate_agc


def measure(fileset: Path, workers: int, chunksize: int, repeats: int) -> float:
    """Best events/s over ``repeats`` runs with ``workers`` single-threaded worker processes."""
    best = 0.0
    for _ in range(repeats):
        res = run_ttbar(fileset, None, executor="dask", workers=workers, chunksize=chunksize, progress=False)
        best = max(best, res.metrics["events_per_s"])
    return best


def main() -> None:
    """Generate (or reuse) the files, then time 1..N workers."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events-per-file", type=int, default=100_000)
    ap.add_argument("--files-per-sample", type=int, default=2)
    ap.add_argument("--chunksize", type=int, default=50_000)
    ap.add_argument("--max-workers", type=int, default=max(2, default_workers()))
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--data", default=None, help="directory for the generated files (default: a temporary one)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(args.data or tmp)
        fileset = data / "ntuples.json"
        if not fileset.is_file():
            generate_agc(data, events_per_file=args.events_per_file, files_per_sample=args.files_per_sample, seed=1)
        measure(fileset, 1, args.chunksize, 1)  # warm-up: OS file cache
        rates = {n: measure(fileset, n, args.chunksize, args.repeats) for n in range(1, args.max_workers + 1)}
    total = 9 * args.events_per_file * args.files_per_sample
    load = os.getloadavg()[0]
    print(f"{total} events, chunksize {args.chunksize}, {default_workers()} usable cores, load average {load:.1f}")
    if load > 0.5:
        print("warning: the machine is busy with other processes; the speed-up is not meaningful")
    for n, rate in rates.items():
        print(f"{n} worker(s): {rate:10.0f} events/s   speed-up {rate / rates[1]:.2f}x")
    print(json.dumps({"events": total, "events_per_s": rates, "speedup_2_over_1": rates.get(2, 0) / rates[1]}))


if __name__ == "__main__":
    main()
