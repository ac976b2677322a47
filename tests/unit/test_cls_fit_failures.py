"""Failed fits inside the CLs hypotests (issue 16, fresh report item 8): counted, summarised, recorded."""

from __future__ import annotations

import numpy as np
import pyhf
import pytest

from analysis.stats.errors import StatsError
from analysis.stats.likelihood import Likelihood
from analysis.stats.limits import CLsCalculator, upper_limit
from analysis.stats.stage import stage


def _model(data, lo):
    """Two bins; the background's histosys makes a negative yield below α ≈ −0.7 (NaN likelihood there)."""
    spec = {"channels": [{"name": "c", "samples": [
        {"name": "sig", "data": [5.0, 10.0], "modifiers": [{"name": "mu", "type": "normfactor", "data": None}]},
        {"name": "bkg", "data": [5.0, 5.0], "modifiers": [
            {"name": "sh", "type": "histosys", "data": {"hi_data": [20.0, 20.0], "lo_data": lo}}]}]}],
        "observations": [{"name": "c", "data": data}],
        "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}], "version": "1.0.0"}
    ws = pyhf.Workspace(spec)
    model = ws.model()
    return Likelihood(model, np.asarray(ws.data(model)), use_jax=False)


def test_failed_hypotest_fits_are_counted_not_dumped(capfd):
    lh = _model([0.0, 1.0], [-5.0, 2.0])
    calc = CLsCalculator(lh)
    with stage("limit", quiet=False) as messages, pytest.raises(StatsError, match="fits failed"):
        calc(1.6)
    out, err = capfd.readouterr()
    assert "success: False" not in err + out  # pyhf's multi-line dumps are captured …
    assert "pyhf.optimize" not in err
    n_failed = len(calc.failures)
    assert n_failed == 2  # SLSQP, then the Minuit retry
    assert messages.counts["failed pyhf fits (retried)"] == n_failed
    summary = [line for line in err.splitlines() if "failed pyhf fits" in line]
    assert len(summary) == 1 and f"{n_failed} failed pyhf fits" in summary[0]  # … and summarised in one line
    q = calc.fit_quality()
    assert q["ok"] is False and q["n_failed_fits"] == n_failed and q["mu_not_recovered"] == [1.6]
    assert {f["optimizer"] for f in q["failures"]} == {"scipy", "minuit"}
    (line,) = calc.warnings()
    assert line.startswith(f"{n_failed} of {calc.n_fits} constrained fits in the CLs scan did not converge")
    assert "mu = 1.6" in line and "limits may be affected" in line


def test_clean_limit_records_an_ok_cls_block():
    res = upper_limit(_model([1.0, 1.0], [-2.0, -2.0]))
    assert res.warnings == []
    q = res.to_dict()["fit_quality"]
    assert q["ok"] is True and q["n_failed_fits"] == 0
    # 5 μ-independent fits once, then 2 per full hypotest and 1 per expected-only one
    assert 5 + 2 * (res.n_hypotests - 1) <= q["n_fits"] <= 5 + 2 * res.n_hypotests + 60
    assert res.observed == pytest.approx(0.6399, rel=1e-3)  # value before the capture was added


def test_failure_record_names_parameters_at_bounds():
    """pyhf's FailedMinimization carries Minuit's values: an NP pinned at −5 is named, the POI is not."""
    import scipy.optimize
    from iminuit import Minuit

    lh = _model([1.0, 1.0], [-2.0, -2.0])
    calc = CLsCalculator(lh)
    m = Minuit(lambda a, b: a * a + b * b, a=-4.99999, b=2.0)  # (sh, mu) in the model's parameter order
    result = scipy.optimize.OptimizeResult(x=m.values, success=False, message="Optimization terminated successfully.")
    calc._record_failure(2.0, "minuit", pyhf.exceptions.FailedMinimization(result), False)
    (rec,) = calc.failures
    assert rec["parameters_at_bounds"] == ["sh"] and rec["message"] == "invalid minimum (success: False)"
    assert "parameters at their bounds: sh" in calc.warnings()[0]
