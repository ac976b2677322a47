"""Throughput scaling: events/s of ``ana run ttbar`` on a Dask LocalCluster with 1, 2, ... worker processes.

The same synthetic AGC files are processed with each worker count, in two conditions:

* ``cold``: what a one-shot ``ana run ttbar --executor dask --workers N`` does — a fresh LocalCluster per run
  (cluster start-up and pre-flight excluded; whatever of the workers' first imports the warm-up started after the
  pre-flight has not finished is in the timed processing);
* ``warm``: a running cluster reused through ``--scheduler`` (how a long-lived Dask cluster is used): one
  untimed run, then timed runs; this is the parallel efficiency of the processing itself.

Prints events/s per worker count and the speed-up over one worker (best of ``--repeats`` runs each).

    python benchmarks/scaling.py --events-per-file 200000 --files-per-sample 2
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
from pathlib import Path

from analysis.agc.run import run_ttbar
from analysis.execution.cluster import default_workers
from fileset.generate.agc import generate_agc


def measure_cold(fileset: Path, workers: int, chunksize: int, repeats: int) -> float:
    """Best events/s over ``repeats`` runs, each on a fresh LocalCluster of ``workers`` single-threaded processes."""
    best = 0.0
    for _ in range(repeats):
        res = run_ttbar(fileset, None, executor="dask", workers=workers, chunksize=chunksize, progress=False)
        best = max(best, res.metrics["events_per_s"])
    return best


def measure_warm(fileset: Path, workers: int, chunksize: int, repeats: int) -> float:
    """Best events/s over ``repeats`` runs on one running LocalCluster (as ``ana`` sets it up), after one untimed run."""
    import dask
    from distributed import Client, LocalCluster

    with dask.config.set({"distributed.worker.profile.enabled": False}), \
            LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                         silence_logs=logging.CRITICAL) as cluster, Client(cluster):
        run = lambda: run_ttbar(fileset, None, executor="dask", scheduler=cluster.scheduler_address,  # noqa: E731
                                chunksize=chunksize, progress=False)
        run()
        return max(run().metrics["events_per_s"] for _ in range(repeats))


def main() -> None:
    """Generate (or reuse) the files, then time 1..N workers, cold and warm, interleaved."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events-per-file", type=int, default=100_000)
    ap.add_argument("--files-per-sample", type=int, default=2)
    ap.add_argument("--chunksize", type=int, default=100_000)
    ap.add_argument("--max-workers", type=int, default=max(2, default_workers()))
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--data", default=None, help="directory for the generated files (default: a temporary one)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(args.data or tmp)
        fileset = data / "ntuples.json"
        if not fileset.is_file():
            generate_agc(data, events_per_file=args.events_per_file, files_per_sample=args.files_per_sample, seed=1)
        measure_cold(fileset, 1, args.chunksize, 1)  # warm-up: OS file cache
        loads = [os.getloadavg()[0]]
        rates: dict[str, dict[int, float]] = {"cold": {}, "warm": {}}
        for n in range(1, args.max_workers + 1):
            rates["cold"][n] = measure_cold(fileset, n, args.chunksize, args.repeats)
            rates["warm"][n] = measure_warm(fileset, n, args.chunksize, args.repeats)
            loads.append(os.getloadavg()[0])
    total = 9 * args.events_per_file * args.files_per_sample
    print(f"{total} events, chunksize {args.chunksize}, {default_workers()} usable cores, "
          f"load average {min(loads):.1f}–{max(loads):.1f}")
    if max(loads) > 0.5 + args.max_workers:
        print("warning: the machine is busy with other processes; the speed-up is not meaningful")
    for kind, by_n in rates.items():
        for n, rate in by_n.items():
            print(f"{kind}: {n} worker(s): {rate:10.0f} events/s   speed-up {rate / by_n[1]:.2f}x")
    print(json.dumps({"events": total, "events_per_s": rates,
                      "speedup_2_over_1": {k: v.get(2, 0) / v[1] for k, v in rates.items()}}))


if __name__ == "__main__":
    main()
