"""``analysis.stats.gof.histogram_chi2``: the closure χ² of two histograms with variances, against independent
computations (scipy's Pearson test, the closed-form χ² survival function for two degrees of freedom)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from analysis.stats.errors import StatsError
from analysis.stats.gof import histogram_chi2


def test_pearson_equals_scipy_chisquare():
    obs = np.array([12.0, 30.0, 45.0, 22.0, 9.0, 2.0])
    exp = np.array([12.5, 33.0, 40.0, 25.5, 7.0, 2.0])  # same total as obs (scipy requires it)
    ref = stats.chisquare(obs, exp)  # Σ (o − e)²/e with k − 1 degrees of freedom
    gof = histogram_chi2(obs, exp, exp, n_free=1)
    assert gof.chi2 == pytest.approx(ref.statistic, rel=1e-12)
    assert gof.ndf == len(obs) - 1
    assert gof.p_value == pytest.approx(ref.pvalue, rel=1e-10)


def test_masked_neyman_chi2_and_two_dof_p_value():
    obs = np.array([4.0, 9.0, 0.0, 16.0, 25.0])
    exp = np.array([6.0, 7.0, 3.0, 12.0, 30.0])
    var = obs + np.array([1.0, 1.0, 0.0, 4.0, 0.0])  # data (Neyman) + MC Σw²; bin 2 has no variance → masked
    mask = np.array([True, False, False, True, True])
    gof = histogram_chi2(obs, exp, var, mask=mask, n_free=1)
    chi2 = (4 - 6) ** 2 / 5 + (16 - 12) ** 2 / 20 + (25 - 30) ** 2 / 25
    assert gof.chi2 == pytest.approx(chi2, rel=1e-12)
    assert gof.ndf == 2
    assert gof.p_value == pytest.approx(math.exp(-chi2 / 2), rel=1e-12)  # χ² survival function for 2 dof


def test_no_used_bin_gives_zero_and_nan():
    gof = histogram_chi2([1.0, 2.0], [1.0, 1.0], [1.0, 1.0], mask=[False, False])
    assert gof.chi2 == 0.0 and gof.ndf == 0 and math.isnan(gof.p_value)


@pytest.mark.parametrize(("var", "mask", "match"), [
    ([1.0, 0.0, 1.0], None, "bin 1 .*positive variance"),
    ([1.0, 1.0, float("nan")], None, "bin 2"),
    ([1.0, 1.0], None, "same number of bins"),
    ([1.0, 1.0, 1.0], [True, False], "mask"),
])
def test_bad_input_names_the_bin(var, mask, match):
    with pytest.raises(StatsError, match=match):
        histogram_chi2([1.0, 2.0, 3.0], [1.0, 1.0, 1.0], var, mask=mask)
