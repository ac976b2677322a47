"""The statistics core's likelihood protocol: Python-function and iminuit-cost likelihoods in ``stats.fit.fit``."""

from __future__ import annotations

import numpy as np
import pytest
from iminuit.cost import ExtendedBinnedNLL

from analysis.stats.errors import StatsError
from analysis.stats.fit import fit
from analysis.stats.parametric import (
    CostLikelihood,
    FittableLikelihood,
    FunctionLikelihood,
)


def test_function_likelihood_gaussian_mean_exact():
    """−2lnL = Σ((x−μ)/σ)²: μ̂ = sample mean, HESSE = MINOS = σ/√n (analytic), POI by name."""
    x = np.random.default_rng(1).normal(3.0, 2.0, 400)
    lh = FunctionLikelihood(lambda p, d: float(np.sum(((d - p[0]) / 2.0) ** 2)), ["mu"], [0.0], data=x, poi="mu")
    assert isinstance(lh, FittableLikelihood)
    r = fit(lh, minos=["mu"])
    assert r.quality.ok and r.poi_index == 0
    assert r.bestfit[0] == pytest.approx(x.mean(), abs=1e-6)
    assert r.uncertainty[0] == pytest.approx(2.0 / 20.0, rel=1e-6)
    lo, hi = r.minos["mu"]
    assert (-lo, hi) == (pytest.approx(0.1, rel=1e-5), pytest.approx(0.1, rel=1e-5))
    # other data through the fit's data argument
    r2 = fit(lh, data=x + 1.0, hesse=False)
    assert r2.bestfit[0] == pytest.approx(x.mean() + 1.0, abs=1e-6)


def test_cost_likelihood_toys_and_bounds():
    """ExtendedBinnedNLL wrapped: a fit on other counts equals a cost built on them; the deviance is −2lnL."""
    xe = np.linspace(0.0, 10.0, 21)
    rng = np.random.default_rng(4)
    n = np.histogram(rng.exponential(3.0, 3000), xe)[0].astype(float)
    toy = rng.poisson(n).astype(float)

    def cdf(x, norm, tau):
        return norm * -np.expm1(-x / tau)

    lh = CostLikelihood(ExtendedBinnedNLL(n, xe, cdf), [2000.0, 2.0], bounds=[(0.0, 1e5), (0.1, 100.0)], poi="norm")
    assert lh.labels == ["norm", "tau"]
    on_toy = fit(lh, data=toy)
    fresh = fit(CostLikelihood(ExtendedBinnedNLL(toy, xe, cdf), [2000.0, 2.0], bounds=[(0.0, 1e5), (0.1, 100.0)]))
    np.testing.assert_allclose(on_toy.bestfit, fresh.bestfit, rtol=1e-6)
    assert on_toy.twice_nll == pytest.approx(fresh.twice_nll, abs=1e-8)
    best = fit(lh).bestfit
    assert cdf(xe[-1], *best) == pytest.approx(n.sum(), rel=1e-5)  # extended ML: expected total = observed total


def test_minimum_on_a_bound_is_not_a_stall():
    """A start at a constrained minimum (slope pointing out of the range) is a good fit, not 'stalled'."""
    lh = FunctionLikelihood(lambda p, d: float((p[0] + 1.0) ** 2 + (p[1] - 2.0) ** 2), ["a", "b"], [0.0, 0.0],
                            bounds=[(0.0, 5.0), (-10.0, 10.0)])
    r = fit(lh, init=[0.0, 2.0], hesse=False)
    assert not r.quality.stalled_at_start and r.quality.ok
    assert r.bestfit[0] == pytest.approx(0.0, abs=1e-3) and r.quality.at_bounds == ["a"]


def test_bad_definitions_are_stats_errors():
    """Mismatched names/start/bounds and inverted bounds are one-line StatsErrors naming the problem."""
    f = lambda p, d: 0.0
    with pytest.raises(StatsError, match="init has shape"):
        FunctionLikelihood(f, ["a", "b"], [0.0])
    with pytest.raises(StatsError, match="lower bound"):
        FunctionLikelihood(f, ["a"], [0.0], bounds=[(1.0, 0.0)])
    with pytest.raises(StatsError, match="unique"):
        FunctionLikelihood(f, ["a", "a"], [0.0, 0.0])


def test_undefined_region_is_infinitely_unlikely_not_a_simplex_fallback():
    """A line search stepping where −2 ln L is NaN (e.g. a negative yield) steps back and MIGRAD goes on.

    f = 2(eᵃ − 5a) + (b − 1)² + (c + 1)² + ab/2, undefined for a > 3: from a = 0 Newton's first step (to a ≈ 4)
    lands in the undefined region. With NaN handed to Minuit the search produced NaN parameters and iminuit
    fell back to SIMPLEX (111 calls, one gradient); as +inf the fit converges on the gradient.
    Exact minimum: c = −1, b = 1 − a/4, 2eᵃ − 10 + (1 − a/4)/2 = 0.
    """
    from scipy.optimize import brentq

    def f(p, _):
        if p[0] > 3:
            return float("nan")
        return float(2 * (np.exp(p[0]) - 5 * p[0]) + (p[1] - 1) ** 2 + (p[2] + 1) ** 2 + 0.5 * p[1] * p[0])

    def g(p, _):
        return np.array([2 * np.exp(p[0]) - 10 + 0.5 * p[1], 2 * (p[1] - 1) + 0.5 * p[0], 2 * (p[2] + 1)])

    lh = FunctionLikelihood(f, ["a", "b", "c"], [0.0, 0.0, 0.0], bounds=[(-5, 5)] * 3, grad=g)
    r = fit(lh, retry=False)
    a = brentq(lambda a: 2 * np.exp(a) - 10 + 0.5 * (1 - a / 4), 0, 3)
    assert r.quality.ok and r.quality.n_nan >= 1  # the undefined evaluations are still counted
    assert r.bestfit == pytest.approx([a, 1 - a / 4, -1.0], abs=1e-3)  # EDM goal 2·10⁻⁴
    assert r.n_fcn < 80  # SIMPLEX alone took over 100 calls


def test_compilation_cache_switch_and_location(monkeypatch, tmp_path):
    """``ANA_JAX_CACHE=0`` turns the on-disk cache of compiled likelihoods off without touching anything; before
    JAX is imported the settings go into the environment variables JAX reads at import."""
    import os
    import sys

    from analysis.stats.likelihood import enable_compilation_cache

    monkeypatch.setenv("ANA_JAX_CACHE", "0")
    monkeypatch.setenv("ANA_CACHE_DIR", str(tmp_path / "c"))
    assert enable_compilation_cache() is None and not (tmp_path / "c").exists()
    monkeypatch.setenv("ANA_JAX_CACHE", "1")
    monkeypatch.delitem(sys.modules, "jax", raising=False)  # as in a fresh `ana` process
    for name in ("JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS",
                 "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"):
        monkeypatch.setenv(name, "")  # recorded, so that what the call writes is undone after the test
        monkeypatch.delenv(name)
    assert enable_compilation_cache() == tmp_path / "c" / "jax" and (tmp_path / "c" / "jax").is_dir()
    assert os.environ["JAX_COMPILATION_CACHE_DIR"] == str(tmp_path / "c" / "jax")
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "own"))  # the user's own cache is kept
    assert enable_compilation_cache() == tmp_path / "own"
