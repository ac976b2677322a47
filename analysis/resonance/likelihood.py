"""Binned Poisson S+B likelihood with a parametric falling background, profile-likelihood scans and measurement.

Model per bin i: ν_i = μ·s_i(m_X) + b_i(θ), with μ the signal cross-section in pb and s_i the expected
signal counts per pb. The background is N·∫_bin f / ∫_range f for a function f of the one background
catalogue (:mod:`analysis.resonance.families`); bins outside ``mask`` (e.g. the blinded window) do not enter
the likelihood.  Every fit goes through :func:`analysis.stats.fit.fit` (quality guard, retries).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from scipy import stats

from analysis.errors import AnalysisError
from analysis.resonance.bkgfit import _quiet_minuit as quiet_minuit
from analysis.resonance.families import SEARCH_ORDER, FunctionSpec, make_grid, search_function
from analysis.stats.asymptotics import asimov_z, z_from_p  # noqa: F401  (re-exported: one formula catalogue)
from analysis.stats.fit import FitQuality, QualityTally
from analysis.stats.fit import FitResult as CoreFitResult
from analysis.stats.fit import fit as core_fit
from analysis.stats.gof import poisson_deviance
from analysis.stats.parametric import FunctionLikelihood

log = logging.getLogger(__name__)
FAMILY_ORDER = SEARCH_ORDER  # the search's functions, simplest first (defined in the one catalogue, families.py)


def search_family(name: str, sqrt_s_gev: float | None = None) -> FunctionSpec:
    """The search's background function ``name`` from the catalogue; the dijet variable z = m/√s uses the data's
    √s in GeV (the search passes its config's ``sqrt_s_tev``)."""
    return search_function(name, sqrt_s_gev)


class Profiler(Protocol):
    """What the statistics need from a background model (parametric or discrete-profiling envelope).

    ``profile_nll`` returns −2lnL (up to a constant) profiled over the background at each μ."""

    def profile_nll(self, counts: np.ndarray, signal: np.ndarray, mu: np.ndarray) -> np.ndarray: ...

    def fit_mu(self, counts: np.ndarray, signal: np.ndarray, mu_bounds: tuple[float, float]) -> tuple[float, float, str]: ...


@dataclass
class ParametricFit:
    """A typed view of the core's fit result over (μ, ln N, θ) of :class:`ParametricModel`."""

    core: CoreFitResult

    @property
    def mu(self) -> float:
        """Signal strength (pb); the fixed value for fixed-μ fits."""
        return float(self.core.bestfit[0])

    @property
    def mu_err(self) -> float:
        """HESSE uncertainty of μ (0 for fixed-μ fits)."""
        return float(self.core.uncertainty[0])

    @property
    def theta(self) -> np.ndarray:
        """Background parameters (ln N, shape…)."""
        return self.core.bestfit[1:]

    @property
    def twice_nll(self) -> float:
        """−2 ln L at the minimum (up to a data-only constant)."""
        return float(self.core.twice_nll)

    @property
    def valid(self) -> bool:
        """Minuit reported a valid minimum."""
        return self.core.quality.valid

    @property
    def quality(self) -> FitQuality:
        """The core's fit-quality record."""
        return self.core.quality


@dataclass
class ParametricModel:
    """Binned Poisson likelihood with one background function over ``edges``; ``mask`` selects the bins used.

    Background per bin: N·(bin integral of f)/(integral over the whole range), θ = (ln N, shape parameters of
    the catalogue function ``family``).  Every fit is :func:`analysis.stats.fit.fit` on a
    :class:`~analysis.stats.parametric.FunctionLikelihood` over (μ, ln N, shape), μ fixed unless fitted."""

    edges: np.ndarray
    family: FunctionSpec
    mask: np.ndarray | None = None
    theta0: np.ndarray | None = None
    name: str | None = None
    tally: QualityTally = field(default_factory=QualityTally, repr=False)
    _cache: dict = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.edges = np.asarray(self.edges, dtype=float)
        nb = len(self.edges) - 1
        self.mask = np.ones(nb, bool) if self.mask is None else np.asarray(self.mask, bool)
        self._grid = make_grid(self.edges)  # fractions normalised over the whole range (the mask is the likelihood's)
        self.name = self.name or self.family.name

    @property
    def npar(self) -> int:
        """Number of shape parameters (the normalisation is extra)."""
        return self.family.n_params

    def shape(self, p: np.ndarray) -> np.ndarray:
        """Bin fractions of the background (sum to 1 over all bins of the range)."""
        return self.family.bin_fractions(np.asarray(p, dtype=float), self._grid)

    def background(self, theta: np.ndarray) -> np.ndarray:
        """Expected background per bin; theta = (ln N, shape...)."""
        return np.exp(theta[0]) * self.shape(np.asarray(theta[1:]))

    def _nll(self, counts: np.ndarray, signal: np.ndarray | None, mu: float, theta: np.ndarray) -> float:
        """Σ (ν − n ln ν) over the used bins (−ln L up to a constant)."""
        nu = self.background(theta)
        if signal is not None:
            nu = nu + mu * signal
        m = self.mask
        nu_m, n_m = nu[m], counts[m]
        if not np.all(np.isfinite(nu_m)):
            return float("nan")
        bad = nu_m <= 1e-12
        if np.any(bad):  # keep the minimiser away from unphysical negative expectations
            return float(1e12 * (1.0 + np.sum(1e-12 - nu_m[bad])))
        return float(np.sum(nu_m - n_m * np.log(nu_m)))

    def start(self, counts: np.ndarray) -> np.ndarray:
        """Starting parameters: stored theta0 or the function's defaults with the observed normalisation."""
        if self.theta0 is not None:
            return np.array(self.theta0, float)
        p = np.array(self.family.default, float)
        frac = self.shape(p)[self.mask].sum()
        return np.concatenate([[np.log(max(counts[self.mask].sum(), 1.0) / max(frac, 1e-12))], p])

    def likelihood(self, counts: np.ndarray, signal: np.ndarray | None = None,
                   mu_bounds: tuple[float, float] = (-np.inf, np.inf)) -> FunctionLikelihood:
        """−2 ln L(μ, ln N, θ) of ``counts`` as a core likelihood (μ is the POI; without signal it has no effect)."""
        counts = np.asarray(counts, float)
        sig = None if signal is None else np.asarray(signal, float)
        spec = self.family

        def twice_nll(x: np.ndarray, _data: object = None) -> float:
            return 2.0 * self._nll(counts, sig, x[0], x[1:])

        lo, hi = float(mu_bounds[0]), float(mu_bounds[1])
        init = np.concatenate([[float(np.clip(0.0, lo, hi))], self.start(counts)])
        return FunctionLikelihood(twice_nll, ("mu", "log_norm") + spec.param_names, init,
                                  bounds=((lo, hi), (-np.inf, np.inf)) + spec.bounds, poi="mu")

    def fit(
        self,
        counts: np.ndarray,
        signal: np.ndarray | None = None,
        mu: float | None = 0.0,
        mu_bounds: tuple[float, float] = (-np.inf, np.inf),
        theta_start: np.ndarray | None = None,
        minos: bool = False,
    ) -> ParametricFit:
        """Minimise −2 ln L with :func:`analysis.stats.fit.fit`; ``mu=None`` floats the signal strength (pb, HESSE
        error, MINOS interval when ``minos``), else it is fixed.  The result's quality is tallied in ``self.tally``."""
        float_mu = mu is None and signal is not None
        fixed_mu = 0.0 if mu is None else float(mu)
        if not float_mu:
            mu_bounds = (min(fixed_mu, -1.0), max(fixed_mu, 1.0)) if not np.isfinite(mu_bounds).all() else mu_bounds
        lh = self.likelihood(counts, signal, mu_bounds)
        th0 = self.start(np.asarray(counts, float)) if theta_start is None else np.asarray(theta_start, float)
        th0 = np.concatenate([th0[:1], self.family._clip(th0[1:])])
        x0 = np.concatenate([[float(np.clip(0.0, *mu_bounds)) if float_mu else fixed_mu], th0])
        with quiet_minuit():
            r = core_fit(lh, init=x0, fix=None if float_mu else {0: fixed_mu}, hesse=float_mu,
                         minos=("mu",) if float_mu and minos else ())
        self.tally.record(r, f"{self.name} {'free' if float_mu else f'fixed mu={fixed_mu:.4g}'}")
        return ParametricFit(r)

    # --- Profiler protocol -------------------------------------------------------------------------
    def bonly_theta(self, counts: np.ndarray) -> np.ndarray:
        """Background-only best fit (cached for the last spectrum seen) used as starting point."""
        key = hash(np.asarray(counts, float).tobytes())
        if self._cache.get("key") != key:
            self._cache.clear()
            self._cache.update(key=key, theta=self.fit(counts).theta)
        return self._cache["theta"]

    def profile_nll(self, counts: np.ndarray, signal: np.ndarray, mu: np.ndarray) -> np.ndarray:
        """−2lnL minimised over the background parameters at each fixed μ (same convention as the envelope)."""
        start = self.bonly_theta(counts)
        return np.array([self.fit(counts, signal, float(x), theta_start=start).twice_nll for x in np.atleast_1d(mu)])

    def fit_mu(self, counts: np.ndarray, signal: np.ndarray, mu_bounds: tuple[float, float]) -> tuple[float, float, str]:
        """Best-fit μ and its HESSE error with the background profiled."""
        start = self.bonly_theta(counts)
        r = self.fit(counts, signal, None, mu_bounds=mu_bounds, theta_start=start)
        return r.mu, r.mu_err, self.name


def goodness_of_fit(counts: np.ndarray, expected: np.ndarray, mask: np.ndarray, npar: int) -> tuple[float, int, float]:
    """Poisson deviance (the core's saturated-model χ²), degrees of freedom and χ² p-value over the masked bins."""
    dev = poisson_deviance(expected[mask], counts[mask])
    ndof = int(mask.sum() - npar - 1)
    return dev, ndof, float(stats.chi2.sf(dev, max(ndof, 1)))


def choose_family(edges: np.ndarray, counts: np.ndarray, mask: np.ndarray | None = None,
                  candidates: tuple[str, ...] = FAMILY_ORDER, pvalue: float = 0.05,
                  sqrt_s_gev: float | None = None) -> tuple[str, list[dict]]:
    """Simplest family whose fit to (unweighted) simulation has goodness-of-fit p ≥ ``pvalue`` (else best p)."""
    report = []
    for name in candidates:
        model = ParametricModel(edges, search_family(name, sqrt_s_gev), mask, name=name)
        r = model.fit(counts)
        dev, ndof, p = goodness_of_fit(np.asarray(counts, float), model.background(r.theta), model.mask, model.npar)
        report.append({"family": name, "deviance": dev, "ndof": ndof, "pvalue": p, "valid": r.valid,
                       "fit_quality": r.quality.to_dict()})
    ok = [r for r in report if r["pvalue"] >= pvalue and r["valid"]]
    chosen = ok[0]["family"] if ok else max(report, key=lambda r: r["pvalue"])["family"]
    return chosen, report


# --- significance -----------------------------------------------------------------------------------

def q0_scan(profiler: Profiler, counts: np.ndarray, templates: np.ndarray, mu_bounds: np.ndarray) -> dict:
    """Discovery test statistic q0, μ̂ and σ_μ at every test mass (rows of ``templates``)."""
    nll0 = float(profiler.profile_nll(counts, templates[0], np.array([0.0]))[0])
    mu_hat, mu_err, q0 = [], [], []
    for tmpl, bounds in zip(templates, mu_bounds):
        mu, err, _ = profiler.fit_mu(counts, tmpl, tuple(bounds))
        q = (nll0 - float(profiler.profile_nll(counts, tmpl, np.array([mu]))[0])) if mu > 0 else 0.0
        mu_hat.append(mu)
        mu_err.append(err)
        q0.append(max(q, 0.0))
    q0a = np.array(q0)
    return {"mu_hat": np.array(mu_hat), "mu_err": np.array(mu_err), "q0": q0a,
            "z_local": np.sqrt(q0a), "p_local": stats.norm.sf(np.sqrt(q0a))}


def mu_bounds_for(background: np.ndarray, templates: np.ndarray, mask: np.ndarray, scale: float = 50.0) -> np.ndarray:
    """Per-mass μ bounds keeping every expectation positive (lower) and generous above."""
    bounds = []
    for t in templates:
        sel = mask & (t > 1e-9)
        lower = -0.9 * float(np.min(background[sel] / t[sel])) if sel.any() else -1.0
        upper = scale * np.sqrt(max(float(np.sum(background[sel])), 1.0)) / max(float(t.sum()), 1e-12) + 10 * abs(lower)
        bounds.append((lower, upper))
    return np.array(bounds)


def upcrossings(z: np.ndarray, level: float) -> int:
    """Number of upward crossings of ``level`` by a scanned significance curve (boundary start counts)."""
    above = np.asarray(z) > level
    return int(above[0]) + int(np.sum(~above[:-1] & above[1:]))


def global_significance(z_local: float, mean_upcrossings: float, z0: float = 1.0) -> tuple[float, float]:
    """Gross–Vitells: p_global ≈ p_local + ⟨N(u0)⟩ e^{−(Z² − u0²)/2}; returns (p_global, Z_global ≥ 0)."""
    p_loc = float(stats.norm.sf(z_local))
    p_glob = min(1.0, p_loc + mean_upcrossings * np.exp(-(z_local**2 - z0**2) / 2.0)) if z_local > z0 else 1.0
    p_glob = max(p_glob, p_loc)
    return p_glob, float(max(z_from_p(p_glob), 0.0))


def toy_upcrossings(profiler: Profiler, expected: np.ndarray, templates: np.ndarray, mu_bounds: np.ndarray,
                    ntoys: int, seed: int, z0: float = 1.0) -> dict:
    """Mean number of upcrossings of Z = z0 (and max local Z) in background-only Poisson toys."""
    rng = np.random.default_rng(seed)
    ups, zmax = [], []
    for _ in range(ntoys):
        toy = rng.poisson(expected).astype(float)
        scan = q0_scan(profiler, toy, templates, mu_bounds)
        ups.append(upcrossings(scan["z_local"], z0))
        zmax.append(float(scan["z_local"].max()))
    return {"mean_upcrossings": float(np.mean(ups)), "z0": z0, "ntoys": ntoys, "z_max": zmax}


# --- measurement ------------------------------------------------------------------------------------

def measure_mass(profiler: Profiler, counts: np.ndarray, template_at: Callable[[float], np.ndarray],
                 m_best: float, width: float, m_range: tuple[float, float], mu_max: float, step: float = 1.0) -> dict:
    """Profile −2ΔlnL in the signal mass around ``m_best``: minimum, ±1σ crossings, μ̂ and σ_μ there."""
    lo, hi = max(m_range[0], m_best - 3 * width), min(m_range[1], m_best + 3 * width)
    grid = np.arange(lo, hi + 0.5 * step, step)
    nlls, mus = [], []
    for m in grid:
        t = template_at(float(m))
        mu, err, _ = profiler.fit_mu(counts, t, (0.0, mu_max))
        nlls.append(float(profiler.profile_nll(counts, t, np.array([mu]))[0]))
        mus.append((mu, err))
    nlls = np.array(nlls)
    d2 = nlls - nlls.min()
    i = int(np.argmin(nlls))
    if 0 < i < len(grid) - 1:  # parabola through the three lowest points
        y0, y1, y2 = d2[i - 1], d2[i], d2[i + 1]
        denom = y0 - 2 * y1 + y2
        shift = 0.5 * (y0 - y2) / denom * step if denom > 0 else 0.0
    else:
        shift = 0.0
    m_hat = float(grid[i] + shift)
    err = 0.5 * (_crossing(grid, d2, i, -1) + _crossing(grid, d2, i, +1))
    t = template_at(m_hat)
    mu, mu_err, name = profiler.fit_mu(counts, t, (0.0, mu_max))
    return {"mass_gev": m_hat, "mass_err_gev": err, "cross_section_pb": float(mu),
            "cross_section_err_pb": float(mu_err), "family": name, "grid": grid, "delta_2nll": d2}


def _crossing(grid: np.ndarray, d2: np.ndarray, i: int, direction: int) -> float:
    """Distance from grid[i] to where −2ΔlnL first reaches 1 going in ``direction`` (linear interpolation)."""
    j = i
    while 0 <= j + direction < len(grid) and d2[j + direction] < 1.0:
        j += direction
    k = j + direction
    if not 0 <= k < len(grid):
        return float(abs(grid[j] - grid[i]))  # interval reaches the scan edge
    frac = (1.0 - d2[j]) / (d2[k] - d2[j]) if d2[k] != d2[j] else 0.0
    return float(abs(grid[j] + frac * (grid[k] - grid[j]) - grid[i]))


def require_positive(counts: np.ndarray, what: str) -> None:
    """Reject empty spectra with a clear message."""
    if np.sum(counts) <= 0:
        raise AnalysisError(f"{what}: no selected events in the fit range")
