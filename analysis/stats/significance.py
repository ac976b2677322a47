"""Discovery significance Z = √q₀ from guarded fits (finite even where p-values underflow), with pyhf's
Asimov convention for the expected value (nuisance parameters from the fit of the data at POI = 1).

Cross-checked in the tests against ``pyhf.infer.hypotest(0, test_stat="q0")`` and the Cowan et al.
Asimov formula Z_A = √(2((s+b)ln(1+s/b) − s)).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analysis.stats.asymptotics import p_from_z
from analysis.stats.errors import StatsError
from analysis.stats.fit import FitResult, fit
from analysis.stats.likelihood import Likelihood


@dataclass
class SignificanceResult:
    """Observed and expected (Asimov, POI = 1) discovery significance and their p-values."""

    observed: float
    expected: float
    warnings: list[str] = field(default_factory=list)

    @property
    def observed_p_value(self) -> float:
        """One-sided p-value of the observed significance."""
        return float(p_from_z(self.observed))

    @property
    def expected_p_value(self) -> float:
        """One-sided p-value of the expected significance."""
        return float(p_from_z(self.expected))

    def to_cabinetry(self):
        """``cabinetry.fit.SignificanceResults``."""
        import cabinetry

        return cabinetry.fit.SignificanceResults(self.observed_p_value, self.observed, self.expected_p_value,
                                                 self.expected)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"observed": self.observed, "observed_p_value": self.observed_p_value, "expected": self.expected,
                "expected_p_value": self.expected_p_value, "warnings": list(self.warnings)}


def discovery_significance(lh: Likelihood, best: FitResult | None = None) -> SignificanceResult:
    """Z_obs = √q₀ on the data, Z_exp = √q₀ on Asimov data generated at POI = 1 (profiled nuisances).

    q₀ = −2 ln λ(0) for μ̂ ≥ 0, else 0 (Cowan et al. eq. 12).  Every fit goes through the guard; a fit
    that fails it is reported in ``warnings``.

    Raises:
        StatsError: the model has no POI.
    """
    i = lh.poi_index
    if i is None:
        raise StatsError("the model has no parameter of interest")
    warnings: list[str] = []

    def guarded(r: FitResult, what: str) -> FitResult:
        if not r.quality.ok:
            warnings.append(f"{what}: " + "; ".join(r.quality.warnings))
        return r

    best = best or guarded(fit(lh, hesse=False), "free fit")
    q0 = 0.0
    if best.bestfit[i] > 0:
        b_only = guarded(fit(lh, init=best.bestfit, fix={i: 0.0}, hesse=False), "background-only fit")
        q0 = max(b_only.twice_nll - best.twice_nll, 0.0)
    cond = guarded(fit(lh, init=best.bestfit, fix={i: 1.0}, hesse=False), "fit at POI = 1")
    asimov = lh.expected_data(cond.bestfit)
    asimov_free = lh.twice_nll(cond.bestfit, asimov)  # the Asimov free fit is the generating point
    b_only_a = guarded(fit(lh, init=cond.bestfit, fix={i: 0.0}, data=asimov, hesse=False), "Asimov background-only fit")
    q0_a = max(b_only_a.twice_nll - asimov_free, 0.0)
    return SignificanceResult(float(np.sqrt(q0)), float(np.sqrt(q0_a)), warnings)
