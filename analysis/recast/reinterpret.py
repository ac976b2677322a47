"""Reinterpretation (RECAST) step: a new signal against preserved data and background → CLs μ-scan and limits.

Two entry points share one inference core:

* :func:`reinterpret_histograms` reads data / background / signal TH1s (or ``hist`` objects written to ROOT)
  with uproot, builds a pyhf workspace (signal × ``mu``; background with a ``normsys`` normalisation
  uncertainty and a per-bin MC-statistical ``staterror``/``shapesys`` from the histogram variances) and
* :func:`reinterpret_workspace` takes a published pyhf JSON workspace (optionally patched by a JSON patch or
  a pyhf patchset, as HEPData archives them).

Both run an asymptotic CLs scan (``pyhf.infer.hypotest``; observed and expected −2σ…+2σ) and find the 95 % CL
upper limit on μ for the observed and every expected curve by root finding (inverse interpolation of a
linearised CLs(μ) − 0.05, bracketed by the scan, ``scipy.optimize.toms748`` as fallback), then optionally
write ``results.json`` and the plots.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyhf
from scipy.interpolate import barycentric_interpolate
from scipy.optimize import toms748

try:  # single-threaded BLAS is ~4x faster for pyhf's tiny fits (thread start-up dominates)
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn, a dependency
    from contextlib import nullcontext as threadpool_limits  # type: ignore[assignment]

from analysis.errors import AnalysisError
from analysis.histio import TH1Hist, read_th1

log = logging.getLogger(__name__)

CLS_LEVEL = 0.05  # 95 % CL exclusion
EXPECTED_BAND_LABELS = ("-2sigma", "-1sigma", "median", "+1sigma", "+2sigma")
McStat = Literal["staterror", "shapesys", "none"]


# --------------------------------------------------------------------------------------------------
# Histogram input
# --------------------------------------------------------------------------------------------------
Histogram1D = TH1Hist  # one histogram type and reader for every command: analysis.histio (ROOT's TH1 semantics)


def read_histogram(path: str | Path, key: str) -> Histogram1D:
    """Read 1D histogram ``key`` with ROOT's semantics (:func:`analysis.histio.read_th1`; no negative bins)."""
    return read_th1(path, key)


def check_compatible(data: Histogram1D, background: Histogram1D, signal: Histogram1D) -> None:
    """Require identical binning, a non-zero signal and a background prediction wherever data are seen."""
    for other in (background, signal):
        if other.n_bins != data.n_bins:
            raise AnalysisError(
                f"binning mismatch: {other.source} has {other.n_bins} bins but {data.source} has {data.n_bins}"
            )
        scale = max(1.0, float(np.max(np.abs(data.edges))))
        diff = np.abs(other.edges - data.edges)
        if np.any(diff > 1e-9 * scale):
            i = int(np.argmax(diff))
            raise AnalysisError(
                f"binning mismatch: {other.source} edge {i} is {other.edges[i]:g} but {data.source} has {data.edges[i]:g}"
            )
    if not np.any(signal.values > 0):
        raise AnalysisError(f"{signal.source}: signal histogram is zero in every bin; nothing to constrain")
    orphan = np.flatnonzero((background.values <= 0) & (data.values > 0))
    if orphan.size:
        i = int(orphan[0])
        raise AnalysisError(
            f"{background.source}: bin {i} [{data.edges[i]:g}, {data.edges[i + 1]:g}) has zero background but "
            f"{data.values[i]:g} observed events in {data.source}; merge bins or provide a background estimate"
        )


# --------------------------------------------------------------------------------------------------
# Workspace building and loading
# --------------------------------------------------------------------------------------------------
def build_workspace(
    data: Histogram1D,
    background: Histogram1D,
    signal: Histogram1D,
    *,
    bkg_uncertainty: float = 0.1,
    mc_stat: McStat = "staterror",
    channel: str = "signal_region",
) -> dict[str, Any]:
    """Build a one-channel pyhf workspace: signal×mu, background with normsys and per-bin MC stat."""
    if not (0.0 <= bkg_uncertainty < 1.0) or not math.isfinite(bkg_uncertainty):
        raise AnalysisError(f"--bkg-uncertainty must be a fraction in [0, 1), got {bkg_uncertainty}")
    if mc_stat not in ("staterror", "shapesys", "none"):
        raise AnalysisError(f"unknown background MC-stat treatment {mc_stat!r} (staterror, shapesys, none)")
    check_compatible(data, background, signal)
    bkg_modifiers: list[dict[str, Any]] = []
    if bkg_uncertainty > 0:
        bkg_modifiers.append(
            {
                "name": "background_norm",
                "type": "normsys",
                "data": {"hi": 1.0 + bkg_uncertainty, "lo": 1.0 - bkg_uncertainty},
            }
        )
    if mc_stat != "none" and background.assumption:
        log.warning("%s; MC-stat %s from sqrt(N)", background.assumption, mc_stat)
    if mc_stat != "none" and background.variances is not None:
        sigma = np.sqrt(background.variances)
        if mc_stat == "shapesys":
            # shapesys needs a strictly positive relative uncertainty wherever the background is non-zero
            sigma = np.where((background.values > 0) & (sigma <= 0), 1e-12 * background.values, sigma)
        bkg_modifiers.append({"name": "background_mc_stat", "type": mc_stat, "data": sigma.tolist()})
    elif mc_stat != "none":
        log.info("%s has no stored variances: no per-bin MC-stat uncertainty on the background", background.source)
    return {
        "channels": [
            {
                "name": channel,
                "samples": [
                    {
                        "name": "signal",
                        "data": signal.values.tolist(),
                        "modifiers": [{"name": "mu", "type": "normfactor", "data": None}],
                    },
                    {"name": "background", "data": background.values.tolist(), "modifiers": bkg_modifiers},
                ],
            }
        ],
        "observations": [{"name": channel, "data": data.values.tolist()}],
        "measurements": [{"name": "reinterpretation", "config": {"poi": "mu", "parameters": []}}],
        "version": "1.0.0",
    }


def load_json(path: str | Path, what: str) -> Any:
    """Read a JSON file (the project's one loader): missing files and syntax errors are one-line ConfigErrors."""
    from analysis.config import load_json as _load

    return _load(path, what=f"{what} file")


def apply_patch(spec: dict[str, Any], patch: Any, patch_name: str | None = None, source: str = "patch") -> dict[str, Any]:
    """Apply a JSON patch (list of ops) or one patch of a pyhf patchset to a workspace spec."""
    import jsonpatch

    if isinstance(patch, list):
        try:
            return jsonpatch.JsonPatch(patch).apply(spec)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, KeyError, IndexError, TypeError) as err:
            raise AnalysisError(f"{source}: cannot apply JSON patch: {err}") from None
    if isinstance(patch, dict) and "patches" in patch:
        try:
            patchset = pyhf.PatchSet(patch)
        except pyhf.exceptions.InvalidSpecification as err:
            raise AnalysisError(f"{source}: invalid pyhf patchset: {str(err).splitlines()[0]}") from None
        names = [p.name for p in patchset.patches]
        if patch_name is None:
            if len(names) != 1:
                raise AnalysisError(f"{source}: patchset holds {len(names)} patches; choose one with --patch-name {names}")
            patch_name = names[0]
        if patch_name not in names:
            raise AnalysisError(f"{source}: no patch named {patch_name!r} (available: {names})")
        try:
            return dict(patchset.apply(pyhf.Workspace(spec), patch_name))
        except pyhf.exceptions.PatchSetVerificationError as err:
            raise AnalysisError(f"{source}: patchset does not belong to this workspace: {err}") from None
    raise AnalysisError(f"{source}: expected a JSON patch (a list of operations) or a pyhf patchset (with 'patches')")


def make_workspace(spec: dict[str, Any], source: str = "workspace") -> pyhf.Workspace:
    """Validate a workspace spec with pyhf's schema, as a one-line AnalysisError on failure."""
    try:
        return pyhf.Workspace(spec)
    except pyhf.exceptions.InvalidSpecification as err:
        raise AnalysisError(f"{source}: invalid pyhf workspace: {str(err).splitlines()[0]}") from None
    except Exception as err:  # noqa: BLE001 - pyhf raises assorted errors for malformed specs
        raise AnalysisError(f"{source}: invalid pyhf workspace ({type(err).__name__}: {err})") from None


def model_and_data(
    workspace: pyhf.Workspace,
    *,
    measurement: str | None = None,
    modifier_settings: dict[str, Any] | None = None,
) -> tuple[pyhf.pdf.Model, np.ndarray]:
    """Build the pyhf model (given measurement and interpolation codes) and its observed data + auxdata."""
    kwargs: dict[str, Any] = {}
    if measurement is not None:
        names = [m["name"] for m in workspace.get("measurements", [])]
        if measurement not in names:
            raise AnalysisError(f"workspace: no measurement named {measurement!r} (available: {names})")
        kwargs["measurement_name"] = measurement
    if modifier_settings is not None:
        kwargs["modifier_settings"] = modifier_settings
    try:
        model = workspace.model(**kwargs)
    except pyhf.exceptions.InvalidModel as err:
        raise AnalysisError(f"workspace: cannot build the model: {err}") from None
    if model.config.poi_index is None:
        raise AnalysisError("workspace: the measurement defines no parameter of interest (config.poi)")
    return model, np.asarray(workspace.data(model), dtype=float)


# --------------------------------------------------------------------------------------------------
# CLs
# --------------------------------------------------------------------------------------------------
def cls_at(
    model: pyhf.pdf.Model,
    data: np.ndarray,
    mu: float,
    *,
    test_stat: str = "qtilde",
    calctype: str = "asymptotics",
    par_bounds: Sequence[Sequence[float]] | None = None,
    init_pars: Sequence[float] | None = None,
) -> tuple[float, list[float]]:
    """Observed CLs and the five expected CLs (−2σ…+2σ) at POI value ``mu`` (default: suggested init/bounds)."""
    bounds = par_bounds if par_bounds is not None else model.config.suggested_bounds()
    init = init_pars if init_pars is not None else model.config.suggested_init()
    fixed = model.config.suggested_fixed()
    previous = logging.getLogger("pyhf.infer.test_statistics").level
    logging.getLogger("pyhf.infer.test_statistics").setLevel(logging.ERROR)  # q with POI ≥ 0 warns every call
    try:
        obs, exp = pyhf.infer.hypotest(
            float(mu),
            data,
            model,
            init_pars=init,
            par_bounds=bounds,
            fixed_params=fixed,
            test_stat=test_stat,
            calctype=calctype,
            return_expected_set=True,
        )
    finally:
        logging.getLogger("pyhf.infer.test_statistics").setLevel(previous)
    return float(obs), [float(e) for e in exp]


def workspace_cls(
    spec: dict[str, Any],
    mu: float,
    *,
    modifier_settings: dict[str, Any] | None = None,
    test_stat: str = "qtilde",
    calctype: str = "asymptotics",
    measurement: str | None = None,
) -> tuple[float, list[float]]:
    """CLs (observed, five expected) for a pyhf workspace dict at ``mu``, with the model's suggested init/bounds."""
    model, data = model_and_data(make_workspace(spec), measurement=measurement, modifier_settings=modifier_settings)
    with threadpool_limits(1):
        return cls_at(model, data, mu, test_stat=test_stat, calctype=calctype)


class _CLsCurve:
    """Memoised μ → [CLs_obs, CLs_exp(−2σ…+2σ)] for one model and data: the core's pyhf-hypotest calculator."""

    def __init__(self, model: pyhf.pdf.Model, data: np.ndarray, poi_upper_bound: float, test_stat: str,
                 init: Sequence[float] | None = None, optimizer: str = "scipy") -> None:
        from analysis.stats.likelihood import Likelihood
        from analysis.stats.limits import CLsCalculator

        lh = Likelihood(model, data, use_jax=False)
        start = list(model.config.suggested_init() if init is None else init)
        start[model.config.poi_index] = min(float(start[model.config.poi_index]), 0.5 * float(poi_upper_bound))
        self.calc = CLsCalculator(lh, init=start, test_stat=test_stat, optimizer=optimizer)
        self.calc.bounds[model.config.poi_index] = [0.0, float(poi_upper_bound)]
        self.cache = self.calc.cache

    def __call__(self, mu: float) -> np.ndarray:
        return self.calc(float(mu))

    def value(self, mu: float, index: int) -> float:
        """CLs_index(μ) (0 observed, 1–5 expected −2σ…+2σ); an expected value needs only the Asimov fit."""
        return float(self.calc(float(mu))[0] if index == 0 else self.calc.expected(float(mu))[index - 1])


def _signal_and_background(model: pyhf.pdf.Model) -> tuple[np.ndarray, np.ndarray]:
    """Expected main-measurement yields at nominal nuisance parameters for μ=0 and the signal part at μ=1."""
    pars = np.asarray(model.config.suggested_init(), dtype=float)
    poi = model.config.poi_index
    pars[poi] = 0.0
    bkg = np.asarray(model.expected_actualdata(pars), dtype=float)
    pars[poi] = 1.0
    sig = np.asarray(model.expected_actualdata(pars), dtype=float) - bkg
    return sig, bkg


def _initial_poi_guess(model: pyhf.pdf.Model) -> float:
    """A rough μ where the +2σ expected limit might sit, from the stat-only Asimov significance per unit μ."""
    sig, bkg = _signal_and_background(model)
    z_per_mu = math.sqrt(float(np.sum(np.where(bkg > 0, sig**2 / np.maximum(bkg, 1e-12), 0.0))))
    if not np.any(sig > 0):
        raise AnalysisError("workspace: the signal (POI-scaled) prediction is zero everywhere; nothing to constrain")
    if z_per_mu <= 0 or not math.isfinite(z_per_mu):
        return 1.0
    return 5.0 / z_per_mu


def _find_scan_range(model: pyhf.pdf.Model, data: np.ndarray, test_stat: str, max_doublings: int = 40,
                     init: Sequence[float] | None = None, optimizer: str = "scipy") -> tuple[float, _CLsCurve]:
    """Smallest tried μ_max (doubling from a guess) at which every CLs curve is below the 0.05 level.

    Returns μ_max and the CLs curve whose cache already holds the tried points (the scan reuses them).
    """
    mu = _initial_poi_guess(model)
    curve = _CLsCurve(model, data, 2.0 * mu, test_stat, init, optimizer)
    for _ in range(max_doublings):
        if np.all(curve(mu) < CLS_LEVEL):
            return mu, curve
        mu *= 2.0
    raise AnalysisError(f"no exclusion up to mu={mu:g}: the signal is too small for this analysis to constrain")


_NSIGMA = (-2.0, -1.0, 0.0, 1.0, 2.0)  # expected-band order of the CLs vector after the observed entry


def _linearised(index: int, cls: float) -> float:
    """A monotone (increasing in μ) map of CLs_index that is nearly linear in μ, so that few hypotests find its root.

    Expected curve with n σ: pyhf's asymptotic CLs_exp = Φ̄(√q_μ,A − n)/Φ̄(−n) (``AsymptoticCalculator.expected_pvalues``;
    Cowan et al., arXiv:1007.1727) inverts to √q_μ,A = Φ̄⁻¹(CLs_exp·Φ̄(−n)) + n, ≈ μ/σ; observed: Φ̄⁻¹(CLs).
    Both are strictly decreasing in CLs, so CLs_index(μ) = 0.05 and the mapped equation have the same root.
    """
    from scipy.special import ndtri  # Φ⁻¹; Φ̄⁻¹(p) = −Φ⁻¹(p)
    from scipy.stats import norm

    if index == 0:
        return float(-ndtri(cls))
    n = _NSIGMA[index - 1]
    return float(-ndtri(cls * norm.sf(-n)) + n)


def _root(curve: _CLsCurve, index: int, mus: np.ndarray, values: np.ndarray, xtol: float, max_iter: int = 8) -> float:
    """Root of CLs_index(μ) − 0.05 in the first downward crossing of the scan, to ``xtol`` in μ.

    The root is that of g(μ) = L(CLs_index(μ)) − L(0.05) with L from :func:`_linearised` (nearly linear in μ):
    inverse polynomial interpolation through the (up to four) evaluated points with the smallest |g| — the scan
    points around the crossing, then each new evaluation — kept inside the bracket [a, b] (g(a) ≤ 0 < g(b)),
    until the estimate moves by less than ``xtol``.  Typically one or two evaluations per limit (TOMS 748 on
    CLs − 0.05, as pyhf's ``toms748_scan``, needs four to six), each a full hypotest for the observed limit and
    one Asimov fit for an expected one (:meth:`analysis.stats.limits.CLsCalculator.expected`); if that does not
    converge within ``max_iter`` evaluations, ``scipy.optimize.toms748`` finishes on the bracket.
    """
    above = values[:, index] >= CLS_LEVEL
    crossings = np.flatnonzero(above[:-1] & ~above[1:])
    if crossings.size == 0:
        label = "observed" if index == 0 else f"expected {EXPECTED_BAND_LABELS[index - 1]}"
        raise AnalysisError(
            f"the {label} CLs never crosses {CLS_LEVEL} on mu in [{mus[0]:g}, {mus[-1]:g}]; increase --poi-max"
        )
    i = int(crossings[0])
    target = _linearised(index, CLS_LEVEL)

    def g(m: float) -> float:
        return _linearised(index, curve.value(m, index)) - target

    a, b = float(mus[i]), float(mus[i + 1])
    points: dict[float, float] = {}
    for j in range(max(i - 1, 0), min(i + 3, len(mus))):
        y = _linearised(index, float(values[j, index])) - target
        if math.isfinite(y) and (j <= i or y > 0) and (j > i or y <= 0):  # monotone neighbours only
            points[float(mus[j])] = y
    previous = None
    for _ in range(max_iter):
        near = sorted(points, key=lambda x: abs(points[x]))[:4]
        xs, ys = np.array(near), np.array([points[x] for x in near])
        x = math.nan
        if len(set(ys.tolist())) == len(ys) > 1:  # exact inverse interpolation x(y) at y = 0 (no least squares)
            with np.errstate(all="ignore"):
                x = float(barycentric_interpolate(ys, xs, 0.0))
        if not a < x < b:
            x = 0.5 * (a + b)
        if previous is not None and abs(x - previous) <= xtol:
            return x
        y = g(x)
        if not math.isfinite(y):
            break
        points[x], previous = y, x
        if y <= 0:
            a = x
        else:
            b = x
    return float(toms748(lambda m: curve.value(m, index) - CLS_LEVEL, a, b, k=2, xtol=xtol, rtol=1e-12, maxiter=200))


@dataclass
class LimitScan:
    """CLs scan on a μ grid plus the root-found 95 % CL upper limits."""

    poi_name: str
    mu: list[float]
    cls_observed: list[float]
    cls_expected: list[list[float]]
    mu_upper_limit_observed: float
    mu_upper_limit_expected: list[float]
    cls_observed_at_mu_1: float
    cls_expected_at_mu_1: list[float]
    test_statistic: str
    poi_max: float
    n_hypotests: int
    fit_quality: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def limit_scan(
    model: pyhf.pdf.Model,
    data: np.ndarray,
    *,
    poi_max: float | None = None,
    scan_points: int = 15,
    test_stat: str = "qtilde",
    xtol_rel: float = 1e-6,
    init: Sequence[float] | None = None,
    optimizer: str = "scipy",
) -> LimitScan:
    """CLs μ-scan on [0, poi_max] and root-found upper limits (observed and expected −2σ…+2σ) at 95 % CL.

    CLs values come from :class:`analysis.stats.limits.CLsCalculator` (pyhf hypotest, fits started at
    ``init``, e.g. the guarded best fit; ``optimizer`` first, the other as fallback).
    """
    with threadpool_limits(1):
        return _limit_scan(model, data, poi_max, scan_points, test_stat, xtol_rel, init, optimizer)


def _limit_scan(
    model: pyhf.pdf.Model, data: np.ndarray, poi_max: float | None, scan_points: int, test_stat: str, xtol_rel: float,
    init: Sequence[float] | None = None, optimizer: str = "scipy",
) -> LimitScan:
    """Implementation of :func:`limit_scan` (runs with single-threaded BLAS)."""
    if scan_points < 3:
        raise AnalysisError(f"--scan-points must be at least 3, got {scan_points}")
    curve = None
    if poi_max is None:
        poi_max, curve = _find_scan_range(model, data, test_stat, init=init, optimizer=optimizer)
    elif not (poi_max > 0 and math.isfinite(poi_max)):
        raise AnalysisError(f"--poi-max must be a positive number, got {poi_max}")
    if curve is None:
        curve = _CLsCurve(model, data, max(2.0 * poi_max, 1.0), test_stat, init, optimizer)
    curve.calc.ensure_upper_bound(max(poi_max, 0.5))
    mus = np.linspace(0.0, poi_max, scan_points)
    # CLs(μ = 0) ≡ 1 (observed and expected): at μ = 0 the signal-plus-background hypothesis is the
    # background-only one, CLs = CLs+b/CLb = 1; pyhf's hypotest returns exactly 1 there, at the cost of two fits
    values = np.array([np.ones(6) if m == 0.0 else curve(m) for m in mus])
    if np.any(~np.isfinite(values)):
        bad = float(mus[np.flatnonzero(~np.all(np.isfinite(values), axis=1))[0]])
        raise AnalysisError(f"CLs is not finite at mu={bad:g}; the model is ill-defined (check empty bins)")
    xtol = xtol_rel * poi_max
    limits = [_root(curve, k, mus, values, xtol) for k in range(6)]
    at_one = curve(1.0)
    return LimitScan(
        poi_name=model.config.poi_name,
        mu=mus.tolist(),
        cls_observed=values[:, 0].tolist(),
        cls_expected=values[:, 1:].tolist(),
        mu_upper_limit_observed=limits[0],
        mu_upper_limit_expected=limits[1:],
        cls_observed_at_mu_1=float(at_one[0]),
        cls_expected_at_mu_1=at_one[1:].tolist(),
        test_statistic=test_stat,
        poi_max=float(poi_max),
        n_hypotests=len(curve.cache),
        fit_quality=curve.calc.fit_quality(),
        warnings=curve.calc.warnings(),
    )


def guarded_model(
    spec: dict[str, Any],
    *,
    source: str,
    measurement: str | None = None,
    modifier_settings: dict[str, Any] | None = None,
    fix: Sequence[str] | dict[str, float] | None = None,
    prune: Sequence[str] = (),
    optimizer: str = "scipy",
    degenerate_threshold: float | None = 1e-5,
) -> tuple[pyhf.Workspace, pyhf.pdf.Model, np.ndarray, Any, Any]:
    """Apply --fix/--prune and prune near-degenerate constraints, build the model, run the guarded free fit.

    Returns:
        (workspace, model, observed data, core FitResult of the free fit, Controls).
    """
    from analysis.stats.fit import fit as core_fit
    from analysis.stats.likelihood import Likelihood
    from analysis.stats.prune import apply_controls

    new_spec, controls = apply_controls(spec, fix=fix, prune=prune, measurement=measurement,
                                        degenerate_threshold=degenerate_threshold)
    ws = make_workspace(new_spec, source)
    model, obs = model_and_data(ws, measurement=measurement, modifier_settings=modifier_settings)
    with threadpool_limits(1):
        best = core_fit(Likelihood(model, obs, use_jax=model.config.npars > 40), optimizer=optimizer, hesse=False)
    return ws, model, obs, best, controls


def _quality_warnings(best: Any, controls: Any, scan: LimitScan | None = None) -> list[str]:
    out = [f"note: {n}" for n in controls.notices]
    if not best.quality.ok:
        out.append("warning: the free fit failed the quality guard (" + "; ".join(best.quality.warnings)
                   + f"; attempts: {', '.join(best.quality.attempts)}); the limits below are not trustworthy")
    if scan is not None:
        out.extend(f"warning: {w}" for w in scan.warnings)
    return out


def _scan_quality(best: Any, scan: LimitScan) -> dict[str, Any]:
    """results.json's ``fit_quality``: the guarded free fit's block plus the CLs hypotests' (``cls_scan``);
    ``ok`` only when both are, ``warnings`` lists both."""
    q = best.quality.to_dict()
    q["cls_scan"] = dict(scan.fit_quality)
    q["ok"] = bool(q["ok"] and scan.fit_quality.get("ok", True))
    q["warnings"] = list(q["warnings"]) + list(scan.warnings)
    return q


# --------------------------------------------------------------------------------------------------
# Result
# --------------------------------------------------------------------------------------------------
@dataclass
class ReinterpretResult:
    """Everything the reinterpretation step produces; ``to_dict`` is what results.json holds."""

    scan: LimitScan
    inputs: dict[str, Any]
    yields: dict[str, float]
    signal_cross_section_pb: float | None = None
    workspace: dict[str, Any] = field(default_factory=dict, repr=False)
    outputs: dict[str, list[str]] = field(default_factory=dict)
    fit_quality: dict[str, Any] = field(default_factory=dict)
    controls: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def mu_upper_limit_observed(self) -> float:
        """Observed 95 % CL upper limit on μ."""
        return self.scan.mu_upper_limit_observed

    @property
    def mu_upper_limit_expected(self) -> list[float]:
        """Expected 95 % CL upper limits on μ: [−2σ, −1σ, median, +1σ, +2σ]."""
        return self.scan.mu_upper_limit_expected

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary with the keys issue 6 asks for (units in key names)."""
        s = self.scan
        out: dict[str, Any] = {
            "mu_upper_limit_observed": s.mu_upper_limit_observed,
            "mu_upper_limit_expected": s.mu_upper_limit_expected,
            "expected_band_order": list(EXPECTED_BAND_LABELS),
            "confidence_level": 1.0 - CLS_LEVEL,
            "cls_observed_at_mu_1": s.cls_observed_at_mu_1,
            "cls_expected_at_mu_1": s.cls_expected_at_mu_1,
            "signal_excluded_at_mu_1": bool(s.cls_observed_at_mu_1 < CLS_LEVEL),
            "cls_scan": {"mu": s.mu, "observed": s.cls_observed, "expected": s.cls_expected},
            "poi": s.poi_name,
            "poi_max": s.poi_max,
            "test_statistic": s.test_statistic,
            "calculator": "asymptotics",
            "limit_method": "root of CLs(mu) - 0.05 bracketed by the scan (inverse interpolation of the "
                            "linearised CLs, toms748 fallback)",
            "n_hypotests": s.n_hypotests,
            "yields": self.yields,
            "inputs": self.inputs,
            "pyhf_version": pyhf.__version__,
        }
        if self.signal_cross_section_pb is not None:
            xs = self.signal_cross_section_pb
            out["signal_cross_section_pb"] = xs
            out["cross_section_upper_limit_observed_pb"] = xs * s.mu_upper_limit_observed
            out["cross_section_upper_limit_expected_pb"] = [xs * m for m in s.mu_upper_limit_expected]
        if self.outputs:
            out["outputs"] = self.outputs
        out["fit_quality"] = self.fit_quality
        out["controls"] = self.controls
        out["warnings"] = list(self.warnings)
        return out


def _check_xsec(xsec_pb: float | None) -> None:
    """A signal cross-section, when given, must be a positive finite number in pb."""
    if xsec_pb is not None and not (xsec_pb > 0 and math.isfinite(xsec_pb)):
        raise AnalysisError(f"--xsec must be a positive cross-section in pb, got {xsec_pb}")


def _finish(
    result: ReinterpretResult,
    *,
    outputfile: str | Path | None,
    plotfile: str | Path | None,
    json_path: str | Path | None,
    draw_spectrum: Callable[[str | Path], list[Path]] | None,
) -> ReinterpretResult:
    """Draw requested plots, then write results.json (default: next to the limit plot)."""
    if outputfile is not None:
        result.outputs["limit_plot"] = [str(p) for p in plot_cls_scan(result.scan, outputfile)]
    if plotfile is not None and draw_spectrum is not None:
        result.outputs["spectrum_plot"] = [str(p) for p in draw_spectrum(plotfile)]
    if json_path is None and outputfile is not None:
        json_path = Path(outputfile).parent / "results.json"
    if json_path is not None:
        jp = Path(json_path)
        jp.parent.mkdir(parents=True, exist_ok=True)
        result.outputs["results"] = [str(jp)]
        jp.write_text(json.dumps(result.to_dict(), indent=1) + "\n")
    return result


def reinterpret_histograms(
    filedata: str | Path,
    histdata: str,
    filebkg: str | Path,
    histbkg: str,
    filesig: str | Path,
    histsig: str,
    *,
    bkg_uncertainty: float = 0.1,
    mc_stat: McStat = "staterror",
    poi_max: float | None = None,
    xsec_pb: float | None = None,
    scan_points: int = 15,
    outputfile: str | Path | None = None,
    plotfile: str | Path | None = None,
    json_path: str | Path | None = None,
    fix: Sequence[str] | dict[str, float] | None = None,
    prune: Sequence[str] = (),
    optimizer: str = "scipy",
    degenerate_threshold: float | None = 1e-5,
) -> ReinterpretResult:
    """Reinterpret preserved data/background against a new signal histogram (the RECAST fitting step).

    ``fix``/``prune``/``optimizer`` as ``ana fit``; ``degenerate_threshold``: prune shapesys/staterror bins with
    a smaller relative uncertainty (None keeps them).
    """
    _check_xsec(xsec_pb)
    data = read_histogram(filedata, histdata)
    background = read_histogram(filebkg, histbkg)
    signal = read_histogram(filesig, histsig)
    spec = build_workspace(data, background, signal, bkg_uncertainty=bkg_uncertainty, mc_stat=mc_stat)
    _, model, obs, best, controls = guarded_model(spec, source="built workspace", fix=fix, prune=prune,
                                                  optimizer=optimizer, degenerate_threshold=degenerate_threshold)
    scan = limit_scan(model, obs, poi_max=poi_max, scan_points=scan_points, init=best.bestfit, optimizer=optimizer)
    result = ReinterpretResult(
        scan=scan,
        inputs={
            "data": data.source,
            "background": background.source,
            "signal": signal.source,
            "bkg_uncertainty": bkg_uncertainty,
            "background_mc_stat": mc_stat if background.sumw2_stored or mc_stat == "none" else f"{mc_stat} (sqrt(N): no Sumw2 stored)",
            "n_bins": data.n_bins,
            "bin_edges": data.edges.tolist(),
        },
        yields={
            "data": float(data.values.sum()),
            "background": float(background.values.sum()),
            "signal_mu_1": float(signal.values.sum()),
        },
        signal_cross_section_pb=xsec_pb,
        workspace=spec,
        fit_quality=_scan_quality(best, scan),
        controls=controls.to_dict(),
        warnings=_quality_warnings(best, controls, scan),
    )

    def draw(path: str | Path) -> list[Path]:
        return plot_spectrum_histograms(data, background, signal, bkg_uncertainty, path, scan.mu_upper_limit_observed)

    return _finish(result, outputfile=outputfile, plotfile=plotfile, json_path=json_path, draw_spectrum=draw)


def reinterpret_workspace(
    workspace: str | Path | dict[str, Any],
    *,
    patch: str | Path | list[Any] | dict[str, Any] | None = None,
    patch_name: str | None = None,
    measurement: str | None = None,
    modifier_settings: dict[str, Any] | None = None,
    poi_max: float | None = None,
    xsec_pb: float | None = None,
    scan_points: int = 15,
    outputfile: str | Path | None = None,
    plotfile: str | Path | None = None,
    json_path: str | Path | None = None,
    fix: Sequence[str] | dict[str, float] | None = None,
    prune: Sequence[str] = (),
    optimizer: str = "scipy",
    degenerate_threshold: float | None = 1e-5,
) -> ReinterpretResult:
    """Reinterpret a (patched) pyhf JSON workspace, e.g. a HEPData likelihood with a new signal patch.

    ``fix``/``prune``/``optimizer`` as ``ana fit``; ``degenerate_threshold``: prune shapesys/staterror bins with
    a smaller relative uncertainty (None keeps them).  The free fit is guarded: a fit that fails the guard
    (e.g. stalls at its start) is reported in ``warnings`` and results.json's ``fit_quality``.
    """
    _check_xsec(xsec_pb)
    ws_source = str(workspace) if isinstance(workspace, (str, Path)) else "workspace"
    spec = load_json(workspace, "workspace") if isinstance(workspace, (str, Path)) else workspace
    if not isinstance(spec, dict):
        raise AnalysisError(f"{ws_source}: a pyhf workspace is a JSON object, got {type(spec).__name__}")
    make_workspace(spec, ws_source)
    patch_source = None
    if patch is not None:
        patch_source = str(patch) if isinstance(patch, (str, Path)) else "patch"
        patch_doc = load_json(patch, "patch") if isinstance(patch, (str, Path)) else patch
        spec = apply_patch(spec, patch_doc, patch_name, patch_source)
    ws, model, obs, best, controls = guarded_model(
        spec, source=f"{ws_source} (patched)" if patch is not None else ws_source, measurement=measurement,
        modifier_settings=modifier_settings, fix=fix, prune=prune, optimizer=optimizer,
        degenerate_threshold=degenerate_threshold)
    scan = limit_scan(model, obs, poi_max=poi_max, scan_points=scan_points, init=best.bestfit, optimizer=optimizer)
    sig, bkg = _signal_and_background(model)
    n_main = model.config.nmaindata
    result = ReinterpretResult(
        scan=scan,
        inputs={
            "workspace": ws_source,
            "patch": patch_source,
            "patch_name": patch_name,
            "measurement": measurement or ws.get_measurement()["name"],
            "channels": list(model.config.channels),
            "n_bins": int(n_main),
        },
        yields={
            "data": float(np.sum(obs[:n_main])),
            "background": float(np.sum(bkg)),
            "signal_mu_1": float(np.sum(sig)),
        },
        signal_cross_section_pb=xsec_pb,
        workspace=dict(ws),
        fit_quality=_scan_quality(best, scan),
        controls=controls.to_dict(),
        warnings=_quality_warnings(best, controls, scan),
    )

    def draw(path: str | Path) -> list[Path]:
        return plot_spectrum_workspace(model, obs[:n_main], sig, bkg, path)

    return _finish(result, outputfile=outputfile, plotfile=plotfile, json_path=json_path, draw_spectrum=draw)


# --------------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------------
def _save(fig: Any, path: str | Path) -> list[Path]:
    """Save as PNG+PDF with the stem of ``path`` (plus the requested suffix if it is another format)."""
    from analysis.plotting import save_figure

    p = Path(path)
    formats = ["png", "pdf"]
    suffix = p.suffix.lstrip(".").lower()
    if suffix and suffix not in formats:
        formats.append(suffix)
    return save_figure(fig, p.parent, p.stem if suffix else p.name, tuple(formats))


def plot_cls_scan(scan: LimitScan, path: str | Path) -> list[Path]:
    """The core's Brazil-band plot (:func:`analysis.stats.plots.brazil_band`) of a CLs scan, in the analysis style."""
    import matplotlib.pyplot as plt

    from analysis.plotting import label, use_style
    from analysis.stats.plots import brazil_band

    use_style()
    fig, ax = plt.subplots()
    brazil_band(np.asarray(scan.mu), np.asarray(scan.cls_observed), np.asarray(scan.cls_expected), level=CLS_LEVEL,
                observed_limit=scan.mu_upper_limit_observed, expected_limit=scan.mu_upper_limit_expected[2],
                poi_label=r"Signal strength $\mu$", ax=ax)
    label(ax, "Data")
    return _save(fig, path)


def _spectrum_axes() -> tuple[Any, Any, Any]:
    """A figure with a main panel and a ratio panel sharing x."""
    import matplotlib.pyplot as plt

    from analysis.plotting import use_style

    use_style()
    fig, (ax, rax) = plt.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1], "hspace": 0.05})
    return fig, ax, rax


def _draw_spectrum(
    ax: Any,
    rax: Any,
    edges: np.ndarray,
    data: np.ndarray,
    bkg: np.ndarray,
    bkg_err: np.ndarray,
    sig: np.ndarray,
    mu_up: float | None,
) -> None:
    """Stacked background + signal, data with Poisson errors, uncertainty band, ratio data/background."""
    import mplhep

    mplhep.histplot([bkg, sig], edges, stack=True, histtype="fill", color=["#6baed6", "#e6550d"],
                    label=["Background", r"Signal ($\mu$ = 1)"], ax=ax)
    if mu_up is not None:
        mplhep.histplot(bkg + mu_up * sig, edges, histtype="step", color="black", ls="--",
                        label=f"Background + signal ($\\mu$ = {mu_up:.3g}, 95% CL)", ax=ax)
    lo, hi = bkg - bkg_err, bkg + bkg_err
    ax.stairs(hi, edges, baseline=lo, fill=True, hatch="///", facecolor="none", edgecolor="gray", lw=0,
              label="Background uncertainty")
    centers = 0.5 * (edges[1:] + edges[:-1])
    ax.errorbar(centers, data, yerr=np.sqrt(np.maximum(data, 0)), fmt="ko", label="Data")
    ax.set_ylabel("Events / bin")
    ax.set_ylim(0, 1.35 * max(float(np.max(data + np.sqrt(np.maximum(data, 0)))), float(np.max(bkg + sig))))
    ax.legend(fontsize=13)
    safe = np.where(bkg > 0, bkg, np.nan)
    rax.stairs(1 + bkg_err / safe, edges, baseline=1 - bkg_err / safe, fill=True, hatch="///", facecolor="none",
               edgecolor="gray", lw=0)
    rax.stairs((bkg + sig) / safe, edges, color="#e6550d", label=r"(B + S$_{\mu=1}$) / B")
    rax.errorbar(centers, data / safe, yerr=np.sqrt(np.maximum(data, 0)) / safe, fmt="ko")
    rax.axhline(1.0, color="gray", lw=1)
    rax.set_ylabel("Data / Bkg")
    rax.set_ylim(0.5, 1.5)


def _mathtext(title: str) -> str:
    """Turn a ROOT TLatex axis title such as ``m_{jj} [GeV]`` into matplotlib mathtext ``$m_{jj}$ [GeV]``."""
    if not title or "$" in title or not any(t in title for t in ("_{", "^{", "#")):
        return title
    body, unit = (title.rsplit(" [", 1) + [""])[:2] if title.endswith("]") and " [" in title else (title, "")
    body = body.replace("#", "\\").replace(" ", r"\ ")
    return f"${body}$" + (f" [{unit}" if unit else "")


def plot_spectrum_histograms(
    data: Histogram1D,
    background: Histogram1D,
    signal: Histogram1D,
    bkg_uncertainty: float,
    path: str | Path,
    mu_up: float | None = None,
) -> list[Path]:
    """Data/background/signal spectrum with ratio panel for histogram inputs."""
    from analysis.plotting import label

    fig, ax, rax = _spectrum_axes()
    var = background.variances if background.variances is not None else np.zeros_like(background.values)
    err = np.sqrt(var + (bkg_uncertainty * background.values) ** 2)
    _draw_spectrum(ax, rax, data.edges, data.values, background.values, err, signal.values, mu_up)
    rax.set_xlabel(_mathtext(data.axis_title or background.axis_title) or "Observable (input binning)")
    label(ax, "Data")
    return _save(fig, path)


def plot_spectrum_workspace(
    model: pyhf.pdf.Model, data: np.ndarray, sig: np.ndarray, bkg: np.ndarray, path: str | Path
) -> list[Path]:
    """Data/background/signal per bin of every channel (concatenated) with ratio panel, for workspace inputs."""
    from analysis.plotting import label

    fig, ax, rax = _spectrum_axes()
    edges = np.arange(bkg.size + 1, dtype=float)
    _draw_spectrum(ax, rax, edges, data, bkg, np.zeros_like(bkg), sig, None)
    start = 0
    for ch in model.config.channels:
        n = model.config.channel_nbins[ch]
        if start > 0:
            ax.axvline(start, color="gray", ls=":")
            rax.axvline(start, color="gray", ls=":")
        ax.text(start + 0.5 * n, ax.get_ylim()[1] * 0.97, ch, ha="center", va="top", fontsize=11)
        start += n
    rax.set_xlabel("Bin index (channels concatenated; background at pre-fit nominal)")
    label(ax, "Data")
    return _save(fig, path)
