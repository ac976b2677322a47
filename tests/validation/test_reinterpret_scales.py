"""Limits at any scale (R20 kind): 1e7-event backgrounds and signals hundreds of times the background.

Reference numbers: an independent hand-written likelihood (deviance form, HistFactory code-4 normsys, per-bin
Gaussian staterror, asymptotic q̃_μ CLs, scipy minimisation) for the model signal×μ + background with a ±10 %
normsys and the background's per-bin MC-stat errors.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import uproot

from analysis.recast.reinterpret import reinterpret_histograms, reinterpret_workspace

CASES = {
    "large": dict(edges=np.linspace(500.0, 2100.0, 9),
                  bkg=np.array([9.8e6, 4.6e6, 1.5e6, 5.9e5, 2.7e5, 1.2e5, 6.3e4, 2.8e4]), rel_err=0.2,
                  sig=np.array([1.6e6, 5.1e5, 1.4e5, 4.4e4, 1.6e4, 6.0e3, 2.4e3, 1.0e3]),
                  observed=2.114, expected=[1.183, 1.563, 2.114, 2.84, 3.656]),
    "huge_signal": dict(edges=np.array([0.0, 1.0, 2.0, 3.0]), bkg=np.array([100.0, 50.0, 20.0]), rel_err=0.05,
                        sig=np.array([5.0e4, 3.0e4, 1.0e4]),
                        observed=4.73e-4, expected=[2.58e-4, 3.44e-4, 4.73e-4, 6.51e-4, 8.63e-4]),
}


def _th1(values, variances, edges):
    zero = np.zeros(1)
    return uproot.writing.identify.to_TH1x(
        fName=None, fTitle="", data=np.concatenate([zero, values, zero]), fEntries=float(values.sum()),
        fTsumw=float(values.sum()), fTsumw2=float(variances.sum()), fTsumwx=0.0, fTsumwx2=0.0,
        fSumw2=np.concatenate([zero, variances, zero]),
        fXaxis=uproot.writing.identify.to_TAxis(fName="xaxis", fTitle="x", fNbins=len(values),
                                                 fXmin=float(edges[0]), fXmax=float(edges[-1]), fXbins=edges))


def _input(tmp: Path, c: dict) -> Path:
    path = tmp / "in.root"
    data = np.round(c["bkg"])
    with uproot.recreate(path) as f:
        f["data"] = _th1(data, data, c["edges"])
        f["background"] = _th1(c["bkg"], (c["rel_err"] * c["bkg"]) ** 2, c["edges"])
        f["signal"] = _th1(c["sig"], 1e-4 * c["sig"] ** 2, c["edges"])
    return path


@pytest.mark.parametrize("name", ["huge_signal", "large"])
def test_limits_at_extreme_scales_match_reference(tmp_path, name):
    """R20: no NaN in the root finder (a), automatic bracket far below 0.1 (b); within 1 % of the reference."""
    c = CASES[name]
    f = _input(tmp_path, c)
    res = reinterpret_histograms(f, "data", f, "background", f, "signal", scan_points=11)
    assert res.mu_upper_limit_observed == pytest.approx(c["observed"], rel=0.01)
    assert res.mu_upper_limit_expected == pytest.approx(c["expected"], rel=0.01)
    assert res.scan.poi_max < 4 * c["expected"][-1]  # the bracket follows the scale of the limits


def test_limit_scales_inversely_with_the_signal(tmp_path):
    """Same fault, other entry point (a pyhf workspace): μ_limit(k·s) = μ_limit(s)/k for k = 1e-3 … 1e4."""
    base = {"channels": [{"name": "sr", "samples": [
        {"name": "signal", "data": [2.0, 6.0, 5.0], "modifiers": [{"name": "mu", "type": "normfactor", "data": None}]},
        {"name": "background", "data": [100.0, 40.0, 10.0], "modifiers": [
            {"name": "bkg_norm", "type": "normsys", "data": {"hi": 1.1, "lo": 0.9}}]}]}],
        "observations": [{"name": "sr", "data": [95.0, 41.0, 12.0]}],
        "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}], "version": "1.0.0"}
    ref = reinterpret_workspace(base, scan_points=11)
    for k in (1e-3, 1e3):
        spec = {**base, "channels": [{"name": "sr", "samples": [
            {**base["channels"][0]["samples"][0], "data": [k * x for x in base["channels"][0]["samples"][0]["data"]]},
            base["channels"][0]["samples"][1]]}]}
        res = reinterpret_workspace(spec, scan_points=11)
        assert res.mu_upper_limit_observed == pytest.approx(ref.mu_upper_limit_observed / k, rel=2e-3)
        assert res.mu_upper_limit_expected == pytest.approx([x / k for x in ref.mu_upper_limit_expected], rel=2e-3)


def test_log_space_cls_equals_pyhf_hypotest_where_both_are_finite():
    """The core's log-space CLs is pyhf's asymptotic q̃ CLs (same fits and formulas) wherever pyhf's is finite."""
    import pyhf

    from analysis.stats.likelihood import Likelihood
    from analysis.stats.limits import CLsCalculator, log_space_cls

    model = pyhf.simplemodels.uncorrelated_background(signal=[2.0, 6.0, 5.0], bkg=[100.0, 40.0, 10.0],
                                                      bkg_uncertainty=[10.0, 6.3, 3.2])
    data = [95.0, 41.0, 12.0] + model.config.auxdata
    calc = CLsCalculator(Likelihood(model, data))
    for mu in (0.5, 1.0, 1.7, 3.0):
        row = calc(mu)
        ref_obs, ref_exp = pyhf.infer.hypotest(mu, data, model, par_bounds=[tuple(b) for b in calc.bounds],
                                               test_stat="qtilde", return_expected_set=True)
        assert row[0] == pytest.approx(float(ref_obs), rel=1e-6, abs=1e-12)
        assert row[1:] == pytest.approx([float(e) for e in ref_exp], rel=1e-6, abs=1e-12)
    from scipy.stats import norm

    far = log_space_cls(38.0, 1.0)  # both tails < 1e-308: the linear-space ratio is 0/0, this is Φ̄(39)/Φ̄(38)
    assert norm.sf(39.0) == norm.sf(38.0) == 0.0
    assert far[0] == pytest.approx(math.exp(norm.logsf(39.0) - norm.logsf(38.0)), rel=1e-12) and 0.0 < far[0] < 1e-12
