"""CLs 95 % CL upper limits on the signal cross-section: asymptotic formulae (q̃_μ) and a toy cross-check.

Asymptotics follow Cowan, Cranmer, Gross, Vitells (arXiv:1007.1727): with σ_A from the background-only
Asimov spectrum, q_A(μ) = μ²/σ_A², expected limits μ_N = σ_A (Φ⁻¹(1 − αΦ(N)) + N), and the observed
CLs = CL_s+b/CL_b from the profiled test statistic q̃_μ of the data.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize

from analysis.resonance.likelihood import Profiler
from analysis.stats.asymptotics import BANDS, cls_from_q, expected_limits  # noqa: F401  (the core's formulae)


def sigma_asimov(profiler: Profiler, asimov: np.ndarray, signal: np.ndarray, mu_ref: float | None = None) -> float:
    """σ_A of μ̂ from the background-only Asimov spectrum: μ_ref/√q_A(μ_ref)."""
    if mu_ref is None:
        b = np.clip(asimov, 1e-9, None)
        mu_ref = 2.0 / np.sqrt(np.sum(signal**2 / b))
    nll = profiler.profile_nll(asimov, signal, np.array([0.0, mu_ref]))
    q_a = max(float(nll[1] - nll[0]), 1e-12)
    return float(mu_ref / np.sqrt(q_a))


def qtilde(profiler: Profiler, counts: np.ndarray, signal: np.ndarray, mu: float,
           mu_hat: float, nll_hat: float, nll_zero: float) -> float:
    """q̃_μ for an upper limit (0 if μ̂ > μ; reference μ̂ → 0 when μ̂ < 0)."""
    if mu_hat > mu:
        return 0.0
    nll_mu = float(profiler.profile_nll(counts, signal, np.array([mu]))[0])
    ref = nll_hat if mu_hat >= 0 else nll_zero
    return max(nll_mu - ref, 0.0)


def observed_limit(profiler: Profiler, counts: np.ndarray, signal: np.ndarray, sigma_a: float,
                   mu_bounds: tuple[float, float], alpha: float = 0.05) -> dict:
    """Observed asymptotic CLs upper limit on μ (pb) by root finding CLs(μ) = α."""
    mu_hat, mu_err, _ = profiler.fit_mu(counts, signal, mu_bounds)
    nll = profiler.profile_nll(counts, signal, np.array([mu_hat, 0.0]))
    nll_hat, nll_zero = float(nll[0]), float(nll[1])

    def f(mu: float) -> float:
        q = qtilde(profiler, counts, signal, mu, mu_hat, nll_hat, nll_zero)
        return cls_from_q(q, (mu / sigma_a) ** 2)[0] - alpha

    lo = max(mu_hat, 0.0) + 1e-3 * sigma_a
    hi = max(mu_hat, 0.0) + 2.0 * sigma_a
    while f(hi) > 0 and hi < 1e4 * sigma_a + abs(mu_hat):
        lo, hi = hi, hi * 1.6 + sigma_a
    if f(lo) < 0:
        return {"limit": float(lo), "mu_hat": mu_hat, "mu_err": mu_err}
    limit = optimize.brentq(f, lo, hi, xtol=1e-3 * sigma_a, rtol=1e-4)
    return {"limit": float(limit), "mu_hat": mu_hat, "mu_err": mu_err}


def toy_cls(profiler: Profiler, background: np.ndarray, signal: np.ndarray, mu: float, sigma_a: float,
            mu_bounds: tuple[float, float], ntoys: int, seed: int) -> dict:
    """CLs at μ from Poisson toys (s+b and b-only) for the median background-only outcome vs asymptotics."""
    rng = np.random.default_rng(seed)

    def q_of(counts: np.ndarray) -> float:
        mu_hat, _, _ = profiler.fit_mu(counts, signal, mu_bounds)
        nll = profiler.profile_nll(counts, signal, np.array([max(mu_hat, 0.0), 0.0]))
        return qtilde(profiler, counts, signal, mu, mu_hat, float(nll[0]), float(nll[1]))

    q_sb = np.array([q_of(rng.poisson(background + mu * signal).astype(float)) for _ in range(ntoys)])
    q_b = np.array([q_of(rng.poisson(background).astype(float)) for _ in range(ntoys)])
    q_obs = (mu / sigma_a) ** 2  # the Asimov (median background-only) value of q̃_μ
    clsb = float(np.mean(q_sb >= q_obs))
    clb = float(np.mean(q_b >= q_obs))
    clsb_err = float(np.sqrt(max(clsb * (1 - clsb), 1.0 / ntoys) / ntoys))
    clb_err = float(np.sqrt(max(clb * (1 - clb), 1.0 / ntoys) / ntoys))
    cls = clsb / clb if clb > 0 else float("nan")
    cls_err = float(cls * np.hypot(clsb_err / max(clsb, 1e-12), clb_err / max(clb, 1e-12))) if clb > 0 else float("nan")
    asym = cls_from_q(q_obs, q_obs)
    return {"mu_pb": float(mu), "ntoys": ntoys, "q_obs": q_obs,
            "cls_toys": cls, "cls_toys_err": cls_err, "clsb_toys": clsb, "clb_toys": clb,
            "cls_asymptotic": asym[0], "clsb_asymptotic": asym[1], "clb_asymptotic": asym[2],
            "q_sb_median": float(np.median(q_sb)), "q_b_median": float(np.median(q_b))}
