"""One maximum-likelihood fit entry for every workflow, with a fit-quality guard and robust retries.

:func:`fit` minimises −2 ln L of any likelihood following :class:`~analysis.stats.parametric.FittableLikelihood`
— a pyhf model (:class:`~analysis.stats.likelihood.Likelihood`), an iminuit cost
(:class:`~analysis.stats.parametric.CostLikelihood`) or a Python function
(:class:`~analysis.stats.parametric.FunctionLikelihood`) — with iminuit's MIGRAD (analytic gradient when
there is one), computes the HESSE covariance and, when asked, MINOS intervals.
Every fit is judged (:class:`FitQuality`): valid minimum, EDM below goal, accurate positive-definite
covariance, free parameters at a bound, and a free fit that ended where it started (the SLSQP failure
mode of pyhf's default optimiser on nearly degenerate constraints).  A failed fit is retried with Minuit
strategy 2, from the best point reached so far, from a start with the POI moved by the observed excess and
with SciPy's L-BFGS-B; if none succeeds the best attempt is returned with ``quality.ok = False`` and the
reasons in ``quality.warnings`` — callers print them and write them to results; nothing is silent.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from iminuit import Minuit

from analysis.stats.errors import StatsError

if TYPE_CHECKING:  # the pyhf Likelihood is one implementation (importing it here would import pyhf for every fit)
    from analysis.stats.parametric import FittableLikelihood

log = logging.getLogger(__name__)

Optimizer = Literal["minuit", "scipy"]
OPTIMIZERS = ("minuit", "scipy")
MAX_CALLS = 100_000
TOLERANCE = 0.1  # Minuit's EDM goal is 0.002 · tolerance · errordef (pyhf's and cabinetry's default)
#: Minuit strategy and tolerance (``fit(..., **NEARBY_FIT)``) for a fit started next to its minimum with one
#: more parameter fixed (profile scans, impacts, MINOS fallbacks): strategy 0 skips the numerical HESSE that
#: strategy 1 runs at the end of MIGRAD (n²/2 function calls, ~90 % of such a fit's cost on the AGC model), and
#: the tight EDM goal keeps the approximate covariance from stopping early. On the AGC demo model's 44 impact fits: POI within 1.5·10⁻⁴
#: (median 7·10⁻⁶) of a strategy-2, tolerance-10⁻⁵ reference at 12 700 calls in all; strategy 1 at
#: tolerance 0.1 (pyhf's and cabinetry's default) was within 7·10⁻⁴ at 85 000 calls; strategy 0 at 0.1 stops
#: up to 0.3 high in −2 ln L.
NEARBY_FIT: Mapping[str, float] = MappingProxyType({"strategy": 0, "tolerance": 1e-6})


@dataclass
class FitQuality:
    """How much a fit result can be trusted, and what was done to get it.

    Attributes:
        valid: Minuit reported a valid minimum (EDM below goal, no call limit, covariance usable).
        edm: estimated distance to minimum; edm_goal: Minuit's target.
        covariance: "accurate", "forced positive-definite", "approximate", "Hesse failed" or "not computed".
        at_bounds: free parameters that ended within 10⁻⁶ of the width of their range from a bound.
        stalled_at_start: a free fit whose parameters did not move although the gradient at the start
            was not zero (the optimiser gave up at its initial point).
        n_nan: non-finite −2 ln L evaluations during the fit.
        attempts: each attempt tried, in order (e.g. "minuit strategy 1", "minuit strategy 2").
        warnings: human-readable problems left after all retries; when ``ok`` only the note
            "parameters at bounds: …" (if any free parameter ended at a bound), otherwise empty.
        optimizer: the optimiser whose result was kept.
    """

    valid: bool
    edm: float
    edm_goal: float
    covariance: str
    at_bounds: list[str] = field(default_factory=list)
    stalled_at_start: bool = False
    n_nan: int = 0
    attempts: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    optimizer: str = "minuit"
    covariance_source: str = "HESSE (numerical second derivatives)"

    @property
    def ok(self) -> bool:
        """Valid minimum, not stalled, covariance accurate (or not asked for)."""
        return self.valid and not self.stalled_at_start and self.covariance in ("accurate", "not computed")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (the ``fit_quality`` block of results files)."""
        return {"ok": self.ok, "valid_minimum": self.valid, "edm": float(self.edm), "edm_goal": float(self.edm_goal),
                "covariance": self.covariance, "parameters_at_bounds": list(self.at_bounds),
                "stalled_at_start": self.stalled_at_start, "nan_evaluations": int(self.n_nan),
                "attempts": list(self.attempts), "optimizer": self.optimizer, "warnings": list(self.warnings),
                "covariance_source": self.covariance_source}


@dataclass
class FitResult:
    """Best-fit point, HESSE uncertainties/covariance, MINOS intervals and quality of one fit.

    Arrays have shape (n_par,) or (n_par, n_par) in the order of ``labels``; fixed parameters have zero
    uncertainty.  ``minos`` maps a parameter name to its (lower, upper) MINOS errors (lower ≤ 0).
    """

    labels: list[str]
    bestfit: np.ndarray
    uncertainty: np.ndarray
    covariance: np.ndarray | None
    twice_nll: float
    quality: FitQuality
    fixed: np.ndarray
    poi_index: int | None = None
    minos: dict[str, tuple[float, float]] = field(default_factory=dict)
    minos_method: dict[str, str] = field(default_factory=dict)
    n_fcn: int = 0

    @property
    def correlation(self) -> np.ndarray:
        """Correlation matrix (zero rows/columns for fixed parameters), shape (n_par, n_par)."""
        n = len(self.labels)
        if self.covariance is None:
            return np.eye(n)
        sig = np.sqrt(np.clip(np.diag(self.covariance), 0.0, None))
        with np.errstate(divide="ignore", invalid="ignore"):
            corr = self.covariance / np.outer(sig, sig)
        corr = np.where(np.outer(sig > 0, sig > 0), corr, 0.0)
        np.fill_diagonal(corr, 1.0)
        return corr

    def value(self, name: str) -> float:
        """Best-fit value of parameter ``name``."""
        return float(self.bestfit[self.labels.index(name)])

    def to_cabinetry(self, goodness_of_fit: float = -1.0):
        """The same result as ``cabinetry.fit.FitResults`` (for cabinetry's plots and predictions)."""
        import cabinetry

        return cabinetry.fit.FitResults(np.asarray(self.bestfit), np.asarray(self.uncertainty), list(self.labels),
                                        self.correlation, float(self.twice_nll), float(goodness_of_fit),
                                        {k: tuple(v) for k, v in self.minos.items()})


@dataclass
class QualityTally:
    """Fit-quality record of the many fits behind a scan: how many, how many failed the guard, and examples."""

    n_fits: int = 0
    n_not_ok: int = 0
    examples: list[dict] = field(default_factory=list)

    def record(self, result: FitResult, context: str) -> None:
        """Count one core fit result; keep the first few that are not ok (with ``context``)."""
        self.n_fits += 1
        if not result.quality.ok:
            self.n_not_ok += 1
            if len(self.examples) < 5:
                self.examples.append({"fit": context, **result.quality.to_dict()})

    def to_dict(self) -> dict:
        """JSON-ready ``fit_quality`` summary."""
        return {"n_fits": self.n_fits, "n_not_ok": self.n_not_ok, "ok": self.n_not_ok == 0, "examples": list(self.examples)}


def _covariance_status(m: Minuit) -> str:
    fmin = m.fmin
    if fmin is None or m.covariance is None:
        return "not computed"
    if getattr(fmin, "hesse_failed", False):
        return "Hesse failed"
    if fmin.has_made_posdef_covar:
        return "forced positive-definite"
    if not fmin.has_accurate_covar:
        return "approximate"
    return "accurate"


def _at_bounds(values: np.ndarray, bounds: Sequence[tuple[float, float]], free: np.ndarray,
               labels: Sequence[str]) -> list[str]:
    out = []
    for i in np.flatnonzero(free):
        lo, hi = bounds[i]
        width = hi - lo if np.isfinite(hi - lo) else max(abs(values[i]), 1.0)
        if (np.isfinite(lo) and values[i] - lo <= 1e-6 * width) or (np.isfinite(hi) and hi - values[i] <= 1e-6 * width):
            out.append(labels[i])
    return out


def _stalled(lh: FittableLikelihood, x0: np.ndarray, values: np.ndarray, free: np.ndarray, errors: np.ndarray,
             data: np.ndarray | None) -> bool:
    """−2 ln L fell by < 10⁻³ from the start although a step (≤ one uncertainty, inside the bounds) down the slope
    lowers it by > 0.1."""
    if not free.any():
        return False
    decrease = lh.twice_nll(x0, data) - lh.twice_nll(values, data)
    if not np.isfinite(decrease) or decrease > 1e-3:
        return False
    scale = np.where(errors > 0, errors, 1.0)
    if lh.has_gradient:
        g = lh.grad(x0, data)
    else:
        g = np.zeros_like(x0)
        for i in np.flatnonzero(free):
            h = 1e-4 * scale[i]
            up, down = x0.copy(), x0.copy()
            up[i] += h
            down[i] -= h
            g[i] = (lh.twice_nll(up, data) - lh.twice_nll(down, data)) / (2 * h)
    # the step along the slope stays inside the range: a start on (or next to) a bound whose slope points out
    # of the range is a constrained minimum, not a stall (KKT)
    step = scale.copy()
    for i in np.flatnonzero(free):
        lo, hi = lh.bounds[i]
        room = x0[i] - lo if g[i] > 0 else hi - x0[i]
        step[i] = min(step[i], max(room, 0.0))
    gain = np.where(free, np.abs(g * step), 0.0)
    if not gain.max() > 0.1:
        return False
    # the linear estimate says a step would help; confirm it on the likelihood itself (on a flat, degenerate
    # minimum the HESSE "uncertainties" are meaningless and the linear estimate alone gives false alarms)
    f0 = lh.twice_nll(x0, data)
    direction = -np.sign(g) * step * gain / gain.max()
    lo_b = np.array([b[0] for b in lh.bounds])
    hi_b = np.array([b[1] for b in lh.bounds])
    for t in (1.0, 0.3, 0.1, 0.03):
        trial = np.clip(x0 + t * direction, lo_b, hi_b)
        if f0 - lh.twice_nll(trial, data) > 0.1:
            return True
    return False


class _Attempt:
    """The outcome of one minimisation (Minuit object or SciPy point + Minuit HESSE)."""

    def __init__(self, name: str, m: Minuit, optimizer: str) -> None:
        self.name, self.m, self.optimizer = name, m, optimizer

    @property
    def fval(self) -> float:
        return float(self.m.fval) if self.m.fmin is not None else float("inf")


def _minuit(lh: FittableLikelihood, x0: np.ndarray, fixed: np.ndarray, data: np.ndarray | None,
            tolerance: float = TOLERANCE) -> Minuit:
    d = lh.data if data is None else np.asarray(data, dtype=float)
    grad = (lambda p: lh.grad(p, d)) if lh.has_gradient else None

    def cost(p: np.ndarray) -> float:
        # where the model is undefined (e.g. a negative yield) −2 ln L is NaN; Minuit's line search then
        # produces NaN parameters and iminuit falls back to SIMPLEX (~10 000 calls on the AGC model); +inf
        # ("infinitely unlikely") makes the line search step back instead. NaNs are still counted (n_nan).
        value = lh.twice_nll(p, d)
        return value if value == value else np.inf

    m = Minuit(cost, np.array(x0, dtype=float), grad=grad, name=lh.labels)
    m.errordef = Minuit.LEAST_SQUARES  # the cost is −2 ln L: Δ = 1 is one standard deviation
    m.limits = [tuple(b) for b in lh.bounds]
    m.tol = tolerance
    m.print_level = 0
    for i in np.flatnonzero(fixed):
        m.fixed[i] = True
    # starting steps: a tenth of the range (at most 0.1) — pyhf's minuit optimizer uses similar steps
    steps = []
    for (lo, hi), v in zip(lh.bounds, x0):
        width = hi - lo if np.isfinite(hi - lo) else max(abs(v), 1.0)
        steps.append(max(min(0.1, 0.1 * width), 1e-6))
    m.errors = steps
    return m


def _run_minuit(lh: FittableLikelihood, x0: np.ndarray, fixed: np.ndarray, data: np.ndarray | None, strategy: int,
                hesse: bool, tolerance: float = TOLERANCE) -> _Attempt:
    m = _minuit(lh, x0, fixed, data, tolerance)
    m.strategy = strategy
    m.migrad(ncall=MAX_CALLS)
    if hesse and m.fmin is not None and np.isfinite(m.fval) and (~fixed).any():
        m.hesse()
    return _Attempt(f"minuit strategy {strategy}", m, "minuit")


def _run_scipy(lh: FittableLikelihood, x0: np.ndarray, fixed: np.ndarray, data: np.ndarray | None, method: str,
               hesse: bool) -> _Attempt:
    """SciPy minimisation of the free parameters; uncertainties from Minuit's HESSE at the SciPy point."""
    from scipy.optimize import minimize

    d = lh.data if data is None else np.asarray(data, dtype=float)
    free = ~fixed
    base = np.array(x0, dtype=float)

    def full(xf: np.ndarray) -> np.ndarray:
        p = base.copy()
        p[free] = xf
        return p

    fun = lambda xf: lh.twice_nll(full(xf), d)
    jac = (lambda xf: lh.grad(full(xf), d)[free]) if lh.has_gradient else None
    bounds = [lh.bounds[i] for i in np.flatnonzero(free)]
    res = minimize(fun, base[free], jac=jac, method=method, bounds=bounds,
                   options={"maxiter": MAX_CALLS} if method == "SLSQP" else {"maxiter": MAX_CALLS, "maxfun": MAX_CALLS})
    point = full(res.x)
    m = _minuit(lh, point, fixed, data)
    m.strategy = 1
    if hesse:
        m.hesse()  # also sets fmin: valid if the Hessian is positive definite and the EDM small
    else:
        m.migrad(ncall=1)
    a = _Attempt(f"scipy {method}", m, "scipy")
    a.scipy_point, a.scipy_fval, a.scipy_success = point, float(res.fun), bool(res.success)  # type: ignore[attr-defined]
    return a


def _quality(lh: FittableLikelihood, a: _Attempt, x0: np.ndarray, fixed: np.ndarray, data: np.ndarray | None,
             hesse: bool) -> tuple[np.ndarray, FitQuality]:
    m = a.m
    free = ~fixed
    if a.optimizer == "scipy":
        values = np.asarray(a.scipy_point)  # type: ignore[attr-defined]
    else:
        values = np.asarray(m.values, dtype=float)
    fmin = m.fmin
    valid = bool(fmin is not None and fmin.is_valid and np.isfinite(m.fval))
    if a.optimizer == "scipy":
        valid = valid and a.scipy_success  # type: ignore[attr-defined]
    edm = float(fmin.edm) if fmin is not None else float("nan")
    goal = float(getattr(fmin, "edm_goal", 0.002 * TOLERANCE)) if fmin is not None else 0.002 * TOLERANCE
    cov = _covariance_status(m) if hesse else "not computed"
    errors = np.asarray(m.errors, dtype=float)
    q = FitQuality(valid=valid, edm=edm, edm_goal=goal, covariance=cov,
                   at_bounds=_at_bounds(values, lh.bounds, free, lh.labels),
                   stalled_at_start=_stalled(lh, x0, values, free, errors, data), optimizer=a.optimizer)
    return values, q


def _describe(q: FitQuality) -> list[str]:
    out = []
    if not q.valid:
        out.append(f"minimum not valid (EDM {q.edm:.2g}, goal {q.edm_goal:.2g})")
    if q.stalled_at_start:
        out.append("the fit stopped at its starting point although the likelihood slopes there")
    if q.covariance not in ("accurate", "not computed"):
        out.append(f"covariance {q.covariance}")
    return out


def _poi_start(lh: FittableLikelihood, x0: np.ndarray, data: np.ndarray | None) -> np.ndarray | None:
    """x0 with the POI moved to the observed-minus-expected yield over the POI-scaled yield (None if no POI)."""
    i = lh.poi_index
    if i is None or not hasattr(lh, "expected_data"):  # needs expected yields (pyhf models)
        return None
    d = lh.main_data(data)
    nominal = lh.expected_data(x0, include_auxdata=False)
    off = x0.copy()
    off[i] = 0.0 if x0[i] != 0 else 1.0
    other = lh.expected_data(off, include_auxdata=False)
    slope = (nominal.sum() - other.sum()) / (x0[i] - off[i])
    if not np.isfinite(slope) or slope == 0:
        return None
    lo, hi = lh.bounds[i]
    start = x0.copy()
    start[i] = float(np.clip(x0[i] + (d.sum() - nominal.sum()) / slope, lo + 1e-3 * (hi - lo), hi - 1e-3 * (hi - lo)))
    return None if np.isclose(start[i], x0[i]) else start


def fit(lh: FittableLikelihood, *, init: Sequence[float] | None = None, fix: Mapping[int | str, float] | None = None,
        data: Sequence[float] | None = None, optimizer: Optimizer = "minuit", minos: Sequence[int | str] = (),
        hesse: bool = True, strategy: int | None = None, tolerance: float | None = None,
        retry: bool = True) -> FitResult:
    """Maximum-likelihood fit with the quality guard (see the module docstring).

    Args:
        lh: the likelihood (model + observed data), any :class:`~analysis.stats.parametric.FittableLikelihood`.
        init: starting point, shape (n_par,) (default: the model's suggested init).
        fix: parameters (index or name) held at a value in addition to the model's fixed ones.
        data: fit these data instead of the observed ones (e.g. Asimov), shape (n_main + n_aux,).
        optimizer: "minuit" (MIGRAD) or "scipy" (SLSQP, pyhf's default optimiser); the other is a fallback.
        minos: parameters (index or name) that get MINOS intervals.
        hesse: compute the covariance matrix (HESSE).
        strategy: Minuit strategy of the first attempt (default 1; retries use 2).
        tolerance: Minuit's tolerance (EDM goal 0.002 · tolerance) for every Minuit attempt (default
            :data:`TOLERANCE`); :data:`NEARBY_FIT` gives strategy and tolerance for fits started next to a minimum.
        retry: try the fallbacks when the first attempt is not good.

    Returns:
        The kept :class:`FitResult`; ``result.quality.ok`` tells whether it passed the guard.

    Raises:
        StatsError: unknown optimiser or parameter name.
    """
    if optimizer not in OPTIMIZERS:
        raise StatsError(f"unknown optimizer {optimizer!r} (choose from {', '.join(OPTIMIZERS)})")
    x0 = np.array(lh.init if init is None else init, dtype=float)
    fixed = lh.fixed.copy()
    for key, value in (fix or {}).items():
        i = _index(lh, key)
        fixed[i] = True
        x0[i] = float(value)
    d = None if data is None else np.asarray(data, dtype=float)
    nan_before = lh.n_nan
    # strategy 1 by default: strategy 0 at the default tolerance stops up to 0.3 in −2lnL above the minimum on
    # the AGC model (its EDM estimate rests on a poor Hessian approximation); fits started next to a minimum
    # use NEARBY_FIT (strategy 0 with a tight EDM goal) instead
    first = 1 if strategy is None else int(strategy)
    tol = TOLERANCE if tolerance is None else float(tolerance)

    plan: list[tuple[str, Any]] = []
    poi_start_ref: list[Any] = [None]
    if optimizer == "scipy":
        plan.append(("scipy", ("SLSQP", x0)))
    plan.append(("minuit", (first, x0)))
    if retry:
        suggested = np.where(fixed, x0, lh.init)  # the model's own start (with the fixed values)
        if not np.allclose(suggested, x0):
            plan.append(("minuit", (first, suggested)))
        plan.append(("minuit", (2, x0)))
        plan.append(("minuit-from-best", 2))
        poi_start = _poi_start(lh, x0, d) if lh.poi_index is not None and not fixed[lh.poi_index] else None
        poi_start_ref[0] = poi_start
        if poi_start is not None:
            plan.append(("minuit", (2, poi_start)))
        if optimizer != "scipy":
            plan.append(("scipy", ("L-BFGS-B", x0)))

    attempts: list[tuple[_Attempt, np.ndarray, FitQuality]] = []
    for kind, arg in plan:
        if kind == "minuit-from-best":
            if not attempts:
                continue
            best = min(attempts, key=lambda t: t[0].fval if np.isfinite(t[0].fval) else np.inf)
            start = np.where(fixed, x0, best[1])
            if np.allclose(start, x0) or not np.isfinite(lh.twice_nll(start, d)):
                continue
            a = _run_minuit(lh, start, fixed, d, arg, hesse, tol)
            a.name += " from the best point so far"
            start_point = start
        elif kind == "minuit":
            start_point = arg[1]
            if attempts and not np.isfinite(lh.twice_nll(start_point, d)):
                continue  # a start where the model is undefined (e.g. negative yields) cannot recover
            a = _run_minuit(lh, start_point, fixed, d, arg[0], hesse, tol)
            if start_point is poi_start_ref[0]:
                a.name += " from the POI estimated from the observed yield"
            elif start_point is not x0:
                a.name += " from the model's suggested start"
        else:
            a = _run_scipy(lh, arg[1], fixed, d, arg[0], hesse)
            start_point = arg[1]
        values, q = _quality(lh, a, start_point, fixed, d, hesse)
        attempts.append((a, values, q))
        if q.ok:
            break
        log.info("fit attempt %s not good: %s", a.name, "; ".join(_describe(q)))
        if not retry:
            break

    good = [t for t in attempts if t[2].ok]
    def _fval(t: tuple) -> float:
        v = t[0].fval if t[0].optimizer == "minuit" else t[0].scipy_fval
        return v if np.isfinite(v) else np.inf

    a, values, q = min(good or attempts, key=_fval)
    q.attempts = [t[0].name for t in attempts]
    q.n_nan = lh.n_nan - nan_before
    q.warnings = _describe(q) if not q.ok else []
    if not q.ok and q.n_nan:
        q.warnings.append(f"−2 ln L undefined at {q.n_nan} evaluation(s) (e.g. a negative expected yield)")
    if q.at_bounds:  # a free parameter pinned at a bound is worth a line even when the fit is ok
        q.warnings.append(f"parameters at bounds: {', '.join(q.at_bounds)}")
    m = a.m
    errors = np.where(fixed, 0.0, np.asarray(m.errors, dtype=float)) if hesse else np.zeros_like(values)
    cov = None
    if hesse and m.covariance is not None:
        cov = np.asarray(m.covariance, dtype=float)
        cov[fixed, :] = 0.0
        cov[:, fixed] = 0.0
    if hesse and lh.uses_jax and (~fixed).any():
        exact = exact_covariance(lh, values, fixed, d)
        if exact is not None:
            cov = exact
            errors = np.sqrt(np.diag(exact))
            q.covariance, q.covariance_source = "accurate", "exact Hessian (JAX automatic differentiation)"
    twice_nll = float(lh.twice_nll(values, d))
    result = FitResult(labels=list(lh.labels), bestfit=values, uncertainty=errors, covariance=cov, twice_nll=twice_nll,
                       quality=q, fixed=fixed, poi_index=lh.poi_index, n_fcn=int(sum(t[0].m.nfcn for t in attempts)))
    if minos:
        run_minos(lh, result, minos, data=d, minuit=m if a.optimizer == "minuit" else None)
    return result


def exact_covariance(lh: FittableLikelihood, values: np.ndarray, fixed: np.ndarray,
                     data: np.ndarray | None = None) -> np.ndarray | None:
    """Covariance 2·H⁻¹ of the free parameters from the exact Hessian H of −2 ln L at ``values``.

    Minuit's HESSE takes finite differences with steps of the size of the errors; on HistFactory models
    with piecewise interpolation (kinks at α = 0, ±1) and many weakly constrained γ's those steps cross
    the kinks and the curvature comes out wrong (AGC demo: HESSE 0.018 or 0.42 depending on the steps,
    exact Hessian 0.12, MINOS −0.114/+0.129). The exact Hessian (JAX) has no step.

    Returns:
        (n_par, n_par) covariance with zero rows/columns for fixed parameters, or None when the Hessian
        is not finite or not positive definite on the free parameters (then Minuit's HESSE is kept).
    """
    free = ~fixed
    try:
        h = np.asarray(lh.hessian(values, data), dtype=float)[np.ix_(free, free)]
    except Exception as err:  # a model JAX cannot differentiate: keep Minuit's estimate
        log.debug("exact Hessian unavailable: %s", err)
        return None
    if not np.all(np.isfinite(h)):
        return None
    h = 0.5 * (h + h.T)
    try:
        chol = np.linalg.cholesky(h)
    except np.linalg.LinAlgError:
        return None
    inv_chol = np.linalg.solve(chol, np.eye(len(h)))
    cov_free = 2.0 * inv_chol.T @ inv_chol
    cov = np.zeros((len(values), len(values)))
    cov[np.ix_(free, free)] = cov_free
    return cov


def _index(lh: FittableLikelihood, key: int | str) -> int:
    if isinstance(key, (int, np.integer)):
        if not 0 <= int(key) < lh.n_pars:
            raise StatsError(f"parameter index {key} out of range (model has {lh.n_pars} parameters)")
        return int(key)
    try:
        return lh.index(key)
    except KeyError:
        raise StatsError(f"unknown parameter {key!r} (model parameters: {_short_list(lh.labels)})") from None


def _short_list(names: Sequence[str], n: int = 12) -> str:
    names = list(names)
    return ", ".join(names[:n]) + (f", … ({len(names)} in total)" if len(names) > n else "")


def run_minos(lh: FittableLikelihood, result: FitResult, params: Sequence[int | str], *, data: np.ndarray | None = None,
              minuit: Minuit | None = None) -> dict[str, tuple[float, float]]:
    """MINOS (asymmetric, Δ(−2 ln L) = 1) errors of ``params`` at ``result``'s minimum, stored in ``result.minos``.

    A MINOS error that is not valid (e.g. the interval reaches a parameter bound) is kept with a
    warning in ``result.quality.warnings``.
    """
    m = minuit
    if m is None:  # SciPy result: a Minuit object at the best point (MIGRAD polishes, then MINOS)
        m = _minuit(lh, result.bestfit, result.fixed, data)
        m.migrad(ncall=MAX_CALLS)
        m.hesse()
    for key in params:
        i = _index(lh, key)
        if result.fixed[i]:
            continue
        name = lh.labels[i]
        me = None
        for polish in (False, True):
            if polish:  # MINOS often recovers after MIGRAD is re-run from the minimum (fresh covariance)
                m.migrad(ncall=MAX_CALLS)
                m.hesse()
            try:
                m.minos(name)
                me = m.merrors[name]
            except RuntimeError:
                me = None
            if me is not None and (me.is_valid or me.at_lower_limit or me.at_upper_limit):
                break
        if me is not None and (me.at_lower_limit or me.at_upper_limit):
            result.minos[name] = (float(me.lower), float(me.upper))
            side = "lower" if me.at_lower_limit else "upper"
            result.quality.warnings.append(f"MINOS interval of {name} reaches the {side} parameter bound (one-sided)")
        elif me is not None and me.is_valid:
            result.minos[name] = (float(me.lower), float(me.upper))
        else:  # MINOS did not converge: solve Δ(−2 ln L) = 1 on the profile with guarded fixed-parameter fits
            from analysis.stats.intervals import profile_crossings

            lo, hi = profile_crossings(lh, result, i, data=data)
            result.minos[name] = (lo, hi)
            result.minos_method[name] = "profile-likelihood root finding (MINOS did not converge)"
            log.info("MINOS did not converge for %s; interval from the profile likelihood", name)
    return result.minos
