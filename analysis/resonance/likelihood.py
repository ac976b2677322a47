"""Binned Poisson S+B likelihood with a parametric falling background, profile-likelihood scans and measurement.

Model per bin i: ν_i = μ·s_i(m_X) + b_i(θ), with μ the signal cross-section in pb and s_i the expected
signal counts per pb. The background is N·∫_bin f / ∫_range f for a smooth family f; bins outside
``mask`` (e.g. the blinded window) do not enter the likelihood.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from iminuit import Minuit
from scipy import stats

from analysis.errors import AnalysisError
from analysis.stats.asymptotics import asimov_z, z_from_p  # noqa: F401  (re-exported: one formula catalogue)
from analysis.stats.gof import poisson_deviance

SQRT_S_GEV = 14000.0


@dataclass(frozen=True)
class Family:
    """One background function: log f(m; p) with starting values."""

    name: str
    start: tuple[float, ...]
    logf: Callable[[np.ndarray, np.ndarray], np.ndarray]

    @property
    def npar(self) -> int:
        """Number of shape parameters (the normalisation is extra)."""
        return len(self.start)


def _x(m: np.ndarray) -> np.ndarray:
    return m / SQRT_S_GEV


FAMILIES: dict[str, Family] = {
    "powerlaw": Family("powerlaw", (4.0,), lambda m, p: -p[0] * np.log(_x(m))),
    "expo": Family("expo", (-8.0,), lambda m, p: p[0] * _x(m) * 10.0),
    "dijet2": Family("dijet2", (5.0, 4.0), lambda m, p: p[0] * np.log1p(-_x(m)) - p[1] * np.log(_x(m))),
    "expo2": Family("expo2", (-10.0, 1.0), lambda m, p: 10 * p[0] * _x(m) + 100 * p[1] * _x(m) ** 2),
    "dijet3": Family(
        "dijet3", (5.0, 4.0, 0.0),
        lambda m, p: p[0] * np.log1p(-_x(m)) - (p[1] + p[2] * np.log(_x(m))) * np.log(_x(m)),
    ),
}
# order of complexity for the choice on simulation
FAMILY_ORDER = ("expo", "powerlaw", "dijet2", "expo2", "dijet3")


class Profiler(Protocol):
    """What the statistics need from a background model (parametric or discrete-profiling envelope).

    ``profile_nll`` returns −2lnL (up to a constant) profiled over the background at each μ."""

    def profile_nll(self, counts: np.ndarray, signal: np.ndarray, mu: np.ndarray) -> np.ndarray: ...

    def fit_mu(self, counts: np.ndarray, signal: np.ndarray, mu_bounds: tuple[float, float]) -> tuple[float, float, str]: ...


@dataclass
class FitResult:
    """Best-fit values of one likelihood fit."""

    mu: float
    mu_err: float
    theta: np.ndarray
    nll: float
    valid: bool


@dataclass
class ParametricModel:
    """Binned Poisson likelihood with one background family over ``edges``; ``mask`` selects the bins used."""

    edges: np.ndarray
    family: Family
    mask: np.ndarray | None = None
    theta0: np.ndarray | None = None
    _nodes: np.ndarray = field(init=False, repr=False)
    _cache: dict = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.edges = np.asarray(self.edges, dtype=float)
        nb = len(self.edges) - 1
        self.mask = np.ones(nb, bool) if self.mask is None else np.asarray(self.mask, bool)
        # Simpson nodes (5 per bin) for the bin integrals of f
        lo, hi = self.edges[:-1], self.edges[1:]
        frac = np.linspace(0.0, 1.0, 5)
        self._nodes = lo[:, None] + (hi - lo)[:, None] * frac[None, :]
        self._simpson = np.array([1, 4, 2, 4, 1], float) / 12.0 * (hi - lo)[:, None]

    @property
    def name(self) -> str:
        """Name of the background family."""
        return self.family.name

    def shape(self, p: np.ndarray) -> np.ndarray:
        """Bin fractions of the background (sum to 1 over all bins of the range)."""
        logf = self.family.logf(self._nodes, p)
        logf = logf - np.max(logf)
        integ = np.sum(np.exp(logf) * self._simpson, axis=1)
        return integ / np.sum(integ)

    def background(self, theta: np.ndarray) -> np.ndarray:
        """Expected background per bin; theta = (ln N, shape...)."""
        return np.exp(theta[0]) * self.shape(np.asarray(theta[1:]))

    def _nll(self, counts: np.ndarray, signal: np.ndarray | None, mu: float, theta: np.ndarray) -> float:
        nu = self.background(theta)
        if signal is not None:
            nu = nu + mu * signal
        m = self.mask
        nu_m, n_m = nu[m], counts[m]
        bad = nu_m <= 1e-12
        if np.any(bad):  # keep the minimiser away from unphysical negative expectations
            return float(1e12 * (1.0 + np.sum(1e-12 - nu_m[bad])))
        return float(np.sum(nu_m - n_m * np.log(nu_m)))

    def start(self, counts: np.ndarray) -> np.ndarray:
        """Starting parameters: stored theta0 or family defaults with the observed normalisation."""
        if self.theta0 is not None:
            return np.array(self.theta0, float)
        p = np.array(self.family.start, float)
        frac = self.shape(p)[self.mask].sum()
        return np.concatenate([[np.log(max(counts[self.mask].sum(), 1.0) / max(frac, 1e-12))], p])

    def fit(
        self,
        counts: np.ndarray,
        signal: np.ndarray | None = None,
        mu: float | None = 0.0,
        mu_bounds: tuple[float, float] = (-np.inf, np.inf),
        theta_start: np.ndarray | None = None,
    ) -> FitResult:
        """Minimise the NLL; ``mu=None`` floats the signal strength (pb), else it is fixed."""
        counts = np.asarray(counts, float)
        th0 = self.start(counts) if theta_start is None else np.asarray(theta_start, float)
        float_mu = mu is None and signal is not None
        npar = len(th0)

        def f(x: np.ndarray) -> float:
            if float_mu:
                return self._nll(counts, signal, x[0], x[1:])
            return self._nll(counts, signal, 0.0 if mu is None else mu, x)

        x0 = np.concatenate([[0.0], th0]) if float_mu else th0
        m = Minuit(f, x0)
        m.errordef = Minuit.LIKELIHOOD
        m.strategy = 1
        if float_mu:
            m.limits[0] = mu_bounds
        m.migrad(ncall=4000)
        if not m.valid:
            m.migrad(ncall=8000)
        vals = np.array(m.values)
        mu_hat, mu_err = (float(vals[0]), float(m.errors[0])) if float_mu else (float(mu or 0.0), 0.0)
        theta = vals[1:] if float_mu else vals
        assert len(theta) == npar
        return FitResult(mu_hat, mu_err, theta, float(m.fval), bool(m.valid))

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
        return np.array([2.0 * self.fit(counts, signal, float(x), theta_start=start).nll for x in np.atleast_1d(mu)])

    def fit_mu(self, counts: np.ndarray, signal: np.ndarray, mu_bounds: tuple[float, float]) -> tuple[float, float, str]:
        """Best-fit μ and its HESSE error with the background profiled."""
        start = self.bonly_theta(counts)
        r = self.fit(counts, signal, None, mu_bounds=mu_bounds, theta_start=start)
        return r.mu, r.mu_err, self.family.name


def goodness_of_fit(counts: np.ndarray, expected: np.ndarray, mask: np.ndarray, npar: int) -> tuple[float, int, float]:
    """Poisson deviance (the core's saturated-model χ²), degrees of freedom and χ² p-value over the masked bins."""
    dev = poisson_deviance(expected[mask], counts[mask])
    ndof = int(mask.sum() - npar - 1)
    return dev, ndof, float(stats.chi2.sf(dev, max(ndof, 1)))


def choose_family(edges: np.ndarray, counts: np.ndarray, mask: np.ndarray | None = None,
                  candidates: tuple[str, ...] = FAMILY_ORDER, pvalue: float = 0.05) -> tuple[str, list[dict]]:
    """Simplest family whose fit to (unweighted) simulation has goodness-of-fit p ≥ ``pvalue`` (else best p)."""
    report = []
    for name in candidates:
        model = ParametricModel(edges, FAMILIES[name], mask)
        r = model.fit(counts)
        dev, ndof, p = goodness_of_fit(np.asarray(counts, float), model.background(r.theta), model.mask, FAMILIES[name].npar)
        report.append({"family": name, "deviance": dev, "ndof": ndof, "pvalue": p, "valid": r.valid})
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
