"""AGC ttbar step: fileset json → TtbarAnalysis on the execution layer → histograms.root + metrics.json."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import hist

from analysis.errors import AnalysisError, UserError
from analysis.execution.options import RunOptions
from analysis.execution.preflight import FileCheck
from analysis.execution.runner import execute, verify_event_counts
from analysis.histio import file_sha256, save_histograms
from fileset.build import build_fileset, is_remote, load_ntuples_json
from fileset.normalisation import mc_normalisation
from processors.accumulators import Constant
from processors.ttbar_core import TtbarCore

log = logging.getLogger(__name__)


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


def expected_files(fileset_json: str | Path, max_files: int = -1) -> dict[str, dict[str, Any]]:
    """Per-file event counts and their place in the fileset json (``process/variation/files/i``)."""
    doc = load_ntuples_json(fileset_json)
    base = Path(fileset_json).resolve().parent
    out = {}
    for process, variations in doc.items():
        for variation, entry in variations.items():
            files = entry["files"] if max_files < 0 else entry["files"][:max_files]
            for i, f in enumerate(files):
                path = f["path"] if is_remote(f["path"]) else str((base / f["path"]).resolve())
                out[path] = {"nevts": int(f["nevts"]), "location": f"{fileset_json}:{process}/{variation}/files/{i}"}
    return out


def _renormalise_without(expected: dict[str, dict[str, Any]]) -> Callable[[dict, list[FileCheck]], dict]:
    """Fileset adjuster: each dataset's ``nevts`` becomes the total of its readable files (as if the bad ones were never listed)."""
    def adjust(fileset: dict, good: list[FileCheck]) -> dict:
        out = {}
        for ds, spec in fileset.items():
            meta = dict(spec["metadata"], nevts=int(sum(expected[p]["nevts"] for p in spec["files"])))
            out[ds] = dict(spec, metadata=meta)
        return out
    return adjust


def _correct_norms(output: dict, fileset: dict[str, dict[str, Any]], lost: dict[str, int]) -> None:
    """After unreadable chunks: normalise MC to the events actually processed (xsec·lumi / processed events)."""
    if not lost or "norms" not in output:
        return
    for key in list(output["norms"]):
        process, label = key.split("/", 1)
        dataset = f"{process}__{label}" if f"{process}__{label}" in fileset else f"{process}__nominal"
        gone = lost.get(dataset, 0)
        if gone and process != "data" and dataset in fileset:
            meta = fileset[dataset]["metadata"]
            output["norms"][key] = Constant(mc_normalisation(meta["xsec"], meta["lumi"], meta["nevts"] - gone, sample=dataset))


def run_ttbar(fileset_json: str | Path, out_dir: str | Path | None = None,
              options: RunOptions | dict[str, Any] | None = None, *, max_files: int = -1,
              samples_config: str | Path | None = None, processor_instance: TtbarCore | None = None,
              input_format: str | None = None, **run_options: Any) -> RunResult:
    """AGC ttbar step: fileset json → TtbarAnalysis → histograms (written to ``out_dir`` if given).

    How to run is a :class:`~analysis.execution.options.RunOptions` (``options`` and/or its fields as keywords:
    ``executor``, ``workers``, ``scheduler``, ``cluster``, ``cluster_config``, ``chunksize``, ``retries``,
    ``skip_bad_files``, ``checkpoint``, ``progress``, ``ship_code``). With ``skip_bad_files``, unreadable
    files/chunks are left out and listed in the metrics with the events lost, and MC is normalised to the
    events actually processed. processed + lost = fileset total, always.
    """
    # all configuration problems together, before any work
    problems: list[str] = []
    opts = None
    try:
        opts = RunOptions.resolve(options, **run_options)
    except UserError as err:
        problems.append(str(err))
    fileset = expected = None
    try:
        fileset = build_fileset(fileset_json, max_files, samples_config, input_format=input_format)
        expected = expected_files(fileset_json, max_files)
    except UserError as err:
        problems.append(str(err))
    if problems:
        raise AnalysisError("; ".join(problems))
    # the physics without coffea's ProcessorABC base: a local iterative run then never imports coffea
    # (processors.ttbar.TtbarAnalysis is the same class as a coffea processor; both give the same bits)
    proc = processor_instance if processor_instance is not None else TtbarCore()
    ex = execute(fileset, proc, opts, expected=expected, adjust_fileset=_renormalise_without(expected))
    lost = ex.accounting.lost_per_dataset()
    nevents = dict(ex.output.get("nevents", {}))
    verify_event_counts(nevents, fileset, lost)  # processed + reported lost = total, per dataset
    if not ex.output:
        raise AnalysisError("no events processed: " + "; ".join(ex.accounting.summary_lines()))
    chunk_lost: dict[str, int] = {}
    for rec in ex.accounting.lost_chunks:
        chunk_lost[rec["dataset"]] = chunk_lost.get(rec["dataset"], 0) + rec["events_lost"]
    _correct_norms(ex.output, ex.fileset, chunk_lost)
    output = proc.postprocess(ex.output) or ex.output
    metrics = ex.metrics
    total_expected = sum(spec["metadata"]["nevts"] for spec in fileset.values())
    processed = sum(nevents.values())
    metrics.update({
        "events_expected": total_expected,
        "events_processed": processed,
        "events_lost": sum(lost.values()),
        "events_per_dataset": dict(sorted(nevents.items())),
        "events_lost_per_dataset": lost,
        # throughput of this run: chunks reused from a checkpoint were not processed now
        "events_per_s": ((processed - metrics.get("events_from_checkpoint", 0)) / metrics["processing_time_s"]
                         if metrics["processing_time_s"] > 0 else 0.0),
    })
    filled = {tuple(k.split("/", 1)) for k in output["norms"]}
    result = RunResult(output["hist"], nevents, output["cutflow"], metrics, fileset, filled)
    if out_dir is not None:
        write_outputs(result, out_dir)
    return result


def ttbar_scale_of(fileset: dict[str, dict[str, Any]]) -> float:
    """The pseudodata ttbar scale recorded by the generator (1 unless requested)."""
    scales = {spec["metadata"].get("pseudodata_scale", 1.0) for spec in fileset.values()
              if spec["metadata"]["process"] == "ttbar" and spec["metadata"]["variation"] in ("ME_var", "PS_var")}
    return scales.pop() if len(scales) == 1 else 1.0


def luminosity_of(fileset: dict[str, dict[str, Any]]) -> float | None:
    """The integrated luminosity in pb⁻¹ the simulated samples were normalised to (σ·L/N), from the fileset's
    metadata (the samples config's ``luminosity_pb``); ``None`` when the samples disagree or say nothing."""
    lumis = {float(spec["metadata"]["lumi"]) for spec in fileset.values()
             if spec["metadata"].get("process") != "data" and spec["metadata"].get("lumi") is not None}
    return lumis.pop() if len(lumis) == 1 else None


def write_outputs(result: RunResult, out_dir: str | Path) -> Path:
    """Write ``histograms.root`` (histograms only) and ``metrics.json`` into ``out_dir``.

    ``metrics.json`` holds the run's metrics, the cutflow, the histogram keys, ``luminosity_pb`` (pb⁻¹ the MC is
    normalised to, :func:`luminosity_of`; null when unknown — ``ana fit`` labels its data/model plots with it) and
    ``histograms_sha256`` (:func:`analysis.histio.file_sha256` of the histograms.root written with it, so that a
    reader applies the luminosity only to that very file: :func:`analysis.agc.inference.input_luminosity`).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    hists = out / "histograms.root"
    keys = save_histograms(result.hist, hists, result.filled, ttbar_scale_of(result.fileset))
    doc = dict(result.metrics, cutflow=result.cutflow, histogram_keys=keys, luminosity_pb=luminosity_of(result.fileset),
               histograms_sha256=file_sha256(hists))
    (out / "metrics.json").write_text(json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n")
    result.output_dir = out
    return out

