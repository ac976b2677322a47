"""The reinterpretation's limit root finder on an analytic asymptotic CLs curve: the roots equal brentq's on
CLs(μ) − 0.05 (independent, to 1e-12) within the requested tolerance, with few CLs evaluations per limit."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq

from analysis.recast.reinterpret import CLS_LEVEL, _linearised, _root
from analysis.stats.limits import log_space_cls


def _cls(mu: float) -> np.ndarray:
    """q̃ CLs vector (pyhf's asymptotic formulae) for √q_A = μ/σ(μ) and an observed √q from μ̂ = 0.15."""
    sqrt_qa = mu / (0.35 * (1.0 + 0.1 * mu))  # σ grows slowly with μ: √q_A mildly non-linear
    sqrt_q = max(mu - 0.15, 0.0) / 0.36
    t = sqrt_q - sqrt_qa if sqrt_q <= sqrt_qa else (sqrt_q**2 - sqrt_qa**2) / (2.0 * sqrt_qa)
    return log_space_cls(t, sqrt_qa)


class _Curve:
    def __init__(self) -> None:
        self.calls = 0

    def value(self, mu: float, index: int) -> float:
        self.calls += 1
        return float(_cls(float(mu))[index])


@pytest.mark.parametrize("index", range(6))
def test_root_equals_brentq_on_cls(index: int) -> None:
    mus = np.linspace(0.0, 2.5, 15)
    values = np.array([_cls(m) for m in mus])
    curve = _Curve()
    xtol = 1e-6 * mus[-1]
    ours = _root(curve, index, mus, values, xtol)
    truth = brentq(lambda m: _cls(m)[index] - CLS_LEVEL, 1e-3, 2.5, xtol=1e-14, rtol=1e-14)
    assert ours == pytest.approx(truth, abs=xtol)
    assert curve.calls <= 3


def test_linearised_expected_is_sqrt_qmu_asimov() -> None:
    """Φ̄⁻¹(CLs_exp·Φ̄(−n)) + n inverts pyhf's expected-CLs formula back to √q_μ,A for every band."""
    for sqrt_qa in (0.3, 1.7, 4.2):
        cls = log_space_cls(0.0, sqrt_qa)
        for k in range(1, 6):
            assert _linearised(k, float(cls[k])) == pytest.approx(sqrt_qa, rel=1e-10)
    assert _linearised(0, 0.05) == pytest.approx(1.6448536269514722, rel=1e-12)  # Φ̄⁻¹(0.05)
    assert math.isinf(_linearised(0, 1.0))
