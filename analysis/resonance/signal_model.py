"""Signal model: double-sided Crystal Ball fits per simulated mass, interpolated linearly in mass.

DSCB in t = (m − μ)/σ: Gaussian core for −α_L ≤ t ≤ α_R, power-law tails A(B ∓ t)^−n outside; the CDF is
analytic, so binned templates are exact bin integrals.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy.special import erf

from analysis.errors import AnalysisError
from analysis.resonance.bkgfit import _quiet_minuit as quiet_minuit
from analysis.stats.fit import fit
from analysis.stats.parametric import FunctionLikelihood

log = logging.getLogger(__name__)

PARAMS = ("mean", "sigma", "alpha_l", "n_l", "alpha_r", "n_r")
_SQ2 = np.sqrt(2.0)
_SQPI2 = np.sqrt(np.pi / 2.0)


def _tail_consts(alpha: float, n: float) -> tuple[float, float]:
    a = (n / alpha) ** n * np.exp(-0.5 * alpha**2)
    b = n / alpha - alpha
    return a, b


def _unnormalised_cdf_t(t: np.ndarray, al: float, nl: float, ar: float, nr: float) -> np.ndarray:
    """∫_{−∞}^{t} of the unnormalised DSCB in standardised units."""
    t = np.asarray(t, float)
    a_l, b_l = _tail_consts(al, nl)
    a_r, b_r = _tail_consts(ar, nr)
    left_total = a_l * (b_l + al) ** (1 - nl) / (nl - 1)
    core_total = _SQPI2 * (erf(ar / _SQ2) - erf(-al / _SQ2))
    tl = np.minimum(t, -al)
    left = a_l * (b_l - tl) ** (1 - nl) / (nl - 1)
    tc = np.clip(t, -al, ar)
    core = _SQPI2 * (erf(tc / _SQ2) - erf(-al / _SQ2))
    tr = np.maximum(t, ar)
    right = a_r * ((b_r + ar) ** (1 - nr) - (b_r + tr) ** (1 - nr)) / (nr - 1)
    return np.where(t < -al, left, left_total + core + np.where(t > ar, right, 0.0))


def _total_t(al: float, nl: float, ar: float, nr: float) -> float:
    a_l, b_l = _tail_consts(al, nl)
    a_r, b_r = _tail_consts(ar, nr)
    return float(a_l * (b_l + al) ** (1 - nl) / (nl - 1) + _SQPI2 * (erf(ar / _SQ2) - erf(-al / _SQ2))
                 + a_r * (b_r + ar) ** (1 - nr) / (nr - 1))


def dscb_logpdf_unnorm(m: np.ndarray, mean: float, sigma: float, al: float, nl: float, ar: float, nr: float) -> np.ndarray:
    """log of the unnormalised DSCB shape at m."""
    t = (np.asarray(m, float) - mean) / sigma
    a_l, b_l = _tail_consts(al, nl)
    a_r, b_r = _tail_consts(ar, nr)
    out = -0.5 * t**2
    lt = t < -al
    rt = t > ar
    out = np.where(lt, np.log(a_l) - nl * np.log(np.where(lt, b_l - t, 1.0)), out)
    out = np.where(rt, np.log(a_r) - nr * np.log(np.where(rt, b_r + t, 1.0)), out)
    return out


def dscb_pdf(m: np.ndarray, mean: float, sigma: float, al: float, nl: float, ar: float, nr: float) -> np.ndarray:
    """Normalised DSCB density on the real line (1/GeV)."""
    return np.exp(dscb_logpdf_unnorm(m, mean, sigma, al, nl, ar, nr)) / (sigma * _total_t(al, nl, ar, nr))


def dscb_cdf(m: np.ndarray, mean: float, sigma: float, al: float, nl: float, ar: float, nr: float) -> np.ndarray:
    """Normalised DSCB cumulative distribution."""
    t = (np.asarray(m, float) - mean) / sigma
    return _unnormalised_cdf_t(t, al, nl, ar, nr) / _total_t(al, nl, ar, nr)


def fit_dscb(masses: np.ndarray, nominal: float, window: float = 0.35) -> dict[str, float]:
    """Unbinned ML fit of a DSCB to (unweighted) signal m_γγ values within ±window·nominal, through the statistics
    core (:func:`analysis.stats.fit.fit`: quality guard and retries; a failed guard is a warning and is recorded
    in the returned ``fit_quality``)."""
    lo, hi = nominal * (1 - window), nominal * (1 + window)
    x = np.asarray(masses, float)
    x = x[(x > lo) & (x < hi)]
    if len(x) < 50:
        raise AnalysisError(f"signal {nominal:g} GeV: only {len(x)} selected events near the peak; cannot fit")
    med = float(np.median(x))
    sig0 = float(0.5 * (np.percentile(x, 84) - np.percentile(x, 16)))

    def twice_nll(p: np.ndarray, _data: object = None) -> float:
        mean, sigma, al, nl, ar, nr = p
        norm = sigma * _total_t(al, nl, ar, nr) * (dscb_cdf(hi, mean, sigma, al, nl, ar, nr) - dscb_cdf(lo, mean, sigma, al, nl, ar, nr))
        return float(2.0 * (-np.sum(dscb_logpdf_unnorm(x, mean, sigma, al, nl, ar, nr)) + len(x) * np.log(norm)))

    lh = FunctionLikelihood(twice_nll, PARAMS, [med, sig0, 1.5, 5.0, 1.5, 5.0],
                            bounds=[(med - 3 * sig0, med + 3 * sig0), (0.2 * sig0, 5 * sig0), (0.3, 6.0), (1.05, 100.0),
                                    (0.3, 6.0), (1.05, 100.0)])
    with quiet_minuit():
        r = fit(lh)
    if not r.quality.ok:
        log.warning("signal %g GeV: DSCB fit quality: %s", nominal, "; ".join(r.quality.warnings) or r.quality.covariance)
    vals = dict(zip(PARAMS, map(float, r.bestfit)))
    errs = {f"{k}_err": float(e) for k, e in zip(PARAMS, r.uncertainty)}
    return {**vals, **errs, "n_fit": int(len(x)), "valid": bool(r.quality.valid), "fit_quality": r.quality.to_dict()}


@dataclass
class SignalModel:
    """Per-mass DSCB parameters and selection efficiencies, with linear interpolation in mass."""

    masses: np.ndarray
    params: dict[str, np.ndarray]
    efficiency: np.ndarray
    lumi_pb: float
    filter_efficiency: float

    def at(self, mass: float) -> dict[str, float]:
        """Interpolated DSCB parameters and efficiency at ``mass`` (linear; linear extrapolation at the ends)."""
        out = {k: _interp(mass, self.masses, v) for k, v in self.params.items()}
        out["efficiency"] = _interp(mass, self.masses, self.efficiency)
        if len(self.masses) == 1:  # one sample: peak and width scale with the mass hypothesis
            out["mean"] *= mass / self.masses[0]
            out["sigma"] *= mass / self.masses[0]
        return out

    def yield_per_pb(self, mass: float) -> float:
        """Expected selected signal events per pb of cross-section (before any mass-range cut)."""
        return self.lumi_pb * self.filter_efficiency * max(self.at(mass)["efficiency"], 0.0)

    def template(self, mass: float, edges: np.ndarray) -> np.ndarray:
        """Expected selected signal events per bin per pb at signal mass ``mass``."""
        p = self.at(mass)
        args = (p["mean"], max(p["sigma"], 1e-3), p["alpha_l"], max(p["n_l"], 1.01), p["alpha_r"], max(p["n_r"], 1.01))
        cdf = dscb_cdf(np.asarray(edges, float), *args)
        return self.yield_per_pb(mass) * np.diff(cdf)

    def width(self, mass: float) -> float:
        """Gaussian-core width σ at ``mass`` in GeV."""
        return float(self.at(mass)["sigma"])


def _interp(x: float, xp: np.ndarray, fp: np.ndarray) -> float:
    """Piecewise-linear interpolation with linear extrapolation from the end segments."""
    xp, fp = np.asarray(xp, float), np.asarray(fp, float)
    if len(xp) == 1:
        return float(fp[0])
    i = int(np.clip(np.searchsorted(xp, x) - 1, 0, len(xp) - 2))
    return float(fp[i] + (fp[i + 1] - fp[i]) * (x - xp[i]) / (xp[i + 1] - xp[i]))


def build_signal_model(samples: dict[float, dict], lumi_pb: float, filter_efficiency: float) -> tuple[SignalModel, list[dict]]:
    """Fit every sample (``{mass: {"mass": selected m_γγ, "n_gen": N}}``) and assemble the interpolating model."""
    masses = np.array(sorted(samples), float)
    fits = []
    for m in masses:
        s = samples[float(m)]
        fit = fit_dscb(s["mass"], float(m))
        fit["mass_point_gev"] = float(m)
        fit["efficiency"] = float(len(s["mass"]) / s["n_gen"])
        fits.append(fit)
    params = {k: np.array([f[k] for f in fits]) for k in PARAMS}
    model = SignalModel(masses, params, np.array([f["efficiency"] for f in fits]), lumi_pb, filter_efficiency)
    return model, fits
