"""Data-driven smooth HT_all reweighting of tt+≥1b (seed 002), from processor moments to a correctionlib file.

Per ttbar sample (nominal and alternatives): data* = data − Σ(constant samples × NormFactor); reweighted
MC = Σ(reweighted components × NormFactor), normalised to data* (inclusively over the nJets bins, or
per bin); per nJets bin an adaptive binning (≥ minEvents data* events, ≥ minMCEntries MC entries,
≥ minBinWidth and a relative error of k_i ≤ targetRelError), k_i = data*_i / MC_i with its covariance (data
and, optionally, MC statistics, including the normalisation), and a smooth function f
(``analysis.reweighting.smooth``): by default a polynomial of order ≤ maxOrder fitted to the k_i (order by AIC
or an F-test, band from the fit covariance); ``method: exact_integral`` is the seed's C¹ piecewise quadratic
with exact bin integrals (warned about when it oscillates). With fewer than two bins the correction is flat,
k, with σ_k widened by the unresolved slope. Outside the populated range f is held (``outOfRange``); nominal/up/down = f, f ± σ_f are clipped
to ``bounds``, and every clipping is reported; the band is centred on the clipped nominal (clip(f) ± σ_f), so a bin
whose k is unphysical (k < floor, e.g. an alternative whose tt+light alone exceeds the data) ships the floor with
its statistical band instead of a zero-width one, and says so. A kernel-density ratio is derived alongside.

Pseudo-data resampled from MC events (``resampled_from`` in ntuples.json, ``--inject-ht``) are not independent
of those samples: their Σw² is left out of the variances (see ``derive_variation``).

Closure (``closure`` per nJets bin in derivation.json, see ``CLOSURE_DEFINITION``): χ² of data* vs the
reweighted tt+≥1b, i.e. in the quantity the method corrects. For an alternative sample its own tt+c/tt+light
are subtracted, so their differences from the data land in data* and f absorbs them (a total data/MC χ²
would instead keep the tt+light mismatch that a tt+≥1b-only reweighting cannot fix). An alternative is
statistically independent of the data, so its MC Σw² always enters the closure variance (``mc_stat_fraction``
is the MC share of that variance).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hist
import numpy as np

from analysis.errors import AnalysisError
from analysis.reweighting.binning import adaptive_groups, relative_error
from analysis.reweighting.config import COMPONENTS, check_sample_names, load_config, norm_factor, region_spec
from analysis.reweighting.correction import build_correction, write_correction_set
from analysis.reweighting.kde import KDERatio, kde_ratio
from analysis.reweighting.smooth import (PolynomialFit, ReweightingWarning, SmoothCorrection, bin_power_means,
                                         fit_polynomial, flat_fit)
from analysis.reweighting.spline import QuadraticSpline, fit_spline
from analysis.stats.errors import StatsError
from analysis.stats.gof import chi2_gof, histogram_chi2
from fileset.build import build_fileset, load_ntuples_json, load_samples_config
from processors.ht_reweighting import MOMENTS, CorrectionWeights, HTAllProcessor

if TYPE_CHECKING:
    from analysis.agc.run import RunResult

M0, MW2, M1, M2, MN = (MOMENTS.index(m) for m in ("sumw", "sumw2", "sumwu", "sumwu2", "entries"))
CLOSURE_DEFINITION = (
    "chi2 in closureBinWidth bins of data* (data minus the constant samples; for an alternative its own tt+c/tt+light) "
    "against s*(reweighted tt+>=1b) before reweighting (chi2_before), with the shipped smooth function f "
    "(chi2_smooth) and with the KDE (chi2_kde): the quantity the method "
    "corrects. Differences of the alternative's tt+c/tt+light from the data are part of data* and are absorbed by f. "
    "Variance: data Poisson + MC sum of w^2 (always for alternatives, which are statistically independent of the "
    "data; for nominal only with mcStatError; one mean-weight entry where the MC has none). mc_stat_fraction "
    "is the MC share of that variance: near 1 the closure is limited by the sample's MC statistics (f interpolates "
    "k_i that scatter with the MC), not by the method. Pseudo-data resampled from MC events (--inject-ht; "
    "resampled_from in ntuples.json) are not independent of those samples: conditionally on their events the data "
    "differ from them by Poisson noise only, so their sum of w^2 is left out (nominal: data variance only), and for "
    "an alternative the nominal ttbar sum of w^2, which the data inherit, is added.")


@dataclass
class FineHist:
    """Moments per nJets (exact, with flow) × fine HT bin (with flow): shape (5, n_njets, n_ht)."""

    moments: np.ndarray
    ht_edges: np.ndarray  # lower edges of the in-range fine bins + upper edge

    def __add__(self, other: "FineHist") -> "FineHist":
        return FineHist(self.moments + other.moments, self.ht_edges)

    def scaled(self, factor: float) -> "FineHist":
        """Weights × factor (Σw² × factor², entries unchanged)."""
        m = self.moments.copy()
        m[[M0, M1, M2]] *= factor
        m[MW2] *= factor * factor
        return FineHist(m, self.ht_edges)

    def njets_slice(self, lo: int, hi: int | None) -> np.ndarray:
        """Moments summed over nJets in [lo, hi) (hi None: to overflow), in-range HT bins: (5, n_fine)."""
        nj = self.moments[:, 1 + lo: (1 + hi if hi is not None else None), :]
        return nj.sum(axis=1)[:, 1:-1]


@dataclass
class NJetsDerivation:
    """Derivation in one nJets bin."""

    label: str
    njets: tuple[int, int | None]
    edges: np.ndarray
    k: np.ndarray
    cov_k: np.ndarray
    function: SmoothCorrection
    kde: KDERatio
    fine: dict[str, np.ndarray]  # per fine bin: data, data_var, other, mc moments ...
    closure: dict[str, float] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)  # safety measures taken (also in Derivation.warnings)
    clipping: list[dict[str, Any]] = field(default_factory=list)
    oscillation: list[dict[str, float]] = field(default_factory=list)
    truth: tuple[np.ndarray, np.ndarray] | None = None  # (HT grid, injected f_true / its MC mean) when known

    @property
    def k_err(self) -> np.ndarray:
        """1σ of each k_i."""
        return np.sqrt(np.diag(self.cov_k))

    @property
    def spline(self) -> QuadraticSpline | None:
        """The exact-integral spline (``method: exact_integral``), else None."""
        return self.function.spline

    @property
    def poly(self) -> PolynomialFit | None:
        """The fitted polynomial (``method: polynomial``), else None."""
        return self.function.poly


@dataclass
class Derivation:
    """The derivation for one ttbar sample variation."""

    variation: str
    norm: float  # data*/MC normalisation
    bins: list[NJetsDerivation]
    normalisation: dict[str, Any] = field(default_factory=dict)  # what was normalised to what
    warnings: list[str] = field(default_factory=list)


# ---- processing -----------------------------------------------------------------------------------------------
def fill_moments(fileset_json: str | Path, cfg: dict[str, Any], *, executor: str = "futures", workers: int | None = None,
                 samples_config: str | Path | dict | None = None, correction: CorrectionWeights | None = None,
                 systematic: str = "nominal", progress: bool = False) -> tuple[hist.Hist, dict[str, float], dict]:
    """Run HTAllProcessor over the fileset: (moment histogram, normalisation per dataset, fileset)."""
    from analysis.execution.runner import run_processor
    from schemas.agc import AGCSchema

    samples = samples_config if isinstance(samples_config, dict) else load_samples_config(samples_config)
    doc = load_ntuples_json(fileset_json)
    data_entry = doc.get(cfg["dataProcess"], {}).get("nominal")
    if data_entry is None:
        raise AnalysisError(f"{fileset_json}: no {cfg['dataProcess']!r}/nominal sample (generate it with --inject-ht)")
    lumi = data_entry.get("luminosity_pb")
    if lumi is not None and abs(float(lumi) - float(samples["luminosity_pb"])) > 1e-6 * float(lumi):
        raise AnalysisError(f"{fileset_json}: data were made for {lumi} /pb but the samples config has "
                            f"luminosity_pb = {samples['luminosity_pb']}")
    fileset = build_fileset(fileset_json, -1, samples)
    for spec in fileset.values():
        if spec["metadata"].get("format", "ntuple") != "ntuple":
            raise AnalysisError("ana reweight needs AGC ntuples (with the hf_class branch), not NanoAOD")
    proc = HTAllProcessor(region_spec(cfg), correction=correction, systematic=systematic)
    output, _ = run_processor(fileset, proc, executor=executor, workers=workers, schema=AGCSchema, progress=progress)
    lost = [d for d, spec in fileset.items() if output["nevents"].get(d, 0) != spec["metadata"]["nevts"]]
    if lost:
        raise AnalysisError(f"events lost while processing: {', '.join(lost)}")
    return output["moments"], {d: c.value for d, c in output["norms"].items()}, fileset


def fine_hist(h: hist.Hist, norms: dict[str, float], dataset: str, component: str, factor: float = 1.0) -> FineHist:
    """Normalised moments of one dataset component (zeros if never filled)."""
    ax_ht = h.axes["ht"]
    edges = np.asarray(ax_ht.edges)
    shape = (len(MOMENTS), h.axes["njets"].extent, ax_ht.extent)
    if dataset not in h.axes["dataset"] or component not in h.axes["component"]:
        return FineHist(np.zeros(shape), edges)
    view = h[{"dataset": dataset, "component": component}].view(flow=True)  # (njets, ht, moment+1)
    moments = np.moveaxis(np.asarray(view)[..., : len(MOMENTS)], -1, 0).copy()
    if moments[:, :, -1].any():
        raise AnalysisError(f"{dataset}: HT_all above htMax = {edges[-1]:g} GeV in the derivation region; raise htMax")
    return FineHist(moments, edges).scaled(norms.get(dataset, 1.0) * factor)


def _samples_for(fileset: dict, cfg: dict[str, Any], variation: str) -> tuple[str, list[str]]:
    """ttbar dataset of a variation and the non-ttbar constant datasets (nominal)."""
    tt = f"{cfg['componentProcess']}__{variation}"
    if tt not in fileset:
        raise AnalysisError(f"fileset has no {tt!r} sample")
    others = []
    for name in cfg["constSample"]:
        if name in COMPONENTS:
            continue
        ds = f"{name}__nominal"
        if ds not in fileset:
            raise AnalysisError(f"constSample {name!r}: fileset has no {ds!r} sample")
        others.append(ds)
    return tt, others


# ---- derivation -----------------------------------------------------------------------------------------------
def _bin_moments(fine_edges: np.ndarray, m: np.ndarray, groups: list[tuple[int, int]]) -> tuple[np.ndarray, ...]:
    """S0, S1, S2 about each adaptive bin's lower edge from fine-bin moments about fine lower edges."""
    s0, s1, s2 = [], [], []
    for a, b in groups:
        d = fine_edges[a:b] - fine_edges[a]
        w, wu, wu2 = m[M0, a:b], m[M1, a:b], m[M2, a:b]
        s0.append(w.sum())
        s1.append((wu + d * w).sum())
        s2.append((wu2 + 2 * d * wu + d * d * w).sum())
    return np.array(s0), np.array(s1), np.array(s2)


def _k_covariance(d: np.ndarray, var_d: np.ndarray, m: np.ndarray,
                  var_m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float, float]:
    """k_i = D_i ΣM / (M_i ΣD), its covariance (linear propagation incl. the normalisation) and the bins' own
    (uncorrelated) variances Var(D_i)/(s M_i)² + k_i² Var(M_i)/M_i²; also s = ΣD/ΣM, ΣD and ΣM."""
    sd, sm = d.sum(), m.sum()
    if sd <= 0 or sm <= 0:
        raise AnalysisError(f"derivation region: data* total {sd:.1f} or MC total {sm:.1f} is not positive")
    s = sd / sm
    k = d / (s * m)
    jd = np.diag(1.0 / (s * m)) - np.outer(k, np.ones_like(d)) / sd
    jm = np.diag(-k / m) + np.outer(k, np.ones_like(m)) / sm
    cov = jd @ np.diag(var_d) @ jd.T + jm @ np.diag(var_m) @ jm.T
    var_unc = var_d / (s * m) ** 2 + k * k * var_m / m**2
    return k, cov, var_unc, s, sd, sm


def _njets_ranges(cfg: dict[str, Any]) -> list[tuple[int, int | None]]:
    """[lo, hi) nJets ranges; the last is inclusive upwards."""
    b = cfg["nJetsBins"]
    return [(lo, hi) for lo, hi in zip(b, b[1:])] + [(b[-1], None)]


def populated_range(pb: dict[str, Any]) -> tuple[float, float]:
    """[x̄_first, x̄_last]: the MC-weighted mean HT_all of the first and of the last adaptive bin [GeV].

    Between these centroids the k_i constrain f (interpolation); the outermost bins absorb the sparse tails
    (e.g. 520–1460 GeV), so beyond their centroids a fitted curve would be extrapolated through nearly empty
    HT_all: there the correction is held (``outOfRange``). A single (flat) bin is held over its edges.
    """
    s0, s1, _ = pb["s"]
    centroids = pb["edges"][:-1] + s1 / s0
    return float(centroids[0]), float(centroids[-1])


def _smooth_function(pb: dict[str, Any], edges: np.ndarray, cfg: dict[str, Any]) -> SmoothCorrection:
    """The configured smooth function of one nJets bin (flat with fewer than two bins)."""
    groups, bin_edges, k = pb["groups"], pb["edges"], pb["k"]
    x_lo, x_hi = populated_range(pb)
    common = dict(x_lo=x_lo, x_hi=x_hi, bounds=(float(cfg["bounds"][0]), float(cfg["bounds"][1])),
                  out_of_range=cfg["outOfRange"])
    mm = pb["fine"]["mc"]
    if len(k) < 2:  # flat k_0 ± σ_0 (+ unresolved slope), held beyond its bin edges
        common.update(x_lo=float(bin_edges[0]), x_hi=float(bin_edges[-1]))
        center, scale = x_lo, max(0.5 * (bin_edges[-1] - bin_edges[0]), 1.0)  # x_lo == x_hi == the centroid here
        sub = pb.get("sub")
        if sub is None:
            return SmoothCorrection("flat", poly=flat_fit(k[0], pb["cov"][0, 0], center, scale), **common)
        powers = bin_power_means(edges, mm[M0], mm[M1], mm[M2], sub["groups"], center, scale, 1)
        poly = flat_fit(k[0], pb["cov"][0, 0], center, scale, sub["k"], sub["var"], powers)
        return SmoothCorrection("flat", poly=poly, **common)
    if cfg["method"] == "exact_integral" and len(k) >= 2:  # the spline's domain: the bin edges (keeps integrals)
        s0, s1, s2 = pb["s"]
        common.update(x_lo=float(bin_edges[0]), x_hi=float(bin_edges[-1]))
        spline = fit_spline(bin_edges, s0, s1, s2, k)
        return SmoothCorrection("exact_integral", spline=spline, cov_k=pb["cov"], **common)
    center, scale = 0.5 * (x_lo + x_hi), max(0.5 * (x_hi - x_lo), 1.0)
    powers = bin_power_means(edges, mm[M0], mm[M1], mm[M2], groups, center, scale, cfg["maxOrder"])
    poly = fit_polynomial(k, pb["cov"], pb["var_unc"], powers, center, scale, cfg["maxOrder"], cfg["orderSelection"],
                          cfg["ftestAlpha"])
    return SmoothCorrection("flat" if len(k) < 2 else "polynomial", poly=poly, **common)


def _truth_curve(truth: Any, rw: FineHist, lo: int, hi: int | None, x_lo: float, x_hi: float,
                 s_true: float) -> tuple[np.ndarray, np.ndarray]:
    """Injected f_true(HT, nJets)/s_true on HT_all in [x_lo, x_hi]: for one nJets value a line, for several
    the MC-weighted mixture over nJets at each fine bin's mean HT_all."""
    nj_values = np.arange(lo, (hi if hi is not None else rw.moments.shape[1] - 1))
    if len(nj_values) == 1:
        x = np.linspace(x_lo, x_hi, 200)
        return x, np.broadcast_to(truth(HT=x, nJets=np.full_like(x, lo)), x.shape) / s_true
    m = rw.moments[:, 1 + lo: (1 + hi if hi is not None else None), 1:-1]  # (moment, nj, fine)
    w = m[M0]
    edges = rw.ht_edges
    safe = np.where(w > 0, w, 1.0)
    xs = edges[:-1][None, :] + np.where(w > 0, m[M1] / safe, 0.5 * np.diff(edges)[None, :])
    njs = np.arange(lo, lo + w.shape[0])[:, None] * np.ones_like(xs)
    fx = np.broadcast_to(truth(HT=xs, nJets=njs), xs.shape)
    tot = w.sum(axis=0)
    keep = (tot > 0) & (edges[:-1] >= x_lo - 1e-9) & (edges[1:] <= x_hi + 1e-9)
    xm = (w * xs).sum(axis=0)[keep] / tot[keep]
    return xm, (w * fx).sum(axis=0)[keep] / tot[keep] / s_true


def _without_mc_stat(fh: FineHist) -> FineHist:
    """The same moments with Σw² = 0: a sample whose events the data were resampled from carries, conditionally
    on its events, no statistical noise relative to the data (its fluctuations are the data's)."""
    m = fh.moments.copy()
    m[MW2] = 0.0
    return FineHist(m, fh.ht_edges)


def resampled_from(entry: dict[str, Any], fileset: dict) -> frozenset[str]:
    """Datasets whose events the (pseudo-)data were resampled from (``ntuples.json`` data entry).

    ``resampled_from`` as written by ``ana generate agc --inject-ht``; a data entry with ``injected_ht`` but
    without it (filesets generated before that key existed) was resampled from every nominal MC sample.
    """
    if "resampled_from" in entry:
        return frozenset(entry["resampled_from"])
    if entry.get("injected_ht") is not None:
        return frozenset(d for d in fileset if d.endswith("__nominal") and not d.startswith("data__"))
    return frozenset()


def derive_variation(h: hist.Hist, norms: dict[str, float], fileset: dict, cfg: dict[str, Any], variation: str,
                     truth: str | None = None, shared: frozenset[str] = frozenset()) -> Derivation:
    """Run the procedure for one ttbar sample variation.

    Statistical model when the data were resampled from MC events (``shared``, from ``resampled_from``): data
    and those samples are not independent. Conditionally on the MC events, data* − (shared constant samples)
    fluctuates only by the data's Poisson noise, so the Σw² of shared samples is left out of Var(data*) and,
    when the reweighted sample itself is shared (nominal), of Var(MC): treating them as independent counts the
    MC noise that the data inherit as if it were extra (χ²/ndf → 1/(1+λ) with λ = xsec·lumi/N_MC, ~0.016 for
    the README's pseudo-data; k_i errors ~8× too large). An alternative sample is independent of the data, which
    carry the shared ttbar sample's noise: its Σw² is added to Var(data*) (with ``mcStatError``).

    Args:
        h, norms, fileset: ``fill_moments`` output; cfg: validated config; variation: ttbar sample variation.
        truth: the injected f_true(HT, nJets) expression (``--inject-ht``) when known, for the plots.
        shared: datasets the data were resampled from (``resampled_from``); empty for real data.

    Returns:
        The derivation; ``warnings`` lists every safety measure taken (flat fallback, clipping, oscillation,
        poor polynomial fit).

    Raises:
        AnalysisError: missing samples, no MC in a bin, non-positive totals.
    """
    tt, others = _samples_for(fileset, cfg, variation)
    data_ds = f"{cfg['dataProcess']}__nominal"
    data = fine_hist(h, norms, data_ds, "none")
    cond = lambda ds, fh: _without_mc_stat(fh) if ds in shared else fh  # noqa: E731 - see the docstring
    rw = None
    factors = {comp: norm_factor(cfg, comp, variation) for comp in COMPONENTS}
    for comp in cfg["reweightSample"]:
        part = cond(tt, fine_hist(h, norms, tt, comp, factors[comp]))
        rw = part if rw is None else rw + part
    other = fine_hist(h, norms, tt, "none", 0.0)
    for comp in cfg["constSample"]:
        if comp in COMPONENTS:
            other = other + cond(tt, fine_hist(h, norms, tt, comp, factors[comp]))
    for ds in others:
        other = other + cond(ds, fine_hist(h, norms, ds, "none"))
    data_noise = None  # the shared ttbar sample's noise, inherited by the data, for an independent alternative
    tt_nominal = f"{cfg['componentProcess']}__nominal"
    if tt_nominal in shared and tt != tt_nominal:
        data_noise = fine_hist(h, norms, tt_nominal, "none", 0.0)
        for comp in COMPONENTS:
            data_noise = data_noise + fine_hist(h, norms, tt_nominal, comp, norm_factor(cfg, comp, "nominal"))
    edges = data.ht_edges
    use_mc = cfg["mcStatError"]
    target = cfg["targetRelError"]

    per_bin = []
    for lo, hi in _njets_ranges(cfg):
        dm, om, mm = data.njets_slice(lo, hi), other.njets_slice(lo, hi), rw.njets_slice(lo, hi)
        dstar = dm[M0] - om[M0]
        var_dstar = dm[MW2] + (om[MW2] if use_mc else 0.0)
        noise = data_noise.njets_slice(lo, hi)[MW2] if data_noise is not None else np.zeros_like(dstar)
        if use_mc:
            var_dstar = var_dstar + noise
        label = f"nJets = {lo}" if hi == lo + 1 else (f"nJets ≥ {lo}" if hi is None else f"{lo} ≤ nJets < {hi}")
        if mm[MN].sum() == 0:
            raise AnalysisError(f"{tt}: no reweighted MC events with {label} in the derivation region")
        mc_var = mm[MW2] if use_mc else np.zeros_like(mm[MW2])
        groups = adaptive_groups(edges, dstar, mm[MN], cfg["minEvents"], cfg["minBinWidth"], cfg["minMCEntries"],
                                 target_rel_error=target, events_var=var_dstar, mc_sumw=mm[M0], mc_var=mc_var)
        bin_edges = np.array([edges[a] for a, _ in groups] + [edges[groups[-1][1]]])
        s0, s1, s2 = _bin_moments(edges, mm, groups)
        d_bin = np.array([dstar[a:b].sum() for a, b in groups])
        vd_bin = np.array([var_dstar[a:b].sum() for a, b in groups])
        vm_bin = np.array([mc_var[a:b].sum() for a, b in groups])
        per_bin.append(dict(label=label, njets=(lo, hi), groups=groups, edges=bin_edges, s=(s0, s1, s2), d=d_bin,
                            vd=vd_bin, vm=vm_bin, fine=dict(data=dm, other=om, mc=mm, dstar=dstar, var_dstar=var_dstar, data_noise=noise)))

    # k and covariance: one normalisation over all nJets bins (inclusive) or per bin
    blocks = [list(range(len(per_bin)))] if cfg["normalisation"] == "inclusive" else [[i] for i in range(len(per_bin))]
    norm = None
    block_docs = []
    for block in blocks:
        d = np.concatenate([per_bin[i]["d"] for i in block])
        vd = np.concatenate([per_bin[i]["vd"] for i in block])
        m = np.concatenate([per_bin[i]["s"][0] for i in block])
        vm = np.concatenate([per_bin[i]["vm"] for i in block])
        k, cov, var_unc, s, sd, sm = _k_covariance(d, vd, m, vm)
        start = 0
        for i in block:
            n = len(per_bin[i]["d"])
            per_bin[i].update(k=k[start:start + n], cov=cov[start:start + n, start:start + n],
                              var_unc=var_unc[start:start + n], norm=s)
            start += n
        norm = s if norm is None else norm
        block_docs.append({"njets_bins": [per_bin[i]["label"] for i in block], "data_star_events": float(sd),
                           "mc_events_before": float(sm), "factor": float(s)})
    for pb in per_bin:  # a single bin: the seed's minima alone, for the flat fallback's unresolved slope
        if len(pb["d"]) < 2:
            fine, s = pb["fine"], pb["norm"]
            mm = fine["mc"]
            mc_var = mm[MW2] if use_mc else np.zeros_like(mm[MW2])
            sub_groups = adaptive_groups(edges, fine["dstar"], mm[MN], cfg["minEvents"], cfg["minBinWidth"],
                                         cfg["minMCEntries"])
            d = np.array([fine["dstar"][a:b].sum() for a, b in sub_groups])
            vd = np.array([fine["var_dstar"][a:b].sum() for a, b in sub_groups])
            m = np.array([mm[M0, a:b].sum() for a, b in sub_groups])
            vm = np.array([mc_var[a:b].sum() for a, b in sub_groups])
            if len(sub_groups) >= 2 and np.all(m > 0) and np.all(vd > 0):
                ks = d / (s * m)
                pb["sub"] = {"groups": sub_groups, "k": ks, "var": vd / (s * m) ** 2 + ks * ks * vm / m**2}
    normalisation = {
        "definition": "the reweighted MC is scaled by factor = sum(data*) / sum(MC) over the populated HT_all range "
                      f"of the nJets bins listed ({cfg['normalisation']} normalisation), so f corrects the shape only",
        "mc": " + ".join(f"{c} of {tt} x NormFactor_{c} = {factors[c]:g}" for c in cfg["reweightSample"]),
        "data_star": f"{data_ds} - (" + " + ".join(
            [f"{c} of {tt} x {factors[c]:g}" for c in cfg["constSample"] if c in COMPONENTS] + others) + ")",
        "blocks": block_docs,
    }

    s_true = None
    if truth is not None:
        from fileset.expr import parse

        truth_fn = parse(truth, {"HT", "nJets"}, what="injected_ht")
        # MC-weighted mean of f_true over each normalisation block (the derivation recovers f_true / this mean)
        s_true = []
        for block in blocks:
            num = den = 0.0
            for i in block:
                lo, hi = per_bin[i]["njets"]
                mo = rw.moments[:, 1 + lo: (1 + hi if hi is not None else None), 1:-1]
                w = mo[M0]
                xs = edges[:-1][None, :] + np.where(w > 0, mo[M1] / np.where(w > 0, w, 1.0), 0.0)
                njs = np.arange(lo, lo + w.shape[0])[:, None] * np.ones_like(xs)
                num += float((w * np.broadcast_to(truth_fn(HT=xs, nJets=njs), xs.shape)).sum())
                den += float(w.sum())
            s_true += [num / den] * len(block)

    results, messages = [], []
    for idx, pb in enumerate(per_bin):
        empty = np.flatnonzero(~(pb["var_unc"] > 0))
        if empty.size:
            i = int(empty[0])
            raise AnalysisError(f"{variation} {pb['label']}: HT_all bin {pb['edges'][i]:g}–{pb['edges'][i + 1]:g} GeV "
                                "has no statistical uncertainty (no data events): raise minEvents or set targetRelError")
        fine = pb["fine"]
        mm = fine["mc"]
        fn = _smooth_function(pb, edges, cfg)
        msgs = []
        if len(pb["k"]) < 2:
            d, vd, m_, vm = pb["d"][0], pb["vd"][0], pb["s"][0][0], pb["vm"][0]
            rel = relative_error(d, vd, m_, vm)
            need = (f"targetRelError {target:g} (whole range: {rel:.2f}), " if target is not None else "") + \
                f"minEvents {cfg['minEvents']:g}, minMCEntries {cfg['minMCEntries']}, " \
                f"minBinWidth {cfg['minBinWidth']:g}"
            edge_sigma = float(fn.poly.band(np.array([fn.x_lo, fn.x_hi])).max())
            slope = ("" if "sub" not in pb else
                     f"; band widened by the slope {len(pb['sub']['k'])} sub-bins cannot resolve: ± {edge_sigma:.3f} "
                     "at the bin edges")
            neg = ("" if d > 0 else f"; data* = {d:.1f} ≤ 0: the constant samples alone exceed the data here, "
                   f"k is unphysical (nominal clipped to {cfg['bounds'][0]:g}, band kept from σ_k)")
            msgs.append(f"{variation} {pb['label']}: too few events for two HT_all bins reaching {need}; "
                        f"flat correction {pb['k'][0]:.3f} ± {np.sqrt(pb['cov'][0, 0]):.3f}{slope}{neg}")
        if fn.poly is not None and fn.poly.ndf > 0:
            pval = chi2_gof(fn.poly.chi2, fn.poly.ndf).p_value
            if pval < 0.01:
                msgs.append(f"{variation} {pb['label']}: order-{fn.poly.order} polynomial describes the k_i poorly "
                            f"(chi2/ndf = {fn.poly.chi2:.1f}/{fn.poly.ndf}, p = {pval:.1e}); band inflated by "
                            f"sqrt(chi2/ndf) = {np.sqrt(fn.poly.chi2 / fn.poly.ndf):.2f}")
        osc = fn.oscillation(pb["k"], np.sqrt(np.diag(pb["cov"])))
        if osc:
            worst = max(osc, key=lambda o: max(o["envelope_lo"] - o["f_min"], o["f_max"] - o["envelope_hi"]))
            msgs.append(f"{variation} {pb['label']}: the exact-integral function oscillates: it leaves the envelope "
                        f"of the neighbouring k_i ± 2σ in {len(osc)} of {len(pb['k'])} bins "
                        f"(worst {worst['ht_lo_gev']:g}"
                        f"–{worst['ht_hi_gev']:g} GeV: f in [{worst['f_min']:.2f}, {worst['f_max']:.2f}], envelope "
                        f"[{worst['envelope_lo']:.2f}, {worst['envelope_hi']:.2f}]); consider method: polynomial")
        clip = fn.clipping()
        for c in clip:
            where = (f"{c['ht_lo_gev']:.0f}–{c['ht_hi_gev']:.0f} GeV" if "ht_lo_gev" in c else c["where"])
            kept = ("; up/down kept at the clipped nominal ± σ_f (the band is not collapsed onto the bound)"
                    if c["systematic"] == "nominal" else "")
            msgs.append(f"{variation} {pb['label']}: {c['systematic']} clipped to bounds "
                        f"[{fn.bounds[0]:g}, {fn.bounds[1]:g}] at HT_all {where} (unclipped range "
                        f"[{c['raw_min']:.2f}, {c['raw_max']:.2f}]){kept}")
        centers = np.where(mm[M0] > 0, edges[:-1] + mm[M1] / np.where(mm[M0] > 0, mm[M0], 1.0),
                           0.5 * (edges[:-1] + edges[1:]))
        kde = kde_ratio(centers, fine["dstar"], fine["var_dstar"], mm[M0], mm[MW2] if use_mc else np.zeros_like(mm[M0]),
                        pb["norm"], mm[MN], cfg["kdeBandwidth"])
        res = NJetsDerivation(pb["label"], pb["njets"], pb["edges"], pb["k"], pb["cov"], fn, kde,
                              dict(fine, norm=pb["norm"], centers=centers, fine_edges=edges), messages=msgs,
                              clipping=clip, oscillation=osc)
        if s_true is not None:
            res.truth = _truth_curve(truth_fn, rw, pb["njets"][0], pb["njets"][1], float(pb["edges"][0]),
                                     float(pb["edges"][-1]), s_true[idx])
        # an alternative sample is statistically independent of the data: its MC Σw² (and the noise the data
        # inherit from the sample they were resampled from) always enter the closure variance (``mcStatError:
        # false`` is only right for the sample the pseudo-data were resampled from)
        res.closure = closure_numbers(res, edges, cfg["closureBinWidth"], use_mc or variation != "nominal",
                                      other_var=None if use_mc or variation == "nominal"
                                      else fine["other"][MW2] + fine["data_noise"])
        results.append(res)
        messages += msgs
    return Derivation(variation, float(norm if cfg["normalisation"] == "inclusive" else np.nan), results,
                      normalisation, messages)


def reweighted_fine(res: NJetsDerivation, fine_edges: np.ndarray) -> np.ndarray:
    """Σ w f(x) per fine bin of the reweighted MC with the shipped nominal f (``SmoothCorrection.weighted_sum``)."""
    mm = res.fine["mc"]
    return res.function.weighted_sum(fine_edges, mm[M0], mm[M1], mm[M2])


def closure_numbers(res: NJetsDerivation, fine_edges: np.ndarray, width: float, use_mc: bool,
                    other_var: np.ndarray | None = None) -> dict[str, float]:
    """χ² of data* vs normalised reweighted MC (before, smooth f, KDE) in fixed-width bins: what the method corrects.

    The compared quantity is the one the reweighting claims to fix: data* = data − constant samples (for an
    alternative: its own tt+c/tt+light, so their shape differences from the data are part of data* and get
    absorbed by f) against s·f·(reweighted tt+≥1b). Variance: data Poisson + (``use_mc``) the reweighted MC Σw²
    (+ ``other_var``, the constant samples' Σw² per fine bin, when it is not already in ``var_dstar``); in a
    closure bin without reweighted-MC entries the MC variance is one entry's mean squared weight.
    ``mc_stat_fraction`` is the MC share of that variance: near 1 the closure is limited by the MC sample's
    statistics, not by the data.
    """
    step = max(1, int(round(width / (fine_edges[1] - fine_edges[0]))))
    mm, s = res.fine["mc"], res.fine["norm"]
    with np.errstate(all="ignore"):
        kde = np.where(mm[M0] > 0, res.kde(res.fine["centers"]) * mm[M0], 0.0)
    pred = {"before": s * mm[M0], "smooth": s * reweighted_fine(res, fine_edges), "kde": s * kde}
    n = len(mm[M0]) // step * step + step
    pad = lambda a: np.concatenate([a, np.zeros(n - len(a))]).reshape(-1, step).sum(axis=1)  # noqa: E731
    var_data = pad(res.fine["data"][MW2])
    extra = pad(other_var) if other_var is not None else 0.0
    # MC Σw² in a bin without MC entries is 0, not the ~1-entry uncertainty of predicting nothing there: floor
    # it at the mean squared weight of one entry (else one data-populated, MC-empty bin dominates the χ²)
    w2_entry = s * s * mm[MW2].sum() / max(mm[MN].sum(), 1.0)
    mc_var = np.where(pad(mm[MN]) > 0, s * s * pad(mm[MW2]), w2_entry)
    d, var = pad(res.fine["dstar"]), pad(res.fine["var_dstar"]) + extra + (mc_var if use_mc else 0.0)
    lows = fine_edges[0] + np.arange(len(d)) * step * (fine_edges[1] - fine_edges[0])
    inside = (lows >= res.edges[0] - 1e-9) & (lows + step * (fine_edges[1] - fine_edges[0]) <= res.edges[-1] + 1e-9)
    used = (var > 0) & inside
    out = {"closure_bin_width_gev": float(step * (fine_edges[1] - fine_edges[0])), "ndf": int(used.sum()),
           "mc_stat_fraction": float(1.0 - var_data[used].sum() / var[used].sum()) if used.any() else 0.0}
    for name, p in pred.items():
        gof = histogram_chi2(d, pad(p), var, mask=used, method=f"closure {name}: data* vs s*f*MC")
        out[f"chi2_{name}"] = gof.chi2
        out[f"p_{name}"] = gof.p_value if gof.ndf else None
    return out


# ---- top level ------------------------------------------------------------------------------------------------
def derive(fileset_json: str | Path | None, out_dir: str | Path, config: str | Path | dict | None = None, *,
           executor: str = "futures", workers: int | None = None, samples_config: str | Path | dict | None = None,
           plots: bool = True, progress: bool = False) -> dict[str, Any]:
    """``ana reweight derive``: process, derive (nominal + alternatives), write correction JSON, summary and plots.

    Returns:
        The JSON summary (also written as ``derivation.json``) plus ``derivations`` (the objects) and ``plots``.
        ``warnings`` lists every safety measure taken; each is also issued as a ``ReweightingWarning``.

    Raises:
        AnalysisError: bad config or inputs (one line naming the culprit).
    """
    cfg = load_config(None, config) if isinstance(config, dict) else load_config(config)
    if fileset_json is None:
        if not cfg["basePath"]:
            raise AnalysisError("give --fileset or basePath (folder with ntuples.json) in the config")
        fileset_json = Path(cfg["basePath"]) / "ntuples.json"
    alternatives = check_sample_names(cfg, load_ntuples_json(fileset_json), fileset=str(fileset_json),
                                      source=str(config) if isinstance(config, (str, Path)) else "reweight config")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    h, norms, fileset = fill_moments(fileset_json, cfg, executor=executor, workers=workers,
                                     samples_config=samples_config, progress=progress)
    injected = load_ntuples_json(fileset_json)[cfg["dataProcess"]]["nominal"].get("injected_ht")
    variations = ["nominal"] + alternatives
    # the pseudo-data were made from the nominal MC: the injected truth is the nominal derivation's target
    shared = resampled_from(load_ntuples_json(fileset_json)[cfg["dataProcess"]]["nominal"], fileset)
    derivations = {v: derive_variation(h, norms, fileset, cfg, v, truth=injected if v == "nominal" else None,
                                       shared=shared)
                   for v in variations}
    settings = {"jet_pt_gev": cfg["jetPt"], "lepton_pt_gev": cfg["leptonPt"], "btag_cut": cfg["btagCut"],
                "selection": cfg["selection"], "reweighted": cfg["reweightSample"],
                "reweighted_hf_classes": _reweighted_classes(cfg), "process": cfg["componentProcess"]}
    corrections = []
    for v, der in derivations.items():
        name = "ht_reweighting" if v == "nominal" else f"ht_reweighting_{v}"
        corrections.append(build_correction(name, cfg["nJetsBins"], [b.function for b in der.bins],
                                            {"settings": settings, "variation": v, "mc_to_data_norm": der.norm}))
    corr_path = write_correction_set(corrections, out / cfg["outputFile"])
    all_warnings = [w for d in derivations.values() for w in d.warnings]
    summary = {"correction_file": str(corr_path), "settings": settings, "injected_ht": injected,
               "method": method_description(cfg), "closure_definition": CLOSURE_DEFINITION,
               "warnings": all_warnings, "variations": {v: summarise(d) for v, d in derivations.items()}}
    (out / "derivation.json").write_text(json.dumps(summary, indent=2) + "\n")
    for w in all_warnings:
        warnings.warn(w, ReweightingWarning, stacklevel=2)
    if plots:
        from analysis.reweighting.plots import plot_all

        summary["plots"] = [str(p) for p in plot_all(derivations, out)]
    summary["derivations"] = derivations
    return summary


def method_description(cfg: dict[str, Any]) -> dict[str, Any]:
    """The smoothing, binning and safety settings in words and numbers (derivation.json ``method``)."""
    if cfg["method"] == "polynomial":
        sel = {"aic": "AIC (single order with the smallest chi2 + 2(d+1))",
               "aic_average": "Akaike-weighted average over the orders, w_d ~ exp(-AIC_d/2), AIC_d = chi2_d + 2(d+1); "
                              "band includes the spread between orders: sigma^2 = sum_d w_d [sigma_d^2 + (f_d - f)^2]",
               "ftest": f"F-test (raise d while the nested test of d+1 against d, delta chi2 ~ chi2(1) "
                        f"with known errors, has p < {cfg['ftestAlpha']:g})"}[cfg["orderSelection"]]
        smooth = (f"weighted least-squares polynomials of order d in 0..min({cfg['maxOrder']}, n_bins-2) fitted to "
                  f"the bin averages k_i; {sel}; band = ±1 sigma from the fit covariance (full covariance of the k_i "
                  "propagated, scaled by chi2/ndf when > 1)")
    else:
        smooth = ("exact-integral C1 piecewise quadratic (seed): keeps every bin integral, band from the k_i "
                  "covariance; warned about when it leaves the neighbouring k_i ± 2 sigma envelope")
    return {"smoothing": cfg["method"], "description": smooth, "order_selection": cfg["orderSelection"],
            "max_order": cfg["maxOrder"],
            "binning": f"adaptive: >= {cfg['minEvents']:g} data* events, >= {cfg['minMCEntries']} MC entries, >= "
                       f"{cfg['minBinWidth']:g} GeV" + (f", relative error of k_i <= {cfg['targetRelError']:g}"
                                                        if cfg["targetRelError"] is not None else "")
                       + "; fewer than two bins -> flat correction k, band sigma_k widened by the slope a line "
                         "through the sub-bins of the seed's minima cannot resolve: "
                         "sigma^2 = sigma_k^2 + (b^2 + sigma_b^2) t^2",
            "populated_range": "from the MC-weighted mean HT_all of the first adaptive bin to that of the last",
            "out_of_range": cfg["outOfRange"], "bounds": list(cfg["bounds"]),
            "njets_outside_bins": f"nJets below {cfg['nJetsBins'][0]} use the first bin's function; the last bin "
                                  f"(nJets >= {cfg['nJetsBins'][-1]}) is inclusive"}


def _reweighted_classes(cfg: dict[str, Any]) -> list[int]:
    """hf_class values selected by the reweighted components' selections (for applying back)."""
    from fileset.expr import parse
    from processors.ht_reweighting import EVENT_VARIABLES

    classes = []
    for comp in cfg["reweightSample"]:
        expr = parse(cfg[f"{comp}_selection"], EVENT_VARIABLES, allow_logic=True)
        for c in range(-1, 4):
            dummy = {n: np.zeros(1) for n in EVENT_VARIABLES}
            dummy["hfClass"] = np.array([c])
            if bool(np.asarray(expr(**dummy)).ravel()[0]):
                classes.append(c)
    return sorted(set(classes))


def summarise(der: Derivation) -> dict[str, Any]:
    """JSON-ready numbers of one derivation."""
    out: dict[str, Any] = {"mc_to_data_norm": der.norm, "normalisation": der.normalisation,
                           "warnings": der.warnings, "njets_bins": []}
    for b in der.bins:
        c = b.closure
        out["njets_bins"].append({
            "label": b.label, "njets_min": b.njets[0], "njets_max_exclusive": b.njets[1],
            "edges_gev": b.edges.tolist(), "k": b.k.tolist(), "k_err": b.k_err.tolist(),
            "function": b.function.describe(), "clipping": b.clipping, "oscillation": b.oscillation,
            "kde_bandwidth_gev": b.kde.bandwidth, "closure": c,
            "closure_chi2_ndf": {k: f"{c[f'chi2_{k}']:.1f}/{c['ndf']}" for k in ("before", "smooth", "kde")},
        })
    return out


def apply_correction(fileset_json: str | Path, correction_path: str | Path, out_dir: str | Path | None = None, *,
                     executor: str = "futures", workers: int | None = None, chunksize: int = 100_000,
                     samples_config: str | Path | dict | None = None, use_alternative: bool = True,
                     progress: bool = False) -> "RunResult":
    """``ana reweight apply``: TtbarAnalysis with the correction applied (histograms gain ht_reweight_up/down)."""
    from analysis.agc.run import RunResult, write_outputs
    from analysis.execution.runner import run_processor, schema_for, verify_event_counts
    from processors.ht_reweighting import ReweightedTtbarAnalysis, correction_metadata

    meta = correction_metadata(correction_path) if Path(correction_path).is_file() else {}
    classes = tuple(meta.get("reweighted_hf_classes", (2, 3)))
    corr = CorrectionWeights.from_file(correction_path, processes=(meta.get("process", "ttbar"),), classes=classes,
                                       use_alternative=use_alternative)
    proc = ReweightedTtbarAnalysis(corr, lepton_pt=meta.get("lepton_pt_gev"))
    cuts = proc.cuts
    if "jet_pt_gev" in meta and abs(meta["jet_pt_gev"] - cuts.jet_pt) > 1e-9:
        raise AnalysisError(f"{correction_path}: derived with jet pT > {meta['jet_pt_gev']} GeV but TtbarAnalysis "
                            f"counts jets above {cuts.jet_pt} GeV")
    samples = samples_config if isinstance(samples_config, dict) else load_samples_config(samples_config)
    fileset = build_fileset(fileset_json, -1, samples)
    output, metrics = run_processor(fileset, proc, executor=executor, workers=workers, chunksize=chunksize,
                                    schema=schema_for(fileset), progress=progress)
    verify_event_counts(output["nevents"], fileset)
    filled = {tuple(k.split("/", 1)) for k in output["norms"]}
    result = RunResult(output["hist"], output["nevents"], output["cutflow"], metrics, fileset, filled)
    if out_dir is not None:
        write_outputs(result, out_dir)
    return result


def region_closure(fileset_json: str | Path, correction_path: str | Path | None, config: str | Path | dict | None = None,
                   *, bin_width: float = 50.0, executor: str = "iterative", samples_config: str | Path | dict | None = None,
                   min_expected: float = 10.0, mc_stat: bool = True) -> dict[str, Any]:
    """Data vs MC in the derivation region with the correction applied per event (correctionlib), nominal samples.

    MC = s·(reweighted × f) + constant samples, s the stored MC→data* normalisation (1 without a correction).
    χ² per nJets bin and in total, with data (Poisson) and MC (Σw²) variances, in fixed-width HT bins
    with at least ``min_expected`` predicted events. ``mc_stat=False`` uses the data variance only (right when
    the data were resampled from these very MC events, as ``--inject-ht`` does). Each nJets entry lists the
    used bins' lower edges (``ht_lo_gev``), data, mc and variance, so that a caller can restrict the χ² to the
    populated range: outside it f is held (``outOfRange``), an extrapolation whose bias the χ² does not include.
    """
    cfg = load_config(None, config) if isinstance(config, dict) or config is None else load_config(config)
    check_sample_names(cfg, load_ntuples_json(fileset_json), fileset=str(fileset_json),
                       source=str(config) if isinstance(config, (str, Path)) else "reweight config")
    corr, s = None, 1.0
    if correction_path is not None:
        meta_doc = json.loads(Path(correction_path).read_text())
        desc = next(json.loads(c["description"]) for c in meta_doc["corrections"] if c["name"] == "ht_reweighting")
        s = float(desc["mc_to_data_norm"])
        corr = CorrectionWeights.from_file(correction_path, processes=(cfg["componentProcess"],),
                                           classes=tuple(desc["settings"]["reweighted_hf_classes"]), use_alternative=False)
    h, norms, fileset = fill_moments(fileset_json, cfg, executor=executor, samples_config=samples_config, correction=corr)
    tt, others = _samples_for(fileset, cfg, "nominal")
    data = fine_hist(h, norms, f"{cfg['dataProcess']}__nominal", "none")
    mc = None
    for comp in cfg["reweightSample"]:
        part = fine_hist(h, norms, tt, comp, s * norm_factor(cfg, comp, "nominal"))
        mc = part if mc is None else mc + part
    for comp in cfg["constSample"]:
        if comp in COMPONENTS:
            mc = mc + fine_hist(h, norms, tt, comp, norm_factor(cfg, comp, "nominal"))
    for ds in others:
        mc = mc + fine_hist(h, norms, ds, "none")
    step = max(1, int(round(bin_width / cfg["htBinWidth"])))
    out: dict[str, Any] = {"njets_bins": [], "chi2": 0.0, "ndf": 0}
    for lo, hi in _njets_ranges(cfg):
        d, m = data.njets_slice(lo, hi), mc.njets_slice(lo, hi)
        n = d.shape[1] // step * step
        rb = lambda a: a[:n].reshape(-1, step).sum(axis=1)  # noqa: E731
        dd, mv, var = rb(d[M0]), rb(m[M0]), rb(d[MW2]) + (rb(m[MW2]) if mc_stat else 0.0)
        used = mv >= min_expected
        try:
            chi2 = histogram_chi2(dd, mv, var, mask=used).chi2
        except StatsError as err:
            raise AnalysisError(f"region closure, nJets {lo}{'+' if hi is None else f'-{hi}'}: {err}") from None
        lows = np.arange(len(dd)) * step * cfg["htBinWidth"]
        out["njets_bins"].append({"njets": [lo, hi], "chi2": chi2, "ndf": int(used.sum()),
                                  "ht_lo_gev": lows[used].tolist(), "bin_width_gev": step * cfg["htBinWidth"],
                                  "data": dd[used].tolist(), "mc": mv[used].tolist(), "var": var[used].tolist()})
        out["chi2"] += chi2
        out["ndf"] += int(used.sum())
    out["p_value"] = chi2_gof(out["chi2"], out["ndf"], "closure: data vs MC").p_value
    return out
