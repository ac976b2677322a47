"""``ana demo``: the whole AGC chain on synthetic data — generate, process, fit, plot, report."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from analysis.agc.plots import histogram_plots
from analysis.agc.inference import FitOutcome, run_fit
from analysis.report import write_report
from analysis.agc.run import RunResult, run_ttbar
from fileset.generate.agc import generate_agc

DEFAULT_CONFIG = Path(str(resources.files("analysis.agc").joinpath("cabinetry_config.yml")))


@dataclass
class DemoResult:
    """Paths and objects produced by the demo."""

    out_dir: Path
    run: RunResult
    fit: FitOutcome
    report: Path


def default_config() -> Path:
    """The AGC cabinetry config shipped inside the package (identical to the repository's top-level
    ``cabinetry_config.yml``, which users edit; a unit test keeps the two equal)."""
    return DEFAULT_CONFIG


def run_demo(out: str | Path = "demo", *, events_per_file: int = 25_000, files_per_sample: int = 2, seed: int = 1,
             executor: str = "futures", workers: int | None = None, ranking: bool = True,
             progress: bool = True) -> DemoResult:
    """Generate a small synthetic AGC sample, run TtbarAnalysis, fit with cabinetry and write report.html."""
    out_dir = Path(out)
    t0 = time.perf_counter()
    ntuples = generate_agc(out_dir / "data", events_per_file, files_per_sample, seed)
    t_gen = time.perf_counter() - t0
    run = run_ttbar(ntuples, out_dir / "histograms", executor=executor, workers=workers, progress=progress)
    plots = histogram_plots(run.hist, out_dir / "plots", lumi_fb=run.fileset[next(iter(run.fileset))]["metadata"]["lumi"] / 1000)
    outcome = run_fit(default_config(), out_dir / "histograms" / "histograms.root", out_dir / "fit", ranking=ranking)
    metrics = dict(run.metrics, generation_s=t_gen)
    all_plots = list(plots.values()) + list(outcome.plots.values())
    report = write_report(out_dir / "report.html", metrics=metrics, hist_=run.hist, fit_summary=outcome.summary,
                          plots=all_plots)
    (out_dir / "summary.json").write_text(json.dumps({
        "poi": outcome.summary["poi"], "poi_bestfit": outcome.summary["poi_bestfit"],
        "poi_uncertainty": outcome.summary["poi_uncertainty"], "events_processed": run.metrics["events_processed"],
        "total_time_s": time.perf_counter() - t0}, indent=2) + "\n")
    return DemoResult(out_dir, run, outcome, report)
