"""Throughput of the ttbar processors on synthetic AGC ntuples, in one run on one core.

Measures, over the same files and chunking: raw uproot read + decompress of exactly the branches the
production processor reads (from coffea's access log), the seed-style baseline
(``benchmarks/baseline_processor.py``) and the production ``TtbarAnalysis``, both through coffea's
Runner with the iterative executor. Rates are events per CPU second of this process (= per core;
robust on a shared machine) and per wall second. Optionally the peak RSS per chunk size (each in a
fresh process) and a pyinstrument profile.

    /work/venv/bin/python benchmarks/processor_speed.py --events 2000000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import uproot  # noqa: E402
from coffea import processor  # noqa: E402

from baseline_processor import BaselineTtbarAnalysis  # noqa: E402
from fileset.build import build_fileset  # noqa: E402
from fileset.generate.agc import generate_arrays, write_file  # noqa: E402
from processors.ttbar import TtbarAnalysis  # noqa: E402
from schemas.agc import AGCSchema  # noqa: E402
from schemas.reading import use_inflate  # noqa: E402

PROCESSOR_NAMES = ("baseline", "production")


def factories(inflate: str) -> dict[str, Callable[[], processor.ProcessorABC]]:
    """Processor constructors; production reads with the given ZLIB inflater (the baseline inherits it)."""
    return {"baseline": BaselineTtbarAnalysis, "production": lambda: TtbarAnalysis(inflate=inflate)}


def make_sample(workdir: Path, events: int, per_file: int, seed: int) -> Path:
    """Synthetic ttbar nominal ntuples totalling ``events`` (reused if already there); return the json."""
    workdir.mkdir(parents=True, exist_ok=True)
    index = workdir / "ntuples.json"
    if index.is_file():
        doc = json.loads(index.read_text())
        if sum(f["nevts"] for f in doc["ttbar"]["nominal"]["files"]) == events:
            return index
    files, left, i = [], events, 0
    while left > 0:
        n = min(per_file, left)
        name = f"ttbar__nominal__{i:03d}.root"
        files.append({"path": name, "nevts": write_file(workdir / name, generate_arrays("ttbar", "nominal", n, seed, i))})
        left, i = left - n, i + 1
    index.write_text(json.dumps({"ttbar": {"nominal": {"files": files}}}, indent=1))
    return index


def runner(chunksize: int, cache: dict, savemetrics: bool = False, maxchunks: int | None = None) -> processor.Runner:
    """Single-core coffea runner (iterative executor) with a shared metadata cache."""
    return processor.Runner(executor=processor.IterativeExecutor(status=False), schema=AGCSchema, chunksize=chunksize,
                            metadata_cache=cache, savemetrics=savemetrics, maxchunks=maxchunks)


def timed(fn) -> tuple[Any, float, float]:
    """(result, wall seconds, CPU seconds of this process)."""
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def branches_read(fileset: dict, chunksize: int, cache: dict, make: Callable) -> list[str]:
    """Branches the production processor materialises (coffea access log on one chunk)."""
    _, metrics = runner(chunksize, cache, savemetrics=True, maxchunks=1)(fileset, processor_instance=make())
    return sorted({c.rsplit("-", 1)[0] for c in metrics["columns"]})


def raw_read(fileset: dict, branches: list[str], chunksize: int) -> int:
    """Read + decompress ``branches`` chunk by chunk with uproot into awkward arrays; return the events."""
    total = 0
    for spec in fileset.values():
        for path in spec["files"]:
            with uproot.open(path) as f:
                tree = f[spec["treename"]]
                for start in range(0, tree.num_entries, chunksize):
                    arrays = tree.arrays(branches, entry_start=start, entry_stop=min(start + chunksize, tree.num_entries))
                    total += len(arrays)
    return total


def rates(events: int, wall: float, cpu: float) -> dict[str, float]:
    """Event counts and rates."""
    return {"events": events, "wall_s": wall, "cpu_s": cpu, "events_per_wall_s": events / wall,
            "events_per_cpu_s": events / cpu}


def current_rss_mb() -> float:
    """Resident set size of this process now (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def memory_probe(make: Callable, json_path: Path, chunksize: int, max_events: int) -> dict[str, float]:
    """In this (fresh) process: RSS before and peak RSS (sampled every 2 ms) while processing."""
    fileset = build_fileset(json_path)
    run = runner(chunksize, {}, maxchunks=max(1, max_events // chunksize))
    runner(min(chunksize, 20_000), {}, maxchunks=1)(fileset, processor_instance=make())  # imports, JIT, caches
    before = current_rss_mb()
    peak, stop = [before], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], current_rss_mb())
            time.sleep(0.002)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    run(fileset, processor_instance=make())
    stop.set()
    thread.join()
    return {"rss_before_mb": before, "peak_rss_mb": peak[0], "peak_increase_mb": peak[0] - before}


def measure_memory(json_path: Path, chunks: list[int], max_events: int, inflate: str) -> dict[str, dict[str, dict[str, float]]]:
    """Peak RSS per (processor, chunk size), each in its own subprocess."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name in PROCESSOR_NAMES:
        for chunk in chunks:
            cmd = [sys.executable, __file__, "--memory-probe", name, "--json", str(json_path), "--inflate", inflate,
                   "--chunksize", str(chunk), "--events", str(max_events)]
            res = subprocess.run(cmd, check=True, capture_output=True, text=True)
            out.setdefault(name, {})[str(chunk)] = json.loads(res.stdout.strip().splitlines()[-1])
    return out


def profile(fileset: dict, chunksize: int, cache: dict, makers: dict[str, Callable]) -> None:
    """pyinstrument summaries of both processors on the first file."""
    from pyinstrument import Profiler

    first = {k: dict(v, files=v["files"][:1]) for k, v in fileset.items()}
    for name, cls in makers.items():
        prof = Profiler(interval=0.001)
        prof.start()
        runner(chunksize, cache)(first, processor_instance=cls())
        prof.stop()
        print(f"\n===== profile: {name} =====")
        print(prof.output_text(unicode=False, color=False, show_all=False))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; print a table and return the numbers."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--events-per-file", type=int, default=500_000, help="(chunks never span files)")
    ap.add_argument("--chunksize", type=int, default=100_000)
    ap.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "ttbar_speed_sample"))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=2, help="repetitions of each measurement; the fastest counts")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-RSS measurement")
    ap.add_argument("--memory-chunks", default="100000,500000")
    ap.add_argument("--profile", action="store_true", help="print pyinstrument profiles of both processors")
    ap.add_argument("--inflate", choices=["auto", "isal", "zlib"], default="auto",
                    help="uproot ZLIB inflater for all three measurements (auto: isal when installed, as production)")
    ap.add_argument("--json", help=argparse.SUPPRESS)
    ap.add_argument("--memory-probe", choices=PROCESSOR_NAMES, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    inflate = use_inflate(None if args.inflate == "auto" else args.inflate)
    makers = factories(inflate)
    if args.memory_probe:
        result = memory_probe(makers[args.memory_probe], Path(args.json), args.chunksize, args.events)
        print(json.dumps(result))
        return result

    json_path = make_sample(Path(args.workdir), args.events, args.events_per_file, args.seed)
    fileset = build_fileset(json_path)
    cache: dict = {}
    branches = branches_read(fileset, args.chunksize, cache, makers["production"])  # also warms up imports and caches
    runner(args.chunksize, cache, maxchunks=1)(fileset, processor_instance=BaselineTtbarAnalysis())  # warm-up

    results: dict[str, Any] = {"branches": branches, "chunksize": args.chunksize, "inflate": inflate,
                               "repeat": args.repeat}
    jobs = {"raw": lambda: raw_read(fileset, branches, args.chunksize)}
    for name in ("production", "baseline"):
        jobs[name] = lambda make=makers[name]: sum(runner(args.chunksize, cache)(fileset, processor_instance=make())
                                                   ["nevents"].values())
    for _ in range(args.repeat):  # interleaved; the fastest (least disturbed) repetition counts
        for key, job in jobs.items():
            n, wall, cpu = timed(job)
            if key not in results or cpu < results[key]["cpu_s"]:
                results[key] = rates(n, wall, cpu)
    results["production_over_baseline"] = results["production"]["events_per_cpu_s"] / results["baseline"]["events_per_cpu_s"]
    results["production_over_raw"] = results["production"]["events_per_cpu_s"] / results["raw"]["events_per_cpu_s"]

    print(f"sample: {results['production']['events']:,} events, chunks of {args.chunksize:,}, 1 core, "
          f"best of {args.repeat}; "
          f"ZLIB inflater: {inflate}; branches read: {', '.join(branches)}")
    print(f"{'':28s}{'events/CPU-s':>14s}{'events/wall-s':>15s}{'CPU s':>9s}")
    for key, label in (("raw", "raw uproot read"), ("baseline", "baseline"), ("production", "production")):
        r = results[key]
        print(f"{label:28s}{r['events_per_cpu_s']:14,.0f}{r['events_per_wall_s']:15,.0f}{r['cpu_s']:9.2f}")
    print(f"production / baseline: {results['production_over_baseline']:.2f}x (target >= 3)")
    print(f"production / raw read: {100 * results['production_over_raw']:.0f} % (target >= 50 %)")

    if not args.no_memory:
        chunks = [int(x) for x in args.memory_chunks.split(",")]
        results["memory"] = measure_memory(json_path, chunks, max(chunks) * 2, inflate)
        print(f"peak RSS in MB (fresh process each; {2 * max(chunks):,} events; in brackets: increase while processing):")
        for name, per in results["memory"].items():
            print("  " + name + ": " + ", ".join(f"chunk {int(c):,}: {m['peak_rss_mb']:.0f} (+{m['peak_increase_mb']:.0f})"
                                                  for c, m in per.items()))
    if args.profile:
        profile(fileset, args.chunksize, cache, makers)
    return results


if __name__ == "__main__":
    main()
