"""Binned Poisson likelihood fits of background functions (iminuit), with goodness of fit.

The fit statistic is the Poisson deviance 2 Σ [ν - n + n ln(n/ν)] over the fit bins, i.e. −2 ln L up to a
constant that depends only on the data: differences between fits of the same data are exact −2 Δln L, and
the value itself is the Baker–Cousins χ² used for goodness of fit.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from iminuit import Minuit
from iminuit._core import MnPrint
from scipy import stats

from analysis.errors import AnalysisError
from analysis.resonance.families import BinGrid, FunctionSpec, blind_mask, make_grid
from analysis.stats.gof import poisson_deviance as _core_deviance

BAD_VALUE = 1e15  # returned for unphysical parameter points (non-positive or non-finite expectation)
NU_FLOOR = 1e-12


class FitError(AnalysisError):
    """A fit that could not be performed or did not converge (reported per category)."""


@dataclass(frozen=True)
class BinnedData:
    """A histogram (edges, counts) and the grid with the fit mask (bins outside the blinded window)."""

    edges: np.ndarray
    counts: np.ndarray
    grid: BinGrid
    blind: tuple[float, float] | None = None

    @property
    def fit_counts(self) -> np.ndarray:
        """Counts in the fit (unblinded) bins."""
        return self.counts[self.grid.mask]

    @property
    def n_fit_bins(self) -> int:
        """Number of bins entering the fit."""
        return int(self.grid.mask.sum())


def binned_data(edges: np.ndarray, counts: np.ndarray, blind: tuple[float, float] | None = None,
                n_nodes: int = 3) -> BinnedData:
    """Validate a histogram and build its fit grid (blinded bins excluded from fit and normalisation)."""
    edges = np.asarray(edges, dtype=float)
    counts = np.asarray(counts, dtype=float)
    if counts.ndim != 1 or len(edges) != len(counts) + 1:
        raise AnalysisError(f"histogram has {len(counts)} counts for {len(edges)} edges (need edges = counts + 1)")
    if not np.all(np.isfinite(counts)):
        bad = int(np.flatnonzero(~np.isfinite(counts))[0])
        raise AnalysisError(f"histogram bin {bad} has a non-finite count")
    if np.any(counts < 0):
        bad = int(np.flatnonzero(counts < 0)[0])
        raise AnalysisError(f"histogram bin {bad} has a negative count ({counts[bad]:g})")
    mask = blind_mask(edges, blind)
    if not mask.any():
        raise AnalysisError(f"blind window {blind} covers the whole fit range")
    return BinnedData(edges, counts, make_grid(edges, mask, n_nodes), None if blind is None else (float(blind[0]), float(blind[1])))


def poisson_deviance(nu: np.ndarray, n: np.ndarray) -> float:
    """2 Σ [ν - n + n ln(n/ν)] (0 · ln 0 = 0): the statistics core's deviance with this module's ν floor."""
    return _core_deviance(nu, n, floor=NU_FLOOR)


@dataclass
class FitResult:
    """A fitted background function: shape parameters, normalisation (events in the fit bins) and −2lnL."""

    spec: FunctionSpec = field(repr=False)
    params: np.ndarray
    errors: np.ndarray
    covariance: np.ndarray | None
    norm: float
    nll: float
    valid: bool
    n_starts: int = 0

    @property
    def family(self) -> str:
        """Family name."""
        return self.spec.family

    @property
    def order(self) -> int:
        """Order (number of shape parameters for the flashgg families)."""
        return self.spec.order

    @property
    def n_params(self) -> int:
        """Number of free shape parameters (the normalisation is common to all functions)."""
        return self.spec.n_params

    @property
    def name(self) -> str:
        """flashgg-style name, e.g. exp3."""
        return self.spec.name

    def expected(self, grid: BinGrid) -> np.ndarray:
        """Expected counts per bin of ``grid`` (normalised so the fit bins of the fitted data hold ``norm``)."""
        return self.norm * self.spec.bin_fractions(self.params, grid)

    def parameters_dict(self) -> dict[str, dict[str, float]]:
        """Parameters as {name: {value, error}} for JSON."""
        return {n: {"value": float(v), "error": float(e)} for n, v, e in zip(self.spec.param_names, self.params, self.errors)}


def _shape_cost(spec: FunctionSpec, data: BinnedData):
    """−2lnL(θ) with the normalisation profiled analytically (N̂ = Σ n over fit bins)."""
    n = data.fit_counts
    total = float(n.sum())
    mask = data.grid.mask
    positive = n > 0
    n_pos = n[positive]
    const = float(np.sum(n_pos * np.log(n_pos)))

    def cost(*p: float) -> float:
        frac = spec.bin_fractions(np.asarray(p), data.grid)[mask]
        if not np.all(np.isfinite(frac)) or np.any(frac[positive] <= 0):
            return BAD_VALUE
        nu = total * frac
        return 2.0 * (np.sum(nu) - total + const - float(np.sum(n_pos * np.log(nu[positive]))))

    return cost


def _minimise(cost, start: np.ndarray, spec: FunctionSpec, names: tuple[str, ...] | None = None,
              bounds: tuple[tuple[float, float], ...] | None = None, fixed: dict[str, float] | None = None,
              ncall: int = 4000) -> Minuit:
    """Run Migrad from ``start`` with bounds (errordef 1 for −2lnL)."""
    names = names or spec.param_names
    m = Minuit(cost, *start, name=names)
    m.errordef = Minuit.LEAST_SQUARES
    for name, (lo, hi) in zip(names, bounds or spec.bounds):
        m.limits[name] = (lo, hi)
    for name, value in (fixed or {}).items():
        m.values[name] = value
        m.fixed[name] = True
    m.strategy = 1
    with _quiet_minuit():
        m.migrad(ncall=ncall)
        if not m.valid:
            m.migrad(ncall=ncall)  # a second pass often recovers edm problems
    return m


@contextmanager
def _quiet_minuit() -> Iterator[None]:
    """Silence Minuit's C++ diagnostics (e.g. 'Initial matrix not pos.def.') during one minimisation;
    convergence is judged from the returned state instead.  Restores the previous level."""
    previous = MnPrint.global_level
    MnPrint.global_level = -1
    try:
        yield
    finally:
        MnPrint.global_level = previous


def fit_function(spec: FunctionSpec, data: BinnedData, *, seed: int = 0, n_random_starts: int = 3,
                 lower: FitResult | None = None) -> FitResult:
    """Fit one background function to the fit bins: several starts, bounded parameters; best valid minimum wins."""
    total = float(data.fit_counts.sum())
    if total <= 0:
        raise FitError("no events in the fit bins")
    if data.n_fit_bins <= spec.n_params + 1:
        raise FitError(f"{spec.name}: {data.n_fit_bins} fit bins are too few for {spec.n_params} parameters + normalisation")
    cost = _shape_cost(spec, data)
    if spec.n_params == 0:
        nll = cost()
        return FitResult(spec, np.zeros(0), np.zeros(0), np.zeros((0, 0)), total, nll, bool(np.isfinite(nll)), 1)
    rng = np.random.default_rng([seed, spec.n_params, zlib.crc32(spec.name.encode())])  # stable across processes
    starts = spec.starts(rng, n_random_starts, None if lower is None else (lower.spec, lower.params))
    best: Minuit | None = None
    for start in starts:
        m = _minimise(cost, start, spec)
        if not np.isfinite(m.fval) or m.fval >= BAD_VALUE:
            continue
        better = best is None or (m.valid, -m.fval) > (best.valid, -best.fval + 1e-6)
        if better:
            best = m
    if best is None:
        raise FitError(f"{spec.name}: no starting point led to a finite likelihood")
    if best.valid:
        try:
            with _quiet_minuit():
                best.hesse()
        except RuntimeError:  # pragma: no cover - iminuit raises only on internal failures
            pass
    cov = None
    if best.covariance is not None:
        cov = np.array(best.covariance)
    return FitResult(spec, np.array(best.values), np.array(best.errors), cov, total, float(best.fval),
                     bool(best.valid), len(starts))


@dataclass(frozen=True)
class GoodnessOfFit:
    """Goodness of fit of a fitted function: Baker–Cousins χ², degrees of freedom, p-value and its method."""

    chi2: float
    ndof: int
    pvalue: float
    method: str  # "asymptotic" or "toys"
    n_toys: int = 0


def goodness_of_fit(fit: FitResult, data: BinnedData, *, seed: int = 0, n_toys: int = 1000,
                    min_mean_per_bin: float = 5.0) -> GoodnessOfFit:
    """χ²/p-value of a fit; with fewer than ``min_mean_per_bin`` events per bin on average, from Poisson toys.

    As in flashggFinalFit, toys are drawn from the fitted function and compared to it without refitting."""
    nu = fit.expected(data.grid)[data.grid.mask]
    n = data.fit_counts
    chi2 = poisson_deviance(nu, n)
    ndof = max(int(data.n_fit_bins - fit.n_params - 1), 1)
    if n.sum() / max(data.n_fit_bins, 1) >= min_mean_per_bin:
        return GoodnessOfFit(chi2, ndof, float(stats.chi2.sf(chi2, ndof)), "asymptotic")
    rng = np.random.default_rng([seed, 7919, fit.n_params])
    toys = rng.poisson(nu, size=(n_toys, len(nu))).astype(float)
    nu_f = np.maximum(nu, NU_FLOOR)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(toys > 0, toys * np.log(toys / nu_f), 0.0)
    toy_chi2 = 2.0 * np.sum(nu_f - toys + terms, axis=1)
    pvalue = float((np.sum(toy_chi2 >= chi2) + 1) / (n_toys + 1))
    return GoodnessOfFit(chi2, ndof, pvalue, "toys", n_toys)


# ---------------------------------------------------------------------------------------- signal + background
@dataclass
class SBFit:
    """A signal+background fit of one function: −2lnL (deviance over all used bins), μ, normalisation, θ."""

    nll: float
    mu: float
    mu_error: float
    norm: float
    params: np.ndarray
    valid: bool


def sb_cost(spec: FunctionSpec, grid: BinGrid, counts: np.ndarray, signal: np.ndarray):
    """−2lnL(N, θ, μ) for ν = N·p(θ) + μ·s over the bins of ``grid.mask`` (p normalised over them)."""
    mask = grid.mask
    n = counts[mask]
    s = signal[mask]
    positive = n > 0
    n_pos = n[positive]
    const = float(np.sum(n_pos * np.log(n_pos))) - float(n.sum())

    def cost(norm: float, mu: float, *p: float) -> float:
        frac = spec.bin_fractions(np.asarray(p), grid)[mask]
        if not np.all(np.isfinite(frac)):
            return BAD_VALUE
        nu = norm * frac + mu * s
        if np.any(nu[positive] <= 0):
            return BAD_VALUE
        nu = np.maximum(nu, NU_FLOOR)
        return 2.0 * (float(np.sum(nu)) + const - float(np.sum(n_pos * np.log(nu[positive]))))

    return cost


def fit_sb(spec: FunctionSpec, grid: BinGrid, counts: np.ndarray, signal: np.ndarray, *, start_params: np.ndarray,
           start_norm: float, start_mu: float, mu_bounds: tuple[float, float], fix_mu: float | None = None) -> SBFit:
    """Fit N, θ (and μ unless ``fix_mu``) of one function to ``counts`` given the signal template."""
    cost = sb_cost(spec, grid, counts, signal)
    names = ("norm", "mu") + spec.param_names
    total = float(counts[grid.mask].sum())
    bounds = ((0.0, 10.0 * total + 100.0), tuple(mu_bounds)) + spec.bounds
    mu0 = fix_mu if fix_mu is not None else float(np.clip(start_mu, *mu_bounds))
    start = np.concatenate([[max(start_norm, 1e-3)], [mu0], spec._clip(np.asarray(start_params, dtype=float))])
    m = _minimise(cost, start, spec, names, bounds, None if fix_mu is None else {"mu": fix_mu})
    if fix_mu is None and m.valid:
        try:
            with _quiet_minuit():
                m.hesse()
        except RuntimeError:  # pragma: no cover
            pass
    vals = np.array(m.values)
    return SBFit(float(m.fval), float(vals[1]), float(m.errors["mu"]), float(vals[0]), vals[2:], bool(m.valid))


def fit_summary(fit: FitResult, gof: GoodnessOfFit | None = None) -> dict[str, Any]:
    """JSON-friendly summary of a fit."""
    out: dict[str, Any] = {
        "name": fit.name,
        "nll": fit.nll,
        "n_params": fit.n_params,
        "normalisation_events": fit.norm,
        "converged": fit.valid,
        "parameters": fit.parameters_dict(),
    }
    if gof is not None:
        out.update({"gof_chi2": gof.chi2, "gof_ndof": gof.ndof, "gof_pvalue": gof.pvalue, "gof_method": gof.method})
    return out
