"""POI intervals: MINOS (asymmetric) beside HESSE, the profile-likelihood scan, and their consistency.

MINOS itself is iminuit's (:func:`analysis.stats.fit.run_minos`); here the profile scan (fixed-POI fits
through the core's guarded :func:`~analysis.stats.fit.fit`, warm-started from the best fit) and the
Δ(−2 ln L) = 1 crossings used to cross-check it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analysis.stats.fit import NEARBY_FIT, FitResult, fit
from analysis.stats.parametric import FittableLikelihood as Likelihood  # any core likelihood (pyhf, iminuit cost, function)

DISAGREEMENT = 0.20  # |MINOS − HESSE| / HESSE above which the console and results say so


@dataclass
class Interval:
    """Best fit of one parameter with HESSE and MINOS (lower ≤ 0 ≤ upper) uncertainties."""

    name: str
    value: float
    hesse: float
    minos_lower: float | None = None
    minos_upper: float | None = None
    method: str = "MINOS"

    @property
    def hesse_minos_differ(self) -> bool:
        """True when either MINOS error differs from HESSE by more than 20 %."""
        if self.minos_lower is None or self.minos_upper is None or self.hesse <= 0:
            return False
        return max(abs(-self.minos_lower - self.hesse), abs(self.minos_upper - self.hesse)) > DISAGREEMENT * self.hesse

    def text(self) -> str:
        """``ttbar_norm = 1.067 −0.114 +0.129 (MINOS; HESSE ± 0.062)``."""
        if self.minos_lower is None:
            return f"{self.name} = {self.value:.4g} ± {self.hesse:.2g} (HESSE)"
        how = "MINOS" if self.method == "MINOS" else "profile likelihood"
        return (f"{self.name} = {self.value:.4g} {self.minos_lower:+.3g} {self.minos_upper:+.3g} ({how}; "
                f"HESSE ± {self.hesse:.3g})")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"parameter": self.name, "bestfit": self.value, "method": self.method, "hesse": self.hesse, "minos_lower": self.minos_lower,
                "minos_upper": self.minos_upper, "hesse_minos_differ_over_20_percent": self.hesse_minos_differ}


def interval(result: FitResult, name: str) -> Interval:
    """The :class:`Interval` of parameter ``name`` from a fit result (MINOS when it was run)."""
    i = result.labels.index(name)
    lo, hi = result.minos.get(name, (None, None))
    return Interval(name, float(result.bestfit[i]), float(result.uncertainty[i]), lo, hi,
                    result.minos_method.get(name, "MINOS"))


@dataclass
class ScanResult:
    """Profile-likelihood scan: parameter values, Δ(−2 ln L) (NaN where the fit failed the guard)."""

    name: str
    bestfit: float
    uncertainty: float
    values: np.ndarray
    delta_twice_nll: np.ndarray
    failed: list[float] = field(default_factory=list)

    def to_cabinetry(self):
        """``cabinetry.fit.ScanResults`` for cabinetry's scan plot."""
        import cabinetry

        return cabinetry.fit.ScanResults(self.name, self.bestfit, self.uncertainty, self.values, self.delta_twice_nll)

    def crossings(self, level: float = 1.0) -> tuple[float, float]:
        """Where Δ(−2 ln L) crosses ``level`` below and above the minimum (linear interpolation; NaN if not)."""
        return crossings(self.values, self.delta_twice_nll, level)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        lo, hi = self.crossings()
        return {"parameter": self.name, "values": self.values.tolist(),
                "delta_minus_two_log_likelihood": self.delta_twice_nll.tolist(),
                "crossing_1_lower": lo, "crossing_1_upper": hi, "failed_fits_at": list(self.failed)}


def crossings(values: np.ndarray, delta: np.ndarray, level: float = 1.0) -> tuple[float, float]:
    """Lower and upper points where a scanned curve crosses ``level`` around its minimum (NaN if not reached)."""
    x, y = np.asarray(values, float), np.asarray(delta, float)
    ok = np.isfinite(y)
    x, y = x[ok], y[ok]
    i = int(np.argmin(y))
    out = []
    for direction in (-1, 1):
        j = i
        while 0 <= j + direction < len(x) and y[j + direction] < level:
            j += direction
        k = j + direction
        if not 0 <= k < len(x):
            out.append(float("nan"))
            continue
        frac = (level - y[j]) / (y[k] - y[j])
        out.append(float(x[j] + frac * (x[k] - x[j])))
    return out[0], out[1]


def profile_scan(lh: Likelihood, best: FitResult, name: str | None = None, values: Sequence[float] | None = None,
                 n_points: int = 21, width: float = 2.5) -> ScanResult:
    """Δ(−2 ln L) of fixed-parameter fits over ``values`` (default: ``n_points`` over the MINOS/HESSE interval
    widened ``width`` times, within the bounds)."""
    name = name or lh.poi_name
    i = lh.index(name)
    v0, err = float(best.bestfit[i]), float(best.uncertainty[i])
    lo_err, hi_err = best.minos.get(name, (-err, err))
    lo_b, hi_b = lh.bounds[i]
    if values is None:
        values = np.linspace(max(lo_b, v0 + width * lo_err), min(hi_b, v0 + width * hi_err), n_points)
    values = np.asarray(values, float)
    deltas, failed = [], []
    for v in values:
        r = fit(lh, init=best.bestfit, fix={i: float(v)}, hesse=False, **NEARBY_FIT)
        if not r.quality.ok:
            failed.append(float(v))
        deltas.append(r.twice_nll - best.twice_nll if r.quality.ok else np.nan)
    return ScanResult(name, v0, err, values, np.asarray(deltas), failed)


def profile_crossings(lh: Likelihood, best: FitResult, index: int, *, data: np.ndarray | None = None,
                      level: float = 1.0, xtol: float = 1e-4) -> tuple[float, float]:
    """(lower, upper) errors where the profile Δ(−2 ln L) reaches ``level`` (Brent on guarded fixed fits).

    Used when MINOS does not converge; returns the distance to a bound when the crossing lies beyond it.
    """
    from scipy.optimize import brentq

    v0 = float(best.bestfit[index])
    lo_b, hi_b = lh.bounds[index]
    step = float(best.uncertainty[index]) if best.uncertainty[index] > 0 else 0.1 * max(abs(v0), 1.0)

    def delta(v: float) -> float:
        r = fit(lh, init=best.bestfit, fix={index: v}, data=data, hesse=False, **NEARBY_FIT)
        return r.twice_nll - best.twice_nll - level

    out = []
    for direction, bound in ((-1, lo_b), (1, hi_b)):
        a, h = v0, step / 4
        b = float(np.clip(v0 + direction * h, lo_b, hi_b))
        while delta(b) < 0:
            if b == bound:
                break
            a, h = b, 2 * h
            b = float(np.clip(v0 + direction * h, lo_b, hi_b))
        if b == bound and delta(b) < 0:
            out.append(bound - v0)
            continue
        out.append(float(brentq(delta, min(a, b), max(a, b), xtol=xtol)) - v0)
    return out[0], out[1]
