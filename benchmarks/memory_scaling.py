"""Peak memory per Dask worker at 1× and 10× the events, same chunk size: it must stay flat.

Each measurement uses a fresh LocalCluster (2 single-threaded worker processes), so a worker's peak RSS
(``ru_maxrss``) covers exactly one run. Also prints the chunk-memory factor (peak RSS growth per chunk ÷
uncompressed input bytes of a chunk) that analysis.execution.options.MEMORY_FACTOR bounds.

    python benchmarks/memory_scaling.py --events-per-file 50000 --chunksize 50000
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
from pathlib import Path

import uproot
from distributed import Client, LocalCluster

from analysis.execution.runner import run_processor, schema_for
from fileset.build import build_fileset
from fileset.generate.agc import generate_agc
from processors.ttbar import TtbarAnalysis


def _peak_rss_bytes() -> int:
    """This process's peak resident set size (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _baseline_rss_bytes() -> int:
    """Current RSS of this process, after imports."""
    import psutil

    return psutil.Process().memory_info().rss


def peak_per_worker(fileset_json: Path, chunksize: int, workers: int) -> dict[str, float]:
    """Run TtbarAnalysis on a fresh cluster; return per-worker peak RSS and idle RSS in MiB."""
    fileset = build_fileset(fileset_json)
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        client.run(lambda: __import__("processors.ttbar"))  # import before the idle measurement
        idle = client.run(_baseline_rss_bytes)
        _, metrics = run_processor(fileset, TtbarAnalysis(), executor="dask", scheduler=cluster.scheduler_address,
                                   chunksize=chunksize, schema=schema_for(fileset), progress=False, ship_code=False)
        peak = client.run(_peak_rss_bytes)
    return {"peak_mib": max(peak.values()) / 2**20, "idle_mib": max(idle.values()) / 2**20,
            "chunks": metrics["chunks"], "events": metrics["entries"]}


def main() -> None:
    """1× and 10× datasets, same chunk size, same workers."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events-per-file", type=int, default=50_000)
    ap.add_argument("--chunksize", type=int, default=50_000)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for scale in (1, 10):
            fs = generate_agc(Path(tmp) / f"x{scale}", events_per_file=args.events_per_file, files_per_sample=scale, seed=1)
            results[scale] = peak_per_worker(fs, args.chunksize, args.workers)
            with uproot.open(Path(tmp) / f"x{scale}" / "ttbar__nominal__000.root") as f:
                bytes_per_event = f["events"].member("fTotBytes") / f["events"].num_entries
    for scale, r in results.items():
        print(f"{scale:>2}x: {r['events']:.0f} events in {r['chunks']} chunks of <= {args.chunksize}: "
              f"peak RSS per worker {r['peak_mib']:.0f} MiB (idle {r['idle_mib']:.0f} MiB)")
    growth = results[10]["peak_mib"] / results[1]["peak_mib"]
    factor = (results[1]["peak_mib"] - results[1]["idle_mib"]) * 2**20 / (args.chunksize * bytes_per_event)
    print(f"peak ratio 10x/1x: {growth:.2f} (flat = 1); chunk memory factor ~{factor:.1f} x input bytes")
    print(json.dumps({"results": results, "peak_ratio_10x_over_1x": growth, "memory_factor": factor}))


if __name__ == "__main__":
    main()
