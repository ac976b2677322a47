"""Files → histograms, whole process, side by side: ``ana run ttbar`` against the tools users pick instead.

In one run, on the same generated AGC ntuples (all nine sample sets, so all systematics), each
contestant runs as its own process on one core and is measured by the kernel (``os.wait4``): CPU
seconds user + sys of the whole process (imports, JIT/cache loading, reading, processing, writing)
and peak RSS. Contestants:

* ``ana``   — ``python -m analysis run ttbar --executor iterative`` (the product);
* ``seed``  — ``benchmarks/seed_processor.py``: the AGC notebook's processor, coffea Runner + NanoEvents + vector;
* ``dak``   — ``benchmarks/seed_dask.py``: coffea's dask-awkward path (``apply_to_fileset``, sync scheduler),
  run with ``--dak-python`` (an interpreter with dask-awkward; skipped when none is given or it lacks it);
* ``base``  — with ``--baseline DIR``: the same ``ana`` command run on another checkout's code (``DIR`` first on
  ``PYTHONPATH``, e.g. ``git archive main | tar -x -C DIR``), to measure a change before/after in one interleaved run;
* ``raw``   — ``benchmarks/raw_read.py``: ``uproot.iterate`` of exactly the branches TtbarAnalysis declares
  (the read limit), read as ``ana`` reads (ISA-L inflater when installed, local files memory-mapped); the seed-style and
  dask-awkward contestants use uproot's default, as their users would.

Runs at 1× and 2× the data (``--scales``; files per sample = scale), repeats interleaved (A B C D A B C D),
the least-disturbed (lowest CPU) repetition counts. Prints events/s/core and the ratios; ``--json`` writes
all numbers. The generator's own rate (events/s/core, whole process) is measured when it writes the files.

    python benchmarks/side_by_side.py --workdir /tmp/sbs --events-per-file 200000 --scales 1,2 --repeat 2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
ARMS = ("ana", "base", "seed", "dak", "raw")
LABELS = {"ana": "ana run ttbar", "base": "ana (--baseline code)", "seed": "seed-style coffea",
          "dak": "coffea + dask-awkward", "raw": "raw uproot read"}


def measure(cmd: list[str], env: dict[str, str], cwd: Path | None = None) -> dict[str, float]:
    """Run ``cmd`` (in ``cwd``); return CPU (user+sys) and peak RSS of that process as the kernel accounts them,
    and wall time."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    out, err = proc.stdout.read(), proc.stderr.read()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-3000:]}")
    return {"cpu_s": usage.ru_utime + usage.ru_stime, "user_s": usage.ru_utime, "sys_s": usage.ru_stime,
            "wall_s": wall, "peak_rss_mb": usage.ru_maxrss / 1024, "stdout": out}


def project_env(pycache: Path | None = None) -> dict[str, str]:
    """Environment in which this checkout's code wins (also in subprocesses).

    With ``pycache``, Python's bytecode cache is written there (``PYTHONPYCACHEPREFIX``) even where
    ``PYTHONDONTWRITEBYTECODE`` is set: an installed package has its bytecode, so every contestant imports compiled
    modules after its first run (which the best-of-repeats then discards) instead of compiling its own sources
    in every run — which would charge ``ana`` (~40 ms for the project's modules) but not the one-file raw read.
    """
    env = dict(os.environ)
    if pycache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("MPLBACKEND", "Agg")
    return env


def generate(workdir: Path, events_per_file: int, files: int, seed: int, env: dict[str, str]) -> dict:
    """Write the nine AGC sample sets (``files`` files each) with ``ana generate agc``, timed; reuse if present."""
    index = workdir / "all" / "ntuples.json"
    stamp = workdir / "all" / "generated.json"
    if index.is_file() and stamp.is_file():
        info = json.loads(stamp.read_text())
        if info["events_per_file"] == events_per_file and info["files"] >= files and info["seed"] == seed:
            return info
    if (workdir / "all").exists():
        shutil.rmtree(workdir / "all")
    cmd = [sys.executable, "-m", "analysis", "generate", "agc", "--out", str(workdir / "all"), "--events-per-file",
           str(events_per_file), "--files-per-sample", str(files), "--seed", str(seed)]
    m = measure(cmd, env)
    events = 9 * files * events_per_file
    info = {"events_per_file": events_per_file, "files": files, "seed": seed, "events": events, "cpu_s": m["cpu_s"],
            "wall_s": m["wall_s"], "events_per_cpu_s": events / m["cpu_s"]}
    stamp.write_text(json.dumps(info))
    return info


def scaled_json(workdir: Path, scale: int) -> Path:
    """A fileset json with the first ``scale`` files of every sample set."""
    doc = json.loads((workdir / "all" / "ntuples.json").read_text())
    for variations in doc.values():
        for entry in variations.values():
            entry["files"] = [dict(f, path=f"all/{f['path']}") for f in entry["files"][:scale]]
            entry["nevts_total"] = sum(f["nevts"] for f in entry["files"])
    path = workdir / f"x{scale}.json"
    path.write_text(json.dumps(doc, indent=1))
    return path


def declared_branches() -> list[str]:
    """The branches TtbarAnalysis declares for AGC ntuples (what the raw read reads)."""
    sys.path.insert(0, str(REPO))
    from processors.ttbar import TtbarAnalysis

    return TtbarAnalysis().columns("ntuple")


def commands(fileset: Path, chunksize: int, branches: list[str], out_dir: Path, dak_python: str | None) -> dict[str, list[str]]:
    """The command line of every contestant (``base`` runs ``ana``'s command on the baseline code)."""
    ana = [sys.executable, "-m", "analysis", "run", "ttbar", "--fileset", str(fileset), "--executor", "iterative",
           "--no-progress", "--chunksize", str(chunksize)]
    cmds = {
        "ana": ana + ["--out", str(out_dir)],
        "base": ana + ["--out", str(out_dir) + "_baseline"],
        "seed": [sys.executable, str(BENCH / "seed_processor.py"), str(fileset), "--chunksize", str(chunksize)],
        "raw": [sys.executable, str(BENCH / "raw_read.py"), str(fileset), "--branches", ",".join(branches),
                "--chunksize", str(chunksize)],
    }
    if dak_python:
        cmds["dak"] = [dak_python, str(BENCH / "seed_dask.py"), str(fileset), "--chunksize", str(chunksize)]
    return cmds


def dak_usable(python: str | None, env: dict[str, str]) -> bool:
    """True if ``python`` can import dask_awkward and coffea's dataset tools."""
    if not python:
        return False
    res = subprocess.run([python, "-c", "import dask_awkward, coffea.dataset_tools"], env=env, capture_output=True, check=False)
    return res.returncode == 0


def events_of(arm: str, m: dict, out_dir: Path) -> int:
    """Events the contestant reports having processed."""
    if arm in ("ana", "base"):
        out = out_dir if arm == "ana" else out_dir.with_name(out_dir.name + "_baseline")
        return int(json.loads((out / "metrics.json").read_text())["events_processed"])
    return int(json.loads(m["stdout"].strip().splitlines()[-1])["events"])


def main(argv: list[str] | None = None) -> dict:
    """Generate (or reuse) the files, run all contestants interleaved at each scale, print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "side_by_side"))
    ap.add_argument("--events-per-file", type=int, default=200_000)
    ap.add_argument("--scales", default="1,2", help="data multiples (files per sample)")
    ap.add_argument("--chunksize", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--arms", default=",".join(ARMS), help="subset of " + ",".join(ARMS))
    ap.add_argument("--dak-python", default=os.environ.get("DAK_PYTHON"),
                    help="python with dask-awkward for the dak contestant (env DAK_PYTHON)")
    ap.add_argument("--branches", help="comma-separated branches for the raw read (default: TtbarAnalysis.columns)")
    ap.add_argument("--baseline", help="another checkout's code directory: adds the 'base' contestant (ana on that code)")
    ap.add_argument("--json", help="write all numbers here")
    ap.add_argument("--no-bytecode-cache", action="store_true",
                    help="honour PYTHONDONTWRITEBYTECODE (every run compiles the sources it imports without bytecode)")
    args = ap.parse_args(argv)

    workdir = Path(args.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    env = project_env(None if args.no_bytecode_cache else workdir / "pycache")
    scales = [int(s) for s in args.scales.split(",")]
    gen = generate(workdir, args.events_per_file, max(scales), args.seed, env)
    branches = args.branches.split(",") if args.branches else declared_branches()
    arms = [a for a in args.arms.split(",") if a in ARMS]
    base_env = dict(env, PYTHONPATH=str(Path(args.baseline).resolve()) + os.pathsep + env["PYTHONPATH"]) if args.baseline else None
    if args.baseline and "base" not in arms:
        arms.insert(1, "base")
    if not args.baseline and "base" in arms:
        arms.remove("base")
    if "dak" in arms and not dak_usable(args.dak_python, env):
        print(f"note: no dask-awkward interpreter (--dak-python {args.dak_python!r}); skipping the dak contestant")
        arms.remove("dak")
    results: dict = {"generator": gen, "branches": branches, "chunksize": args.chunksize, "repeat": args.repeat,
                     "bytecode_cache": not args.no_bytecode_cache,
                     "load_average": os.getloadavg(), "scales": {}}
    for scale in scales:
        fileset = scaled_json(workdir, scale)
        out_dir = workdir / f"ana_out_x{scale}"
        cmds = commands(fileset, args.chunksize, branches, out_dir, args.dak_python)
        best: dict[str, dict] = {}
        for _ in range(args.repeat):
            for arm in arms:
                # in the work dir: ``python -m`` puts the current directory first on sys.path, ahead of PYTHONPATH
                m = measure(cmds[arm], base_env if arm == "base" else env, cwd=workdir)
                m["events"] = events_of(arm, m, out_dir)
                m.pop("stdout")
                m["runs_cpu_s"] = best.get(arm, {}).get("runs_cpu_s", []) + [m["cpu_s"]]
                if arm not in best or m["cpu_s"] < best[arm]["cpu_s"]:
                    best[arm] = m
                else:
                    best[arm]["runs_cpu_s"] = m["runs_cpu_s"]
        for m in best.values():
            m["events_per_cpu_s"] = m["events"] / m["cpu_s"]
        results["scales"][scale] = best
    results["load_average_end"] = os.getloadavg()
    print_table(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return results


def print_table(results: dict) -> None:
    """events/s/core, CPU s, peak RSS per contestant and scale; ratios of ``ana`` to the others."""
    gen = results["generator"]
    print(f"generator: {gen['events']:,} events in {gen['cpu_s']:.1f} CPU s = {gen['events_per_cpu_s']:,.0f} events/s/core")
    print(f"chunks of {results['chunksize']:,}; best of {results['repeat']} interleaved; whole-process CPU (user+sys); "
          f"load average {results['load_average'][0]:.1f} -> {results['load_average_end'][0]:.1f}; "
          f"bytecode {'cached' if results.get('bytecode_cache') else 'compiled in every run'}")
    print(f"raw read branches: {', '.join(results['branches'])}")
    for scale, best in results["scales"].items():
        n = next(iter(best.values()))["events"]
        print(f"\n{scale}x: {n:,} events")
        print(f"  {'':24s}{'events/s/core':>15s}{'CPU s':>8s}{'(runs)':>16s}{'peak RSS MB':>13s}")
        for arm in ARMS:
            if arm in best:
                m = best[arm]
                runs = "/".join(f"{x:.1f}" for x in m["runs_cpu_s"])
                print(f"  {LABELS[arm]:24s}{m['events_per_cpu_s']:15,.0f}{m['cpu_s']:8.2f}{runs:>16s}{m['peak_rss_mb']:13.0f}")
        for who in ("ana", "base"):
            if who not in best:
                continue
            a = best[who]["events_per_cpu_s"]
            for arm, what in (("raw", "of the raw-read rate"), ("seed", "x the seed-style processor"),
                              ("dak", "x coffea + dask-awkward")):
                if arm in best:
                    r = a / best[arm]["events_per_cpu_s"]
                    print(f"  {who}: {100 * r:.0f} % {what}" if arm == "raw" else f"  {who}: {r:.2f}{what}")


if __name__ == "__main__":
    main()
