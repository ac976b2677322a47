"""Goodness of fit: Poisson deviance (saturated-model χ²) of binned data, for pyhf models and plain spectra, and
the Gaussian χ² of two histograms with their variances (closure tests).

Saturated model (Baker & Cousins, NIM 221 (1984) 437): χ² = 2 Σ_i [ν_i − n_i + n_i ln(n_i/ν_i)], which
follows a χ² law with (bins − free parameters) degrees of freedom for large counts.  For a pyhf model the
constraint terms enter as in cabinetry: χ² = −2 ln L(θ̂) + 2 ln L_sat, where L_sat has ν = n and the
constraint terms at their maximum (``cabinetry.fit._goodness_of_fit``).

Two histograms with variances (:func:`histogram_chi2`): χ² = Σ_i (a_i − b_i)²/σ_i² with σ_i² the variance of
the difference (Neyman when σ² holds the observed counts, Pearson when it holds the expected ones, plus any MC
Σw²); the sum is ``iminuit.cost.chi2``, the p-value ``scipy.stats.chi2.sf``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class GoodnessOfFit:
    """χ², degrees of freedom and p-value of a fit (p is NaN when ndf ≤ 0)."""

    chi2: float
    ndf: int
    p_value: float
    method: str = "saturated model (Poisson deviance)"

    @property
    def chi2_per_ndf(self) -> float:
        """χ²/ndf (NaN when ndf ≤ 0)."""
        return self.chi2 / self.ndf if self.ndf > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {"chi2": float(self.chi2), "ndf": int(self.ndf), "chi2_per_ndf": float(self.chi2_per_ndf),
                "p_value": float(self.p_value), "method": self.method}


def poisson_deviance(expected: Sequence[float] | np.ndarray, observed: Sequence[float] | np.ndarray,
                     floor: float = 1e-12) -> float:
    """2 Σ [ν − n + n ln(n/ν)] over bins (n = 0 bins contribute 2ν; ν clipped at ``floor``)."""
    nu = np.maximum(np.asarray(expected, dtype=float), floor)
    n = np.asarray(observed, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        term = np.where(n > 0, n * np.log(n / nu), 0.0)
    return float(2.0 * np.sum(nu - n + term))


def chi2_gof(chi2: float, ndf: int, method: str = "saturated model (Poisson deviance)") -> GoodnessOfFit:
    """p-value of ``chi2`` for ``ndf`` degrees of freedom (NaN when ndf ≤ 0)."""
    p = float(stats.chi2.sf(chi2, ndf)) if ndf > 0 else float("nan")
    return GoodnessOfFit(float(chi2), int(ndf), p, method)


def spectrum_gof(expected: np.ndarray, observed: np.ndarray, n_free: int, mask: np.ndarray | None = None) -> GoodnessOfFit:
    """Saturated-model goodness of fit of a fitted spectrum over the bins in ``mask`` with ``n_free`` parameters."""
    m = np.ones(len(observed), bool) if mask is None else np.asarray(mask, bool)
    dev = poisson_deviance(np.asarray(expected)[m], np.asarray(observed)[m])
    return chi2_gof(dev, int(m.sum()) - int(n_free))


def histogram_chi2(observed: Sequence[float] | np.ndarray, expected: Sequence[float] | np.ndarray,
                   variance: Sequence[float] | np.ndarray, *, mask: Sequence[bool] | np.ndarray | None = None,
                   n_free: int = 0, method: str = "chi2 of two histograms with variances") -> GoodnessOfFit:
    """χ² = Σ_{i ∈ mask} (observed_i − expected_i)²/variance_i, ndf = bins in ``mask`` − ``n_free``, and its p-value.

    Args:
        observed, expected: bin contents (events or weighted sums), shape (n,).
        variance: variance of observed_i − expected_i per bin, shape (n,): e.g. data (Poisson) + MC Σw².
        mask: bins to use, shape (n,) (default all).
        n_free: parameters fitted to these bins (subtracted from the degrees of freedom).
        method: description stored in the result.

    Returns:
        :class:`GoodnessOfFit` (χ² 0 and p NaN when no bin is used).

    Raises:
        StatsError: shapes differ, or a used bin has a non-finite value or a variance ≤ 0 (χ² undefined).

    The sum is ``iminuit.cost.chi2(y, σ, y_model)`` (Baker & Cousins, NIM 221 (1984) 437, eq. 2 for the Neyman
    and Pearson forms).
    """
    from iminuit.cost import chi2 as iminuit_chi2

    from analysis.stats.errors import StatsError

    obs, exp, var = (np.asarray(a, dtype=float) for a in (observed, expected, variance))
    if not obs.shape == exp.shape == var.shape or obs.ndim != 1:
        raise StatsError(f"histogram χ²: observed {obs.shape}, expected {exp.shape} and variance {var.shape} must "
                         "be one-dimensional with the same number of bins")
    m = np.ones(obs.shape, bool) if mask is None else np.asarray(mask, bool)
    if m.shape != obs.shape:
        raise StatsError(f"histogram χ²: mask has shape {m.shape}, the histograms {obs.shape}")
    bad = np.flatnonzero(m & ~(np.isfinite(obs) & np.isfinite(exp) & np.isfinite(var) & (var > 0)))
    if bad.size:
        i = int(bad[0])
        raise StatsError(f"histogram χ²: bin {i} has observed {obs[i]:g}, expected {exp[i]:g}, variance {var[i]:g}; "
                         "the χ² needs finite values and a positive variance in every used bin")
    chi2 = float(iminuit_chi2(obs[m], np.sqrt(var[m]), exp[m])) if m.any() else 0.0
    return chi2_gof(chi2, int(m.sum()) - int(n_free), method)


def pyhf_saturated_gof(model: Any, data: Sequence[float], best_twice_nll: float) -> GoodnessOfFit:
    """Saturated-model χ² of a pyhf fit: −2 ln L(θ̂) − (−2 ln L_sat); ndf = bins − unconstrained parameters.

    Args:
        model: pyhf model; data: observed main + auxiliary data; best_twice_nll: −2 ln L at the best fit.
    """
    import pyhf
    from cabinetry import model_utils

    from analysis.stats.likelihood import pyhf_backend

    with pyhf_backend("numpy"):
        d = np.asarray(data, dtype=float)
        n_main = model.config.nmaindata
        main, aux = d[:n_main], d[n_main:]
        constraint_ll = 0.0
        if model.config.nauxdata > 0:
            best_pars = model_utils._parameters_maximizing_constraint_term(model, aux.tolist())
            constraint_ll = float(model.constraint_logpdf(pyhf.tensorlib.astensor(aux),
                                                          pyhf.tensorlib.astensor(best_pars)))
        poisson_ll = float(np.sum(pyhf.tensorlib.poisson_dist(main).log_prob(main)))  # continuous in n, as pyhf
        ndf = int(sum(model.config.channel_nbins.values()) - model_utils.unconstrained_parameter_count(model))
    chi2 = float(best_twice_nll + 2.0 * (poisson_ll + constraint_ll))
    return chi2_gof(max(chi2, 0.0), ndf)
