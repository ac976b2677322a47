"""Binned Poisson likelihood fits of background functions through the statistics core, with goodness of fit.

Every fit goes through :func:`analysis.stats.fit.fit` (fit-quality guard, retries) and its result is the
core's :class:`~analysis.stats.fit.FitResult`, viewed here as :class:`FitResult` (background-only) or
:class:`SBFit` (signal + background).

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
from iminuit._core import MnPrint
from iminuit.cost import BinnedNLL
from scipy import stats

from analysis.errors import AnalysisError
from analysis.resonance.families import BinGrid, FunctionSpec, blind_mask, make_grid
from analysis.stats.fit import FitQuality
from analysis.stats.fit import FitResult as CoreFitResult
from analysis.stats.fit import fit as core_fit
from analysis.stats.gof import poisson_deviance as _core_deviance
from analysis.stats.parametric import CostLikelihood, FunctionLikelihood

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
    """A fitted background function: a typed view of the statistics core's fit result.

    ``core`` is the :class:`analysis.stats.fit.FitResult` of the shape fit (best fit, HESSE errors and
    covariance, ``quality``); ``norm`` is the normalisation (events in the fit bins, profiled analytically)
    and ``nll`` the Poisson deviance −2 ln(L/L_saturated) over the fit bins (``core.twice_nll``).
    """

    spec: FunctionSpec = field(repr=False)
    core: CoreFitResult | None
    norm: float
    nll: float
    n_starts: int = 0

    @property
    def params(self) -> np.ndarray:
        """Best-fit shape parameters, shape (n_params,)."""
        return np.zeros(0) if self.core is None else self.core.bestfit

    @property
    def errors(self) -> np.ndarray:
        """HESSE uncertainties of the shape parameters, shape (n_params,)."""
        return np.zeros(0) if self.core is None else self.core.uncertainty

    @property
    def covariance(self) -> np.ndarray | None:
        """HESSE covariance of the shape parameters, shape (n_params, n_params)."""
        return np.zeros((0, 0)) if self.core is None else self.core.covariance

    @property
    def quality(self) -> FitQuality:
        """The core's fit-quality record (a parameter-free function is trivially fine)."""
        if self.core is None:
            return FitQuality(valid=bool(np.isfinite(self.nll)), edm=0.0, edm_goal=0.0, covariance="not computed")
        return self.core.quality

    @property
    def valid(self) -> bool:
        """Minuit reported a valid minimum (what the envelope requires of a function)."""
        return self.quality.valid

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


@contextmanager
def _quiet_minuit() -> Iterator[None]:
    """Silence Minuit's C++ diagnostics (e.g. 'Initial matrix not pos.def.') during resonance fits; the core's
    fit-quality record judges convergence instead.  Restores the previous level."""
    previous = MnPrint.global_level
    MnPrint.global_level = -1
    try:
        yield
    finally:
        MnPrint.global_level = previous


def shape_likelihood(spec: FunctionSpec, data: BinnedData, start: np.ndarray | None = None) -> CostLikelihood:
    """The background-only shape fit as a core likelihood: ``iminuit.cost.BinnedNLL`` with the blinding ``mask``.

    BinnedNLL is the multinomial likelihood, i.e. the extended Poisson likelihood with the normalisation
    profiled analytically (N̂ = Σ n over the fit bins); its value is the Poisson deviance
    2 Σ n ln(n/ν) over the fit bins (Baker & Cousins 1984).  Bin probabilities are the spec's exact bin
    integrals (Gauss–Legendre); a point where one is not finite or not positive in a fit bin holding
    events is unphysical and evaluates to NaN (counted in the fit quality), never to a spuriously low value.
    """
    grid = data.grid
    mask = grid.mask
    occupied = data.counts > 0

    def cdf(xe: np.ndarray, *p: float) -> np.ndarray:
        frac = spec.bin_fractions(np.asarray(p, dtype=float), grid)
        if not np.all(np.isfinite(frac[mask])) or np.any(frac[mask & occupied] <= 0):
            return np.full(len(frac) + 1, np.nan)
        return np.concatenate([[0.0], np.cumsum(np.where(mask, frac, 0.0))])

    cost = BinnedNLL(data.counts, data.edges, cdf, name=list(spec.param_names))
    cost.mask = mask
    return CostLikelihood(cost, spec.default if start is None else start, labels=spec.param_names, bounds=spec.bounds)


def fit_function(spec: FunctionSpec, data: BinnedData, *, seed: int = 0, n_random_starts: int = 3,
                 lower: FitResult | None = None) -> FitResult:
    """Fit one background function to the fit bins through the statistics core (:func:`analysis.stats.fit.fit`).

    Several starts (the embedded lower-order solution, the default, ``n_random_starts`` random points) are
    minimised without retries; the best (valid first, then lowest deviance) is refitted from its minimum with
    HESSE and the core's full quality guard and retries.  Its ``quality`` says whether it can be trusted.

    Raises:
        FitError: no events, too few fit bins, or no start with a finite likelihood.
    """
    total = float(data.fit_counts.sum())
    if total <= 0:
        raise FitError("no events in the fit bins")
    if data.n_fit_bins <= spec.n_params + 1:
        raise FitError(f"{spec.name}: {data.n_fit_bins} fit bins are too few for {spec.n_params} parameters + normalisation")
    if spec.n_params == 0:
        frac = spec.bin_fractions(np.zeros(0), data.grid)[data.grid.mask]
        nll = poisson_deviance(total * frac, data.fit_counts)
        return FitResult(spec, None, total, nll, 1)
    lh = shape_likelihood(spec, data)
    rng = np.random.default_rng([seed, spec.n_params, zlib.crc32(spec.name.encode())])  # stable across processes
    starts = spec.starts(rng, n_random_starts, None if lower is None else (lower.spec, lower.params))
    best: CoreFitResult | None = None
    with _quiet_minuit():
        for start in starts:
            r = core_fit(lh, init=start, hesse=False, retry=False)
            if not np.isfinite(r.twice_nll):
                continue
            if best is None or (r.quality.valid, -r.twice_nll) > (best.quality.valid, -best.twice_nll + 1e-6):
                best = r
        if best is None:
            raise FitError(f"{spec.name}: no starting point led to a finite likelihood")
        final = core_fit(lh, init=best.bestfit, hesse=True, retry=True)
    if not np.isfinite(final.twice_nll) or final.twice_nll > best.twice_nll + 1e-6:
        final = core_fit(lh, init=best.bestfit, hesse=True, retry=False)  # keep the better multi-start minimum
    final.quality.attempts = [f"{len(starts)} starts"] + final.quality.attempts
    return FitResult(spec, final, total, float(final.twice_nll), len(starts))


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
    """A signal+background fit of one function: a typed view of the core's result over (norm, mu, θ).

    ``nll`` is the Poisson deviance over all used bins, ``mu``/``mu_error`` the signal strength and its HESSE
    error (0 when μ was fixed), ``norm`` the background events in the used bins, ``params`` the shape θ.
    """

    core: CoreFitResult

    @property
    def nll(self) -> float:
        """Poisson deviance at the minimum."""
        return float(self.core.twice_nll)

    @property
    def mu(self) -> float:
        """Signal strength at the minimum."""
        return float(self.core.bestfit[1])

    @property
    def mu_error(self) -> float:
        """HESSE uncertainty of μ (0 when fixed or not computed)."""
        return float(self.core.uncertainty[1])

    @property
    def norm(self) -> float:
        """Background normalisation (events in the used bins)."""
        return float(self.core.bestfit[0])

    @property
    def params(self) -> np.ndarray:
        """Background shape parameters θ."""
        return self.core.bestfit[2:]

    @property
    def valid(self) -> bool:
        """Minuit reported a valid minimum."""
        return self.core.quality.valid


def sb_cost(spec: FunctionSpec, grid: BinGrid, counts: np.ndarray, signal: np.ndarray):
    """−2lnL(N, μ, θ) (Poisson deviance) for ν = N·p(θ) + μ·s over the bins of ``grid.mask`` (p normalised over them).

    A Python function rather than ``iminuit.cost.ExtendedBinnedNLL``: μ may be negative, and a point where some
    ν ≤ 0 in a bin with events must be rejected (BAD_VALUE), which iminuit's cost would score as log 0 = 0."""
    mask = grid.mask
    n = counts[mask]
    s = signal[mask]
    positive = n > 0
    n_pos = n[positive]
    const = float(np.sum(n_pos * np.log(n_pos))) - float(n.sum())

    def cost(x: np.ndarray, _data: Any = None) -> float:
        norm, mu, p = x[0], x[1], x[2:]
        frac = spec.bin_fractions(np.asarray(p), grid)[mask]
        if not np.all(np.isfinite(frac)):
            return BAD_VALUE
        nu = norm * frac + mu * s
        if np.any(nu[positive] <= 0):
            return BAD_VALUE
        nu = np.maximum(nu, NU_FLOOR)
        return 2.0 * (float(np.sum(nu)) + const - float(np.sum(n_pos * np.log(nu[positive]))))

    return cost


def sb_likelihood(spec: FunctionSpec, grid: BinGrid, counts: np.ndarray, signal: np.ndarray,
                  mu_bounds: tuple[float, float]) -> FunctionLikelihood:
    """The S+B fit of one function as a core likelihood over (norm, mu, θ) with μ the parameter of interest."""
    total = float(counts[grid.mask].sum())
    bounds = ((0.0, 10.0 * total + 100.0), tuple(mu_bounds)) + spec.bounds
    init = np.concatenate([[max(total, 1.0)], [float(np.clip(0.0, *mu_bounds))], np.asarray(spec.default, float)])
    return FunctionLikelihood(sb_cost(spec, grid, counts, signal), ("norm", "mu") + spec.param_names, init,
                              bounds=bounds, poi="mu")


def fit_sb(spec: FunctionSpec, grid: BinGrid, counts: np.ndarray, signal: np.ndarray, *, start_params: np.ndarray,
           start_norm: float, start_mu: float, mu_bounds: tuple[float, float], fix_mu: float | None = None) -> SBFit:
    """Fit N, θ (and μ unless ``fix_mu``) of one function to ``counts`` given the signal template, through the
    statistics core (:func:`analysis.stats.fit.fit`; HESSE for free-μ fits)."""
    lh = sb_likelihood(spec, grid, counts, signal, mu_bounds)
    mu0 = fix_mu if fix_mu is not None else float(np.clip(start_mu, *mu_bounds))
    start = np.concatenate([[max(start_norm, 1e-3)], [mu0], spec._clip(np.asarray(start_params, dtype=float))])
    with _quiet_minuit():
        r = core_fit(lh, init=start, fix=None if fix_mu is None else {1: fix_mu}, hesse=fix_mu is None)
    return SBFit(r)


def fit_summary(fit: FitResult, gof: GoodnessOfFit | None = None) -> dict[str, Any]:
    """JSON-friendly summary of a fit."""
    out: dict[str, Any] = {
        "name": fit.name,
        "nll": fit.nll,
        "n_params": fit.n_params,
        "normalisation_events": fit.norm,
        "converged": fit.valid,
        "parameters": fit.parameters_dict(),
        "fit_quality": fit.quality.to_dict(),
    }
    if gof is not None:
        out.update({"gof_chi2": gof.chi2, "gof_ndof": gof.ndof, "gof_pvalue": gof.pvalue, "gof_method": gof.method})
    return out
