"""Per-category background modelling (flashggFinalFit's fTestParallel in Python): the orchestration of ``ana ftest``.

Steps, one module each: options (:mod:`~analysis.resonance.ftest_config`), reading and histogramming the categories
(:mod:`~analysis.resonance.ftest_inputs`), one category's f-tests and envelope (:mod:`~analysis.resonance.ftest_category`),
plots from its result (:mod:`~analysis.resonance.ftest_plots`). This module runs one task per category on an iterative,
process-pool (concurrent.futures) or Dask LocalCluster executor and writes the outputs.

Outputs under ``out_dir``: ``summary.json`` and per category ``<category>/envelope.json``, ``ftest.json``,
``ftest_table.{md,csv}``, ``multipdf.{png,pdf}`` and ``splusb_blinded.{png,pdf}``.
"""

from __future__ import annotations

import csv
import json
import re
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable

import numpy as np

from analysis.errors import AnalysisError, UserError
from analysis.execution.cluster import default_workers
from analysis.execution.options import EXECUTORS
from analysis.resonance.ftest_category import CategoryFit, fit_category
from analysis.resonance.ftest_config import FTestConfig
from analysis.resonance.bkgfit import binned_data
from analysis.resonance.ftest_inputs import CategoryInput, category_histogram, infer_range, read_categories
from analysis.resonance.ftest_plots import plot_multipdf, plot_splusb
from analysis.resonance.report import write_ftest_report


def _safe_dir(name: str) -> str:
    """Directory name for a category (anything outside [A-Za-z0-9_.-] becomes '_')."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "_"


@dataclass
class CategoryTask:
    """Everything one category's job needs (small and picklable)."""

    category: CategoryInput
    cfg: FTestConfig
    fit_range: tuple[float, float] | None
    out_dir: str


def run_category(task: CategoryTask) -> dict[str, Any]:
    """One category: histogram → f-test per family → envelope → (2D f-test) → plots + JSON.  Never raises:
    failures come back as {"status": "failed", "error": ...} so the other categories finish."""
    name = task.category.name
    out = Path(task.out_dir) / _safe_dir(name)
    try:
        return _run_category(task, out)
    except UserError as err:
        return {"category": name, "status": "failed", "error": str(err)}
    except Exception as err:  # a bug: keep the traceback next to the outputs, let the others finish
        out.mkdir(parents=True, exist_ok=True)
        (out / "traceback.txt").write_text(traceback.format_exc())
        return {"category": name, "status": "failed", "error": f"internal error {type(err).__name__}: {err}",
                "traceback": str(out / "traceback.txt")}


def _run_category(task: CategoryTask, out: Path) -> dict[str, Any]:
    """The body of run_category (raises on failure): compute, write the documents, draw the plots."""
    fit = fit_category(task.category, task.cfg, task.fit_range)
    doc = write_category(fit, out)
    plots = [str(p) for p in plot_multipdf(fit, out)]
    plots += [str(p) for p in plot_splusb(fit, out)]
    env = fit.envelope
    return {"category": fit.name, "status": "ok", "best": doc["best"], "n_functions": len(env.functions),
            "envelope": [f.name for f in env.functions], "directory": str(out), "plots": plots,
            "fit_quality_ok": doc["fit_quality"]["ok"], "fit_quality_warning": env.quality_summary()}


def write_category(fit: CategoryFit, out: Path) -> dict[str, Any]:
    """Write a category's documents into ``out``: ``envelope.json``, ``ftest.json``, ``ftest_table.{md,csv}``.

    Returns:
        The envelope.json document.
    """
    out.mkdir(parents=True, exist_ok=True)
    doc = fit.to_dict()
    (out / "envelope.json").write_text(json.dumps(doc, indent=2, default=_json_default))
    (out / "ftest.json").write_text(json.dumps(fit.ftest_document(), indent=2, default=_json_default))
    (out / "ftest_table.md").write_text(fit.table_markdown())
    rows = fit.rows
    with open(out / "ftest_table.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["family"])
        writer.writeheader()
        writer.writerows(rows)
    return doc


def _json_default(obj: Any) -> Any:
    """numpy scalars/arrays → Python for json.dumps."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _execute(tasks: list[CategoryTask], executor: str, workers: int | None,
             on_done: Callable[[dict[str, Any]], None]) -> list[dict[str, Any]]:
    """Run tasks on the chosen executor, calling ``on_done`` as each finishes; results in task order."""
    results: dict[str, dict[str, Any]] = {}
    n_workers = max(1, min(workers or default_workers(), len(tasks)))
    if executor == "iterative" or not tasks:
        for t in tasks:
            results[t.category.name] = run_category(t)
            on_done(results[t.category.name])
    elif executor == "futures":
        with ProcessPoolExecutor(max_workers=n_workers, mp_context=get_context("forkserver")) as pool:
            futures = {pool.submit(run_category, t): t.category.name for t in tasks}
            for fut in as_completed(futures):
                results[futures[fut]] = _future_result(futures[fut], fut.exception, fut.result)
                on_done(results[futures[fut]])
    elif executor == "dask":
        from dask.distributed import as_completed as dask_completed

        from analysis.execution.cluster import dask_client

        with dask_client(workers=n_workers) as (client, _info):
            futures = client.map(run_category, tasks, key=[f"ftest-{_safe_dir(t.category.name)}-{i}" for i, t in enumerate(tasks)], pure=False)
            names = {f.key: t.category.name for f, t in zip(futures, tasks)}
            for fut in dask_completed(futures):
                name = names[fut.key]
                results[name] = _future_result(name, fut.exception, fut.result)
                on_done(results[name])
    else:
        raise AnalysisError(f"executor {executor!r}: choose from {', '.join(EXECUTORS)}")
    return [results[t.category.name] for t in tasks]


def _future_result(name: str, exception: Callable[[], BaseException | None], result: Callable[[], Any]) -> dict[str, Any]:
    """A future's result, or a failure record if the worker itself died."""
    err = exception()
    if err is not None:
        return {"category": name, "status": "failed", "error": f"worker failed: {type(err).__name__}: {err}"}
    return result()


@dataclass(frozen=True, eq=False)
class FTestRun:
    """Result of ``run_ftest``: per-category summaries (in category order), the output directory and the options
    used (JSON view, with ``range_used``)."""

    categories: list[dict[str, Any]]
    out_dir: Path
    config: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The ``summary.json`` document: options, per-category summaries, names of the failed categories."""
        return {"config": self.config, "categories": self.categories, "failed": [c["category"] for c in self.failed]}

    @property
    def failed(self) -> list[dict[str, Any]]:
        """Summaries of failed categories."""
        return [c for c in self.categories if c["status"] != "ok"]

    @property
    def ok(self) -> bool:
        """True when every category finished."""
        return not self.failed


def run_ftest(cfg: FTestConfig, out_dir: str | Path, progress: bool = False) -> FTestRun:
    """Read the input, run one task per category on ``cfg.executor``, write summary.json and report.html, return
    the summaries."""
    t0 = time.perf_counter()
    out = Path(out_dir)
    cats = read_categories(cfg)
    if not cats:
        raise AnalysisError(f"{cfg.input}: no categories found")
    fit_range = cfg.range if cfg.range is not None else infer_range(cats)
    if cfg.blind is not None and fit_range is not None and not (fit_range[0] < cfg.blind[0] and cfg.blind[1] < fit_range[1]):
        raise AnalysisError(f"blind window {list(cfg.blind)} must lie strictly inside the range {[round(v, 6) for v in fit_range]}")
    dirs = [_safe_dir(c.name) for c in cats]
    if len(set(dirs)) != len(dirs):
        raise AnalysisError(f"category names collide as directory names: {[c.name for c in cats]}")
    too_few = {c.name: n for c in cats if (n := events_to_fit(c, cfg, fit_range)) < cfg.min_events}
    if len(too_few) == len(cats):  # nothing to fit: one line, no outputs (the CLI exits 2)
        raise AnalysisError("no category has enough events to fit (need ≥ " + f"{cfg.min_events:g} in the fit bins): "
                            + ", ".join(f"{name} has {n:g}" for name, n in too_few.items()))
    out.mkdir(parents=True, exist_ok=True)
    tasks = [CategoryTask(c, cfg, fit_range, str(out)) for c in cats if c.name not in too_few]
    bar = _progress(len(tasks)) if progress else None
    try:
        summaries = _execute(tasks, cfg.executor, cfg.workers, (lambda r: bar.advance()) if bar else (lambda r: None))
    finally:
        if bar is not None:
            bar.stop()
    skipped = {name: {"category": name, "status": "skipped", "n_events": n,
                      "error": f"too few events to fit: {n:g} in the fit bins (need ≥ {cfg.min_events:g})"}
               for name, n in too_few.items()}
    done = {s["category"]: s for s in summaries}
    summaries = [skipped.get(c.name) or done[c.name] for c in cats]
    config = cfg.model_dump(mode="json")
    config["range_used"] = None if fit_range is None else list(fit_range)
    run = FTestRun(summaries, out, config)
    (out / "summary.json").write_text(json.dumps(run.to_dict(), indent=2, default=_json_default))
    write_ftest_report(out, wall_time_s=time.perf_counter() - t0)
    return run


def events_to_fit(cat: CategoryInput, cfg: FTestConfig, fit_range: tuple[float, float] | None) -> float:
    """(Weighted) events of a category in the fit bins — inside the range, outside the blind window — as the
    envelope counts them; 0 for an empty category or one with no bin in the range."""
    if (cat.values is not None and len(cat.values) == 0) or (cat.values is None and not np.sum(cat.counts)):
        return 0.0
    try:
        edges, counts, _ = category_histogram(cat, cfg, fit_range)
        return float(binned_data(edges, counts, cfg.blind).fit_counts.sum())
    except (AnalysisError, ValueError):  # no bin in the range / blind window covering it: nothing to fit
        return 0.0


class _progress:
    """A rich progress bar counting finished categories."""

    def __init__(self, total: int) -> None:
        from rich.progress import Progress

        self._p = Progress(transient=True)
        self._p.start()
        self._task = self._p.add_task("f-test categories", total=total)

    def advance(self) -> None:
        """One category done."""
        self._p.advance(self._task)

    def stop(self) -> None:
        """Close the bar."""
        self._p.stop()


__all__ = ["CategoryTask", "FTestRun", "events_to_fit", "run_category", "run_ftest", "write_category"]
