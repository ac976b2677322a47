"""The smooth reweighting function of one nJets bin: a regularised polynomial fit (default) or the seed's
exact-integral C¹ piecewise quadratic, made physical (held outside the populated range, clipped to bounds).

**Polynomial fit** (``method: polynomial``). In t = (HT_all − c)/h (c, h: centre and half-width of the populated
range) the model of the bin ratio is the MC-weighted bin average of a polynomial,
k_i ≈ Σ_m β_m ⟨t^m⟩_i, with ⟨t^m⟩_i from the fine-bin weight moments (exact for m ≤ 2, the within-fine-bin skew
neglected for m = 3), so that wide, skewed edge bins are compared like for like. β is the weighted
least-squares solution β = A k, A = (XᵀWX)⁻¹XᵀW, W = diag(1/σ²_i,unc) with σ_i,unc the bin's own statistical
error (data* and, with mcStatError, MC); its covariance propagates the full covariance of the k_i (including
the common normalisation), V_β = A V_k Aᵀ, and is inflated by χ²/ndf when that exceeds 1 (PDG scale
factor). Orders d ∈ [0, min(maxOrder, n−2)] (at least one degree of freedom) are fitted and combined by
``orderSelection``:

* ``aic_average`` (default): the Akaike-weighted average over the orders, w_d ∝ exp(−AIC_d/2) with
  AIC_d = χ²_d + 2(d+1), and the unconditional variance σ_f² = Σ_d w_d [σ_d² + (f_d − f̄)²] (Burnham & Anderson,
  Model Selection and Multimodel Inference, 2002, §4.3). Selecting a single order hides the uncertainty of
  the choice: on the tests' ensembles (issue's f_true, 24k/96k events) the selected-order band covered the
  truth within 1.5σ at 76–88 % of the points, the averaged band at 91–95 %;
* ``aic``: the single order with the smallest AIC;
* ``ftest``: starting at d = 0, d → d+1 while the nested-model test of order d+1 against d has a p-value below
  ``ftestAlpha``: with known errors the statistic is Δχ² = χ²_d − χ²_{d+1} ~ χ²(1) (the "F-test" of
  flashggFinalFit; Fisher's F, which estimates the error scale from the residuals, is blind to a missing
  cubic term while the lower-order residuals are large).

With a single bin the result is flat, f = k_0, and its band admits the slope the data cannot resolve
(``flat_fit``): σ_f² = σ_0² + (b̂² + σ_b²) t², b̂ ± σ_b from a straight line through the sub-bins of the seed's
minima alone. For one order the band is σ_f(x) = sqrt(φ(t)ᵀ V_β φ(t)),
φ = (1, t, …); either way σ_f² is a
polynomial in t (degree ≤ 6), stored as such in the correctionlib formula.

**Exact integral** (``method: exact_integral``): ``analysis.reweighting.spline``; the band propagates V_k through
the linear response. It oscillates when the k_i scatter; ``oscillation`` measures how far f leaves the envelope
of the neighbouring k_j ± 2σ_j (j = i−1, i, i+1) inside each bin.

**Physical everywhere.** Inside the populated range [x_lo, x_hi] (the MC-weighted mean HT_all of the first and
of the last adaptive bin, between which the k_i constrain f; see ``derive.populated_range``)
nominal = f, up/down = f ± σ_f. Outside: ``hold`` keeps the edge values; ``unity`` gives 1 with up/down
1 ± (|f_edge − 1| + σ_edge). Every value is then clipped to ``bounds`` = [floor, ceiling]; ``clipping`` lists
where that happened (reported by the derivation). The band is centred on the *clipped* nominal:
up/down = clip(f) ± σ_f, then clipped. Where f leaves the bounds (e.g. an alternative sample whose tt+light alone
exceeds the data, k < 0) the nominal sits at the bound and the band keeps its statistical width σ_f on the
physical side, instead of up, nominal and down all collapsing onto the bound (a zero-width band, i.e. a
wrongly certain correction where the data constrain it least).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import correctionlib.schemav2 as cs
import numpy as np
import scipy.linalg
from scipy import stats

from analysis.errors import AnalysisError
from analysis.reweighting.spline import QuadraticSpline

SYSTEMATICS = ("nominal", "up", "down")
_SIGN = {"nominal": 0, "up": 1, "down": -1}


class ReweightingWarning(UserWarning):
    """The derived correction needed a safety measure (flat fallback, clipping, oscillation, poor fit)."""


# ---- polynomial fit -------------------------------------------------------------------------------------------
def bin_power_means(fine_edges: np.ndarray, sumw: np.ndarray, sumwu: np.ndarray, sumwu2: np.ndarray,
                    groups: list[tuple[int, int]], center: float, scale: float, max_power: int) -> np.ndarray:
    """MC-weighted ⟨t^m⟩ per adaptive bin, t = (HT_all − center)/scale, m = 0..max_power.

    Args:
        fine_edges: (n+1,) fine-bin edges [GeV]; sumw, sumwu, sumwu2: (n,) Σw, Σw·u, Σw·u² per fine bin with
            u = HT_all − fine lower edge [GeV, GeV²].
        groups: adaptive bins as [start, stop) fine-bin ranges.

    Returns:
        (len(groups), max_power+1). Each fine bin contributes its mean μ and variance v of t: ⟨t²⟩ = μ² + v,
        ⟨t³⟩ = μ³ + 3μv (skew inside a fine bin neglected).
    """
    w = np.asarray(sumw, dtype=np.float64)
    ok = w > 0
    safe = np.where(ok, w, 1.0)
    mean_u = np.where(ok, sumwu / safe, 0.0)
    var_u = np.where(ok, np.clip(sumwu2 / safe - mean_u**2, 0.0, None), 0.0)
    mu = (fine_edges[:-1] + mean_u - center) / scale
    v = var_u / scale**2
    powers = [np.ones_like(mu), mu, mu * mu + v, mu**3 + 3 * mu * v][: max_power + 1]
    out = np.zeros((len(groups), max_power + 1))
    for g, (a, b) in enumerate(groups):
        wg = np.where(ok[a:b], w[a:b], 0.0)
        total = wg.sum()
        if total <= 0:
            raise AnalysisError(f"smooth fit: adaptive bin {g} has no positive MC weight")
        out[g] = [float((wg * p[a:b]).sum() / total) for p in powers]
    return out


@dataclass(frozen=True)
class PolynomialFit:
    """f(x) = Σ_m coef[m] t^m with t = (x − center)/scale and σ_f(x)² = Σ_m var_coef[m] t^m."""

    center: float
    scale: float
    coef: np.ndarray  # (d+1,)
    var_coef: np.ndarray  # (2d+1,)
    chi2: float  # of the selected order (for aic_average: of the order with the largest weight)
    ndf: int
    criterion: str
    order: int  # selected order (aic_average: the largest weight's)
    scan: list[dict[str, float]] = field(default_factory=list)

    def _t(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=np.float64) - self.center) / self.scale

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """f(x) (no range handling: use ``SmoothCorrection``)."""
        return np.polynomial.polynomial.polyval(self._t(x), self.coef)

    def band(self, x: np.ndarray) -> np.ndarray:
        """Pointwise 1σ of f(x)."""
        return np.sqrt(np.clip(np.polynomial.polynomial.polyval(self._t(x), self.var_coef), 0.0, None))

    def variance_coefficients(self) -> np.ndarray:
        """q with σ_f(t)² = Σ_m q_m t^m."""
        return self.var_coef


def _quadratic_form(cov: np.ndarray) -> np.ndarray:
    """Coefficients of φ(t)ᵀ C φ(t), φ = (1, t, …, t^d)."""
    d = len(cov) - 1
    q = np.zeros(2 * d + 1)
    for i in range(d + 1):
        for j in range(d + 1):
            q[i + j] += cov[i, j]
    return q


def _wls(x: np.ndarray, k: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(β, A, χ²) of the weighted least-squares fit k ≈ X β, β = A k."""
    sw = np.sqrt(weights)
    lhs = x.T @ (weights[:, None] * x)
    a = scipy.linalg.solve(lhs, x.T * weights[None, :], assume_a="pos")
    beta = a @ k
    r = sw * (k - x @ beta)
    return beta, a, float(r @ r)


def fit_polynomial(k: np.ndarray, cov_k: np.ndarray, var_unc: np.ndarray, power_means: np.ndarray, center: float,
                   scale: float, max_order: int = 3, criterion: str = "aic_average",
                   alpha: float = 0.05) -> PolynomialFit:
    """Fit the orders 0..min(max_order, n−2) and select (or average) them (formulas in the module docstring).

    Args:
        k: (n,) bin ratios; cov_k: (n, n) their full covariance; var_unc: (n,) their uncorrelated variances
            (fit weights); power_means: (n, ≥ max_order+1) ⟨t^m⟩ per bin (``bin_power_means``).
        center, scale: t = (HT_all − center)/scale [GeV].
        max_order: highest order tried (0..3); criterion: ``aic``, ``aic_average`` or ``ftest``;
        alpha: F-test threshold.

    Returns:
        The fit with its order scan (χ², ndf, AIC, Akaike weight, F-test p-value per order).

    Raises:
        AnalysisError: non-positive variances or an unknown criterion.
    """
    k, var_unc = np.asarray(k, dtype=np.float64), np.asarray(var_unc, dtype=np.float64)
    n = len(k)
    if n < 1 or np.any(~np.isfinite(var_unc)) or np.any(var_unc <= 0):
        raise AnalysisError("smooth fit: every k_i needs a positive, finite variance")
    if criterion not in ("aic", "aic_average", "ftest"):
        raise AnalysisError(f"smooth fit: unknown order selection {criterion!r} (aic, aic_average or ftest)")
    top = min(max_order, max(n - 2, 0))
    w = 1.0 / var_unc
    cov_k = np.asarray(cov_k, dtype=np.float64)
    fits = []
    for d in range(top + 1):
        beta, a, chi2 = _wls(power_means[:, : d + 1], k, w)
        ndf = n - d - 1
        cov = a @ cov_k @ a.T
        if ndf > 0 and chi2 > ndf:
            cov = cov * (chi2 / ndf)  # PDG scale factor
        fits.append((beta, cov, chi2, ndf))
    scan: list[dict[str, float]] = []
    aic = np.array([f[2] + 2 * (d + 1) for d, f in enumerate(fits)])
    akaike = np.exp(-0.5 * (aic - aic.min()))
    akaike /= akaike.sum()
    for d, (_, _, chi2, ndf) in enumerate(fits):
        entry = {"order": d, "chi2": chi2, "ndf": ndf, "aic": float(aic[d]), "akaike_weight": float(akaike[d])}
        if d > 0:  # errors are known: the nested-model test statistic Δχ² follows χ²(1) under order d−1
            entry["ftest_p"] = float(stats.chi2.sf(max(fits[d - 1][2] - chi2, 0.0), 1))
        scan.append(entry)
    if criterion == "ftest":
        best = 0
        while best + 1 < len(scan) and scan[best + 1]["ftest_p"] < alpha:
            best += 1
    else:
        best = int(np.argmin(aic))
    if criterion != "aic_average":
        beta, cov, chi2, ndf = fits[best]
        return PolynomialFit(float(center), float(scale), beta, _quadratic_form(cov), chi2, ndf, criterion, best, scan)
    # Akaike-weighted average and its unconditional variance Σ_m w_m [σ_m² + (f_m − f̄)²] (Burnham & Anderson)
    size = top + 1
    pad = lambda c, m: np.pad(c, (0, m - len(c)))  # noqa: E731
    mean = sum(wm * pad(f[0], size) for wm, f in zip(akaike, fits))
    var = np.zeros(2 * top + 1)
    for wm, (beta, cov, _, _) in zip(akaike, fits):
        diff = pad(beta, size) - mean
        spread = np.polynomial.polynomial.polymul(diff, diff)
        var += wm * (pad(_quadratic_form(cov), 2 * top + 1) + pad(spread, 2 * top + 1))
    _, _, chi2, ndf = fits[best]
    return PolynomialFit(float(center), float(scale), mean, var, chi2, ndf, criterion, best, scan)


def flat_fit(k0: float, var_k0: float, center: float, scale: float, sub_k: np.ndarray | None = None,
             sub_var: np.ndarray | None = None, sub_power_means: np.ndarray | None = None) -> PolynomialFit:
    """The flat fallback k_0 with a band that admits the slope the data cannot resolve.

    Args:
        k0, var_k0: the single bin's ratio and its variance (normalisation included).
        center, scale: t = (HT_all − center)/scale [GeV]; center should be the bin's MC centroid.
        sub_k, sub_var, sub_power_means: ratios, uncorrelated variances and ⟨t^m⟩ (m ≤ 1) of ≥ 2 sub-bins
            (the seed's minima without the precision target), or None.

    Returns:
        f = k_0 and σ_f(t)² = Var(k_0) + (b̂² + σ_b²) t², with b̂ ± σ_b the slope (per unit t) of a weighted
        straight-line fit to the sub-bins: E[b̂²] = b² + σ_b², so the band covers the flat model's mean squared
        deviation from a straight-line truth conservatively. Without sub-bins σ_f² = Var(k_0).
    """
    var = np.array([var_k0, 0.0, 0.0])
    scan: list[dict[str, float]] = [{"order": 0, "chi2": 0.0, "ndf": 0, "aic": 2.0, "akaike_weight": 1.0}]
    if sub_k is not None and len(sub_k) >= 2:
        beta, a, chi2 = _wls(np.asarray(sub_power_means)[:, :2], np.asarray(sub_k), 1.0 / np.asarray(sub_var))
        var_b = float((a @ np.diag(sub_var) @ a.T)[1, 1])
        var[2] = beta[1] ** 2 + var_b
        scan[0].update(unresolved_slope_per_t=float(beta[1]), unresolved_slope_err=float(np.sqrt(var_b)),
                       sub_bins=len(sub_k))
    return PolynomialFit(float(center), float(scale), np.array([float(k0)]), var, 0.0, 0, "flat", 0, scan)


# ---- oscillation check of the exact-integral spline -------------------------------------------------------------
def oscillation(spline: QuadraticSpline, k: np.ndarray, k_err: np.ndarray, n_sigma: float = 2.0,
                points_per_bin: int = 41) -> list[dict[str, float]]:
    """Bins where the spline leaves the envelope of the neighbouring k_j ± n_sigma·σ_j (j = i−1, i, i+1).

    Returns:
        One entry per offending bin: lower/upper edge [GeV], the extreme f and the envelope it left.
    """
    out = []
    n = spline.n_bins
    for i in range(n):
        js = range(max(0, i - 1), min(n, i + 2))
        lo = min(k[j] - n_sigma * k_err[j] for j in js)
        hi = max(k[j] + n_sigma * k_err[j] for j in js)
        x = np.linspace(spline.edges[i], spline.edges[i + 1], points_per_bin)
        f = spline(x)
        if f.min() < lo or f.max() > hi:
            out.append({"ht_lo_gev": float(spline.edges[i]), "ht_hi_gev": float(spline.edges[i + 1]),
                        "f_min": float(f.min()), "f_max": float(f.max()), "envelope_lo": float(lo),
                        "envelope_hi": float(hi)})
    return out


# ---- the physical correction ------------------------------------------------------------------------------------
@dataclass
class SmoothCorrection:
    """One nJets bin's correction: raw f ± σ_f in the populated range, the out-of-range policy and the bounds."""

    method: str  # "polynomial", "flat" or "exact_integral"
    x_lo: float
    x_hi: float
    bounds: tuple[float, float]
    out_of_range: str = "hold"
    poly: PolynomialFit | None = None
    spline: QuadraticSpline | None = None
    cov_k: np.ndarray | None = None

    def raw(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(f, σ_f) with x clamped to the populated range, before clipping."""
        xc = np.clip(np.asarray(x, dtype=np.float64), self.x_lo, self.x_hi)
        if self.poly is not None:
            return self.poly(xc), self.poly.band(xc)
        if self.spline is None or self.cov_k is None:
            raise AnalysisError("smooth correction without a function")
        return self.spline(xc), self.spline.band(xc, self.cov_k)

    def _edge(self, side: str) -> tuple[float, float]:
        f, s = self.raw(np.array([self.x_lo if side == "lo" else self.x_hi]))
        return float(f[0]), float(s[0])

    def outside(self, side: str) -> dict[str, float]:
        """Unclipped nominal/up/down below (``lo``) or above (``hi``) the populated range."""
        f, s = self._edge(side)
        if self.out_of_range == "unity":
            d = abs(f - 1.0) + s
            return {"nominal": 1.0, "up": 1.0 + d, "down": 1.0 - d}
        c = float(np.clip(f, *self.bounds))  # the band around the shipped (clipped) nominal
        return {"nominal": f, "up": c + s, "down": c - s}

    def unclipped(self, x: np.ndarray, systematic: str = "nominal") -> np.ndarray:
        """nominal/up/down before clipping, with the out-of-range policy applied (up/down = clip(f) ± σ_f)."""
        x = np.asarray(x, dtype=np.float64)
        f, s = self.raw(x)
        val = f if not _SIGN[systematic] else np.clip(f, *self.bounds) + _SIGN[systematic] * s
        val = np.where(x < self.x_lo, self.outside("lo")[systematic], val)
        return np.where(x > self.x_hi, self.outside("hi")[systematic], val)

    def __call__(self, x: np.ndarray, systematic: str = "nominal") -> np.ndarray:
        """The shipped value: ``unclipped`` clipped to the bounds."""
        return np.clip(self.unclipped(x, systematic), *self.bounds)

    def clipping(self, n_points: int = 2001) -> list[dict[str, Any]]:
        """Where nominal/up/down leave the bounds (populated range on a grid, and the out-of-range values)."""
        out = []
        x = np.linspace(self.x_lo, self.x_hi, n_points)
        lo, hi = self.bounds
        for syst in SYSTEMATICS:
            v = self.unclipped(x, syst)
            bad = (v < lo) | (v > hi)
            edges = np.flatnonzero(np.diff(np.concatenate([[0], bad.astype(np.int8), [0]])))
            for a, b in zip(edges[::2], edges[1::2]):  # contiguous clipped stretches [a, b)
                out.append({"systematic": syst, "ht_lo_gev": float(x[a]), "ht_hi_gev": float(x[b - 1]),
                            "raw_min": float(v[a:b].min()), "raw_max": float(v[a:b].max()), "where": "populated range"})
            for side in ("lo", "hi"):
                o = self.outside(side)[syst]
                if (o < lo or o > hi) and self.out_of_range == "unity":
                    out.append({"systematic": syst, "raw_min": o, "raw_max": o,
                                "where": "below the populated range" if side == "lo" else "above the populated range"})
        return out

    def oscillation(self, k: np.ndarray, k_err: np.ndarray) -> list[dict[str, float]]:
        """``oscillation`` of the exact-integral spline (empty for a polynomial)."""
        return oscillation(self.spline, k, k_err) if self.spline is not None else []

    def weighted_sum(self, fine_edges: np.ndarray, sumw: np.ndarray, sumwu: np.ndarray,
                     sumwu2: np.ndarray) -> np.ndarray:
        """Σ_j w_j f(x_j) per fine bin from the fine-bin moments (shipped nominal f).

        Exact for the unclipped exact-integral spline inside its range (f is one quadratic per fine bin); otherwise
        the second-order expansion Σw·[f(x̄) + ½ f″(x̄) Var(x)], f″ by central differences (1 GeV).
        """
        lows = np.asarray(fine_edges[:-1], dtype=np.float64)
        w = np.asarray(sumw, dtype=np.float64)
        if self.spline is not None and not self.clipping():
            sp = self.spline
            idx = np.clip(np.searchsorted(sp.edges, lows, side="right") - 1, 0, sp.n_bins - 1)
            inside = (lows >= sp.edges[0]) & (lows < sp.edges[-1])
            d = lows - sp.edges[idx]
            a, b, c = sp.coef[idx].T
            exact = a * (sumwu2 + 2 * d * sumwu + d * d * w) + b * (sumwu + d * w) + c * w
            return np.where(inside, exact, self(lows) * w)
        ok = w > 0
        safe = np.where(ok, w, 1.0)
        mean = lows + np.where(ok, sumwu / safe, 0.5 * np.diff(fine_edges))
        var = np.where(ok, np.clip(sumwu2 / safe - (sumwu / safe) ** 2, 0.0, None), 0.0)
        h = 1.0
        f2 = (self(mean + h) - 2 * self(mean) + self(mean - h)) / h**2
        return w * (self(mean) + 0.5 * f2 * var)

    def describe(self) -> dict[str, Any]:
        """JSON-ready description of the function (for derivation.json)."""
        out: dict[str, Any] = {"method": self.method, "populated_range_gev": [self.x_lo, self.x_hi],
                               "out_of_range": self.out_of_range, "bounds": list(self.bounds),
                               "band": "up/down = clip(f) ± sigma_f, then clipped to bounds: where f leaves the "
                                       "bounds the band keeps its statistical width around the clipped nominal",
                               "outside_values": {"below": self.outside("lo"), "above": self.outside("hi")}}
        if self.poly is not None:
            p = self.poly
            out["polynomial"] = {"variable": f"t = (HT_all - {p.center:g}) / {p.scale:g}", "order": p.order,
                                 "coefficients": p.coef.tolist(), "variance_coefficients": p.var_coef.tolist(),
                                 "chi2": p.chi2,
                                 "ndf": p.ndf, "p_value": float(stats.chi2.sf(p.chi2, p.ndf)) if p.ndf > 0 else None,
                                 "order_selection": p.criterion, "order_scan": p.scan}
        if self.spline is not None:
            out["coefficients_local"] = self.spline.coef.tolist()
            out["coefficients_global_abc"] = self.spline.global_coefficients().tolist()
        return out

    # ---- correctionlib ------------------------------------------------------------------------------------------
    def _clip_expr(self, expr: str) -> str:
        lo, hi = self.bounds
        return f"min(max({expr},{_num(lo)}),{_num(hi)})"

    def _inner(self, systematic: str) -> cs.Formula | cs.Binning:
        sign = _SIGN[systematic]
        if self.poly is not None:
            p = self.poly
            t = f"((min(max(x,{_num(self.x_lo)}),{_num(self.x_hi)})-{_num(p.center)})/{_num(p.scale)})"
            expr = _horner(p.coef, t)
            if sign:
                expr = (f"{self._clip_expr(expr)}{'+' if sign > 0 else '-'}"
                        f"sqrt(max({_horner(p.variance_coefficients(), t)},0.0))")
            return cs.Formula(nodetype="formula", expression=self._clip_expr(expr), parser="TFormula",
                              variables=["HT_all"])
        sp, cov = self.spline, self.cov_k
        content = []
        for i in range(sp.n_bins):
            a, b, c = (float(v) for v in sp.coef[i])
            lo, hi = float(sp.edges[i]), float(sp.edges[i + 1])
            t = f"(min(max(x,{_num(lo)}),{_num(hi)})-{_num(lo)})"
            expr = f"({_num(a)})*{t}*{t}+({_num(b)})*{t}+({_num(c)})"
            if sign:
                m = sp.coef_covariance(cov)[i]
                q = [m[2, 2], 2 * m[1, 2], 2 * m[0, 2] + m[1, 1], 2 * m[0, 1], m[0, 0]]
                expr = f"{self._clip_expr(expr)}{'+' if sign > 0 else '-'}sqrt(max({_horner(np.array(q), t)},0.0))"
            content.append(cs.Formula(nodetype="formula", expression=self._clip_expr(expr), parser="TFormula",
                                      variables=["HT_all"]))
        return cs.Binning(nodetype="binning", input="HT_all", edges=[float(e) for e in sp.edges], content=content,
                          flow="clamp")

    def content(self, systematic: str) -> cs.Binning:
        """correctionlib node for HT_all: constant below, f (clipped) inside, constant above the populated range."""
        lo_v = float(np.clip(self.outside("lo")[systematic], *self.bounds))
        hi_v = float(np.clip(self.outside("hi")[systematic], *self.bounds))
        edges: list[float] = [self.x_lo]
        content: list[Any] = []
        if self.x_hi > self.x_lo:
            edges.append(self.x_hi)
            content.append(self._inner(systematic))
        edges.append(self.x_hi + 1.0)
        content.append(hi_v)
        if self.x_lo > 0:
            edges, content = [0.0, *edges], [lo_v, *content]
        return cs.Binning(nodetype="binning", input="HT_all", edges=edges, content=content, flow="clamp")


def _num(v: float) -> str:
    """A float literal for TFormula (plain repr of a Python float)."""
    return repr(float(v))


def _horner(coef: np.ndarray, t: str) -> str:
    """Σ_m coef[m] t^m as a Horner expression in the TFormula dialect."""
    expr = f"({_num(float(coef[-1]))})"
    for c in coef[-2::-1]:
        expr = f"({expr}*{t}+({_num(float(c))}))"
    return expr
