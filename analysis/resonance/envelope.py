"""Envelope (multi-pdf) of background functions and the discrete-profiling likelihood of a signal strength.

The envelope collects, per family, the orders kept by the f-test (see ``ftest.py``).  Following the discrete
profiling method (Dauncey, Kenzie, Wardle, Davies, arXiv:1408.6865) the choice of function is a discrete
nuisance parameter: the profile likelihood of μ is the minimum over functions of
−2lnL_f(μ, θ̂_f(μ)) + c·n_params(f), with c = 1 by default (the "correction" for the number of parameters).
−2lnL is the Poisson deviance (−2 ln L up to a data-only constant; differences are exact).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from scipy.optimize import brentq

from analysis.errors import AnalysisError
from analysis.resonance.bkgfit import BinnedData, FitError, FitResult, SBFit, binned_data, fit_sb
from analysis.resonance.families import DEFAULT_FAMILIES, NEEDS_POSITIVE_RANGE, BinGrid, canonical_family, make_grid
from analysis.resonance.ftest import FamilyFTest, best_of, ftest_family, quality_problem
from analysis.stats.fit import QualityTally

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MuFit:
    """Best-fit signal strength through the envelope with its Δ(−2lnL) = 1 interval and the chosen function."""

    mu: float
    lo: float
    hi: float
    function: str
    value: float  # min over functions of −2lnL + c·n_params at μ̂
    per_function: dict[str, dict[str, float]]

    @property
    def error(self) -> float:
        """Symmetrised uncertainty (hi − lo)/2."""
        return 0.5 * (self.hi - self.lo)

    @property
    def error_up(self) -> float:
        """Upper uncertainty."""
        return self.hi - self.mu

    @property
    def error_down(self) -> float:
        """Lower uncertainty."""
        return self.mu - self.lo


@dataclass
class Envelope:
    """The multi-pdf: fitted functions, the best one (min −2lnL + c·n_params) and the f-tests that chose them."""

    edges: np.ndarray
    functions: list[FitResult]
    best: FitResult
    correction: float = 1.0
    blind: tuple[float, float] | None = None
    ftests: dict[str, FamilyFTest] = field(default_factory=dict)
    skipped_families: dict[str, str] = field(default_factory=dict)
    gof_fallback: bool = False
    data: BinnedData | None = field(default=None, repr=False)
    tally: QualityTally = field(default_factory=QualityTally, repr=False)
    _sb_cache: dict[tuple, dict[str, SBFit]] = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------------------------------ helpers
    @property
    def full_grid(self) -> BinGrid:
        """Grid over all bins (S+B fits use the full range, signal window included)."""
        return make_grid(self.edges)

    def _check(self, counts: np.ndarray, signal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Validate counts/signal against the envelope's binning."""
        counts = np.asarray(counts, dtype=float)
        signal = np.asarray(signal, dtype=float)
        n = len(self.edges) - 1
        if counts.shape != (n,) or signal.shape != (n,):
            raise AnalysisError(f"envelope has {n} bins; got counts {counts.shape} and signal {signal.shape}")
        if not (np.all(np.isfinite(counts)) and np.all(np.isfinite(signal))):
            raise AnalysisError("counts and signal must be finite")
        if np.any(counts < 0):
            raise AnalysisError("counts must be non-negative")
        return counts, signal

    def _key(self, counts: np.ndarray, signal: np.ndarray, mu_bounds: tuple[float, float]) -> tuple:
        """Cache key for fits of one (counts, signal) pair."""
        return (counts.tobytes(), signal.tobytes(), tuple(mu_bounds))

    def _cached_unconditional(self, counts: np.ndarray, signal: np.ndarray) -> dict[str, SBFit] | None:
        """Free-μ fits already made for this (counts, signal) with any μ bounds (used only as warm starts)."""
        prefix = (counts.tobytes(), signal.tobytes())
        for key, fits in reversed(self._sb_cache.items()):
            if key[:2] == prefix:
                return fits
        return None

    def _unconditional(self, counts: np.ndarray, signal: np.ndarray, mu_bounds: tuple[float, float]) -> dict[str, SBFit]:
        """Free-μ S+B fit of every function (cached)."""
        key = self._key(counts, signal, mu_bounds)
        if key in self._sb_cache:
            return self._sb_cache[key]
        grid = self.full_grid
        total = float(counts.sum())
        out = {}
        for fn in self.functions:
            best: SBFit | None = None
            for mu0 in (0.0, 1.0):
                norm0 = max(total - mu0 * float(signal.sum()), 1.0)
                fit = fit_sb(fn.spec, grid, counts, signal, start_params=fn.params, start_norm=norm0,
                             start_mu=mu0, mu_bounds=mu_bounds)
                self.tally.record(fit.core, f"{fn.name} free mu")
                if best is None or (fit.valid, -fit.nll) > (best.valid, -best.nll + 1e-6):
                    best = fit
            out[fn.name] = best
        self._sb_cache[key] = out
        return out

    def _conditional(self, fn: FitResult, counts: np.ndarray, signal: np.ndarray, mu: float,
                     warm: SBFit | None) -> SBFit:
        """−2lnL of one function at fixed μ, minimised over (N, θ) from a warm start and the bkg-only start."""
        grid = self.full_grid
        total = float(counts.sum())
        bounds = (min(-1e3, mu - 1.0), max(1e3, mu + 1.0))
        starts = [(fn.params, max(total - mu * float(signal.sum()), 1.0))]
        if warm is not None:
            starts.insert(0, (warm.params, warm.norm + (warm.mu - mu) * float(signal.sum())))
        best: SBFit | None = None
        for params, norm0 in starts:
            fit = fit_sb(fn.spec, grid, counts, signal, start_params=params, start_norm=max(norm0, 1.0),
                         start_mu=mu, mu_bounds=bounds, fix_mu=mu)
            self.tally.record(fit.core, f"{fn.name} fixed mu={mu:.4g}")
            if best is None or fit.nll < best.nll - 1e-9:
                best = fit
        return best

    def function_profile(self, fn: FitResult, counts: np.ndarray, signal: np.ndarray, mu: np.ndarray,
                         mu_bounds: tuple[float, float] = (-5.0, 50.0)) -> np.ndarray:
        """−2lnL_f(μ, θ̂(μ)) of one function on a μ grid (no correction term)."""
        counts, signal = self._check(counts, signal)
        mu = np.atleast_1d(np.asarray(mu, dtype=float))
        cached = self._cached_unconditional(counts, signal)
        uncond = (cached if cached is not None else self._unconditional(counts, signal, mu_bounds))[fn.name]
        out = np.empty_like(mu)
        order = np.argsort(np.abs(mu - uncond.mu))  # walk outwards from μ̂ for good warm starts
        solved: list[SBFit] = []
        for idx in order:
            warm = min(solved + [uncond], key=lambda f: abs(f.mu - mu[idx]))
            fit = self._conditional(fn, counts, signal, float(mu[idx]), warm)
            solved.append(fit)
            out[idx] = fit.nll
        return out

    # ------------------------------------------------------------------------------------------ contract
    def profile_nll(self, counts: np.ndarray, signal: np.ndarray, mu: np.ndarray | float) -> np.ndarray:
        """min over envelope functions of (−2lnL(μ, θ̂) + correction·n_params) for expected counts
        background(θ) + μ·signal per bin (signal = expected signal counts per bin at μ = 1)."""
        counts, signal = self._check(counts, signal)
        mu_arr = np.asarray(mu, dtype=float)
        flat = np.atleast_1d(mu_arr).ravel()
        values = np.full(flat.shape, np.inf)
        for fn in self.functions:
            prof = self.function_profile(fn, counts, signal, flat) + self.correction * fn.n_params
            values = np.minimum(values, prof)
        return values.reshape(mu_arr.shape)

    def fit_mu(self, counts: np.ndarray, signal: np.ndarray, mu_bounds: tuple[float, float] = (-5, 50)) -> tuple[float, float, str]:
        """Best-fit μ, its uncertainty from the envelope profile (Δ(−2lnL) = 1, symmetrised), chosen function."""
        res = self.fit_mu_interval(counts, signal, mu_bounds)
        return res.mu, res.error, res.function

    def fit_mu_interval(self, counts: np.ndarray, signal: np.ndarray, mu_bounds: tuple[float, float] = (-5, 50)) -> MuFit:
        """Best-fit μ through the envelope and its asymmetric Δ(−2lnL) = 1 interval."""
        counts, signal = self._check(counts, signal)
        mu_bounds = (float(mu_bounds[0]), float(mu_bounds[1]))
        if np.isnan(mu_bounds).any() or not mu_bounds[0] < mu_bounds[1]:
            raise AnalysisError(f"mu_bounds {mu_bounds}: lower bound must be below upper bound")
        if not np.any(signal > 0):
            raise AnalysisError("signal template has no positive bin")
        uncond = self._unconditional(counts, signal, mu_bounds)
        penalised = {fn.name: uncond[fn.name].nll + self.correction * fn.n_params for fn in self.functions}
        best_name = min(penalised, key=penalised.get)
        best_val = penalised[best_name]
        level = best_val + 1.0
        lo, hi = np.inf, -np.inf
        per_function = {}
        for fn in self.functions:
            fit = uncond[fn.name]
            per_function[fn.name] = {"mu": fit.mu, "nll_plus_correction": penalised[fn.name], "valid": fit.valid,
                                     "fit_quality": fit.core.quality.to_dict()}
            if penalised[fn.name] >= level:
                continue
            offset = self.correction * fn.n_params - level
            span = mu_bounds[1] - mu_bounds[0]
            step = fit.mu_error if np.isfinite(fit.mu_error) and fit.mu_error > 0 else 1.0
            step = max(step, 1e-3 * span) if np.isfinite(span) else step  # infinite bounds (e.g. (0, inf)) are fine
            f_lo = self._crossing(fn, counts, signal, fit, offset, -step, mu_bounds)
            f_hi = self._crossing(fn, counts, signal, fit, offset, +step, mu_bounds)
            lo, hi = min(lo, f_lo), max(hi, f_hi)
        mu_hat = uncond[best_name].mu
        return MuFit(mu_hat, float(min(lo, mu_hat)), float(max(hi, mu_hat)), best_name, best_val, per_function)

    def _crossing(self, fn: FitResult, counts: np.ndarray, signal: np.ndarray, fit: SBFit, offset: float,
                  step: float, mu_bounds: tuple[float, float]) -> float:
        """μ where −2lnL_f(μ) + offset = 0 on one side of the function's own μ̂ (bounded by mu_bounds)."""
        warm: dict[str, SBFit] = {"last": fit}

        def g(mu: float) -> float:
            res = self._conditional(fn, counts, signal, mu, warm["last"])
            warm["last"] = res
            return res.nll + offset

        inner, g_inner = fit.mu, fit.nll + offset
        edge = mu_bounds[1] if step > 0 else mu_bounds[0]
        outer = fit.mu
        for _ in range(40):
            outer = float(np.clip(outer + step, *mu_bounds))
            g_outer = g(outer)
            if g_outer >= 0:
                break
            if outer == edge:
                return edge
            inner, g_inner = outer, g_outer
            step *= 1.6
        else:  # pragma: no cover - 40 growing steps always reach a bound
            return edge
        if g_inner >= 0:
            return inner
        return float(brentq(g, min(inner, outer), max(inner, outer), xtol=1e-3 * abs(step) + 1e-6))

    # ------------------------------------------------------------------------------------------ outputs
    def fit_quality(self) -> dict[str, Any]:
        """The ``fit_quality`` block: every background fit of the f-tests (passed the core's guard or why not) and
        the tally of the S+B fits made so far."""
        fits = [rec.fit for res in self.ftests.values() for rec in res.orders.values()]
        not_ok = {f.name: why for f in fits if (why := quality_problem(f)) is not None}
        at_bounds = {f.name: ", ".join(f.quality.at_bounds) for f in fits if f.quality.at_bounds}
        return {"ok": not not_ok and self.tally.n_not_ok == 0, "n_background_fits": len(fits),
                "n_background_fits_not_ok": len(not_ok), "background_fits_not_ok": not_ok,
                "background_fits_at_bounds": at_bounds,
                "signal_plus_background_fits": self.tally.to_dict()}

    def quality_summary(self) -> str | None:
        """One line naming the fits that failed the quality guard or ended with parameters at bounds (None if none)."""
        q = self.fit_quality()
        parts = []
        if q["n_background_fits_not_ok"]:
            names = ", ".join(f"{k} ({v})" for k, v in q["background_fits_not_ok"].items())
            parts.append(f"{q['n_background_fits_not_ok']} of {q['n_background_fits']} background fits failed the "
                         f"fit-quality guard: {names}")
        if q["background_fits_at_bounds"]:  # boundary fits pass the guard but are not "converged" in the usual sense
            names = ", ".join(f"{k} ({v})" for k, v in q["background_fits_at_bounds"].items())
            parts.append(f"{len(q['background_fits_at_bounds'])} background fits ended with parameters at their bounds: "
                         f"{names}")
        sb = q["signal_plus_background_fits"]
        if sb["n_not_ok"]:
            parts.append(f"{sb['n_not_ok']} of {sb['n_fits']} signal+background fits failed it")
        return "; ".join(parts) or None

    def expected(self, fn: FitResult, grid: BinGrid | None = None) -> np.ndarray:
        """Background-only expected counts per bin of ``fn`` (normalised on the fit bins of the fitted data)."""
        return fn.expected(self.data.grid if grid is None and self.data is not None else (grid or self.full_grid))

    def prefit_normalisation(self, window: tuple[float, float] | None = None) -> dict[str, float]:
        """Background normalisation from the sidebands only, interpolated into the (blinded) signal window."""
        if self.data is None:
            raise AnalysisError("envelope has no data attached")
        window = window or self.blind
        fracs = self.best.spec.bin_fractions(self.best.params, self.data.grid)
        out = {
            "method": "sideband interpolation of the best-fit function" if self.blind else "fit over the full range",
            "fit_bin_events": float(self.data.fit_counts.sum()),
            "total_events_expected": float(self.best.norm * fracs.sum()),
            "observed_events_total": float(self.data.counts.sum()) if self.blind is None else None,
        }
        if window is not None:
            centers = self.data.grid.centers
            inside = (centers > window[0]) & (centers < window[1])
            out["signal_window"] = [float(window[0]), float(window[1])]
            out["signal_window_events_expected"] = float(self.best.norm * fracs[inside].sum())
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (families, best function, list of envelope functions)."""
        return {
            "correction": self.correction,
            "blind": None if self.blind is None else list(self.blind),
            "families": {f: r.to_dict() for f, r in self.ftests.items()},
            "skipped_families": dict(self.skipped_families),
            "functions": [{"name": f.name, "family": f.family, "order": f.order, "n_params": f.n_params,
                           "nll": f.nll, "nll_plus_correction": f.nll + self.correction * f.n_params,
                           "parameters": f.parameters_dict(), "fit_quality": f.quality.to_dict()}
                          for f in self.functions],
            "best": {"family": self.best.family, "order": self.best.order, "n_params": self.best.n_params,
                     "name": self.best.name, "nll": self.best.nll},
            "gof_fallback": self.gof_fallback,
            "fit_quality": self.fit_quality(),
        }


def build_envelope(edges: np.ndarray, counts: np.ndarray, *, families: Sequence[str] | None = None,
                   blind: tuple[float, float] | None = None, pvalue_threshold: float = 0.05,
                   correction: float = 1.0, seed: int = 0, envelope_threshold: float = 0.1,
                   gof_threshold: float = 0.01, max_order: int | None = None, n_toys: int = 1000,
                   n_random_starts: int = 3, min_events: float = 10.0, warn: bool = True) -> Envelope:
    """Run the f-test of every family on the histogram and collect the envelope (see module docstring).

    If no order of any family passes the goodness-of-fit cut, the truncation orders of all families are used
    instead (as flashggFinalFit keeps its truncation order regardless) and ``gof_fallback`` is set.  Fits that fail
    the statistics core's quality guard are listed in ``fit_quality()`` and, with ``warn``, in one warning line."""
    data = binned_data(edges, counts, blind)
    total = float(data.fit_counts.sum())
    if total < min_events:
        raise FitError(f"too few events to fit: {total:g} in the fit bins (need ≥ {min_events:g})")
    fams = [canonical_family(f) for f in (families or DEFAULT_FAMILIES)]
    if len(set(fams)) != len(fams):
        raise AnalysisError(f"families listed twice: {list(families or [])}")
    ftests: dict[str, FamilyFTest] = {}
    skipped: dict[str, str] = {}
    for fam in fams:
        if fam in NEEDS_POSITIVE_RANGE and data.grid.lo <= 0:
            skipped[fam] = f"needs a positive observable range (lower edge {data.grid.lo:g})"
            continue
        res = ftest_family(data, fam, pvalue_threshold=pvalue_threshold, envelope_threshold=envelope_threshold,
                           gof_threshold=gof_threshold, max_order=max_order, seed=seed, n_toys=n_toys,
                           n_random_starts=n_random_starts)
        if not res.orders:
            skipped[fam] = "; ".join(res.skipped.values()) or "no order could be fitted"
            continue
        ftests[fam] = res
    functions = [fit for res in ftests.values() for fit in res.envelope_fits()]
    fallback = False
    if not functions:
        functions = [res.orders[res.truncation_order].fit for res in ftests.values()
                     if res.truncation_order is not None and res.orders[res.truncation_order].fit.valid]
        fallback = bool(functions)
    if not functions:
        reasons = "; ".join(f"{k}: {v}" for k, v in skipped.items())
        raise FitError("no background function converged" + (f" ({reasons})" if reasons else ""))
    env = Envelope(np.asarray(edges, dtype=float), functions, best_of(functions, correction), correction,
                   data.blind, ftests, skipped, fallback, data)
    summary = env.quality_summary()
    if warn and summary:
        log.warning("envelope: %s", summary)
    return env


__all__ = ["Envelope", "FitError", "MuFit", "build_envelope"]
