"""The resonance fits run on the statistics core: numeric cross-checks against iminuit used directly.

Truth for each check is an independent computation: iminuit's ``ExtendedBinnedNLL`` with an analytic CDF and
``Minuit`` at tight tolerance (not the code under test), or a fine fixed-μ scan of the profile likelihood.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from iminuit import Minuit
from iminuit.cost import ExtendedBinnedNLL
from scipy import stats

from analysis.resonance import families as F
from analysis.resonance import likelihood as lk
from analysis.resonance.bkgfit import binned_data, fit_function, fit_sb
from analysis.stats.fit import FitResult as CoreFitResult

EDGES = np.linspace(100.0, 180.0, 41)
BLIND = (115.0, 135.0)
LO, HI = EDGES[0], EDGES[-1]


def _exp_counts(seed: int, n: float = 6000.0, slope: float = -2.7, signal: float = 0.0) -> np.ndarray:
    t = (EDGES - LO) / (HI - LO)
    p = np.diff(np.expm1(slope * t)) / np.expm1(slope)
    s = np.diff(stats.norm.cdf(EDGES, 125.0, 2.0))
    return np.random.default_rng(seed).poisson(n * p + signal * s).astype(float)


def _reference_minuit(cost, **start) -> Minuit:
    m = Minuit(cost, **start)
    m.strategy = 2
    m.tol = 1e-6
    m.migrad()
    m.hesse()
    assert m.valid and m.fmin.has_accurate_covar
    return m


def test_background_fit_equals_extended_binned_nll_with_mask():
    """exp1 on a blinded histogram: slope, its HESSE error, deviance and sideband normalisation equal those of
    iminuit's ExtendedBinnedNLL (mask = sidebands, analytic exponential CDF) minimised by Minuit directly."""
    counts = _exp_counts(3)
    data = binned_data(EDGES, counts, BLIND)
    fit = fit_function(F.exponential(1), data)
    assert isinstance(fit.core, CoreFitResult) and fit.quality.ok

    def scaled_cdf(xe, n, a):  # N events over the whole range, density ∝ exp(a t)
        return n * np.expm1(a * (xe - LO) / (HI - LO)) / np.expm1(a)

    cost = ExtendedBinnedNLL(counts, EDGES, scaled_cdf)
    cost.mask = data.grid.mask
    ref = _reference_minuit(cost, n=counts.sum(), a=-2.0)
    assert fit.params[0] == pytest.approx(ref.values["a"], rel=1e-4)
    assert fit.errors[0] == pytest.approx(ref.errors["a"], rel=1e-4)
    assert fit.nll == pytest.approx(ref.fval, abs=1e-5)
    frac_fit_bins = np.diff(scaled_cdf(EDGES, 1.0, ref.values["a"]))[data.grid.mask].sum()
    assert fit.norm == pytest.approx(ref.values["n"] * frac_fit_bins, rel=1e-4)


def test_signal_plus_background_fit_equals_extended_binned_nll():
    """Free-μ S+B fit of exp1 + a Gaussian signal over the full range: μ̂, its error, N and −2lnL equal those
    of ExtendedBinnedNLL + Minuit on the same model."""
    counts = _exp_counts(5, signal=150.0)
    grid = F.make_grid(EDGES)
    signal = np.diff(stats.norm.cdf(EDGES, 125.0, 2.0))  # events per unit μ

    def scaled_cdf(xe, norm, mu, a):
        return norm * np.expm1(a * (xe - LO) / (HI - LO)) / np.expm1(a) + mu * stats.norm.cdf(xe, 125.0, 2.0)

    ref = _reference_minuit(ExtendedBinnedNLL(counts, EDGES, scaled_cdf), norm=counts.sum(), mu=0.0, a=-2.0)
    sb = fit_sb(F.exponential(1), grid, counts, signal, start_params=np.array([-2.0]), start_norm=counts.sum(),
                start_mu=0.0, mu_bounds=(-500.0, 2000.0))
    assert sb.core.quality.ok
    # the core normalises the background over the fit bins (here the full range): N is the events in it
    norm_in_range = ref.values["norm"]
    assert sb.mu == pytest.approx(ref.values["mu"], rel=1e-4)
    assert sb.mu_error == pytest.approx(ref.errors["mu"], rel=1e-3)
    assert sb.norm == pytest.approx(norm_in_range, rel=1e-4)
    assert sb.params[0] == pytest.approx(ref.values["a"], rel=1e-4)
    assert sb.nll == pytest.approx(ref.fval, abs=1e-5)


def test_parametric_mu_hat_and_minos_interval_match_profile_scan():
    """ParametricModel (power law, search catalogue) S+B fit: MINOS interval of μ equals the Δ(−2lnL) = 1
    crossings of a fine fixed-μ profile scan within 1 % of its width; μ̂ sits at the scan's minimum."""
    edges = np.arange(300.0, 1510.0, 10.0)
    model = lk.ParametricModel(edges, lk.search_family("powerlaw"))
    b = model.background(np.array([np.log(3000.0), -4.6]))
    signal = 8.5 * np.diff(stats.norm.cdf(edges, 700.0, 30.0))
    counts = np.random.default_rng(12).poisson(b + 6.0 * signal).astype(float)
    r = model.fit(counts, signal, None, mu_bounds=(-20.0, 100.0), minos=True)
    assert r.quality.ok
    lo, hi = r.core.minos["mu"]
    assert lo < 0 < hi
    grid = np.linspace(r.mu + 1.6 * lo, r.mu + 1.6 * hi, 161)
    prof = model.profile_nll(counts, signal, grid)
    delta = prof - prof.min()
    i = int(np.argmin(delta))
    assert abs(grid[i] - r.mu) <= grid[1] - grid[0]
    assert delta.min() == pytest.approx(0.0, abs=1e-3) and r.twice_nll == pytest.approx(prof.min(), abs=1e-3)
    left = np.interp(1.0, delta[:i + 1][::-1], grid[:i + 1][::-1])
    right = np.interp(1.0, delta[i:], grid[i:])
    width = right - left
    assert r.mu + lo == pytest.approx(left, abs=0.01 * width)
    assert r.mu + hi == pytest.approx(right, abs=0.01 * width)
    # HESSE is the symmetric approximation of the same curvature
    assert r.mu_err == pytest.approx(0.5 * width, rel=0.05)


def test_catalogue_dijet_uses_data_sqrt_s():
    """The search's dijet2 is the catalogue's dijet at order 2 with z = m/√s of the data: at √s = 14 TeV it
    reproduces the generator's (1 − m/14000)^a (m/14000)^−b exactly; at 13 TeV the same parameters give another
    shape (by ~0.09 % at 1.5 TeV: for m ≪ √s a change of √s is nearly a rescaling of p1)."""
    edges = np.arange(300.0, 1510.0, 10.0)
    grid = F.make_grid(edges)
    a, b = 9.0, 4.0
    fine = np.linspace(edges[0], edges[-1], 200001)
    x = fine / 14000.0
    pdf = (1 - x) ** a * x ** (-b)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (pdf[1:] + pdf[:-1]) * np.diff(fine))])
    truth = np.diff(np.interp(edges, fine, cdf))
    truth /= truth.sum()
    spec = lk.search_family("dijet2", 14000.0)
    z_hi = edges[-1] / 14000.0
    # catalogue parameters: p1 scaled by |ln(1 − z_hi)|, ln z centred (a change of normalisation only)
    p = np.array([a * abs(np.log1p(-z_hi)), b])
    np.testing.assert_allclose(spec.bin_fractions(p, grid), truth, rtol=1e-6)
    other = lk.search_family("dijet2", 13000.0).bin_fractions(p, grid)
    assert 5e-4 < np.max(np.abs(other / truth - 1)) < 2e-3


def test_degenerate_fit_is_flagged_and_warned(caplog):
    """An exponential spectrum: pow3 (two power laws) can only reproduce pow1 with both slopes equal, where the
    mixture fraction is undetermined (singular Hessian).  Its deviance equals pow1's, and the fit-quality guard
    says so — in the f-test record, the envelope's fit_quality block and one warning line."""
    rng = np.random.default_rng(5)
    x = 100 + rng.exponential(30.0, 20000)
    counts = np.histogram(x[x < 180], EDGES)[0].astype(float)
    from analysis.resonance.envelope import build_envelope

    with caplog.at_level("WARNING"):
        env = build_envelope(EDGES, counts, blind=BLIND, seed=0, n_toys=200)
    pow1, pow3 = env.ftests["powerlaw"].orders[1].fit, env.ftests["powerlaw"].orders[3].fit
    assert pow3.params[1] == pytest.approx(pow1.params[0], abs=0.01)
    assert pow3.params[2] == pytest.approx(pow1.params[0], abs=0.01)
    assert pow3.nll == pytest.approx(pow1.nll, abs=1e-4)
    assert pow1.quality.ok and not pow3.quality.ok
    assert env.ftests["powerlaw"].orders[3].to_dict()["fit_quality"]["covariance"] == "forced positive-definite"
    block = env.to_dict()["fit_quality"]
    assert block["ok"] is False and list(block["background_fits_not_ok"]) == ["pow3"]
    lines = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(lines) == 1 and "pow3" in lines[0] and "fit-quality guard" in lines[0]


def test_search_expo2_is_exponential_of_a_quadratic():
    """The search's expo2 (catalogue expopoly2) integrates exp(a1 t + a2 t²) per bin (scipy quad, independent) and
    contains expo (exponential order 1) exactly at a2 = 0."""
    from scipy import integrate

    grid = F.make_grid(EDGES)
    a1, a2 = -3.1, 0.8
    dens = lambda x: np.exp(a1 * (x - LO) / (HI - LO) + a2 * ((x - LO) / (HI - LO)) ** 2)
    truth = np.array([integrate.quad(dens, lo, hi)[0] for lo, hi in itertools.pairwise(EDGES)])
    expo2 = lk.search_family("expo2")
    np.testing.assert_allclose(expo2.bin_fractions(np.array([a1, a2]), grid), truth / truth.sum(), rtol=1e-8)
    expo = lk.search_family("expo")
    np.testing.assert_allclose(expo2.bin_fractions(expo2.embed(expo, np.array([a1])), grid),
                               expo.bin_fractions(np.array([a1]), grid), rtol=1e-12)
