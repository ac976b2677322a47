"""Step 2 of ``ana ftest``: one category's background model — histogram → f-test per family → envelope →
(2D f-test) → illustrative signal — as a typed result (:class:`CategoryFit`).

Computes only: nothing is written or drawn (the workflow writes the documents, :mod:`analysis.resonance.ftest_plots`
draws from the result).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from analysis.errors import AnalysisError
from analysis.resonance.envelope import Envelope, build_envelope
from analysis.resonance.ftest import FTest2D, ftest_2d, ftest_table, table_markdown
from analysis.resonance.ftest_config import FTestConfig
from analysis.resonance.ftest_inputs import CategoryInput, category_histogram, category_seed

__all__ = ["CategoryFit", "background_band", "envelope_document", "fit_category", "signal_model"]


@dataclass(frozen=True, eq=False)
class CategoryFit:
    """One category's background model.

    Attributes:
        name: category name; config: the run's options.
        edges: bin edges (n_bins + 1) in the observable's unit; counts: (pseudo)data per bin (n_bins).
        envelope: the envelope (f-tests per family, kept functions, best fit).
        signal: the S+B plot's Gaussian signal (``mass_gev``, ``width_gev``, ``events``, ``illustrative``,
            ``counts`` per bin).
        ftest_2d: the 2D f-test (``config.ftest_2d``) or None; rows: the f-test table (one dict per order tested).
    """

    name: str
    config: FTestConfig
    edges: np.ndarray
    counts: np.ndarray
    envelope: Envelope
    signal: dict[str, Any]
    ftest_2d: FTest2D | None
    rows: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        """The ``envelope.json`` document (see :func:`envelope_document`)."""
        return envelope_document(self.name, self.config, self.envelope, self.edges, self.counts, self.signal,
                                 self.ftest_2d)

    def ftest_document(self) -> dict[str, Any]:
        """The ``ftest.json`` document: the f-test table and the 2D f-test."""
        return {"category": self.name, "rows": self.rows,
                "ftest_2d": None if self.ftest_2d is None else self.ftest_2d.to_dict()}

    def table_markdown(self) -> str:
        """The f-test table as Markdown (``ftest_table.md``)."""
        return f"# f-test, category {self.name}\n\n" + table_markdown(self.rows)


def fit_category(cat: CategoryInput, cfg: FTestConfig, fit_range: tuple[float, float] | None) -> CategoryFit:
    """Histogram a category, run the f-test of every family, build the envelope (and the 2D f-test).

    Args:
        cat: the category's events or histogram.
        cfg: the run's options (families, thresholds, blind window, toys, seed).
        fit_range: [lo, hi] of the observable (None: the histogram's own range).

    Returns:
        The :class:`CategoryFit`.

    Raises:
        AnalysisError: empty category, no events in the range, or a failing fit step (named with the category).
    """
    n_raw = len(cat.values) if cat.values is not None else float(np.sum(cat.counts))
    if n_raw == 0:
        raise AnalysisError(f"category {cat.name}: empty (no events)")
    edges, counts, _ = category_histogram(cat, cfg, fit_range)
    if counts.sum() == 0:
        raise AnalysisError(f"category {cat.name}: no events inside the range [{edges[0]:g}, {edges[-1]:g}]")
    seed = int(category_seed(cfg.seed, cat.name).generate_state(1)[0] % (2**31))
    env = build_envelope(edges, counts, families=cfg.families, blind=cfg.blind, pvalue_threshold=cfg.pvalue_threshold,
                         correction=cfg.correction, seed=seed, envelope_threshold=cfg.envelope_threshold,
                         gof_threshold=cfg.gof_threshold, max_order=cfg.max_order, n_toys=cfg.n_toys,
                         min_events=cfg.min_events, warn=False)  # the caller prints one line per category
    result_2d = None
    if cfg.ftest_2d:
        result_2d = ftest_2d(env.data, cfg.ftest_2d, pvalue_threshold=cfg.pvalue_threshold, seed=seed, n_toys=cfg.n_toys)
    rows = ftest_table(env.ftests)
    signal = signal_model(cfg, edges, env)
    return CategoryFit(cat.name, cfg, edges, counts, env, signal, result_2d, rows)


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
                      signal: dict[str, Any], result_2d: FTest2D | None) -> dict[str, Any]:
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
