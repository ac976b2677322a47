"""``ana demo``: the whole AGC chain on synthetic data — generate, process, fit, plot, report."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from analysis.agc.plots import histogram_plots
from analysis.agc.inference import FitOutcome, run_fit
from analysis.agc.report import write_agc_report
from analysis.agc.run import RunResult, run_ttbar
from analysis.execution.options import EXECUTORS
from analysis.option_model import OptionModel
from fileset.generate.agc import generate_agc

DEFAULT_CONFIG = Path(str(resources.files("analysis.agc").joinpath("cabinetry_config.yml")))


@dataclass(frozen=True, eq=False)
class DemoResult:
    """Paths and objects produced by the demo.

    Attributes:
        out_dir: the output directory; run: the processing result (histograms, metrics); fit: the fit outcome
            (cabinetry/pyhf objects and the ``fit_results.json`` summary); report: path of ``report.html``.
    """

    out_dir: Path
    run: RunResult
    fit: FitOutcome
    report: Path

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view: paths, the processing metrics and the fit summary (as in ``fit/fit_results.json``)."""
        return {"out_dir": str(self.out_dir), "report": str(self.report), "metrics": self.run.metrics,
                "fit": self.fit.summary}


def default_config() -> Path:
    """The AGC cabinetry config shipped inside the package (identical to the repository's top-level
    ``cabinetry_config.yml``, which users edit; a unit test keeps the two equal)."""
    return DEFAULT_CONFIG


class DemoOptions(OptionModel):
    """The options of ``ana demo`` / :func:`run_demo`, defined once (the CLI flags are these names with dashes).

    Fields: ``out`` (output directory), ``events_per_file`` (≥ 1) and ``files_per_sample`` (≥ 1) of the generated
    AGC sample, ``seed`` (≥ 0, generator seed), ``executor`` (iterative, futures, dask) and ``workers`` (≥ 1;
    None: usable cores), ``ranking`` (impact ranking in the fit), ``progress`` (progress bars and stage messages).
    """

    WHAT = "demo options"

    out: Path = Path("demo")
    events_per_file: int = Field(25_000, ge=1)
    files_per_sample: int = Field(2, ge=1)
    seed: int = Field(1, ge=0)
    executor: Literal[EXECUTORS] = "futures"
    workers: int | None = Field(None, ge=1)
    ranking: bool = True
    progress: bool = True


def run_demo(out: str | Path | None = None, *, options: DemoOptions | dict[str, Any] | None = None,
             events_per_file: int | None = None, files_per_sample: int | None = None, seed: int | None = None,
             executor: str | None = None, workers: int | None = None, ranking: bool | None = None,
             progress: bool | None = None) -> DemoResult:
    """Generate a small synthetic AGC sample, run TtbarAnalysis, fit with cabinetry and write report.html.

    Args:
        out: output directory (default ``demo``).
        options: a :class:`DemoOptions` (or mapping); the keyword arguments below override it; None = default.
        events_per_file, files_per_sample, seed, executor, workers, ranking, progress: see :class:`DemoOptions`.

    Returns:
        The :class:`DemoResult` (output directory, processing result, fit outcome, report path).

    Raises:
        AnalysisError: invalid options (one line naming each), before any work.
    """
    base = options.model_dump() if isinstance(options, DemoOptions) else dict(options or {})
    opts = DemoOptions.make(base, out=out, events_per_file=events_per_file, files_per_sample=files_per_sample,
                            seed=seed, executor=executor, workers=workers, ranking=ranking, progress=progress)
    out_dir, progress = opts.out, opts.progress
    t0 = time.perf_counter()
    steps: dict[str, float] = {}
    ntuples = generate_agc(out_dir / "data", opts.events_per_file, opts.files_per_sample, opts.seed)
    steps["generation"] = time.perf_counter() - t0
    t = time.perf_counter()
    run = run_ttbar(ntuples, out_dir / "histograms", executor=opts.executor, workers=opts.workers,
                    progress=progress)
    steps["processing (incl. start-up and merging)"] = time.perf_counter() - t
    t = time.perf_counter()
    histogram_plots(run.hist, out_dir / "plots", lumi_fb=run.fileset[next(iter(run.fileset))]["metadata"]["lumi"] / 1000)
    steps["histogram plots"] = time.perf_counter() - t
    t = time.perf_counter()
    outcome = run_fit(default_config(), out_dir / "histograms" / "histograms.root", out_dir / "fit", ranking=opts.ranking,
                      quiet=not progress)
    steps["statistical analysis (fit + MINOS, ranking, scan, goodness of fit, plots)"] = time.perf_counter() - t
    total = time.perf_counter() - t0
    report = write_agc_report(out_dir, fit_dir=out_dir / "fit", plots_dir=out_dir / "plots",
                              histograms_dir=out_dir / "histograms", hist=run.hist, wall_time_s=total, steps_s=steps,
                              title="AGC ttbar analysis (ana demo, synthetic data)")
    (out_dir / "summary.json").write_text(json.dumps({
        "poi": outcome.summary["poi"], "poi_bestfit": outcome.summary["poi_bestfit"],
        "poi_uncertainty": outcome.summary["poi_uncertainty"], "poi_interval": outcome.summary["poi_interval"],
        "fit_quality_ok": outcome.summary["fit_quality"]["ok"], "events_processed": run.metrics["events_processed"],
        "total_time_s": time.perf_counter() - t0, "steps_s": steps}, indent=2) + "\n")
    return DemoResult(out_dir, run, outcome, report)
