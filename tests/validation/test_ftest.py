"""Background families, fits, f-test, 2D f-test and envelope against independent truth (seeded toys)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats

from analysis.errors import UserError
from analysis.resonance import families as F
from analysis.resonance.bkgfit import binned_data, fit_function, goodness_of_fit
from analysis.resonance.envelope import build_envelope
from analysis.resonance.ftest import ftest_2d, ftest_family

EDGES = np.linspace(100.0, 180.0, 41)
BLIND = (115.0, 135.0)


def exp_truth(n_events: float, tau: float, edges: np.ndarray = EDGES) -> np.ndarray:
    """Expected counts of N·exp(-(x-100)/τ) truncated to the range (analytic CDF)."""
    cdf = -np.exp(-(edges - edges[0]) / tau)
    p = np.diff(cdf)
    return n_events * p / p.sum()


def bernstein_truth(n_events: float, coeffs: list[float], edges: np.ndarray = EDGES) -> np.ndarray:
    """Expected counts of a Bernstein polynomial in t = (x-lo)/(hi-lo), integrated with scipy.quad."""
    n = len(coeffs) - 1
    lo, hi = edges[0], edges[-1]

    def f(x: float) -> float:
        t = (x - lo) / (hi - lo)
        return sum(c * stats.binom.pmf(i, n, t) for i, c in enumerate(coeffs))

    p = np.array([integrate.quad(f, a, b)[0] for a, b in zip(edges[:-1], edges[1:])])
    return n_events * p / p.sum()


def test_bin_fractions_match_analytic_integrals():
    """exp(a t) bin fractions equal the analytic integral; normalisation is over the unblinded bins only."""
    mask = F.blind_mask(EDGES, BLIND)
    grid = F.make_grid(EDGES, mask)
    a = -3.7
    t = (EDGES - 100.0) / 80.0
    analytic = np.diff(np.exp(a * t))
    analytic /= analytic[mask].sum()
    np.testing.assert_allclose(F.exponential(1).bin_fractions(np.array([a]), grid), analytic, rtol=1e-6)
    # every family: fractions sum to 1 on the fit bins, and the density integrates (quad) to each bin's fraction
    for fam in F.ALL_FAMILIES:
        for order in F.family_orders(fam)[:2]:
            spec = F.get_function(fam, order)
            rng = np.random.default_rng(order)
            params = spec.starts(rng, 1)[-1]
            frac = spec.bin_fractions(params, grid)
            assert frac[mask].sum() == pytest.approx(1.0, abs=1e-12)
            for b in (0, 12, 39):
                quad = integrate.quad(lambda x: spec.density(params, np.array([x]), grid)[0], EDGES[b], EDGES[b + 1])[0]
                assert quad == pytest.approx(frac[b], rel=1e-5), (spec.name, b)


def test_higher_orders_contain_lower_orders():
    """Bernstein degree elevation and dijet's zero parameter reproduce the lower order exactly."""
    grid = F.make_grid(EDGES)
    b2, b5 = F.bernstein(2), F.bernstein(5)
    p2 = np.array([0.4, 0.9])
    np.testing.assert_allclose(b5.bin_fractions(b5.embed(b2, p2), grid), b2.bin_fractions(p2, grid), rtol=1e-10)
    d2, d3 = F.dijet(2), F.dijet(3)
    p = np.array([3.0, 7.0])
    np.testing.assert_allclose(d3.bin_fractions(d3.embed(d2, p), grid), d2.bin_fractions(p, grid), rtol=1e-10)
    assert F.laurent_powers(3) == [-4, -5, -6, -3]
    with pytest.raises(UserError, match="odd"):
        F.exponential(2)
    with pytest.raises(UserError, match="unknown background family"):
        F.canonical_family("spline")


def test_fit_recovers_exponential_slope_on_asimov():
    """On expected counts (no fluctuation) the exp1 fit returns the true slope and −2lnL ≈ 0."""
    tau = 27.0
    data = binned_data(EDGES, exp_truth(5000, tau), BLIND)
    fit = fit_function(F.exponential(1), data)
    assert fit.valid
    assert fit.params[0] == pytest.approx(-80.0 / tau, rel=1e-4)
    assert fit.nll == pytest.approx(0.0, abs=1e-6)
    assert fit.norm == pytest.approx(exp_truth(5000, tau)[data.grid.mask].sum(), rel=1e-12)


def test_goodness_of_fit_asymptotic_and_toys():
    """Dense bins use χ²; sparse bins use toys; a wrong shape gets p < 0.01, a right one does not."""
    rng = np.random.default_rng(11)
    dense = binned_data(EDGES, rng.poisson(exp_truth(4000, 30.0)).astype(float))
    good = goodness_of_fit(fit_function(F.exponential(1), dense), dense)
    bad = goodness_of_fit(fit_function(F.bernstein(1), dense), dense)
    assert good.method == "asymptotic" and good.pvalue > 0.01 and good.ndof == 38
    assert bad.pvalue < 0.01
    sparse = binned_data(EDGES, rng.poisson(exp_truth(120, 30.0)).astype(float))
    gof = goodness_of_fit(fit_function(F.exponential(1), sparse), sparse, n_toys=500)
    assert gof.method == "toys" and gof.n_toys == 500 and 0.01 < gof.pvalue <= 1.0


def test_ftest_exponential_truth_picks_order_one_and_best_fit_reproduces_truth():
    """Toys from a 2-parameter exponential (N, slope): the exponential family truncates at order 1 in most
    toys, and the envelope's best function predicts the blinded-window background within its uncertainty."""
    tau, n_events = 30.0, 3000.0
    truth = exp_truth(n_events, tau)
    centers = 0.5 * (EDGES[1:] + EDGES[:-1])
    window = (centers > BLIND[0]) & (centers < BLIND[1])
    rng = np.random.default_rng(2024)
    truncations, pulls = [], []
    for i in range(10):
        counts = rng.poisson(truth).astype(float)
        data = binned_data(EDGES, counts, BLIND)
        truncations.append(ftest_family(data, "exponential", seed=i, n_toys=200).truncation_order)
        env = build_envelope(EDGES, counts, blind=BLIND, seed=i, n_toys=200)
        best = env.best
        pred = best.expected(env.data.grid)[window].sum()
        # uncertainty: Hesse covariance of the shape propagated numerically + Poisson on the sideband yield
        grad = []
        for k in range(best.n_params):
            step = 1e-4 * max(1.0, abs(best.params[k]))
            up = best.params.copy()
            up[k] += step
            grad.append((best.norm * best.spec.bin_fractions(up, env.data.grid)[window].sum() - pred) / step)
        grad = np.array(grad)
        var = grad @ best.covariance @ grad + pred**2 / best.norm
        pulls.append((pred - truth[window].sum()) / np.sqrt(var))
    assert sum(t == 1 for t in truncations) >= 8, truncations
    pulls = np.array(pulls)
    assert np.all(np.abs(pulls) < 3.5), pulls
    assert abs(pulls.mean()) < 3.0 / np.sqrt(len(pulls)), pulls


def test_ftest_bernstein3_truth_picks_order_three():
    """Toys from a cubic Bernstein polynomial: the Bernstein family truncates at order 3 (lower orders are
    rejected by the f-test, order 4 brings no significant improvement) in most toys, never below 3."""
    truth = bernstein_truth(20000, [1.0, 0.15, 0.9, 0.05])
    rng = np.random.default_rng(7)
    orders = []
    for i in range(8):
        data = binned_data(EDGES, rng.poisson(truth).astype(float))
        res = ftest_family(data, "bernstein", seed=i, n_toys=200)
        orders.append(res.truncation_order)
        assert res.truncation_order in res.envelope_orders
        assert res.orders[2].gof.pvalue < 0.01  # the quadratic is a bad fit and could never be kept
    assert min(orders) >= 3 and sum(o == 3 for o in orders) >= 6, orders


def test_ftest_2d_exponential_times_polynomial():
    """Truth exp(a t)·(1 + 2t): the 2D f-test over (exponential order, Bernstein order) leaves (1, 0)
    by raising the polynomial order and stops at a polynomial order ≥ 1 with a single exponential."""
    t_edges = (EDGES - 100.0) / 80.0
    fine = np.linspace(0, 1, 40001)
    dens = np.exp(-4.0 * fine) * (1.0 + 2.0 * fine)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (dens[1:] + dens[:-1]) * np.diff(fine))])
    p = np.diff(np.interp(t_edges, fine, cdf))
    truth = 30000 * p / p.sum()
    counts = np.random.default_rng(5).poisson(truth).astype(float)
    res = ftest_2d(binned_data(EDGES, counts), ("exponential", "bernstein"), n_toys=200)
    assert res.path[0] == (1, 0)
    assert res.path[1] == (1, 1)
    assert res.truncation_orders[1] >= 1
    assert res.nodes[(1, 0)].gof.pvalue < 0.01 and res.nodes[res.truncation_orders].gof.pvalue > 0.01


def test_sideband_normalisation_ignores_signal_in_window():
    """With a large signal in the blinded window, the prefit background there comes from the sidebands
    (close to the true background), not from the total yield (which includes the signal)."""
    truth = exp_truth(4000, 30.0)
    signal = 400 * np.diff(stats.norm.cdf(EDGES, 125.0, 2.0))
    counts = np.random.default_rng(3).poisson(truth + signal).astype(float)
    env = build_envelope(EDGES, counts, blind=BLIND, n_toys=200)
    norm = env.prefit_normalisation()
    centers = 0.5 * (EDGES[1:] + EDGES[:-1])
    true_window = truth[(centers > BLIND[0]) & (centers < BLIND[1])].sum()
    assert abs(norm["signal_window_events_expected"] - true_window) < 3 * np.sqrt(true_window) + 0.05 * true_window
    assert norm["total_events_expected"] < counts.sum() - 200  # the signal is not absorbed into B


def test_envelope_profile_contract_and_interval():
    """profile_nll is the min over functions of their profiles + c·n_params; fit_mu's interval edges sit at
    Δ(−2lnL) = 1 of that envelope profile; bad shapes are one-line errors."""
    truth = exp_truth(3000, 30.0)
    signal = 60 * np.diff(stats.norm.cdf(EDGES, 125.0, 2.0))
    counts = np.random.default_rng(9).poisson(truth + signal).astype(float)
    env = build_envelope(EDGES, counts, blind=BLIND, correction=1.0, n_toys=200)
    assert env.best is min(env.functions, key=lambda f: f.nll + f.n_params)
    mus = np.array([0.0, 0.5, 1.0, 2.0])
    prof = env.profile_nll(counts, signal, mus)
    manual = np.min([env.function_profile(f, counts, signal, mus) + f.n_params for f in env.functions], axis=0)
    np.testing.assert_allclose(prof, manual, rtol=1e-6, atol=1e-4)
    assert np.shape(env.profile_nll(counts, signal, 1.0)) == ()
    res = env.fit_mu_interval(counts, signal)
    mu, err, name = env.fit_mu(counts, signal)
    assert (mu, name) == (res.mu, res.function) and err == pytest.approx(0.5 * (res.hi - res.lo))
    at = env.profile_nll(counts, signal, np.array([res.lo, res.mu, res.hi]))
    assert at[0] - at[1] == pytest.approx(1.0, abs=0.05)
    assert at[2] - at[1] == pytest.approx(1.0, abs=0.05)
    assert 0.1 < err < 1.0
    # the search calls with a one-sided, unbounded range: same answer when μ̂ is well inside
    mu_inf, err_inf, name_inf = env.fit_mu(counts, signal, (0.0, np.inf))
    assert name_inf == name and mu_inf == pytest.approx(mu, abs=1e-3) and err_inf == pytest.approx(err, rel=0.02)
    with pytest.raises(UserError, match="envelope has 40 bins"):
        env.profile_nll(counts[:-1], signal, 1.0)


def test_bias_study_pulls_through_envelope():
    """≥ 50 toys: exponential background + injected Gaussian signal (μ = 1); the envelope's fitted μ has
    mean pull within ±0.2 and pull width within 0.8–1.2 (benchmarks/bias_study.py runs the larger study)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "bias_study.py"
    spec = importlib.util.spec_from_file_location("bias_study", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    res = module.run_bias_study(n_toys=60, seed=1, truth="exponential")
    assert res["n_toys"] == 60 and res["n_failed"] == 0
    assert abs(res["mean_pull"]) < 0.2, res
    assert 0.8 < res["pull_width"] < 1.2, res


def test_profile_nll_reusing_fit_mu_warm_start_equals_fresh_evaluation():
    """profile_nll after fit_mu with other μ bounds (reusing those free fits as warm starts) equals a
    fresh-cache, point-by-point evaluation with its own free fits."""
    truth = exp_truth(3000, 30.0)
    signal = 60 * np.diff(stats.norm.cdf(EDGES, 125.0, 2.0))
    counts = np.random.default_rng(11).poisson(truth + signal).astype(float)
    env = build_envelope(EDGES, counts, blind=BLIND, correction=1.0, n_toys=200)
    mus = np.array([0.0, 0.7, 1.5, 3.0])
    env.fit_mu(counts, signal, (0.0, np.inf))
    n_cached = len(env._sb_cache)
    fast = env.profile_nll(counts, signal, mus)
    assert len(env._sb_cache) == n_cached  # no second set of free fits
    env._sb_cache.clear()
    slow = np.array([float(env.profile_nll(counts, signal, m)) for m in mus])
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-4)
