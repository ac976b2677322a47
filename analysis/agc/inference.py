"""Histograms → cabinetry templates → pyhf workspace → fit, ranking, scan, significance, limit, plots."""

from __future__ import annotations

import copy
import time
from contextlib import contextmanager
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cabinetry
import jsonschema
import matplotlib.pyplot as plt
import numpy as np
import pyhf
import uproot
from scipy.stats import norm
from threadpoolctl import threadpool_limits

from analysis.errors import AnalysisError
from analysis.plotting import correlation_figure, data_mc_figures, save_figure

log = logging.getLogger(__name__)


@dataclass
class FitOutcome:
    """Everything a fit step produced; cabinetry/pyhf objects are kept, not hidden."""

    config: dict[str, Any]
    workspace: dict[str, Any]
    model: pyhf.pdf.Model
    data: list[float]
    fit_results: cabinetry.fit.FitResults
    ranking: cabinetry.fit.RankingResults | None = None
    scan: cabinetry.fit.ScanResults | None = None
    significance: cabinetry.fit.SignificanceResults | None = None
    limit: cabinetry.fit.LimitResults | None = None
    plots: dict[str, Path] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def poi(self) -> tuple[float, float]:
        """Best-fit POI and its uncertainty."""
        i = self.model.config.poi_index
        return float(self.fit_results.bestfit[i]), float(self.fit_results.uncertainty[i])


def load_config(config_path: str | Path, histograms: str | Path | None = None,
                out_dir: str | Path | None = None) -> dict[str, Any]:
    """Load and validate a cabinetry config; point InputPath at ``histograms`` and templates into ``out_dir``."""
    p = Path(config_path)
    if not p.is_file():
        raise AnalysisError(f"{p}: cabinetry config not found")
    try:
        import yaml

        config = yaml.safe_load(p.read_text())
    except Exception as err:  # yaml errors
        raise AnalysisError(f"{p}: not valid YAML: {err}") from None
    try:
        cabinetry.configuration.validate(config)
    except jsonschema.ValidationError as err:
        where = "/".join(str(x) for x in err.absolute_path) or "<top>"
        raise AnalysisError(f"{p}: fails cabinetry's config schema at {where}: {err.message}") from None
    config = copy.deepcopy(config)
    if histograms is not None:
        from analysis.histio import require_root_file

        hp = require_root_file(histograms)
        pattern = config["General"]["InputPath"].split(":", 1)[1]
        config["General"]["InputPath"] = f"{hp.resolve()}:{pattern}"
    if out_dir is not None:
        config["General"]["HistogramFolder"] = str(Path(out_dir) / "templates")
    return config


def build_workspace(config: dict[str, Any]) -> dict[str, Any]:
    """Collect and post-process templates, then build and validate the pyhf workspace."""
    try:
        cabinetry.templates.collect(config, method="uproot")
    except uproot.KeyInFileError as err:
        raise AnalysisError(f"{err.file_path}: missing histogram {err.key!r} required by the config") from None
    except FileNotFoundError as err:
        raise AnalysisError(f"histogram file not found: {err.filename or err}") from None
    cabinetry.templates.postprocess(config)
    ws = cabinetry.workspace.build(config)
    try:
        pyhf.Workspace(ws)  # validates against pyhf's JSON schema
    except pyhf.exceptions.InvalidSpecification as err:
        raise AnalysisError(f"workspace fails pyhf's schema: {err}") from None
    return ws


def _check_finite(model: pyhf.pdf.Model, data: list[float]) -> None:
    """Reject NaN/inf yields before fitting, naming the channel."""
    if not np.all(np.isfinite(data)):
        raise AnalysisError("observed data contain NaN or infinite bins")
    expected = np.asarray(model.expected_actualdata(model.config.suggested_init()))
    if not np.all(np.isfinite(expected)):
        raise AnalysisError("model prediction contains NaN or infinite bins (check the input histograms)")


def _fit_attempts(model: pyhf.pdf.Model, data: list[float]):
    """Starting points and Minuit settings to try in turn: default, then the POI at a yield-ratio estimate."""
    init = list(model.config.suggested_init())
    yield init, {}
    i = model.config.poi_index
    nominal = np.asarray(model.expected_actualdata(init))
    no_poi = list(init)
    no_poi[i] = 0.0
    signal = nominal.sum() - np.asarray(model.expected_actualdata(no_poi)).sum()
    observed = float(np.sum(data[: model.config.nmaindata]))
    lo, hi = model.config.suggested_bounds()[i]
    guess = init[i] + (observed - nominal.sum()) / signal if signal > 0 else init[i]
    start = list(init)
    start[i] = float(np.clip(guess, lo + 1e-3, hi - 1e-3))
    yield start, {}
    yield start, {"strategy": 2, "tolerance": 1.0}


def fit(config: dict[str, Any], workspace: dict[str, Any], maxiter: int | None = None) -> FitOutcome:
    """Maximum-likelihood fit of the workspace to its data."""
    model, data = cabinetry.model_utils.model_and_data(workspace)
    _check_finite(model, data)
    with pyhf_backend_preserved():
        result, last = _first_successful_fit(model, data, maxiter)
    if result is None:
        raise AnalysisError(f"the maximum-likelihood fit did not converge: {last}") from None
    if not np.all(np.isfinite(result.uncertainty)):
        raise AnalysisError("the fit converged to a point with undefined uncertainties (Hessian not positive definite)")
    return FitOutcome(config, workspace, model, data, result)


def _first_successful_fit(model: pyhf.pdf.Model, data: list[float], maxiter: int | None):
    """Try the starting points of :func:`_fit_attempts` in turn; return (result or None, last error)."""
    result, last = None, None
    for attempt, (init, kwargs) in enumerate(_fit_attempts(model, data)):
        try:
            result = cabinetry.fit.fit(model, data, init_pars=init, maxiter=maxiter, **kwargs)
        except pyhf.exceptions.FailedMinimization as err:
            last = err
            log.info("fit attempt %s failed: %s", kwargs or "default", err)
            continue
        if attempt > 0:  # polish from the minimum with default settings for an accurate Hessian
            try:
                result = cabinetry.fit.fit(model, data, init_pars=[float(x) for x in result.bestfit], maxiter=maxiter)
            except pyhf.exceptions.FailedMinimization:
                log.warning("fit converged only with fallback settings; uncertainties may be approximate")
        break
    return result, last


def _robust_fit(model: pyhf.pdf.Model, data: list[float], init: list[float], fix: list[bool]) -> cabinetry.fit.FitResults | None:
    """Fit with cabinetry; retry once with Minuit strategy 2 and a looser tolerance before giving up."""
    with pyhf_backend_preserved():
        for kwargs in ({}, {"strategy": 2, "tolerance": 1.0}):
            try:
                return cabinetry.fit.fit(model, data, init_pars=init, fix_pars=fix, **kwargs)
            except pyhf.exceptions.FailedMinimization:
                continue
    return None


def discovery_significance(model: pyhf.pdf.Model, data: list[float]) -> cabinetry.fit.SignificanceResults:
    """Discovery significance Z = √q₀ (observed, and expected on pre-fit Asimov data at POI = 1).

    Computed from q₀ directly so that very large significances stay finite (p-values underflow);
    the background-only fits start from the unconditional best fit and are retried more carefully.
    """
    calc = LimitCalculator(model, data)
    i = calc.poi_index
    free_pars, free_val = calc._fit(data, None, calc.init)
    q0 = 0.0
    if free_pars[i] > 0:
        try:
            fixed_val = calc._fit(data, 0.0, free_pars.tolist())[1]
        except pyhf.exceptions.FailedMinimization:
            fixed_val = calc._fit(data, 0.0, calc.init)[1]  # from the pre-fit point instead
        q0 = max(fixed_val - free_val, 0.0)
    pars = np.asarray(calc.init, dtype=float)
    pars[i] = 1.0
    asimov = model.expected_data(pars)
    asimov_free = float(-2 * model.logpdf(pars, asimov)[0])
    q0_exp = max(calc._fit(asimov, 0.0, pars.tolist())[1] - asimov_free, 0.0)
    z_obs, z_exp = float(np.sqrt(q0)), float(np.sqrt(q0_exp))
    return cabinetry.fit.SignificanceResults(float(norm.sf(z_obs)), z_obs, float(norm.sf(z_exp)), z_exp)


@contextmanager
def pyhf_backend_preserved():
    """Restore pyhf's global backend/optimizer on exit (cabinetry leaves Minuit set when a fit raises)."""
    tensorlib, optimizer = pyhf.get_backend()
    try:
        yield
    finally:
        pyhf.set_backend(tensorlib, optimizer)


@contextmanager
def minuit_backend(strategy: int | None = None, tolerance: float | None = None):
    """Temporarily use iminuit as pyhf's optimizer (as cabinetry does), restoring the previous one."""
    tensorlib, previous = pyhf.get_backend()
    pyhf.set_backend(tensorlib, pyhf.optimize.minuit_optimizer(verbose=0, strategy=strategy, tolerance=tolerance))
    try:
        yield
    finally:
        pyhf.set_backend(tensorlib, previous)


class LimitCalculator:
    """Asymptotic CLs with q̃_μ whose background-only Asimov data use the pre-fit nuisance parameters.

    pyhf builds the Asimov data from a fit of the observed data at μ = 0. When the POI scales the
    dominant process (ttbar_norm in the AGC) that fit is pathological and often fails; the pre-fit
    Asimov dataset (nominal nuisance parameters, μ = 0) is the standard alternative. Expected CLs
    values need only Asimov fits, so they never fit the observed data at implausible μ.
    """

    def __init__(self, model: pyhf.pdf.Model, data: list[float]) -> None:
        self.model, self.data = model, data
        self.init, self.fixed = model.config.suggested_init(), model.config.suggested_fixed()
        self.bounds = model.config.suggested_bounds()
        self.poi_index = i = model.config.poi_index
        self.bounds[i] = (max(0.0, self.bounds[i][0]), self.bounds[i][1])
        pars = np.asarray(self.init, dtype=float)
        pars[i] = 0.0
        self.asimov = model.expected_data(pars)
        # the Asimov free fit is exact by construction: μ̂ = 0 with nominal nuisance parameters
        self._free = {"asimov": (pars, float(-2 * model.logpdf(pars, self.asimov)[0]))}
        self._sqrt_qa: dict[float, float] = {}

    def _fit(self, data, mu: float | None, init) -> tuple[np.ndarray, float]:
        """(parameters, −2lnL) of a free (mu None) or fixed-POI fit, retrying once more carefully."""
        for kwargs in ({}, {"strategy": 2, "tolerance": 1.0}):
            try:
                with minuit_backend(**kwargs):
                    if mu is None:
                        pars, val = pyhf.infer.mle.fit(data, self.model, init, self.bounds, self.fixed,
                                                       return_fitted_val=True)
                    else:
                        pars, val = pyhf.infer.mle.fixed_poi_fit(mu, data, self.model, init, self.bounds, self.fixed,
                                                                 return_fitted_val=True)
                return np.asarray(pars), float(val)
            except pyhf.exceptions.FailedMinimization:
                continue
        raise pyhf.exceptions.FailedMinimization(f"fit at {self.model.config.poi_name} = {mu} failed")

    def _qmu(self, mu: float, which: str) -> float:
        """q̃_μ (bounded μ̂ ≥ 0) on the observed ("data") or Asimov data, free fit cached."""
        data = self.data if which == "data" else self.asimov
        if which not in self._free:
            self._free[which] = self._fit(data, None, self.init)
        free_pars, free_val = self._free[which]
        if free_pars[self.poi_index] > mu:
            return 0.0
        _, fixed_val = self._fit(data, mu, free_pars.tolist())
        return max(fixed_val - free_val, 0.0)

    def sqrt_qmu_asimov(self, mu: float) -> float:
        """√q̃_μ on the background-only Asimov data (cached)."""
        if mu not in self._sqrt_qa:
            self._sqrt_qa[mu] = float(np.sqrt(self._qmu(mu, "asimov")))
        return self._sqrt_qa[mu]

    def expected(self, mu: float) -> np.ndarray:
        """Expected CLs at −2σ, −1σ, median, +1σ, +2σ."""
        sqa = self.sqrt_qmu_asimov(mu)
        return np.array([norm.sf(sqa - n) / norm.sf(-n) if sqa > 0 else 1.0 for n in (-2, -1, 0, 1, 2)])

    def sigma_asimov(self, mu: float) -> float:
        """σ_A = μ/√q̃_μ,A (Cowan et al., eq. 31), evaluated once at the first μ asked for.

        ``upper_limit`` first asks at the median expected limit, where Asimov fits are quick and
        the asymptotic width is the relevant one for a limit.
        """
        if not hasattr(self, "_sigma_a"):
            self._sigma_a = mu / max(self.sqrt_qmu_asimov(mu), 1e-300)
        return self._sigma_a

    def observed(self, mu: float) -> float:
        """Observed CLs (asymptotic q̃_μ formulae of Cowan et al., √q̃_μ,A = μ/σ_A)."""
        sqa = mu / self.sigma_asimov(mu)
        sq = float(np.sqrt(self._qmu(mu, "data")))
        t = sq - sqa if sq <= sqa else (sq**2 - sqa**2) / (2 * sqa)
        return float(min(norm.sf(t + sqa) / norm.sf(t), 1.0)) if sqa > 0 else 1.0


def _first_crossing(f, start: float, step: float, rtol: float = 1e-3, limit: float = 1e4) -> float:
    """Smallest root of a decreasing ``f`` above ``start``: grow the step until the sign changes, then Brent."""
    from scipy.optimize import brentq

    lo = start
    if f(lo) <= 0:
        return float("nan")
    while lo + step < limit:
        hi = lo + step
        if f(hi) <= 0:
            return float(brentq(f, lo, hi, xtol=1e-9, rtol=rtol))
        lo, step = hi, 2 * step
    return float("nan")


def _expected_limit(calc: "LimitCalculator", n_sigma: int, target: float, rtol: float = 1e-3) -> float:
    """Expected limit for a band by fixed-point iteration μ ← σ_A(μ)·x_n, where √q̃_A(μ) = μ/σ_A.

    x_n solves Φ̄(x − n)/Φ̄(−n) = target (the asymptotic expected-CLs condition), so at the fixed
    point the expected CLs equals the target exactly; it converges in a few Asimov fits.
    """
    from scipy.optimize import brentq

    x_n = brentq(lambda x: norm.sf(x - n_sigma) / norm.sf(-n_sigma) - target, -10 + n_sigma, 20 + n_sigma)
    mu = 1e-3
    for _ in range(8):
        sqa = calc.sqrt_qmu_asimov(mu)
        if sqa <= 0:
            mu *= 10
            continue
        new = mu / sqa * x_n
        if abs(new - mu) <= rtol * new:
            return float(new)
        mu = new
    return _first_crossing(lambda m: calc.expected(m)[n_sigma + 2] - target, 1e-4, 1e-4)


def upper_limit(model: pyhf.pdf.Model, data: list[float], confidence_level: float = 0.95) -> cabinetry.fit.LimitResults:
    """Observed and expected CLs upper limits on the POI (q̃_μ, pre-fit Asimov) by bracketing + Brent.

    Expected limits grow geometrically from 10⁻⁴ (they only need Asimov fits); the observed limit
    is searched upwards from the best fit in steps of its uncertainty.
    """
    calc = LimitCalculator(model, data)
    target = 1.0 - confidence_level
    nominal = cabinetry.fit.fit(model, data)
    i = model.config.poi_index
    poi_hat, poi_err = float(nominal.bestfit[i]), float(nominal.uncertainty[i])
    obs_cache: dict[float, float] = {}

    def obs(mu: float) -> float:
        if mu not in obs_cache:
            obs_cache[mu] = calc.observed(mu)
        return obs_cache[mu]

    with minuit_backend():
        expected = np.array([_expected_limit(calc, n, target) for n in (-2, -1, 0, 1, 2)])
        if np.isfinite(expected[2]):
            calc.sigma_asimov(float(expected[2]))
        observed = _first_crossing(lambda mu: obs(mu) - target, max(poi_hat, 1e-4), max(poi_err, 1e-3))
        low = float(np.nanmin(expected)) / 3 if np.isfinite(expected).any() else 1e-3
        for mu in np.geomspace(max(low, 1e-4), max(poi_hat, 2 * low), 24)[:-1]:
            obs(float(mu))  # below μ̂ the observed q̃_μ is 0: no fit needed, fills the curve for the plot
        mus = np.array(sorted(obs_cache))
        expected_cls = np.array([[norm.sf(m / calc.sigma_asimov(m) - n) / norm.sf(-n) for n in (-2, -1, 0, 1, 2)]
                                 for m in mus])
    return cabinetry.fit.LimitResults(observed, expected, np.array([obs_cache[m] for m in mus]),
                                      expected_cls, mus, confidence_level)


def scan_poi(outcome: FitOutcome, n_steps: int = 15, width: float = 3.0) -> cabinetry.fit.ScanResults:
    """Profile-likelihood scan of the POI over best fit ± ``width``·σ (Δ(−2lnL) per point)."""
    model, data, nominal = outcome.model, outcome.data, outcome.fit_results
    i = model.config.poi_index
    poi, err = outcome.poi
    lo, hi = model.config.suggested_bounds()[i]
    values = np.linspace(max(lo, poi - width * err), min(hi, poi + width * err), n_steps)
    fix = list(model.config.suggested_fixed())
    fix[i] = True
    deltas = []
    for v in values:
        init = [float(x) for x in nominal.bestfit]
        init[i] = float(v)
        res = _robust_fit(model, data, init, fix)
        deltas.append(np.nan if res is None else res.best_twice_nll - nominal.best_twice_nll)
    return cabinetry.fit.ScanResults(model.config.poi_name, poi, err, values, np.asarray(deltas))


def rank_impacts(outcome: FitOutcome, include_staterror: bool = False) -> cabinetry.fit.RankingResults:
    """Pre- and post-fit impacts of nuisance parameters on the POI (cabinetry's definition).

    Like ``cabinetry.fit.ranking`` but restricted to systematics (per-bin MC-stat parameters are
    skipped unless asked) and started from the best fit, which makes it several times faster.
    A fit that fails for one variation gives a NaN impact instead of aborting the ranking.
    """
    model, data, nominal = outcome.model, outcome.data, outcome.fit_results
    poi_index = model.config.poi_index
    prefit_unc = cabinetry.model_utils.prefit_uncertainties(model)
    fixed = model.config.suggested_fixed()
    rows, labels, best, unc = [], [], [], []
    for i, label in enumerate(model.config.par_names):
        if i == poi_index or fixed[i] or (not include_staterror and label.startswith("staterror_")):
            continue
        impacts = []
        for value in (nominal.bestfit[i] + prefit_unc[i], nominal.bestfit[i] - prefit_unc[i],
                      nominal.bestfit[i] + nominal.uncertainty[i], nominal.bestfit[i] - nominal.uncertainty[i]):
            if value == nominal.bestfit[i]:
                impacts.append(0.0)
                continue
            init = [float(x) for x in nominal.bestfit]
            init[i] = float(value)
            fix = list(fixed)
            fix[i] = True
            res = _robust_fit(model, data, init, fix)
            if res is None:
                log.warning("ranking fit failed for %s = %.3f", label, value)
            impacts.append(float("nan") if res is None else float(res.bestfit[poi_index] - nominal.bestfit[poi_index]))
        rows.append(impacts)
        labels.append(label)
        best.append(nominal.bestfit[i])
        unc.append(nominal.uncertainty[i])
    a = np.asarray(rows, dtype=float).reshape(-1, 4)
    return cabinetry.fit.RankingResults(np.asarray(best), np.asarray(unc), labels, a[:, 0], a[:, 1], a[:, 2], a[:, 3])


def fit_summary(outcome: FitOutcome) -> dict[str, Any]:
    """JSON-serialisable fit summary: parameters, uncertainties, correlations, −2lnL and derived results."""
    r = outcome.fit_results
    poi, poi_err = outcome.poi
    doc: dict[str, Any] = {
        "poi": outcome.model.config.poi_name,
        "poi_bestfit": poi,
        "poi_uncertainty": poi_err,
        "labels": list(r.labels),
        "bestfit": [float(x) for x in r.bestfit],
        "uncertainty": [float(x) for x in r.uncertainty],
        "correlation": np.asarray(r.corr_mat).tolist(),
        "minus_two_log_likelihood": float(r.best_twice_nll),
        "goodness_of_fit_p_value": float(r.goodness_of_fit),
    }
    if outcome.significance is not None:
        s = outcome.significance
        doc["significance"] = {"observed": float(s.observed_significance), "observed_p_value": float(s.observed_p_value),
                               "expected": float(s.expected_significance), "expected_p_value": float(s.expected_p_value)}
    if outcome.limit is not None:
        lim = outcome.limit
        doc["upper_limit_95cl"] = {"observed": float(lim.observed_limit),
                                   "expected": [float(x) for x in lim.expected_limit]}
    if outcome.scan is not None:
        sc = outcome.scan
        doc["scan"] = {"parameter": sc.name, "values": [float(x) for x in sc.parameter_values],
                       "delta_minus_two_log_likelihood": [float(x) for x in sc.delta_nlls]}
    if outcome.ranking is not None:
        rk = outcome.ranking
        doc["ranking"] = [{"parameter": lab, "postfit_impact_up": float(u), "postfit_impact_down": float(d)}
                          for lab, u, d in zip(rk.labels, rk.postfit_up, rk.postfit_down)]
    return doc


def limit_plot(limit: cabinetry.fit.LimitResults, poi_name: str) -> plt.Figure:
    """CLs versus the POI (log scale): observed curve, expected median with ±1σ/±2σ bands, limits marked."""
    fig, ax = plt.subplots(figsize=(7, 5))
    mu, exp = np.asarray(limit.poi_values), np.asarray(limit.expected_CLs)
    ax.fill_between(mu, exp[:, 0], exp[:, 4], color="#fce94f", label=r"expected $\pm 2\sigma$")
    ax.fill_between(mu, exp[:, 1], exp[:, 3], color="#4e9a06", label=r"expected $\pm 1\sigma$")
    ax.plot(mu, exp[:, 2], "k--", label="expected")
    ax.plot(mu, limit.observed_CLs, "ko-", markersize=3, label="observed")
    ax.axhline(1 - limit.confidence_level, color="red", linestyle="-.", label=f"CLs = {1 - limit.confidence_level:.2f}")
    ax.set_xscale("log")
    ax.set_ylim(0, 1.05)
    ax.set_xlabel(poi_name)
    ax.set_ylabel(r"CL$_s$")
    ax.set_title(f"95% CL upper limit: {limit.observed_limit:.3g} observed, {limit.expected_limit[2]:.3g} expected",
                 fontsize=11)
    ax.legend(frameon=False, fontsize=9, loc="upper right")
    return fig


def make_plots(outcome: FitOutcome, out_dir: Path, ranking: bool = True) -> dict[str, Path]:
    """Pulls, correlations, ranking, scan, limit and pre/post-fit data/MC plots (PNG + PDF)."""
    with plt.rc_context():
        plt.rcdefaults()  # cabinetry draws with its own layout; another style left active would break it
        return _make_plots(outcome, out_dir, ranking)


def _make_plots(outcome: FitOutcome, out_dir: Path, ranking: bool) -> dict[str, Path]:
    """Body of :func:`make_plots`."""
    plots: dict[str, Path] = {}
    kw = {"figure_folder": out_dir, "close_figure": False, "save_figure": False}

    def keep(fig, stem: str) -> None:
        plots[stem] = save_figure(fig, out_dir, stem)[0]

    poi_name = outcome.model.config.poi_name
    keep(cabinetry.visualize.pulls(outcome.fit_results, exclude=poi_name, **kw), "pulls")
    keep(correlation_figure(list(outcome.fit_results.labels), outcome.fit_results.corr_mat, keep=(poi_name,)), "correlation_matrix")
    if outcome.ranking is not None and ranking:
        keep(cabinetry.visualize.ranking(outcome.ranking, max_pars=15, **kw), "ranking")
    if outcome.scan is not None:
        keep(cabinetry.visualize.scan(outcome.scan, **kw), f"scan_{poi_name}")
    if outcome.limit is not None:
        keep(limit_plot(outcome.limit, poi_name), "limit")
    for stage, fr in (("prefit", None), ("postfit", outcome.fit_results)):
        prediction = cabinetry.model_utils.prediction(outcome.model, fit_results=fr)
        figs = data_mc_figures(prediction, outcome.data, outcome.config, **kw)  # the run's process colours/labels
        for item in figs:
            stem = f"{item['region'].replace(' ', '_')}_{stage}"
            keep(item["figure"], stem)
    plt.close("all")
    return plots


def run_fit(config_path: str | Path, histograms: str | Path, out_dir: str | Path, *, ranking: bool = True,
            scan: bool = True, significance: bool = True, limit: bool = True, plots: bool = True,
            maxiter: int | None = None) -> FitOutcome:
    """The full ``ana fit`` step: workspace.json, fit_results.json and plots under ``out_dir``.

    ``maxiter`` caps Minuit's function calls per fit (default: pyhf's 100 000).
    """
    # small models: multi-threaded BLAS only adds overhead (several times slower fits on busy cores)
    with threadpool_limits(1), pyhf_backend_preserved():
        return _run_fit(config_path, histograms, out_dir, ranking=ranking, scan=scan, significance=significance,
                        limit=limit, plots=plots, maxiter=maxiter)


STAGE_MESSAGES = {"workspace": "Building the workspace", "fit": "Maximum-likelihood fit", "ranking": "Impact ranking",
                  "scan": "Likelihood scan", "significance": "Discovery significance", "limit": "CLs upper limit",
                  "plots": "Plots"}


def _run_fit(config_path: str | Path, histograms: str | Path, out_dir: str | Path, *, ranking: bool,
             scan: bool, significance: bool, limit: bool, plots: bool, maxiter: int | None) -> FitOutcome:
    """Body of :func:`run_fit`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    timing: dict[str, float] = {}

    def timed(name: str, func, *args):
        from analysis.console import stage

        t0 = time.perf_counter()
        try:
            with stage(STAGE_MESSAGES.get(name, name)):
                return func(*args)
        finally:
            timing[name] = round(time.perf_counter() - t0, 3)

    config = load_config(config_path, histograms, out)
    ws = timed("workspace", build_workspace, config)
    cabinetry.workspace.save(ws, out / "workspace.json")
    outcome = timed("fit", fit, config, ws, maxiter)
    if ranking:
        outcome.ranking = timed("ranking", rank_impacts, outcome)
    if scan:
        outcome.scan = timed("scan", scan_poi, outcome)
    if significance:
        try:
            outcome.significance = timed("significance", discovery_significance, outcome.model, outcome.data)
        except pyhf.exceptions.FailedMinimization as err:
            log.warning("discovery significance not determined: %s", err)
    if limit:
        try:
            outcome.limit = timed("limit", upper_limit, outcome.model, outcome.data)
        except (ValueError, RuntimeError, pyhf.exceptions.FailedMinimization) as err:
            log.warning("upper limit not determined: %s", err)
    if plots:
        outcome.plots = timed("plots", make_plots, outcome, out, ranking)
    outcome.summary = fit_summary(outcome)
    outcome.summary["timing_s"] = timing
    (out / "fit_results.json").write_text(json.dumps(outcome.summary, indent=2) + "\n")
    return outcome
