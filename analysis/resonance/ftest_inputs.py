"""Step 1 of ``ana ftest``: read the input once (CSV, parquet, ROOT tree or a ROOT file of histograms), split it
into categories (:class:`CategoryInput`) and histogram each one in the fit range (:func:`category_histogram`).

Reads only: nothing is written or drawn.
"""

from __future__ import annotations

import logging
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from analysis.errors import AnalysisError
from analysis.resonance.ftest_config import FTestConfig, category_name

__all__ = ["CategoryInput", "category_histogram", "category_seed", "infer_range", "read_categories"]

log = logging.getLogger(__name__)


@dataclass
class CategoryInput:
    """One category's input: unbinned values (+weights) or a histogram (edges, counts)."""

    name: str
    values: np.ndarray | None = None
    weights: np.ndarray | None = None
    edges: np.ndarray | None = None
    counts: np.ndarray | None = None


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

    from analysis.histio import CORRUPT_READ_ERRORS, corrupt_file_error

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
            try:
                arrays = t.arrays(columns, library="np")
            except CORRUPT_READ_ERRORS as err:
                raise AnalysisError(f"{path}: cannot read tree {trees[0]!r}: file is corrupt or truncated "
                                    f"({type(err).__name__}: {str(err).strip().splitlines()[0]})") from None
            return {c: np.asarray(arrays[c]) for c in columns}
        if hists:
            out = {}
            for key in dict.fromkeys(hists):
                try:
                    counts, edges = f[key].to_numpy(flow=False)
                except CORRUPT_READ_ERRORS as err:
                    raise corrupt_file_error(path, err, key) from None
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
    labels = np.array([category_name(v) for v in table[cfg.category_column]], dtype=object)
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
