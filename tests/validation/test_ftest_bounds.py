"""f-test fits ending at a parameter bound and degenerate higher orders (fresh report item 10, issue 16).

A falling exponential spectrum (20 000 events, τ = 30 GeV): lau2 = f1·x^-4 + f2·x^-5 can only match lau1 with the
second fraction at its bound 0, pow3 only by repeating pow1's slope — both have lau1's/pow1's deviance.
"""

from __future__ import annotations

import numpy as np
import pytest

from analysis.resonance.envelope import build_envelope
from analysis.resonance.ftest import ftest_table, table_markdown

EDGES = np.linspace(100.0, 180.0, 41)


@pytest.fixture(scope="module")
def env():
    rng = np.random.default_rng(5)
    x = 100 + rng.exponential(30.0, 20000)
    counts = np.histogram(x[x < 180], EDGES)[0].astype(float)
    return build_envelope(EDGES, counts, blind=(115.0, 135.0), seed=0, n_toys=200, warn=False)


def test_parameter_at_bound_is_a_warning_not_converged(env):
    lau1, lau2 = (env.ftests["laurent"].orders[o].fit for o in (1, 2))
    assert lau2.params[1] == pytest.approx(0.0, abs=1e-9)  # f2 sits on its lower bound
    assert lau2.quality.at_bounds == ["f2"]
    assert lau2.quality.ok and lau2.quality.warnings == ["parameters at bounds: f2"]  # ok, but never silent
    assert lau1.quality.at_bounds == [] and lau1.quality.warnings == []
    rows = {r["function"]: r for r in ftest_table(env.ftests)}
    assert rows["lau2"]["fit_status"] == "at bound" and rows["lau2"]["parameters_at_bounds"] == "f2"
    assert rows["lau1"]["fit_status"] == "converged" and rows["pow3"]["fit_status"] == "fit-quality warning"
    md = {line.split("|")[1].strip(): line for line in table_markdown(list(rows.values())).splitlines()[2:]}
    assert "| at bound (f2) |" in md["lau2"] and "| ✓ |" in md["lau1"]
    block = env.fit_quality()
    assert block["background_fits_at_bounds"] == {"lau2": "f2"}
    assert "parameters at their bounds: lau2 (f2)" in env.quality_summary()


def test_degenerate_orders_reduce_to_lower_and_are_not_chosen(env):
    rows = {r["function"]: r for r in ftest_table(env.ftests)}
    assert rows["lau2"]["deviance"] == pytest.approx(rows["lau1"]["deviance"], abs=1e-3)
    assert rows["lau2"]["reduces_to"] == "lau1" and rows["pow3"]["reduces_to"] == "pow1"
    assert all(rows[f]["reduces_to"] is None for f in ("exp1", "exp3", "bern4", "lau1", "pow1"))
    # the f-test's choice is unaffected: p = 1 for a zero improvement, so neither truncates nor joins the envelope
    assert rows["lau2"]["ftest_pvalue"] == 1.0 and rows["pow3"]["ftest_pvalue"] == 1.0
    assert env.ftests["laurent"].truncation_order == 1 and env.ftests["laurent"].envelope_orders == [1]
    assert env.ftests["powerlaw"].truncation_order == 1 and env.ftests["powerlaw"].envelope_orders == [1]
    assert sorted(f.name for f in env.functions) == ["bern4", "exp1", "lau1", "pow1"] and env.best.name == "exp1"
    assert "reduces to pow1" in table_markdown(list(rows.values()))
