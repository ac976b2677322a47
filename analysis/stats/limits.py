"""Asymptotic CLs with ``pyhf.infer.hypotest`` and 95 % CL upper limits by bracketing + TOMS 748.

Every CLs value comes from pyhf's ``hypotest`` (asymptotic calculator, q̃_μ by default) in the
configuration pyhf validated against ROOT (NumPy backend, SciPy SLSQP — Minuit and the JAX backend
reproduce pyhf's validation vectors only to ~10⁻³ and miss them on a kinked histosys model), started from
the guarded best fit; the SLSQP stall on near-degenerate constraints is handled before (pruning, and the
guarded free fit).  A hypotest whose fits fail is retried with Minuit (strategy 2); a non-finite CLs is an
error naming μ, never a number handed to the root finder.  The bracket is found from the model's own scale (σ_A estimate from signal and background
yields), grown geometrically, and the POI upper bound is raised when the limit lies beyond it; then each
of the six curves (observed, expected −2σ…+2σ) is solved with ``scipy.optimize.toms748`` as
``pyhf.infer.intervals.upper_limits.toms748_scan`` does.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyhf
from scipy.optimize import toms748

from analysis.stats.capture import capture_fit_errors
from analysis.stats.errors import StatsError
from analysis.stats.likelihood import Likelihood, jax_available, pyhf_backend

log = logging.getLogger(__name__)

CLS_LEVEL = 0.05
# Minuit (strategy, tolerance) tried in turn for large-yield models (needs_precise_minimiser); "minuit" is the default
MINUIT_SETTINGS = {"minuit-s2-t0.1": (2, 0.1), "minuit-s2-t1": (2, 1.0), "minuit-s1-t1": (1, 1.0), "minuit": (2, 1e-3)}
BAND_LABELS = ("-2sigma", "-1sigma", "median", "+1sigma", "+2sigma")


@dataclass
class LimitResult:
    """CLs curve and upper limits on the POI.

    Attributes:
        poi_name: name of the POI.
        observed: observed upper limit; expected: [−2σ, −1σ, median, +1σ, +2σ], shape (5,).
        mu: tested POI values (sorted), shape (n,); cls_observed (n,), cls_expected (n, 5).
        level: CLs level (0.05 for 95 % CL); test_stat: "qtilde" or "q".
        n_hypotests: hypotests computed (cache size).
    """

    poi_name: str
    observed: float
    expected: list[float]
    mu: list[float]
    cls_observed: list[float]
    cls_expected: list[list[float]]
    level: float = CLS_LEVEL
    test_stat: str = "qtilde"
    n_hypotests: int = 0
    notes: list[str] = field(default_factory=list)
    fit_quality: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def confidence_level(self) -> float:
        """1 − level."""
        return 1.0 - self.level

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {"poi": self.poi_name, "observed": float(self.observed), "expected": [float(x) for x in self.expected],
                "expected_band_order": list(BAND_LABELS), "confidence_level": self.confidence_level,
                "test_statistic": self.test_stat, "calculator": "asymptotics (pyhf.infer.hypotest)",
                "limit_method": "bracketing from the signal/background scale + scipy toms748 per curve",
                "cls_scan": {"mu": list(self.mu), "observed": list(self.cls_observed),
                             "expected": [list(x) for x in self.cls_expected]},
                "n_hypotests": self.n_hypotests, "notes": list(self.notes), "fit_quality": dict(self.fit_quality),
                "warnings": list(self.warnings)}


class _ReusingAsymptoticCalculator(pyhf.infer.calculators.AsymptoticCalculator):
    """pyhf's asymptotic calculator with its three POI-independent fits done once, not at every μ.

    ``pyhf.infer.hypotest`` runs five fits per POI value; the free fit to the data, the fit generating the
    background-only Asimov data and the free fit to those Asimov data do not depend on μ.  This subclass
    caches them and otherwise follows ``AsymptoticCalculator.teststatistic`` line by line (pyhf 0.7.6:
    ``_qmu_like`` clipping, q̃_μ composition with ``<=``); distributions and p-values are pyhf's own, so the
    CLs values equal ``pyhf.infer.hypotest``'s (tested).
    """

    def teststatistic(self, poi_test):  # noqa: D102 - documented in the class
        if self.test_stat not in ("q", "qtilde"):
            return super().teststatistic(poi_test)
        tensorlib, _ = pyhf.get_backend()
        if not hasattr(self, "_once"):
            args = (self.pdf, self.init_pars, self.par_bounds, self.fixed_params)
            free = pyhf.infer.mle.fit(self.data, *args, return_fitted_val=True)
            asimov = pyhf.infer.calculators.generate_asimov_data(0.0, self.data, *args)
            free_a = pyhf.infer.mle.fit(asimov, *args, return_fitted_val=True)
            self._once = (free, asimov, free_a)
        free, asimov, free_a = self._once
        poi = self.pdf.config.poi_index

        def qmu(data, unconstrained):
            _, fixed_val = pyhf.infer.mle.fixed_poi_fit(poi_test, data, self.pdf, self.init_pars, self.par_bounds,
                                                       self.fixed_params, return_fitted_val=True)
            tmu = tensorlib.astensor(tensorlib.clip(fixed_val - unconstrained[1], 0.0, max_value=None))
            return tensorlib.where(unconstrained[0][poi] > poi_test, tensorlib.astensor(0.0), tmu)

        sqrtqmu_v = tensorlib.sqrt(qmu(self.data, free))
        self.sqrtqmuA_v = tensorlib.sqrt(qmu(asimov, free_a))
        if self.test_stat == "q" or sqrtqmu_v <= self.sqrtqmuA_v:  # '<=' as pyhf (its issue #1992)
            teststat = sqrtqmu_v - self.sqrtqmuA_v
        else:
            teststat = (sqrtqmu_v**2 - self.sqrtqmuA_v**2) / (2 * self.sqrtqmuA_v)
        return tensorlib.astensor(teststat)

    def sqrt_qmu_asimov(self, poi_test):
        """√q_μ,A alone (the fixed-μ fit to the background-only Asimov data): all the expected CLs band needs.

        The same fits, starts and bounds as in :meth:`teststatistic`, so the value is the one it would compute.
        """
        tensorlib, _ = pyhf.get_backend()
        if not hasattr(self, "_once"):
            self.teststatistic(poi_test)
            return self.sqrtqmuA_v
        _, asimov, free_a = self._once
        _, fixed_val = pyhf.infer.mle.fixed_poi_fit(poi_test, asimov, self.pdf, self.init_pars, self.par_bounds,
                                                   self.fixed_params, return_fitted_val=True)
        tmu = tensorlib.astensor(tensorlib.clip(fixed_val - free_a[1], 0.0, max_value=None))
        qmu = tensorlib.where(free_a[0][self.pdf.config.poi_index] > poi_test, tensorlib.astensor(0.0), tmu)
        return tensorlib.sqrt(qmu)


class CLsCalculator:
    """Memoised μ → (CLs_obs, CLs_exp[5]) for one model and dataset via ``pyhf.infer.hypotest``.

    Args:
        lh: the likelihood (its model, observed data, suggested init/bounds/fixed are used).
        init: starting point for every fit (default: the model's suggested init); the POI entry is
            replaced by a value inside the bounds.
        test_stat: "qtilde" (upper limits, POI ≥ 0) or "q".
        optimizer: "scipy" (pyhf's default, validated) or "minuit" for the first try; the other is the fallback.
        backend: pyhf tensor backend of the hypotest fits ("numpy" or "jax").
    """

    def __init__(self, lh: Likelihood, *, init: Sequence[float] | None = None, test_stat: str = "qtilde",
                 optimizer: str = "scipy", backend: str = "numpy") -> None:
        if lh.poi_index is None:
            raise StatsError("the model has no parameter of interest")
        self.lh, self.model, self.data = lh, lh.model, lh.data
        self.test_stat = test_stat
        if backend == "jax" and not jax_available():
            raise StatsError("the JAX backend needs jax (pip install jax)")
        self.backend = backend
        self.optimizers = ("scipy", "minuit") if optimizer == "scipy" else ("minuit", "scipy")
        self.poi = lh.poi_index
        self.bounds = [list(b) for b in lh.bounds]
        if test_stat == "qtilde":
            self.bounds[self.poi][0] = max(0.0, self.bounds[self.poi][0])
        self.init = list(lh.init if init is None else init)
        if needs_precise_minimiser(lh):  # large yields: SciPy's gradients are noise, its CLs finite but wrong
            self.optimizers = tuple(MINUIT_SETTINGS)  # Minuit's convergence test on a ~1e8 NLL: vary it
            self.init = list(lh.init)  # the model's start (a best fit from SciPy may be off here),
            self.init[self.poi] = 0.0  # background-only: the free fits converge from there
        self.cache: dict[float, np.ndarray] = {}
        self._calculators: dict[tuple, _ReusingAsymptoticCalculator] = {}
        self.n_fits = 0  # pyhf fits run by the hypotests (5 for a new calculator, then 2 per μ, 1 per expected-only μ)
        self.failures: list[dict[str, Any]] = []  # every failed hypotest: μ, optimiser, pyhf's message, recovered?

    def ensure_upper_bound(self, mu: float) -> None:
        """Raise the POI upper bound to at least 2μ (fits at μ need room above)."""
        self.bounds[self.poi][1] = max(self.bounds[self.poi][1], 2.0 * mu)

    def _hypotest(self, mu: float, optimizer: str, expected_only: bool = False) -> np.ndarray:
        init = list(self.init)
        lo, hi = self.bounds[self.poi]
        init[self.poi] = float(min(max(init[self.poi], lo), hi))
        strategy, tolerance = MINUIT_SETTINGS.get(optimizer, (2, 1e-3))
        opt = (pyhf.optimize.scipy_optimizer() if optimizer == "scipy"
               else pyhf.optimize.minuit_optimizer(verbose=0, strategy=strategy, tolerance=tolerance))
        test_logger = logging.getLogger("pyhf.infer.test_statistics")
        level = test_logger.level
        test_logger.setLevel(logging.ERROR)  # "qtilde with POI lower bound 0" advice on every call
        try:  # pyhf logs each failed minimisation as a multi-line ERROR dump: counted here, shown with -v
            with capture_fit_errors("pyhf.optimize"), pyhf_backend(self.backend, opt):
                key = (optimizer, tuple(map(tuple, self.bounds)))
                if key not in self._calculators:
                    self._calculators[key] = _ReusingAsymptoticCalculator(
                        pyhf.tensorlib.astensor(self.data), self.model, init_pars=init,
                        par_bounds=[tuple(b) for b in self.bounds], fixed_params=list(self.lh.fixed),
                        test_stat=self.test_stat)
                calc = self._calculators[key]
                self.n_fits += (0 if hasattr(calc, "_once") else 3) + (1 if expected_only else 2)
                try:
                    if expected_only:  # q̃ only: the band is a function of √q_μ,A alone
                        return log_space_cls(0.0, float(calc.sqrt_qmu_asimov(float(mu))))[1:]
                    teststat = calc.teststatistic(float(mu))
                except pyhf.exceptions.FailedMinimization as err:
                    self._record_failure(mu, optimizer, err, expected_only)
                    del self._calculators[key]  # a failed μ-independent fit must not stay cached
                    raise
                if self.test_stat == "qtilde":  # pyhf's formulas, ratios in log space (no 0/0 far above the limit)
                    return log_space_cls(float(teststat), float(calc.sqrtqmuA_v))
                sb, b = calc.distributions(float(mu))
                _, _, cls_obs = calc.pvalues(teststat, sb, b)
                _, _, cls_exp = calc.expected_pvalues(sb, b)
                return np.array([float(cls_obs)] + [float(e) for e in cls_exp])
        finally:
            test_logger.setLevel(level)

    def _record_failure(self, mu: float, optimizer: str, err: Exception, expected_only: bool) -> None:
        result = getattr(err, "result", None)  # pyhf keeps the OptimizeResult (x, message) on the exception
        first = (str(err).strip().splitlines() or [""])[0]
        message = str(getattr(result, "message", "") or first)
        if "successfully" in message:  # pyhf's Minuit result: "terminated successfully" but not a valid minimum
            message = "invalid minimum (success: False)"
        at_bounds = []
        x = getattr(result, "x", None)
        if x is not None:
            try:
                xs = np.asarray(list(x), dtype=float)
                labels = self.model.config.par_names
                at_bounds = [labels[i] for i, (v, (lo, hi)) in enumerate(zip(xs, self.bounds))
                             if i != self.poi and min(v - lo, hi - v) <= 1e-4 * (hi - lo)]
            except (TypeError, ValueError, IndexError):
                at_bounds = []
        self.failures.append({"mu": float(mu), "optimizer": optimizer, "message": message.strip()[:200],
                              "expected_only": bool(expected_only), "parameters_at_bounds": at_bounds[:10],
                              "recovered": False})

    def _mark_recovered(self, mu: float) -> None:
        for f in self.failures:
            if f["mu"] == float(mu):
                f["recovered"] = True

    def fit_quality(self) -> dict[str, Any]:
        """The ``fit_quality`` block of the CLs scan: fits run, failed (and whether a retry recovered them)."""
        n_failed = len(self.failures)
        unrecovered = sorted({f["mu"] for f in self.failures if not f["recovered"]})
        return {"ok": n_failed == 0, "n_fits": int(self.n_fits), "n_failed_fits": n_failed,
                "n_recovered": sum(f["recovered"] for f in self.failures), "mu_not_recovered": unrecovered,
                "optimizers": list(self.optimizers), "failures": self.failures[:10]}

    def warnings(self) -> list[str]:
        """One line per problem of the CLs hypotests (empty when every fit converged at the first try)."""
        if not self.failures:
            return []
        opts = sorted({f["optimizer"] for f in self.failures})
        rec = sum(f["recovered"] for f in self.failures)
        mus = sorted({f["mu"] for f in self.failures})
        bounds = sorted({p for f in self.failures for p in f["parameters_at_bounds"]})
        line = (f"{len(self.failures)} of {self.n_fits} constrained fits in the CLs scan did not converge "
                f"({'/'.join(opts)}; at {self.lh.poi_name} = {', '.join(f'{m:.4g}' for m in mus[:6])}"
                f"{', …' if len(mus) > 6 else ''})")
        line += (f"; {rec} recovered by retrying with {', '.join(self.optimizers[1:]) or 'another optimiser'}"
                 if rec else "")
        if bounds:
            line += f"; parameters at their bounds: {', '.join(bounds[:6])}{', …' if len(bounds) > 6 else ''}"
        line += "; limits may be affected" if rec < len(self.failures) else "; limits use the recovered fits"
        return [line]

    def __call__(self, mu: float) -> np.ndarray:
        """[CLs_obs, CLs_exp(−2σ), …, CLs_exp(+2σ)] at POI = ``mu``, shape (6,).

        Raises:
            StatsError: the hypotest fits fail or CLs is not finite with both optimisers.
        """
        mu = float(mu)
        if mu in self.cache:
            return self.cache[mu]
        self.ensure_upper_bound(mu)
        values, error = None, None
        for optimizer in self.optimizers:
            try:
                values = self._hypotest(mu, optimizer)
            except pyhf.exceptions.FailedMinimization as err:
                error = err
                values = None
                continue
            if np.all(np.isfinite(values)):
                break
            values = None
        if values is not None and error is not None:
            self._mark_recovered(mu)
        if values is None:
            why = f"fits failed ({str(error).splitlines()[0][:120]})" if error is not None else "CLs is not finite"
            raise StatsError(f"CLs at {self.lh.poi_name} = {mu:g}: {why}; check the model (--prune/--fix)")
        self.cache[mu] = values
        return values

    def expected(self, mu: float) -> np.ndarray:
        """[CLs_exp(−2σ), …, CLs_exp(+2σ)] at POI = ``mu``, shape (5,), equal to ``self(mu)[1:]``.

        With q̃ the band depends on √q_μ,A only, so an uncached μ costs one fit (to the Asimov data) instead of
        two; the value is not cached (the cache holds complete hypotests).  Falls back to the full hypotest.
        """
        mu = float(mu)
        if mu in self.cache or self.test_stat != "qtilde":
            return self(mu)[1:]
        self.ensure_upper_bound(mu)
        for optimizer in self.optimizers:
            try:
                values = self._hypotest(mu, optimizer, expected_only=True)
            except pyhf.exceptions.FailedMinimization:
                continue
            if np.all(np.isfinite(values)):
                self._mark_recovered(mu)
                return values
        return self(mu)[1:]

    def curve(self) -> tuple[np.ndarray, np.ndarray]:
        """Tested μ (sorted), shape (n,), and their CLs values, shape (n, 6)."""
        mus = np.array(sorted(self.cache))
        return mus, np.array([self.cache[m] for m in mus]).reshape(len(mus), 6)


def needs_precise_minimiser(lh: Likelihood) -> bool:
    """True where SciPy's finite-difference gradients of pyhf's NLL are swamped by rounding (large yields).

    pyhf's Poisson terms n·ln λ − λ − ln Γ(n+1) are each of order n·ln n; their rounding error ε·Σ n ln n over
    the finite-difference step (~√ε) reaches O(1e-3) in the gradient once Σ n ln n ≳ 1e5 (≳1e4 events per bin).
    SLSQP then stops at wrong points and returns finite but wrong CLs (pyhf#2232: 1e7-event backgrounds gave
    a 95 % CL limit of 0.87 instead of 2.11); Minuit (strategy 2) stays accurate there.
    """
    n = np.asarray(lh.data[: lh.model.config.nmaindata], dtype=float)
    return float(np.sum(n * np.log(np.maximum(n, 1.0)))) > 1e5


def log_space_cls(teststat: float, sqrt_qmu_a: float) -> np.ndarray:
    """[CLs_obs, CLs_exp(−2σ…+2σ)] from pyhf's asymptotic q̃ test statistic, with the tail ratios in log space.

    Same formulas as ``pyhf.infer.calculators.AsymptoticCalculator`` (Cowan et al., arXiv:1007.1727):
    CLs = Φ̄(t + √q_A)/Φ̄(t) and CLs_exp(k) = Φ̄(√q_A − k)/Φ̄(−k); far above the limit both tails underflow
    in linear space and pyhf's ratio is 0/0 = NaN, here it stays a tiny finite number.
    """
    from scipy.stats import norm

    obs = math.exp(norm.logsf(teststat + sqrt_qmu_a) - norm.logsf(teststat))
    exp = [math.exp(norm.logsf(sqrt_qmu_a - k) - norm.logsf(-k)) for k in (-2, -1, 0, 1, 2)]
    return np.array([obs, *exp])


def scale_guess(lh: Likelihood) -> float:
    """A μ of the order of the expected limit: 2/√(Σ s²/b) (stat-only σ_A per unit μ), from nominal yields."""
    pars = lh.init.copy()
    i = lh.poi_index
    pars[i] = 0.0
    bkg = lh.expected_data(pars, include_auxdata=False)
    pars[i] = 1.0
    sig = lh.expected_data(pars, include_auxdata=False) - bkg
    if not np.any(sig > 0):
        raise StatsError(f"the signal ({lh.poi_name}-scaled) prediction is zero everywhere; nothing to constrain")
    z2 = float(np.sum(np.where(bkg > 0, sig**2 / np.maximum(bkg, 1e-12), np.where(sig > 0, sig, 0.0))))
    return 2.0 / math.sqrt(z2) if z2 > 0 and math.isfinite(z2) else 1.0


def _bracket(calc: CLsCalculator, guess: float, level: float, max_steps: int = 60) -> tuple[float, float]:
    """(lo, hi) with every curve ≥ level at lo and < level at hi, grown geometrically from ``guess``."""
    hi = guess
    for _ in range(max_steps):
        if np.all(calc(hi) < level):
            break
        hi *= 2.0
    else:
        raise StatsError(f"no exclusion up to {calc.lh.poi_name} = {hi:g}: the signal is too small to constrain")
    lo = hi / 2.0
    for _ in range(max_steps):
        if np.all(calc(lo) >= level):
            break
        lo /= 4.0
    else:
        raise StatsError(f"CLs below {level} already at {calc.lh.poi_name} = {lo:g}: cannot bracket the limit")
    return lo, hi


def upper_limit(lh: Likelihood, *, level: float = CLS_LEVEL, init: Sequence[float] | None = None,
                test_stat: str = "qtilde", rtol: float = 1e-4, scan: Sequence[float] | None = None,
                n_curve: int = 12, optimizer: str = "scipy", backend: str = "numpy") -> LimitResult:
    """Observed and expected (−2σ…+2σ) CLs upper limits on the POI at confidence 1 − ``level``.

    Args:
        lh: likelihood (model + observed data).
        level: CLs threshold (0.05 for 95 % CL).
        init: starting point of the hypotest fits (e.g. the best fit); default the suggested init.
        test_stat: "qtilde" (default) or "q".
        rtol: relative tolerance of each limit.
        scan: extra POI values to evaluate for the CLs curve (default: ``n_curve`` points on [0, 1.3 × the
            largest limit]).
        n_curve: points of the default curve grid.
        optimizer, backend: as for :class:`CLsCalculator`.

    Returns:
        :class:`LimitResult`.

    Raises:
        StatsError: no POI, zero signal, CLs not finite somewhere needed, or no exclusion at any scale.
    """
    calc = CLsCalculator(lh, init=init, test_stat=test_stat, optimizer=optimizer, backend=backend)
    lo, hi = _bracket(calc, scale_guess(lh), level)
    limits = []
    for k in range(6):
        mus, vals = calc.curve()
        f = vals[:, k] - level
        above, below = mus[f >= 0], mus[f < 0]
        a = float(above[above < below.min()].max()) if below.size and (above < below.min()).any() else lo
        b = float(below[below > a].min()) if (below > a).any() else hi
        limits.append(float(toms748(lambda m, k=k: calc(m)[k] - level, a, b, k=2, xtol=1e-12, rtol=rtol)))
    grid = np.asarray(scan, dtype=float) if scan is not None else np.linspace(1.3 * max(limits) / n_curve, 1.3 * max(limits), n_curve)
    for m in grid:
        calc(float(m))
    mus, vals = calc.curve()
    return LimitResult(poi_name=lh.poi_name or "mu", observed=limits[0], expected=limits[1:], mu=mus.tolist(),
                       cls_observed=vals[:, 0].tolist(), cls_expected=vals[:, 1:].tolist(), level=level,
                       test_stat=test_stat, n_hypotests=len(calc.cache), fit_quality=calc.fit_quality(),
                       warnings=calc.warnings())
