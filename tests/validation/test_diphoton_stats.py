"""Statistical behaviour on binned universes (fast path: Poisson spectra from a known truth, no CSV).

Truth: a power-law background of ~2000 events on 300–1500 GeV and Gaussian-core signal templates
(σ_m = 30 GeV) — the shapes of the generated diphoton samples — independent of any fit in the code.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from analysis.resonance import likelihood as lk
from analysis.resonance import limits as lim
from analysis.resonance.signal_model import SignalModel

EDGES = np.arange(300.0, 1510.0, 10.0)
# (ln N, p) of the catalogue's power law (m/m_lo)^p: the same truth m^-4.6 as before the background tables were
# merged (the search's old table wrote it as x^-p with p = +4.6, x = m/√s)
TRUE_THETA = np.array([np.log(2000.0), -4.6])
POWERLAW = lk.search_family("powerlaw")
GRID = np.arange(500.0, 1001.0, 20.0)


def truth_model() -> tuple[lk.ParametricModel, np.ndarray, SignalModel]:
    """True background expectation and a Gaussian-core signal model (8.5 selected events per pb)."""
    model = lk.ParametricModel(EDGES, POWERLAW)
    b = model.background(TRUE_THETA)
    masses = np.array([500.0, 750.0, 1000.0])
    params = {"mean": masses, "sigma": np.full(3, 30.0), "alpha_l": np.full(3, 5.0), "n_l": np.full(3, 10.0),
              "alpha_r": np.full(3, 5.0), "n_r": np.full(3, 10.0)}
    signal = SignalModel(masses, params, np.full(3, 1.0), lumi_pb=50.0, filter_efficiency=0.17)
    return model, b, signal


def test_signal_template_is_gaussian_bin_integral() -> None:
    """Template = yield × Gaussian bin integrals (independent scipy.stats.norm), interpolated mass included."""
    _, _, signal = truth_model()
    t = signal.template(630.0, EDGES)
    ref = 50.0 * 0.17 * np.diff(stats.norm.cdf(EDGES, 630.0, 30.0))
    np.testing.assert_allclose(t, ref, atol=1e-6 * ref.max())


def test_background_only_universes_look_elsewhere() -> None:
    """40 background-only universes: no discovery; evidence and Z≥2 rates match the Gross–Vitells expectation."""
    model, b, signal = truth_model()
    templates = np.array([signal.template(m, EDGES) for m in GRID])
    bounds = lk.mu_bounds_for(b, templates, np.ones(len(b), bool))
    rng = np.random.default_rng(2024)
    zmax, ups = [], []
    for _ in range(40):
        counts = rng.poisson(b).astype(float)
        prof = lk.ParametricModel(EDGES, POWERLAW, theta0=TRUE_THETA)
        scan = lk.q0_scan(prof, counts, templates, bounds)
        zmax.append(scan["z_local"].max())
        ups.append(lk.upcrossings(scan["z_local"], 1.0))
    zmax = np.array(zmax)
    n_up = float(np.mean(ups))
    assert 0.5 < n_up < 10  # a 500 GeV range with 30 GeV resolution: a handful of effective trials
    assert np.all(zmax < 5.0)  # no discovery
    for level in (2.0, 3.0):
        p_expect = lk.global_significance(level, n_up)[0]
        k = int(np.sum(zmax >= level))
        # observed count inside the central 99.8 % binomial interval of the look-elsewhere expectation
        lo, hi = stats.binom.ppf([0.001, 0.999], len(zmax), p_expect)
        assert lo <= k <= hi, (level, k, p_expect)
    # the global significance of the largest fluctuation is always below its local one
    z_loc = float(zmax.max())
    assert lk.global_significance(z_loc, n_up)[1] < z_loc


def test_weak_signal_limit_coverage() -> None:
    """Observed 95 % CLs limit at the true mass exceeds the true cross-section in ≥ 95 % of 80 weak-signal universes."""
    model, b, signal = truth_model()
    m_true = 760.0
    t = signal.template(m_true, EDGES)
    bounds = tuple(lk.mu_bounds_for(b, t[None, :], np.ones(len(b), bool))[0])
    prof0 = lk.ParametricModel(EDGES, POWERLAW, theta0=TRUE_THETA)
    sa = lim.sigma_asimov(prof0, b, t)
    exp = lim.expected_limits(sa)
    mu_true = 0.6 * exp[0]
    rng = np.random.default_rng(99)
    covered = []
    for _ in range(80):
        counts = rng.poisson(b + mu_true * t).astype(float)
        prof = lk.ParametricModel(EDGES, POWERLAW, theta0=TRUE_THETA)
        covered.append(lim.observed_limit(prof, counts, t, sa, bounds)["limit"] >= mu_true)
    assert np.mean(covered) >= 0.95


def test_expected_limit_bands_ordered_and_match_formula() -> None:
    """Bands: μ_N = σ_A(Φ⁻¹(1−0.05Φ(N)) + N); median = 1.96 σ_A; ordered −2 < −1 < 0 < 1 < 2."""
    e = lim.expected_limits(2.0)
    assert e[0] == pytest.approx(2.0 * stats.norm.ppf(0.975))
    assert e[-2] < e[-1] < e[0] < e[1] < e[2]
    # σ_A from the Asimov spectrum equals the profiled Fisher-information error on μ (Poisson, all bins),
    # checked where s ≪ b per bin so that the likelihood is quadratic up to the limit
    model, _, signal = truth_model()
    theta = np.array([np.log(50000.0), -4.6])
    b = model.background(theta)
    t = signal.template(750.0, EDGES)
    prof = lk.ParametricModel(EDGES, POWERLAW, theta0=theta)
    derivs = [t]
    for k in range(len(theta)):
        h = np.zeros_like(theta)
        h[k] = 1e-5
        derivs.append((model.background(theta + h) - model.background(theta - h)) / 2e-5)
    d = np.array(derivs)
    fisher = d @ np.diag(1.0 / b) @ d.T
    sigma_profiled = np.sqrt(np.linalg.inv(fisher)[0, 0])
    sigma_fixed_bkg = 1.0 / np.sqrt(np.sum(t**2 / b))
    assert lim.sigma_asimov(prof, b, t) == pytest.approx(sigma_profiled, rel=0.03)
    assert sigma_profiled > sigma_fixed_bkg  # profiling the background widens the interval


def test_asymptotic_cls_agrees_with_toys() -> None:
    """Toy CLs at the expected limit (high-statistics point) agrees with the asymptotic 0.05."""
    model, _, signal = truth_model()
    theta = np.array([np.log(20000.0), -4.6])
    b = model.background(theta)
    t = signal.template(600.0, EDGES)
    prof = lk.ParametricModel(EDGES, POWERLAW, theta0=theta)
    sa = lim.sigma_asimov(prof, b, t)
    mu = lim.expected_limits(sa)[0]
    bounds = tuple(lk.mu_bounds_for(b, t[None, :], np.ones(len(b), bool))[0])
    res = lim.toy_cls(prof, b, t, mu, sa, bounds, ntoys=300, seed=5)
    assert res["cls_asymptotic"] == pytest.approx(0.05, rel=1e-6)
    assert abs(res["cls_toys"] - res["cls_asymptotic"]) < 3 * res["cls_toys_err"] + 0.01
    assert abs(res["clb_toys"] - 0.5) < 0.1
