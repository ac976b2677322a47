"""analysis.stats against independent truth: pyhf's ROOT-validated CLs vectors, cabinetry's MINOS and
goodness of fit, pyhf's own upper limit, the Cowan et al. Asimov formula, a near-degenerate shapesys
(the published-likelihood failure mode) against plain pyhf with the modifier removed, and the Minuit
stream capture."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import cabinetry
import numpy as np
import pyhf
import pytest

from analysis.stats.asymptotics import asimov_z, cls_from_q, expected_cls
from analysis.stats.capture import capture_minuit
from analysis.stats.errors import StatsError
from analysis.stats.fit import fit
from analysis.stats.gof import pyhf_saturated_gof
from analysis.stats.intervals import profile_crossings
from analysis.stats.likelihood import Likelihood, pyhf_backend
from analysis.stats.limits import CLsCalculator, upper_limit
from analysis.stats.prune import apply_controls, near_degenerate_modifiers
from analysis.stats.significance import discovery_significance

# pyhf's validation suite (scikit-hep/pyhf validation/data/*.json, tests/test_validation.py; pyhf 0.7.6),
# which pyhf built to agree with ROOT HistFactory; vendored from /work/shared/validation (see its README).
VECTORS = json.loads((Path(__file__).parent / "data" / "pyhf_validation_vectors.json").read_text())


@pytest.fixture(autouse=True)
def _quiet_pyhf():
    logging.getLogger("pyhf.infer.test_statistics").setLevel(logging.ERROR)
    with pyhf_backend("numpy", pyhf.optimize.scipy_optimizer()):
        yield


def _model(vector):
    ws = pyhf.Workspace(vector["workspace"])
    model = ws.model(modifier_settings={"normsys": {"interpcode": vector["normsys_interpcode"]},
                                       "histosys": {"interpcode": "code0"}})
    return model, np.asarray(ws.data(model), dtype=float)


@pytest.mark.parametrize("vector", [v for v in VECTORS if v["test_stat"] != "q0"], ids=lambda v: v["name"])
def test_cls_reproduces_pyhf_validation_vectors(vector):
    model, data = _model(vector)
    calc = CLsCalculator(Likelihood(model, data, use_jax=False), test_stat=vector["test_stat"])
    got = calc(vector["mu_test"])
    want = np.array([vector["expected_cls_obs"], *vector["expected_cls_exp_band"]])
    np.testing.assert_allclose(got, want, rtol=max(vector["tolerance_rel"], 1e-5), atol=0)


def test_cls_equals_pyhf_hypotest_at_every_mu():
    """The calculator that reuses pyhf's three POI-independent fits gives pyhf.infer.hypotest's numbers."""
    model, data = _small_model()
    calc = CLsCalculator(Likelihood(model, data, use_jax=False))
    for mu in (0.3, 1.0, 2.5):
        obs, exp = pyhf.infer.hypotest(mu, data, model, test_stat="qtilde", return_expected_set=True)
        np.testing.assert_allclose(calc(mu), [float(obs), *map(float, exp)], rtol=1e-9, atol=1e-12)


def test_discovery_q0_vector_and_significance():
    vector = next(v for v in VECTORS if v["test_stat"] == "q0")
    model, data = _model(vector)
    p_obs, p_exp = pyhf.infer.hypotest(0.0, data, model, test_stat="q0", return_expected=True)
    assert float(p_obs) == pytest.approx(vector["expected_cls_obs"], rel=max(vector["tolerance_rel"], 1e-5))
    sig = discovery_significance(Likelihood(model, data))
    from scipy.stats import norm

    assert sig.observed == pytest.approx(norm.isf(vector["expected_cls_obs"]), rel=2e-3)
    assert sig.expected == pytest.approx(norm.isf(float(p_exp)), rel=2e-3)


def test_asimov_significance_equals_cowan_formula():
    s, b = 12.0, 40.0
    spec = {"channels": [{"name": "c", "samples": [
        {"name": "s", "data": [s], "modifiers": [{"name": "mu", "type": "normfactor", "data": None}]},
        {"name": "b", "data": [b], "modifiers": []}]}],
        "observations": [{"name": "c", "data": [b]}], "measurements": [{"name": "m", "config": {"poi": "mu",
                                                                                                "parameters": []}}],
        "version": "1.0.0"}
    ws = pyhf.Workspace(spec)
    model = ws.model()
    sig = discovery_significance(Likelihood(model, ws.data(model)))
    assert sig.expected == pytest.approx(float(asimov_z(s, b)), rel=1e-4)  # Cowan et al. eq. 97
    assert sig.observed == 0.0  # data = b: μ̂ = 0


def test_asymptotic_formulae():
    # at q = q_A the observed CLs is the median expected one: Φ̄(√q_A)/Φ̄(0)... (Cowan et al. eqs. 65, 66)
    q_a = 2.7055
    cls, clsb, clb = cls_from_q(q_a, q_a)
    assert clb == pytest.approx(0.5) and cls == pytest.approx(expected_cls(q_a)[2])
    assert clsb == pytest.approx(0.5 * cls)
    assert expected_cls(0.0)[2] == pytest.approx(1.0)


def _small_model():
    model = pyhf.simplemodels.uncorrelated_background([12.0, 11.0], [50.0, 52.0], [3.0, 7.0])
    return model, np.asarray([62.0, 63.0] + model.config.auxdata)


def test_minos_equals_cabinetry_minos():
    model, data = _small_model()
    ours = fit(Likelihood(model, data), minos=["mu"])
    theirs = cabinetry.fit.fit(model, data.tolist(), minos=["mu"])
    assert ours.quality.ok and ours.quality.warnings == []
    lo, hi = ours.minos["mu"]
    assert lo == pytest.approx(theirs.minos_uncertainty["mu"][0], rel=2e-3)
    assert hi == pytest.approx(theirs.minos_uncertainty["mu"][1], rel=2e-3)
    assert ours.bestfit == pytest.approx(theirs.bestfit, abs=2e-3)
    # the profile-likelihood crossings (fallback when MINOS fails) give the same interval
    plo, phi = profile_crossings(Likelihood(model, data), ours, model.config.poi_index)
    assert (plo, phi) == pytest.approx((lo, hi), rel=2e-3)


def test_saturated_goodness_of_fit_equals_cabinetry():
    model, data = _small_model()
    ours = fit(Likelihood(model, data))
    gof = pyhf_saturated_gof(model, data, ours.twice_nll)
    theirs = cabinetry.fit.fit(model, data.tolist(), goodness_of_fit=True)
    assert gof.ndf == 1
    assert gof.p_value == pytest.approx(theirs.goodness_of_fit, rel=1e-3)


def test_upper_limit_equals_pyhf():
    model, data = _small_model()
    ours = upper_limit(Likelihood(model, data, use_jax=False), rtol=1e-6)
    obs, exp = pyhf.infer.intervals.upper_limits.toms748_scan(data, model, 0.1, 5.0, rtol=1e-6, test_stat="qtilde")
    assert ours.observed == pytest.approx(float(obs), rel=1e-4)
    assert ours.expected == pytest.approx([float(e) for e in exp], rel=1e-4)


def test_upper_limit_at_any_scale():
    """A signal 10⁴ times too small: the bracket comes from the model scale, not the POI bounds [0, 10]."""
    model = pyhf.simplemodels.uncorrelated_background([1e-3, 1e-3], [50.0, 52.0], [3.0, 7.0])
    data = np.asarray([50.0, 52.0] + model.config.auxdata)
    res = upper_limit(Likelihood(model, data, use_jax=False))
    assert 1e3 < res.expected[2] < 1e5
    assert np.all(np.isfinite(res.cls_observed))


def _degenerate_spec(rel: float = 1e-6) -> dict:
    """Four one-bin channels, lumi fixed, one shapesys of relative uncertainty ``rel`` on 435 events
    (the mechanism of the published ATLAS likelihood of the issue)."""
    chans, obs = [], []
    sig, bkg, data = [3.0, 5.0, 2.0, 4.0], [20.0, 435.0, 15.0, 30.0], [21.0, 433.0, 14.0, 31.0]
    for k in range(4):
        mods = [{"name": "bkg_syst", "type": "normsys", "data": {"hi": 1.1, "lo": 0.9}},
                {"name": "lumi", "type": "lumi", "data": None},
                {"name": "tiny_mcstat" if k == 1 else f"mcstat_{k}", "type": "shapesys",
                 "data": [(rel if k == 1 else 0.1) * bkg[k]]}]
        chans.append({"name": f"SR{k}", "samples": [
            {"name": "signal", "data": [sig[k]], "modifiers": [{"name": "mu", "type": "normfactor", "data": None},
                                                              {"name": "lumi", "type": "lumi", "data": None}]},
            {"name": "bkg", "data": [bkg[k]], "modifiers": mods}]})
        obs.append({"name": f"SR{k}", "data": [data[k]]})
    return {"channels": chans, "observations": obs, "version": "1.0.0",
            "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": [
                {"name": "lumi", "auxdata": [1.0], "sigmas": [0.02], "bounds": [[0.9, 1.1]], "inits": [1.0],
                 "fixed": True}]}}]}


def test_near_degenerate_shapesys_is_pruned_and_cls_equals_plain_pyhf_without_it(tmp_path):
    from analysis.recast.reinterpret import reinterpret_workspace

    spec = _degenerate_spec()
    found = near_degenerate_modifiers(spec)
    assert [f["name"] for f in found] == ["tiny_mcstat"] and found[0]["relative"] == pytest.approx(1e-6)
    # plain pyhf on the workspace with that modifier removed (and pyhf's broken answer with it kept)
    pruned = pyhf.Workspace(pyhf.Workspace(spec).prune(modifiers=["tiny_mcstat"]))
    model = pruned.model()
    want_obs, want_exp = pyhf.infer.hypotest(1.0, pruned.data(model), model, test_stat="qtilde",
                                             return_expected_set=True)
    broken = pyhf.Workspace(spec)
    assert float(pyhf.infer.hypotest(1.0, broken.data(broken.model()), broken.model(), test_stat="qtilde")) > 0.999
    result = reinterpret_workspace(spec, scan_points=5, json_path=tmp_path / "results.json")
    assert result.scan.cls_observed_at_mu_1 == pytest.approx(float(want_obs), rel=1e-5)
    assert result.scan.cls_expected_at_mu_1 == pytest.approx([float(e) for e in want_exp], rel=1e-5)
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["controls"]["pruned"] == ["tiny_mcstat"] and doc["fit_quality"]["ok"]
    assert any("tiny_mcstat" in w and "pruned" in w for w in result.warnings)


def test_free_fit_stalled_at_start_is_reported_not_returned():
    ws = pyhf.Workspace(_degenerate_spec())
    model = ws.model()
    lh = Likelihood(model, ws.data(model))
    stalled = fit(lh, optimizer="scipy", retry=False)  # pyhf's default SLSQP alone
    assert stalled.quality.stalled_at_start and not stalled.quality.ok
    assert any("starting point" in w for w in stalled.quality.warnings)
    assert stalled.value("mu") == pytest.approx(1.0, abs=1e-6)
    recovered = fit(lh, optimizer="scipy")  # guarded: falls back to Minuit
    assert recovered.quality.ok and recovered.quality.attempts[0] == "scipy SLSQP"
    pruned = pyhf.Workspace(pyhf.Workspace(_degenerate_spec()).prune(modifiers=["tiny_mcstat"]))
    mu_hat = pyhf.infer.mle.fit(pruned.data(pruned.model()), pruned.model())[pruned.model().config.poi_index]
    assert recovered.value("mu") == pytest.approx(float(mu_hat), abs=2e-3)
    assert recovered.twice_nll < stalled.twice_nll - 0.5


def test_fix_and_prune_controls():
    spec, controls = apply_controls(_degenerate_spec(), fix=["bkg_syst=0.5"], prune=["mcstat_0"],
                                    degenerate_threshold=None)
    model = pyhf.Workspace(spec).model()
    i = model.config.par_names.index("bkg_syst")
    assert model.config.suggested_fixed()[i] and model.config.suggested_init()[i] == 0.5
    assert "mcstat_0" not in model.config.par_names and controls.pruned == ["mcstat_0"]
    with pytest.raises(StatsError, match="no_such"):
        apply_controls(_degenerate_spec(), prune=["no_such"])
    with pytest.raises(StatsError, match="NAME=VALUE"):
        apply_controls(_degenerate_spec(), fix=["bkg_syst"])
    with pytest.raises(StatsError, match="no such parameter"):
        apply_controls(_degenerate_spec(), fix=["nope=1"])


def test_minuit_stream_is_captured_and_counted(capfd):
    from iminuit import Minuit

    with capture_minuit() as messages:
        m = Minuit(lambda x: float("nan") if x > 1 else (x - 3) ** 2, 0.0)
        m.print_level = 1  # what cabinetry's fits use: every NaN evaluation is printed from C++
        m.migrad()
        os.write(2, b"a line that is not Minuit's\n")
    err = capfd.readouterr().err
    assert messages.counts["NaN evaluations"] > 0
    assert "FCN result is NaN" not in err and "a line that is not Minuit's" in err
    assert "NaN evaluations" in messages.summary("test")


def test_exact_hessian_covariance_equals_minuit_hesse_on_a_smooth_model():
    """Where finite differences are reliable (a smooth model: normfactor + normsys, exponential interpolation),
    the exact-Hessian covariance equals iminuit's HESSE on the same −2 ln L (independent implementation)."""
    from iminuit import Minuit

    from analysis.stats.fit import exact_covariance

    spec = {"channels": [{"name": "sr", "samples": [
        {"name": "signal", "data": [12.0, 20.0, 9.0], "modifiers": [{"name": "mu", "type": "normfactor", "data": None}]},
        {"name": "bkg", "data": [50.0, 40.0, 30.0], "modifiers": [
            {"name": "bkg_norm", "type": "normsys", "data": {"hi": 1.1, "lo": 0.92}}]}]}],
        "observations": [{"name": "sr", "data": [66.0, 58.0, 41.0]}],
        "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}], "version": "1.0.0"}
    ws = pyhf.Workspace(spec)
    model = ws.model()
    lh = Likelihood(model, ws.data(model))
    if not lh.uses_jax:
        pytest.skip("JAX not installed: no exact Hessian")
    res = fit(lh)
    m = Minuit(lambda p: lh.twice_nll(p), res.bestfit.copy(), name=lh.labels)
    m.errordef = 1.0
    m.strategy = 2
    m.limits = [tuple(b) for b in lh.bounds]
    m.migrad()
    m.hesse()
    cov = exact_covariance(lh, np.asarray(m.values), lh.fixed)
    assert cov is not None
    np.testing.assert_allclose(np.sqrt(np.diag(cov)), np.asarray(m.errors), rtol=1e-2)  # finite-difference steps
    assert res.quality.covariance_source.startswith("exact Hessian")
    np.testing.assert_allclose(res.uncertainty, np.sqrt(np.diag(cov)), rtol=1e-3)
