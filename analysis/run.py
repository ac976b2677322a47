"""Run a processor over a fileset on a coffea executor (iterative, futures, Dask), with metrics."""

from __future__ import annotations

import json
import os
import re
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hist
import uproot
from coffea import processor

from analysis.errors import AnalysisError
from analysis.histio import save_histograms
from fileset.build import build_fileset, is_remote
from processors.ttbar import TtbarAnalysis
from schemas.agc import AGCSchema

EXECUTORS = ("iterative", "futures", "dask")


@dataclass
class RunResult:
    """What a processing run produced: the normalised histogram plus bookkeeping."""

    hist: hist.Hist
    nevents: dict[str, int]
    cutflow: dict[str, dict[str, int]]
    metrics: dict[str, Any]
    fileset: dict[str, dict[str, Any]]
    filled: set[tuple[str, str]] = field(default_factory=set)
    output_dir: Path | None = None


def default_workers() -> int:
    """Workers for local parallel executors: the usable cores."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def check_files(fileset: dict[str, dict[str, Any]], timeout: int = 60) -> None:
    """Open every local file once: missing, corrupt, wrong tree or wrong entry count → one clear error."""
    for dataset, spec in fileset.items():
        tree = spec["treename"]
        for path in spec["files"]:
            if is_remote(path):
                continue
            if not Path(path).is_file():
                raise AnalysisError(f"{path}: file not found (dataset {dataset})")
            try:
                with uproot.open(path, timeout=timeout) as f:
                    if tree not in f:
                        raise AnalysisError(f"{path}: no tree {tree!r} in file (has: {', '.join(f.keys(cycle=False)) or 'nothing'})")
                    obj = f[tree]
                    if not isinstance(obj, uproot.behaviors.TTree.TTree):
                        raise AnalysisError(f"{path}: {tree!r} is a {type(obj).__name__}, not a TTree")
            except AnalysisError:
                raise
            except Exception as err:  # uproot raises many types for damaged files
                raise AnalysisError(f"{path}: not a readable ROOT file ({type(err).__name__}: {err})") from None


def _make_executor(name: str, workers: int, scheduler: str | None, progress: bool, stack: ExitStack):
    """Build the coffea executor; Dask clients/clusters are closed by ``stack``."""
    if name == "iterative":
        return processor.IterativeExecutor(status=progress)
    if name == "futures":
        return processor.FuturesExecutor(workers=workers, status=progress)
    if name == "dask":
        from distributed import Client, LocalCluster

        if scheduler:
            try:
                client = stack.enter_context(Client(scheduler, timeout="20s"))
            except OSError as err:
                raise AnalysisError(f"cannot connect to Dask scheduler {scheduler}: {err}") from None
        else:
            cluster = stack.enter_context(
                LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
            )
            client = stack.enter_context(Client(cluster))
        return processor.DaskExecutor(client=client, status=progress)
    raise AnalysisError(f"unknown executor {name!r} (choose from {', '.join(EXECUTORS)})")


def _explain(err: Exception) -> AnalysisError | None:
    """Turn a coffea-wrapped failure into a one-line user error naming the file, if it is an input problem."""
    chain, e = [], err
    while e is not None:
        chain.append(e)
        e = e.__cause__ or e.__context__
    for e in chain:
        if isinstance(e, AnalysisError):
            m = re.search(r"filename='([^']*)'", str(err))
            return AnalysisError(f"{m.group(1)}: {e}" if m else str(e))
    text = str(err)
    m = re.search(r"filename='([^']*)'", text)
    if m and ("Failed to open file" in text or "Failed creating nanoevents" in text or "Failed processing file" in text):
        root = chain[-1]
        if isinstance(root, (OSError, ValueError, KeyError, EOFError)) or "uproot" in type(root).__module__:
            return AnalysisError(f"{m.group(1)}: cannot read file ({type(root).__name__}: {str(root).splitlines()[0] if str(root) else ''})")
    return None


def run_processor(fileset: dict[str, dict[str, Any]], processor_instance: processor.ProcessorABC, *,
                  executor: str = "futures", workers: int | None = None, scheduler: str | None = None,
                  chunksize: int = 100_000, schema=AGCSchema, progress: bool = True) -> tuple[dict, dict]:
    """Run any processor over a coffea fileset; return (output, metrics). Input problems → AnalysisError."""
    if chunksize < 1:
        raise AnalysisError(f"--chunksize must be positive, got {chunksize}")
    check_files(fileset)
    with ExitStack() as stack:
        exe = _make_executor(executor, workers or default_workers(), scheduler, progress, stack)
        runner = processor.Runner(executor=exe, schema=schema, chunksize=chunksize, savemetrics=True,
                                  metadata_cache={})
        t0 = time.perf_counter()
        try:
            output, metrics = runner(fileset, processor_instance=processor_instance, treename=None)
        except AnalysisError:
            raise
        except Exception as err:
            user = _explain(err)
            if user is None:
                raise
            raise user from None
        wall = time.perf_counter() - t0
    metrics = {k: (float(v) if isinstance(v, (int, float)) else v) for k, v in metrics.items()
               if isinstance(v, (int, float, str))}
    metrics["wall_time_s"] = wall
    return output, metrics


def schema_for(fileset: dict[str, dict[str, Any]]):
    """NanoEvents schema for the fileset's format (``ntuple`` → AGCSchema, ``nanoaod`` → NanoAODSchema)."""
    formats = {spec["metadata"].get("format", "ntuple") for spec in fileset.values()}
    if len(formats) > 1:
        raise AnalysisError(f"fileset mixes input formats {sorted(formats)}; use one format per run")
    if formats == {"nanoaod"}:
        from coffea.nanoevents import NanoAODSchema

        return NanoAODSchema
    return AGCSchema


def verify_event_counts(nevents: dict[str, int], fileset: dict[str, dict[str, Any]]) -> None:
    """Fail loudly unless every dataset's processed events equal the fileset's nevts."""
    problems = []
    for dataset, spec in fileset.items():
        expected, got = spec["metadata"]["nevts"], nevents.get(dataset, 0)
        if got != expected:
            problems.append(f"{dataset}: processed {got} of {expected} events")
    if problems:
        raise AnalysisError("events lost: " + "; ".join(problems))


def run_ttbar(fileset_json: str | Path, out_dir: str | Path | None = None, *, executor: str = "futures",
              workers: int | None = None, scheduler: str | None = None, chunksize: int = 100_000,
              max_files: int = -1, samples_config: str | Path | None = None, progress: bool = True) -> RunResult:
    """AGC ttbar step: fileset json → TtbarAnalysis → histograms (written to ``out_dir`` if given)."""
    fileset = build_fileset(fileset_json, max_files, samples_config)
    output, metrics = run_processor(fileset, TtbarAnalysis(), executor=executor, workers=workers,
                                    scheduler=scheduler, chunksize=chunksize, schema=schema_for(fileset),
                                    progress=progress)
    verify_event_counts(output["nevents"], fileset)
    total = sum(output["nevents"].values())
    metrics.update({
        "executor": executor,
        "workers": 1 if executor == "iterative" else (workers or default_workers()),
        "chunksize": chunksize,
        "events_processed": total,
        "events_per_dataset": dict(sorted(output["nevents"].items())),
        "events_per_s": total / metrics["wall_time_s"] if metrics["wall_time_s"] > 0 else 0.0,
    })
    filled = {tuple(k.split("/", 1)) for k in output["norms"]}
    result = RunResult(output["hist"], output["nevents"], output["cutflow"], metrics, fileset, filled)
    if out_dir is not None:
        write_outputs(result, out_dir)
    return result


def ttbar_scale_of(fileset: dict[str, dict[str, Any]]) -> float:
    """The pseudodata ttbar scale recorded by the generator (1 unless requested)."""
    scales = {spec["metadata"].get("pseudodata_scale", 1.0) for spec in fileset.values()
              if spec["metadata"]["process"] == "ttbar" and spec["metadata"]["variation"] in ("ME_var", "PS_var")}
    return scales.pop() if len(scales) == 1 else 1.0


def write_outputs(result: RunResult, out_dir: str | Path) -> Path:
    """Write ``histograms.root`` and ``metrics.json`` (with the cutflow) into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    keys = save_histograms(result.hist, out / "histograms.root", result.filled, ttbar_scale_of(result.fileset))
    doc = dict(result.metrics, cutflow=result.cutflow, histogram_keys=keys)
    (out / "metrics.json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    result.output_dir = out
    return out
