"""Per-category background modelling (flashggFinalFit's fTestParallel in Python): read events or histograms,
histogram each category, run the f-test of every family, build the envelope, write plots and JSON; one task
per category on an iterative, process-pool (concurrent.futures) or Dask LocalCluster executor.

Outputs under ``out_dir``: ``summary.json`` and per category ``<category>/envelope.json``, ``ftest.json``,
``ftest_table.{md,csv}``, ``multipdf.{png,pdf}`` and ``splusb_blinded.{png,pdf}``.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import re
import time
import traceback
import zlib
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import numpy as np

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from analysis.errors import AnalysisError, ConfigError, UserError
from analysis.resonance.bkgfit import FitResult
from analysis.resonance.envelope import Envelope, build_envelope
from analysis.resonance.families import DEFAULT_FAMILIES, canonical_family
from analysis.resonance.report import write_ftest_report
from analysis.resonance.ftest import ftest_2d, ftest_table, table_markdown
from analysis.config import load_yaml
from analysis.execution.cluster import default_workers
from analysis.execution.options import EXECUTORS

log = logging.getLogger(__name__)
MIN_EVENTS_DEFAULT = 20.0

class SignalSpec(BaseModel):
    """Illustrative signal for the s+b plot: mass and width [GeV], expected events."""

    model_config = ConfigDict(extra="forbid")

    mass_gev: float | None = None
    width_gev: float | None = Field(None, gt=0)
    events: float | None = Field(None, ge=0)


class FTestConfig(BaseModel):
    """All options of ``ana ftest``, defined once: CLI flags (same names with dashes) or the same keys in a YAML
    config; validated here (types, bounds, cross-field rules) with one-line errors naming the option."""

    model_config = ConfigDict(extra="forbid")

    input: str
    observable: str
    tree: str | None = None
    unit: str = "GeV"
    category_column: str | None = None
    categories: Literal["auto"] | list[str] = "auto"
    range: tuple[float, float] | None = None
    blind: tuple[float, float] | None = None
    weight_column: str | None = None
    bins: int | None = Field(None, ge=3)
    executor: Literal[EXECUTORS] = "futures"
    workers: int | None = Field(None, ge=1)
    pseudodata: bool = False
    seed: int = Field(0, ge=0)
    keep_going: bool = False
    families: list[str] = Field(default_factory=lambda: list(DEFAULT_FAMILIES), min_length=1)
    pvalue_threshold: float = Field(0.05, gt=0, lt=1)
    envelope_threshold: float = Field(0.1, gt=0, lt=1)
    gof_threshold: float = Field(0.01, ge=0, lt=1)
    correction: float = Field(1.0, ge=0)
    max_order: int | None = Field(None, ge=1)
    n_toys: int = Field(1000, ge=10)
    min_events: float = Field(MIN_EVENTS_DEFAULT, ge=1)
    ftest_2d: list[str] | None = Field(None, min_length=2, max_length=2)
    signal: SignalSpec | None = None

    @field_validator("categories", mode="before")
    @classmethod
    def _category_names(cls, value: Any) -> Any:
        """Category values may be numbers in YAML; names are strings (``1.0`` → ``"1"``)."""
        return [_category_name(c) for c in value] if isinstance(value, (list, tuple)) else value

    @field_validator("range", "blind")
    @classmethod
    def _window(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        """Two finite numbers LO < HI."""
        if value is not None and not (math.isfinite(value[0]) and math.isfinite(value[1]) and value[0] < value[1]):
            raise ValueError(f"{[float(v) for v in value]}: need two finite numbers LO < HI")
        return value

    @field_validator("families", "ftest_2d")
    @classmethod
    def _families(cls, value: list[str] | None) -> list[str] | None:
        """Canonical family names (aliases resolved; unknown names rejected)."""
        if value is None:
            return None
        try:
            return [canonical_family(f) for f in value]
        except UserError as err:
            raise ValueError(str(err)) from None

    @model_validator(mode="after")
    def _together(self) -> "FTestConfig":
        """Cross-field rules."""
        if self.range is not None and self.blind is not None and not (self.range[0] < self.blind[0] and self.blind[1] < self.range[1]):
            raise ValueError(f"blind window {list(self.blind)} must lie strictly inside the range {list(self.range)}")
        if self.categories != "auto" and not self.category_column:
            raise ValueError("explicit categories need a category column (--category-column)")
        return self


def _problems(err: ValidationError) -> str:
    """pydantic errors in the project's one-line style (``option: message; ...``)."""
    out = []
    for e in err.errors():
        where = "/".join(str(x) for x in e["loc"] if not isinstance(x, int) or len(e["loc"]) == 1)
        msg = "unknown option" if e["type"] == "extra_forbidden" else e["msg"].removeprefix("Value error, ")
        if e["type"] == "missing":
            msg = f"missing (--{where.replace('_', '-')} or '{where}:' in the config)"
        out.append((f"{where} {msg}" if msg.startswith("[") else f"{where}: {msg}") if where else msg)
    return "; ".join(dict.fromkeys(out))


def make_config(options: dict[str, Any], config_path: str | Path | None = None) -> FTestConfig:
    """Merge a YAML config with explicit options (options win; None = not given) and validate once.

    Raises:
        ConfigError: the YAML cannot be read or has invalid keys/values (named with the file).
        AnalysisError: invalid options (every problem in one line).
    """
    doc: dict[str, Any] = {}
    if config_path is not None:
        doc = load_yaml(config_path)
        try:
            FTestConfig.model_validate({"input": "-", "observable": "-", **doc})
        except ValidationError as err:
            raise ConfigError(f"{config_path}: invalid config: {_problems(err)}") from None
        if "input" in doc and not Path(doc["input"]).is_absolute():
            doc["input"] = str(Path(config_path).resolve().parent / doc["input"])
    merged = {**doc, **{k: v for k, v in options.items() if v is not None}}
    try:
        return FTestConfig.model_validate(merged)
    except ValidationError as err:
        raise AnalysisError(f"invalid ftest options: {_problems(err)}") from None


# ------------------------------------------------------------------------------------------------- inputs
@dataclass
class CategoryInput:
    """One category's input: unbinned values (+weights) or a histogram (edges, counts)."""

    name: str
    values: np.ndarray | None = None
    weights: np.ndarray | None = None
    edges: np.ndarray | None = None
    counts: np.ndarray | None = None


def _category_name(value: Any) -> str:
    """Category label from a column value: integral floats lose their '.0'."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, (bytes, np.bytes_)):
        return value.decode()
    return str(value)


def _safe_dir(name: str) -> str:
    """Directory name for a category (anything outside [A-Za-z0-9_.-] becomes '_')."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "_"


def _read_table(path: Path, columns: list[str], tree: str | None) -> dict[str, np.ndarray] | dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read the needed columns of a CSV/parquet/ROOT tree, or every histogram of a ROOT file (tagged 'hist:')."""
    suffix = path.suffix.lower()
    if suffix in (".csv", ".txt"):
        import pandas as pd

        try:
            header = pd.read_csv(path, nrows=0)
        except Exception as err:  # pandas raises many types for malformed files
            raise AnalysisError(f"{path}: cannot read as CSV ({type(err).__name__}: {str(err).splitlines()[0]})") from None
        missing = [c for c in columns if c not in header.columns]
        if missing:
            raise AnalysisError(f"{path}: no column {missing[0]!r} (has: {', '.join(map(str, header.columns))})")
        df = pd.read_csv(path, usecols=columns)
        return {c: df[c].to_numpy() for c in columns}
    if suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        try:
            names = pq.read_schema(path).names
        except Exception as err:
            raise AnalysisError(f"{path}: cannot read as parquet ({type(err).__name__}: {str(err).splitlines()[0]})") from None
        missing = [c for c in columns if c not in names]
        if missing:
            raise AnalysisError(f"{path}: no column {missing[0]!r} (has: {', '.join(names)})")
        table = pq.read_table(path, columns=columns)
        return {c: table.column(c).to_numpy() for c in columns}
    if suffix == ".root":
        return _read_root(path, columns, tree)
    raise AnalysisError(f"{path}: unsupported input type {suffix!r} (use .csv, .parquet or .root)")


def _read_root(path: Path, columns: list[str], tree: str | None) -> dict[str, Any]:
    """Columns of a TTree (or RNTuple), or ('hist:' name → (edges, counts)) for a file of histograms."""
    import uproot

    try:
        f = uproot.open(path)
    except Exception as err:
        raise AnalysisError(f"{path}: cannot open as ROOT file ({type(err).__name__}: {str(err).splitlines()[0]})") from None
    with f:
        classes = {k.rsplit(";", 1)[0]: v for k, v in f.classnames().items()}
        trees = [k for k, v in classes.items() if v in ("TTree", "TNtuple", "TNtupleD", "ROOT::RNTuple")]
        hists = [k for k, v in classes.items() if v.startswith("TH1")]
        if tree is not None:
            if tree not in classes:
                raise AnalysisError(f"{path}: no tree {tree!r} (has: {', '.join(classes) or 'nothing'})")
            trees = [tree]
        if trees:
            if len(trees) > 1:
                raise AnalysisError(f"{path}: several trees ({', '.join(trees)}); choose one with --tree")
            t = f[trees[0]]
            missing = [c for c in columns if c not in t.keys()]
            if missing:
                raise AnalysisError(f"{path}: tree {trees[0]!r} has no branch {missing[0]!r} (has: {', '.join(t.keys())})")
            arrays = t.arrays(columns, library="np")
            return {c: np.asarray(arrays[c]) for c in columns}
        if hists:
            out = {}
            for key in dict.fromkeys(hists):
                counts, edges = f[key].to_numpy(flow=False)
                out["hist:" + key] = (np.asarray(edges, dtype=float), np.asarray(counts, dtype=float))
            return out
        raise AnalysisError(f"{path}: no TTree and no 1D histogram inside")


def read_categories(cfg: FTestConfig) -> list[CategoryInput]:
    """Read the input once and split it into categories (auto: the category column's distinct values)."""
    path = Path(cfg.input)
    if not path.is_file():
        raise AnalysisError(f"{path}: input file not found")
    columns = [cfg.observable] + [c for c in (cfg.category_column, cfg.weight_column) if c]
    if len(set(columns)) != len(columns):
        raise AnalysisError(f"columns must differ: observable/category/weight = {columns}")
    table = _read_table(path, columns, cfg.tree)
    if any(k.startswith("hist:") for k in table):
        return _histogram_categories(cfg, path, table)
    values = np.asarray(table[cfg.observable])
    if not np.issubdtype(values.dtype, np.number):
        raise AnalysisError(f"{path}: column {cfg.observable!r} is not numeric")
    values = values.astype(float)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise AnalysisError(f"{path}: column {cfg.observable!r} has a non-finite value in row {int(bad[0])}")
    weights = None
    if cfg.weight_column:
        weights = np.asarray(table[cfg.weight_column], dtype=float)
        bad = np.flatnonzero(~np.isfinite(weights))
        if bad.size:
            raise AnalysisError(f"{path}: column {cfg.weight_column!r} has a non-finite value in row {int(bad[0])}")
    elif cfg.pseudodata:
        log.info("pseudodata without a weight column: unit weights")
    if not cfg.category_column:
        return [CategoryInput("all", values, weights)]
    labels = np.array([_category_name(v) for v in table[cfg.category_column]], dtype=object)
    names = sorted(set(labels), key=_natural_key) if cfg.categories == "auto" else list(cfg.categories)
    if not names:
        raise AnalysisError(f"{path}: no rows, so no categories in column {cfg.category_column!r}")
    out = []
    for name in names:
        sel = labels == name
        out.append(CategoryInput(name, values[sel], None if weights is None else weights[sel]))
    return out


def _natural_key(name: str) -> tuple:
    """Sort '2' before '10'."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name))


def _histogram_categories(cfg: FTestConfig, path: Path, table: dict[str, Any]) -> list[CategoryInput]:
    """Categories from a ROOT file of histograms (one per category)."""
    if cfg.weight_column:
        raise AnalysisError(f"{path}: --weight-column does not apply to a file of histograms")
    hists = {k[5:]: v for k, v in table.items()}
    names = sorted(hists, key=_natural_key) if cfg.categories == "auto" else list(cfg.categories)
    out = []
    for name in names:
        if name not in hists:
            out.append(CategoryInput(name, edges=np.array([0.0, 1.0]), counts=np.zeros(1)))  # fails as empty later
            continue
        edges, counts = hists[name]
        out.append(CategoryInput(name, edges=edges, counts=counts))
    return out


# ------------------------------------------------------------------------------------------------- histograms
def category_histogram(cat: CategoryInput, cfg: FTestConfig, fit_range: tuple[float, float] | None,
                       default_bins: int = 80) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(edges, counts, sum of w² or None) of a category in the fit range; pseudodata is Poisson-fluctuated."""
    variances = None
    if cat.values is not None:
        if fit_range is None:
            raise AnalysisError(f"category {cat.name}: no events, so no range could be inferred (give --range)")
        bins = cfg.bins or default_bins
        edges = np.linspace(fit_range[0], fit_range[1], bins + 1)
        counts, _ = np.histogram(cat.values, bins=edges, weights=cat.weights)
        if cat.weights is not None:
            variances, _ = np.histogram(cat.values, bins=edges, weights=cat.weights**2)
    else:
        edges, counts = np.asarray(cat.edges, dtype=float), np.asarray(cat.counts, dtype=float)
        if fit_range is not None:
            tol = 1e-9 * (edges[-1] - edges[0])
            keep = (edges[:-1] >= fit_range[0] - tol) & (edges[1:] <= fit_range[1] + tol)
            if not keep.any():
                raise AnalysisError(f"category {cat.name}: no histogram bin inside the range {list(fit_range)}")
            idx = np.flatnonzero(keep)
            edges, counts = edges[idx[0]: idx[-1] + 2], counts[idx]
        if cfg.bins is not None and cfg.bins != len(counts):
            if len(counts) % cfg.bins:
                raise AnalysisError(f"category {cat.name}: --bins {cfg.bins} does not divide the histogram's {len(counts)} bins")
            k = len(counts) // cfg.bins
            counts = counts.reshape(cfg.bins, k).sum(axis=1)
            edges = edges[::k]
    if cfg.pseudodata:
        rng = np.random.default_rng(category_seed(cfg.seed, cat.name))
        counts = rng.poisson(np.clip(counts, 0.0, None)).astype(float)
        variances = None
    return edges, np.asarray(counts, dtype=float), variances


def category_seed(seed: int, name: str) -> np.random.SeedSequence:
    """Seed sequence of a category from the run seed and the category name."""
    return np.random.SeedSequence([int(seed), zlib.crc32(name.encode())])


def infer_range(cats: Sequence[CategoryInput]) -> tuple[float, float] | None:
    """[min, max] of the observable over all categories (a hair wider so the maximum is inside)."""
    vals = [c.values for c in cats if c.values is not None and len(c.values)]
    if not vals:
        return None
    lo = float(min(v.min() for v in vals))
    hi = float(max(v.max() for v in vals))
    if hi <= lo:
        raise AnalysisError(f"observable takes the single value {lo:g}; give --range")
    return lo, hi + 1e-9 * (hi - lo)


# ------------------------------------------------------------------------------------------------- one task
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
    """The body of run_category (raises on failure)."""
    cfg, cat = task.cfg, task.category
    n_raw = len(cat.values) if cat.values is not None else float(np.sum(cat.counts))
    if n_raw == 0:
        raise AnalysisError(f"category {cat.name}: empty (no events)")
    edges, counts, _ = category_histogram(cat, cfg, task.fit_range)
    if counts.sum() == 0:
        raise AnalysisError(f"category {cat.name}: no events inside the range [{edges[0]:g}, {edges[-1]:g}]")
    seed = int(category_seed(cfg.seed, cat.name).generate_state(1)[0] % (2**31))
    env = build_envelope(edges, counts, families=cfg.families, blind=cfg.blind, pvalue_threshold=cfg.pvalue_threshold,
                         correction=cfg.correction, seed=seed, envelope_threshold=cfg.envelope_threshold,
                         gof_threshold=cfg.gof_threshold, max_order=cfg.max_order, n_toys=cfg.n_toys,
                         min_events=cfg.min_events, warn=False)  # the caller prints one line per category
    out.mkdir(parents=True, exist_ok=True)
    result_2d = None
    if cfg.ftest_2d:
        result_2d = ftest_2d(env.data, cfg.ftest_2d, pvalue_threshold=cfg.pvalue_threshold, seed=seed, n_toys=cfg.n_toys)
    rows = ftest_table(env.ftests)
    signal = signal_model(cfg, edges, env)
    doc = envelope_document(cat.name, cfg, env, edges, counts, signal, result_2d)
    (out / "envelope.json").write_text(json.dumps(doc, indent=2, default=_json_default))
    (out / "ftest.json").write_text(json.dumps({"category": cat.name, "rows": rows,
                                                "ftest_2d": None if result_2d is None else result_2d.to_dict()},
                                               indent=2, default=_json_default))
    (out / "ftest_table.md").write_text(f"# f-test, category {cat.name}\n\n" + table_markdown(rows))
    with open(out / "ftest_table.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["family"])
        writer.writeheader()
        writer.writerows(rows)
    plots = [str(p) for p in plot_multipdf(env, counts, cat.name, cfg, out)]
    plots += [str(p) for p in plot_splusb(env, counts, signal, cat.name, cfg, out)]
    return {"category": cat.name, "status": "ok", "best": doc["best"], "n_functions": len(env.functions),
            "envelope": [f.name for f in env.functions], "directory": str(out), "plots": plots,
            "fit_quality_ok": doc["fit_quality"]["ok"], "fit_quality_warning": env.quality_summary()}


def _json_default(obj: Any) -> Any:
    """numpy scalars/arrays → Python for json.dumps."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def signal_model(cfg: FTestConfig, edges: np.ndarray, env: Envelope) -> dict[str, Any]:
    """Gaussian signal for the S+B plot: configured, or at the blind-window centre sized to S/√B = 3."""
    from scipy import stats

    sig = cfg.signal.model_dump(exclude_none=True) if cfg.signal is not None else {}
    window = cfg.blind or (float(edges[0]) + 0.4 * (edges[-1] - edges[0]), float(edges[0]) + 0.6 * (edges[-1] - edges[0]))
    mass = float(sig.get("mass_gev", 0.5 * (window[0] + window[1])))
    width = float(sig.get("width_gev", (window[1] - window[0]) / 8.0))
    illustrative = "events" not in sig
    if illustrative:
        fracs = env.best.spec.bin_fractions(env.best.params, env.data.grid) * env.best.norm
        centers = 0.5 * (edges[1:] + edges[:-1])
        b_core = float(fracs[np.abs(centers - mass) < 2 * width].sum())
        events = 3.0 * math.sqrt(max(b_core, 1.0))
    else:
        events = float(sig["events"])
    counts = events * np.diff(stats.norm.cdf(edges, mass, width))
    return {"mass_gev": mass, "width_gev": width, "events": events, "illustrative": illustrative, "counts": counts}


def envelope_document(name: str, cfg: FTestConfig, env: Envelope, edges: np.ndarray, counts: np.ndarray,
                      signal: dict[str, Any], result_2d: Any) -> dict[str, Any]:
    """The envelope.json document (issue 5's keys plus provenance and the sideband-only normalisation)."""
    summary = env.to_dict()
    return {
        "category": name,
        "observable": cfg.observable,
        "range": [float(edges[0]), float(edges[-1])],
        "bins": len(counts),
        "blind": None if cfg.blind is None else list(cfg.blind),
        "events_in_fit_bins": float(env.data.fit_counts.sum()),
        "pseudodata": cfg.pseudodata,
        "seed": cfg.seed,
        "pvalue_threshold": cfg.pvalue_threshold,
        "envelope_threshold": cfg.envelope_threshold,
        "gof_threshold": cfg.gof_threshold,
        "correction": cfg.correction,
        "families": summary["families"],
        "skipped_families": summary["skipped_families"],
        "functions": summary["functions"],
        "best": summary["best"],
        "gof_fallback": summary["gof_fallback"],
        "fit_quality": summary["fit_quality"],
        "prefit_normalisation": env.prefit_normalisation(),
        "signal_model": {k: v for k, v in signal.items() if k != "counts"},
        "ftest_2d": None if result_2d is None else result_2d.to_dict(),
    }


# ------------------------------------------------------------------------------------------------- plots
def _curve(env: Envelope, fn: FitResult, x: np.ndarray, width: float) -> np.ndarray:
    """Expected events per bin width at x for a fitted function (normalised on the fit bins)."""
    return fn.norm * fn.spec.density(fn.params, x, env.data.grid) * width


def _axis_label(cfg: FTestConfig) -> str:
    """x-axis label with unit."""
    return f"{cfg.observable} [{cfg.unit}]" if cfg.unit else cfg.observable


def _data_label(cfg: FTestConfig) -> str:
    """Legend/experiment label of the data."""
    return "Pseudodata" if cfg.pseudodata else "Data"


def plot_multipdf(env: Envelope, counts: np.ndarray, name: str, cfg: FTestConfig, out: Path) -> list[Path]:
    """Standard multipdf plot: data, every envelope function, the best fit highlighted, residual panel."""
    import matplotlib.pyplot as plt

    from analysis.plotting import label, save_figure, use_style

    use_style()
    grid = env.data.grid
    centers, widths, mask = grid.centers, grid.widths, grid.mask
    width = float(np.median(widths))
    x = np.linspace(grid.lo, grid.hi, 600)
    fig, (ax, rax) = plt.subplots(2, 1, figsize=(10, 9), sharex=True, gridspec_kw={"height_ratios": (3, 1), "hspace": 0.05})
    scale = width / widths
    err = np.sqrt(np.maximum(counts, 1.0))
    ax.errorbar(centers[mask], (counts * scale)[mask], yerr=(err * scale)[mask], xerr=0.5 * widths[mask], fmt="ko",
                ms=4, label=_data_label(cfg), zorder=5)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    best_curve = _curve(env, env.best, x, width)
    for i, fn in enumerate(env.functions):
        is_best = fn is env.best
        y = _curve(env, fn, x, width)
        style = {"lw": 3.0, "color": "red", "zorder": 4} if is_best else {"lw": 1.6, "ls": "--", "color": colors[i % len(colors)]}
        text = f"{fn.name} (deviance+{env.correction:g}·N={fn.nll + env.correction * fn.n_params:.1f})"
        ax.plot(x, y, label=("best: " if is_best else "") + text, **style)
        if not is_best:
            rax.plot(x, y - best_curve, **style)
    exp_best = env.best.expected(grid)
    rax.errorbar(centers[mask], ((counts - exp_best) * scale)[mask], yerr=(err * scale)[mask], xerr=0.5 * widths[mask],
                 fmt="ko", ms=4)
    rax.axhline(0, color="red", lw=2)
    if cfg.blind is not None:
        for a in (ax, rax):
            a.axvspan(*cfg.blind, color="grey", alpha=0.2, lw=0, label="blinded" if a is ax else None)
    ax.set_ylabel(f"Events / {width:g} {cfg.unit}")
    _log_y(ax, (counts * scale)[mask], best_curve)  # spectra fall over decades: log axis
    ax.legend(fontsize=12, title=f"category {name}", title_fontsize=13)
    rax.set_ylabel("Data − best")
    rax.set_xlabel(_axis_label(cfg))
    rax.set_xlim(grid.lo, grid.hi)
    label(ax, _data_label(cfg) if not cfg.pseudodata else "Simulation", com=None)  # √s unknown to the f-test
    return save_figure(fig, out, "multipdf")


def _log_y(ax, points: np.ndarray, curve: np.ndarray) -> None:
    """Log y axis from half the smallest positive value to 30× the largest (room for the legend)."""
    vals = np.concatenate([np.asarray(points, float), np.asarray(curve, float)])
    pos = vals[np.isfinite(vals) & (vals > 0)]
    ax.set_yscale("log")
    if pos.size:
        ax.set_ylim(0.5 * pos.min(), 30 * pos.max())


def background_band(env: Envelope, n_samples: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """16/84 and 2.5/97.5 % quantiles of the best function's expected counts per bin (Hesse covariance of
    the shape, Poisson uncertainty of the sideband normalisation)."""
    fn = env.best
    grid = env.data.grid
    rng = np.random.default_rng(seed)
    lo = np.array([b[0] for b in fn.spec.bounds])
    hi = np.array([b[1] for b in fn.spec.bounds])
    cov = fn.covariance if fn.covariance is not None and fn.n_params else np.zeros((fn.n_params, fn.n_params))
    draws = rng.multivariate_normal(fn.params, cov, size=n_samples, check_valid="ignore") if fn.n_params else np.zeros((n_samples, 0))
    draws = np.clip(draws, lo, hi) if fn.n_params else draws
    norms = fn.norm + math.sqrt(max(fn.norm, 1.0)) * rng.standard_normal(n_samples)
    samples = np.array([n * fn.spec.bin_fractions(p, grid) for n, p in zip(norms, draws)])
    q = np.nanpercentile(samples, [2.5, 16, 84, 97.5], axis=0)
    return q[1], q[2], q[0], q[3]


def plot_splusb(env: Envelope, counts: np.ndarray, signal: dict[str, Any], name: str, cfg: FTestConfig, out: Path) -> list[Path]:
    """Blinded S+B model plot: sideband data, best background with 1σ/2σ bands, S+B, and data − B panel."""
    import matplotlib.pyplot as plt

    from analysis.plotting import label, save_figure, use_style

    use_style()
    grid = env.data.grid
    edges, centers, widths, mask = grid.edges, grid.centers, grid.widths, grid.mask
    bkg = env.best.expected(grid)
    lo1, hi1, lo2, hi2 = background_band(env)
    sig = signal["counts"]
    fig, (ax, rax) = plt.subplots(2, 1, figsize=(10, 9), sharex=True, gridspec_kw={"height_ratios": (3, 1), "hspace": 0.05})
    ax.fill_between(edges, np.append(lo2, lo2[-1]), np.append(hi2, hi2[-1]), step="post", color="#ffcc00", label="B ±2σ")
    ax.fill_between(edges, np.append(lo1, lo1[-1]), np.append(hi1, hi1[-1]), step="post", color="#00cc00", label="B ±1σ")
    ax.stairs(bkg, edges, color="red", lw=2, ls="--", label=f"B model ({env.best.name})")
    ax.stairs(bkg + sig, edges, color="blue", lw=2, label="S+B model")
    sig_text = f"S: m={signal['mass_gev']:g}, σ={signal['width_gev']:.3g} {cfg.unit}, N={signal['events']:.1f}"
    ax.stairs(sig, edges, color="purple", lw=1.5, label=sig_text + (" (illustrative)" if signal["illustrative"] else ""))
    err = np.sqrt(np.maximum(counts, 1.0))
    ax.errorbar(centers[mask], counts[mask], yerr=err[mask], fmt="ko", ms=4, label=_data_label(cfg) + (" (sidebands)" if cfg.blind else ""), zorder=5)
    rax.fill_between(edges, np.append(lo2 - bkg, 0), np.append(hi2 - bkg, 0), step="post", color="#ffcc00")
    rax.fill_between(edges, np.append(lo1 - bkg, 0), np.append(hi1 - bkg, 0), step="post", color="#00cc00")
    rax.stairs(sig, edges, color="blue", lw=2)
    rax.errorbar(centers[mask], (counts - bkg)[mask], yerr=err[mask], fmt="ko", ms=4)
    rax.axhline(0, color="red", ls="--", lw=2)
    if cfg.blind is not None:
        for a in (ax, rax):
            a.axvspan(*cfg.blind, color="grey", alpha=0.15, lw=0, label="blinded" if a is ax else None)
    width = float(np.median(widths))
    ax.set_ylabel(f"Events / {width:g} {cfg.unit}")
    ax.set_ylim(0, None)
    ax.legend(fontsize=12, title=f"category {name}", title_fontsize=13)
    rax.set_ylabel("Data − B")
    rax.set_xlabel(_axis_label(cfg))
    rax.set_xlim(grid.lo, grid.hi)
    label(ax, _data_label(cfg) if not cfg.pseudodata else "Simulation", com=None)
    return save_figure(fig, out, "splusb_blinded" if cfg.blind else "splusb")


# ------------------------------------------------------------------------------------------------- executors
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


@dataclass
class FTestRun:
    """Result of ``run_ftest``: per-category summaries (in category order) and the failed ones."""

    categories: list[dict[str, Any]]
    out_dir: Path
    config: dict[str, Any]

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
    out.mkdir(parents=True, exist_ok=True)
    tasks = [CategoryTask(c, cfg, fit_range, str(out)) for c in cats]
    bar = _progress(len(tasks)) if progress else None
    try:
        summaries = _execute(tasks, cfg.executor, cfg.workers, (lambda r: bar.advance()) if bar else (lambda r: None))
    finally:
        if bar is not None:
            bar.stop()
    config = cfg.model_dump(mode="json")
    config["range_used"] = None if fit_range is None else list(fit_range)
    run = FTestRun(summaries, out, config)
    (out / "summary.json").write_text(json.dumps({"config": config, "categories": summaries,
                                                  "failed": [c["category"] for c in run.failed]},
                                                 indent=2, default=_json_default))
    write_ftest_report(out, wall_time_s=time.perf_counter() - t0)
    return run


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


__all__ = ["CategoryInput", "CategoryTask", "FTestConfig", "FTestRun", "category_histogram",
           "SignalSpec", "make_config", "read_categories", "run_category", "run_ftest"]
