"""The automated X→γγ search: config → selection → signal model → background fit → significance → limits.

``run_search(config, out_dir, unblind=False)`` writes ``results.json`` (the issue's exact keys plus a compact
``fit_quality`` summary; returned as a :class:`SearchResult`), ``details.json`` (everything else: fits, checks, expected significances, toy validation) and the plots.
While blinded, data with m_γγ inside the blind window (search range widened by ``blind_margin_sigma`` signal
widths, snapped outward to bin edges) are dropped by the processor before any histogram is filled.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from analysis.console import staged
from analysis.errors import AnalysisError
from analysis.resonance import likelihood as lk
from analysis.resonance import limits as lim
from analysis.resonance.report import write_search_report
from analysis.resonance.selection import CutSelection, Sample, optimise_cuts, train_classifier
from analysis.resonance.search_config import SearchConfig, load_config
from analysis.resonance.signal_model import SignalModel, build_signal_model
from processors.diphoton import DiphotonProcessor, process_events
from fileset.normalisation import mc_normalisation
from schemas.diphoton import load_events

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class SearchResult(Mapping[str, Any]):
    """The search's answer (the keys of results.json). Also a read-only mapping (``res["limits"]``), as before.

    Attributes:
        blinded: data inside the blind window were not read; selection: the selection report (method, cuts or
            classifier, gain, ±2σ windows).
        best_mass_gev, local_significance, global_significance: the most significant mass [GeV] and its local and
            look-elsewhere-corrected significance [σ] (None while blinded); evidence, discovery: local Z ≥ 3, ≥ 5.
        measurement: mass [GeV] and cross-section [pb] with uncertainties when evidence, else None.
        limits: CLs 95 % upper limits on σ×B [pb] per mass (``observed_pb`` None while blinded).
        fit_quality: ``{"ok": bool, "warnings": [...]}`` over every fit (the full record is in details.json).
    """

    blinded: bool
    selection: dict[str, Any]
    best_mass_gev: float | None
    local_significance: float | None
    global_significance: float | None
    evidence: bool
    discovery: bool
    measurement: dict[str, float] | None
    limits: dict[str, Any]
    fit_quality: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The results.json document (same keys, same order)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def __getitem__(self, key: str) -> Any:
        if key not in self.__dataclass_fields__:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.__dataclass_fields__)

    def __len__(self) -> int:
        return len(self.__dataclass_fields__)


def _sample(res: dict, weight: float) -> Sample:
    arr = res["arrays"]
    feats = {k: v for k, v in arr.items() if k not in ("mass", "selected")}
    return Sample(feats, arr["mass"], np.full(len(arr["mass"]), weight))


def blind_window(model: SignalModel, cfg: SearchConfig, edges: np.ndarray) -> tuple[float, float]:
    """Search range widened by k signal widths, snapped outward to bin edges."""
    lo = cfg.mass_range[0] - cfg.blind_margin_sigma * model.width(cfg.mass_range[0])
    hi = cfg.mass_range[1] + cfg.blind_margin_sigma * model.width(cfg.mass_range[1])
    lo_e = edges[max(np.searchsorted(edges, lo, side="right") - 1, 0)]
    hi_e = edges[min(np.searchsorted(edges, hi, side="left"), len(edges) - 1)]
    if lo_e <= edges[0] or hi_e >= edges[-1]:
        raise AnalysisError(f"{cfg.source}: fit_range_gev leaves no sideband around the blind window [{lo:.0f}, {hi:.0f}] GeV")
    return float(lo_e), float(hi_e)


def _make_profiler(cfg: SearchConfig, edges: np.ndarray, counts: np.ndarray, family: str, blind: tuple[float, float] | None,
                   theta0: np.ndarray) -> tuple[lk.Profiler, dict]:
    """Parametric model (default) or the discrete-profiling envelope of analysis.resonance.envelope."""
    if cfg.model == "parametric":
        spec = lk.search_family(family, cfg.sqrt_s_tev * 1000.0)
        return lk.ParametricModel(edges, spec, None, theta0=theta0, name=family), {"model": "parametric", "function": family}
    try:
        from analysis.resonance.envelope import build_envelope
    except ImportError as err:
        raise AnalysisError(f"{cfg.source}: background/model: envelope model not available ({err})") from None
    env = build_envelope(edges, counts, families=cfg.families, blind=blind, seed=cfg.seed)
    return env, {"model": "envelope", **env.to_dict()}


def run_search(config: str | Path | SearchConfig, out_dir: str | Path, unblind: bool = False,
               make_plots: bool = True) -> SearchResult:
    """Run the whole search; write results.json, details.json, plots and report.html into ``out_dir``.

    Args:
        config: the search YAML (paths relative to it) or a validated :class:`SearchConfig`.
        out_dir: output directory (created).
        unblind: read data inside the blind window (default: blind).
        make_plots: draw the plots.

    Returns:
        The :class:`SearchResult`; ``to_dict()`` is the content of results.json.

    Raises:
        ConfigError: invalid config (one line naming the file and key); AnalysisError: inputs unusable for the
            search (too few bins, no sideband, missing selection variables, empty sidebands).
    """
    t0 = time.perf_counter()
    cfg = config if isinstance(config, SearchConfig) else load_config(config)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    edges = np.arange(cfg.fit_range[0], cfg.fit_range[1] + 0.5 * cfg.bin_width, cfg.bin_width)
    if len(edges) < 10:
        raise AnalysisError(f"{cfg.source}: fit range / bin width give only {len(edges) - 1} bins")
    details: dict[str, Any] = {"config": str(cfg.source), "luminosity_pb": cfg.lumi_pb,
                               "cross_section_convention": "pb, before the filter efficiency (as signal.cross_section_pb)"}

    # --- simulation through the processor (no selection yet: arrays for the optimisation)
    sig_events = {m: load_events(p) for m, p in cfg.signal_samples.items()}
    bkg_events = load_events(cfg.bkg_file)
    w_sig = {m: mc_normalisation(cfg.signal_xsec_pb * cfg.signal_filter_eff, cfg.lumi_pb, len(ev), sample=f"signal {m}")
             for m, ev in sig_events.items()}
    w_bkg = mc_normalisation(cfg.bkg_xsec_pb * cfg.bkg_filter_eff, cfg.lumi_pb, len(bkg_events), sample="background")
    sig_raw = {m: process_events(ev, DiphotonProcessor(edges, weight=w_sig[m])) for m, ev in sig_events.items()}
    bkg_raw = process_events(bkg_events, DiphotonProcessor(edges, weight=w_bkg))
    sig_s = {m: _sample(r, w_sig[m]) for m, r in sig_raw.items()}
    bkg_s = _sample(bkg_raw, w_bkg)

    # --- selection optimised on simulation (±2σ windows from the raw signal peaks)
    windows = {}
    for m, s in sig_s.items():
        med = float(np.median(s.mass))
        width = float(0.5 * (np.percentile(s.mass, 84) - np.percentile(s.mass, 16)))
        windows[m] = (med - 2 * width, med + 2 * width)
    variables = tuple(v for v in cfg.selection_variables if v in bkg_s.features)
    missing = [v for v in cfg.selection_variables if v not in bkg_s.features or any(v not in s.features for s in sig_s.values())]
    if missing:
        raise AnalysisError(f"{cfg.source}: selection/variables {missing} not present in every simulation file")
    if cfg.selection_method == "cuts":
        selection, sel_report = optimise_cuts(sig_s, bkg_s, windows, variables)
    elif cfg.selection_method == "classifier":
        selection, sel_report = train_classifier(sig_s, bkg_s, windows, variables, seed=cfg.seed)
    else:
        selection, sel_report = CutSelection({}), {"method": "none"}
    sel_report["windows_gev"] = {f"{m:g}": [float(a), float(b)] for m, (a, b) in windows.items()}

    # --- signal model on selected simulation
    sig_sel = {m: {"mass": s.mass[selection(s.features)], "n_gen": len(sig_events[m])} for m, s in sig_s.items()}
    smodel, sig_fits = build_signal_model(sig_sel, cfg.lumi_pb, cfg.signal_filter_eff)
    details["signal_fits"] = sig_fits

    # --- background function chosen and checked on simulation (unweighted counts, uniform weights)
    bkg_hist = process_events(bkg_events, DiphotonProcessor(edges, weight=1.0, selection=selection, keep_arrays=False))["hist"]
    bkg_counts_sim = bkg_hist.values()
    lk.require_positive(bkg_counts_sim, str(cfg.bkg_file))
    sqrt_s_gev = cfg.sqrt_s_tev * 1000.0  # the dijet functions' z = m/√s uses the data's √s (config sqrt_s_tev)
    family, fam_report = (lk.choose_family(edges, bkg_counts_sim, sqrt_s_gev=sqrt_s_gev) if cfg.function is None
                          else (cfg.function, []))
    sim_model = lk.ParametricModel(edges, lk.search_family(family, sqrt_s_gev), name=family)
    spurious = []
    for m in cfg.signal_samples:
        tmpl = smodel.template(m, edges) / w_bkg  # signal in simulated-event units: μ stays in pb
        mu, err, _ = sim_model.fit_mu(bkg_counts_sim, tmpl, (-np.inf, np.inf))
        spurious.append({"mass_gev": m, "mu_pb": mu, "mu_err_pb": err, "mu_over_err": mu / err if err > 0 else 0.0})
    details["background_choice"] = {"chosen": family, "candidates": fam_report, "spurious_signal_on_simulation": spurious}

    # --- data (window never read while blinded)
    blind = None if unblind else blind_window(smodel, cfg, edges)
    data_events = load_events(cfg.data_file)
    data_res = process_events(data_events, DiphotonProcessor(edges, weight=1.0, selection=selection, blind=blind, keep_arrays=False))
    del data_events
    counts = data_res["hist"].values().astype(float)
    centers = 0.5 * (edges[1:] + edges[:-1])
    side = np.ones(len(centers), bool) if blind is None else ~((centers > blind[0]) & (centers < blind[1]))
    lk.require_positive(counts[side], str(cfg.data_file))
    bfit_model = lk.ParametricModel(edges, lk.search_family(family, sqrt_s_gev), side, name=family)
    bfit = bfit_model.fit(counts)
    b_exp = bfit_model.background(bfit.theta)
    dev, ndof, pgof = lk.goodness_of_fit(counts, b_exp, side, bfit_model.npar)
    details["background_fit"] = {"function": family, "theta": bfit.theta.tolist(), "valid": bfit.valid,
                                 "theta_names": ["log_norm", *bfit_model.family.param_names],
                                 "fit_quality": bfit.quality.to_dict(),
                                 "sideband_only": blind is not None, "deviance": dev, "ndof": ndof, "pvalue": pgof,
                                 "blind_window_gev": None if blind is None else list(blind),
                                 "data_events_selected_fit_bins": float(counts[side].sum())}
    profiler, prof_info = _make_profiler(cfg, edges, counts, family, blind, bfit.theta)
    if cfg.model == "envelope":
        from analysis.resonance.families import make_grid  # noqa: F401  (envelope present)
        b_exp = profiler.expected(profiler.best, profiler.full_grid)
    details["background_model"] = prof_info

    # --- expected results (Asimov = background-only fit extrapolated over the full range)
    step = cfg.scan_step
    grid = np.arange(cfg.mass_range[0], cfg.mass_range[1] + 0.5 * step, step)
    templates = np.array([smodel.template(m, edges) for m in grid])
    bounds = lk.mu_bounds_for(b_exp, templates, np.ones(len(centers), bool))
    exp_z, sig_a, bands = [], [], []
    for t, m in zip(templates, grid):
        sa = lim.sigma_asimov(profiler, b_exp, t)
        sig_a.append(sa)
        bands.append(lim.expected_limits(sa))
        nll = profiler.profile_nll(b_exp + cfg.signal_xsec_pb * t, t, np.array([0.0, cfg.signal_xsec_pb]))
        exp_z.append(float(np.sqrt(max(nll[0] - nll[1], 0.0))))
    details["expected"] = {"mass_gev": grid.tolist(), "z_at_nominal_xsec": exp_z, "sigma_mu_asimov_pb": sig_a,
                           "nominal_cross_section_pb": cfg.signal_xsec_pb}
    limits = {"mass_gev": grid.tolist(), "observed_pb": None,
              "expected_pb": [b[0] for b in bands],
              "expected_1sigma_pb": [[b[-1], b[1]] for b in bands],
              "expected_2sigma_pb": [[b[-2], b[2]] for b in bands]}

    # --- toy validation of the asymptotic CLs at the middle of the range
    if cfg.limit_validation_toys > 0:
        i = len(grid) // 2
        details["limit_toy_validation"] = {"mass_gev": float(grid[i]), **staged(
            f"CLs toy validation ({cfg.limit_validation_toys} toys)", lim.toy_cls, profiler, b_exp, templates[i], bands[i][0], sig_a[i], tuple(bounds[i]), cfg.limit_validation_toys, cfg.seed + 1)}

    results: dict[str, Any] = {
        "blinded": blind is not None, "selection": sel_report, "best_mass_gev": None,
        "local_significance": None, "global_significance": None, "evidence": False, "discovery": False,
        "measurement": None, "limits": limits,
    }
    scan = None
    meas = None
    if blind is None:
        scan = staged("Local significance scan", lk.q0_scan, profiler, counts, templates, bounds)
        ibest = int(np.argmax(scan["z_local"]))
        z_loc = float(scan["z_local"][ibest])
        toys = staged(f"Look-elsewhere toys ({cfg.global_toys})", lk.toy_upcrossings, profiler, b_exp, templates, bounds,
                      cfg.global_toys, cfg.seed + 2) if cfg.global_toys else None
        n_up = toys["mean_upcrossings"] if toys else float((grid[-1] - grid[0]) / (2 * smodel.width(float(np.mean(grid)))))
        p_glob, z_glob = lk.global_significance(z_loc, n_up)
        details["observed_scan"] = {"mass_gev": grid.tolist(), "z_local": scan["z_local"].tolist(),
                                    "p_local": scan["p_local"].tolist(), "mu_hat_pb": scan["mu_hat"].tolist(),
                                    "mu_err_pb": scan["mu_err"].tolist()}
        details["global"] = {"method": "Gross-Vitells upcrossings" + (" from background-only toys" if toys else " (analytic estimate)"),
                             "mean_upcrossings_at_z0": n_up, "z0": 1.0, "p_global": p_glob,
                             "p_local": float(scan["p_local"][ibest]), "toys": toys,
                             "toy_fraction_zmax_at_least_observed": (float(np.mean(np.array(toys["z_max"]) >= z_loc))
                                                                     if toys else None)}
        results.update(best_mass_gev=float(grid[ibest]), local_significance=z_loc, global_significance=z_glob,
                       evidence=z_loc >= 3.0, discovery=z_loc >= 5.0)
        if z_loc >= 3.0:
            meas = lk.measure_mass(profiler, counts, lambda m: smodel.template(m, edges), float(grid[ibest]),
                                   smodel.width(float(grid[ibest])), cfg.mass_range, float(bounds[ibest][1]))
            results["measurement"] = {k: float(meas[k]) for k in ("mass_gev", "mass_err_gev", "cross_section_pb", "cross_section_err_pb")}
        obs = staged("Observed CLs limits", lambda: [lim.observed_limit(profiler, counts, t, sa, tuple(bd))
                                                     for t, sa, bd in zip(templates, sig_a, bounds)])
        limits["observed_pb"] = [o["limit"] for o in obs]

    details["fit_quality"], fit_warnings = _fit_quality(bfit, sim_model, profiler)
    results["fit_quality"] = {"ok": details["fit_quality"]["ok"], "warnings": fit_warnings}
    (out / "results.json").write_text(json.dumps(results, indent=2, default=_json_default))
    (out / "details.json").write_text(json.dumps(details, indent=2, default=_json_default))
    if make_plots:
        from analysis.resonance import plots

        staged("Plots", plots.make_all, out, cfg=cfg, edges=edges, counts=counts, side=side, blind=blind, b_exp=b_exp,
                       sig_s=sig_s, bkg_s=bkg_s, selection=selection, sel_report=sel_report, smodel=smodel,
                       sig_fits=sig_fits, sig_sel=sig_sel, grid=grid, templates=templates, expected_z=exp_z,
                       scan=scan, limits=limits, results=results, meas=meas, profiler=profiler, bounds=bounds)
    write_search_report(out, wall_time_s=time.perf_counter() - t0)
    return SearchResult(**results)


def _fit_quality(bfit: lk.ParametricFit, sim_model: lk.ParametricModel, profiler: lk.Profiler) -> tuple[dict[str, Any], list[str]]:
    """The ``fit_quality`` block of details.json (every fit went through the statistics core's guard) and one
    warning line per group of fits that failed it (logged, and listed in results.json's compact summary)."""
    block: dict[str, Any] = {"background_fit": bfit.quality.to_dict(),
                             "spurious_signal_fits": sim_model.tally.to_dict()}
    tally = getattr(profiler, "tally", None)
    if tally is not None:
        block["signal_plus_background_fits"] = tally.to_dict()
    warnings: list[str] = []
    if not bfit.quality.ok:
        warnings.append("background fit to data: fit quality not ok: " + ("; ".join(bfit.quality.warnings)
                                                                          or f"covariance {bfit.quality.covariance}"))
    for key in ("spurious_signal_fits", "signal_plus_background_fits"):
        rec = block.get(key)
        if rec and rec["n_not_ok"]:
            first = rec["examples"][0]
            warnings.append(f"{key.replace('_', ' ')}: {rec['n_not_ok']} of {rec['n_fits']} fits failed the fit-quality "
                            f"guard (first: {first['fit']}: {'; '.join(first['warnings']) or first['covariance']})")
    for line in warnings:
        log.warning("%s", line)
    block["ok"] = bool(bfit.quality.ok and all(block[k]["ok"] for k in block if isinstance(block[k], dict)
                                               and "n_not_ok" in block[k]))
    return block, warnings


def _json_default(obj: Any) -> Any:
    """numpy scalars/arrays and paths to JSON."""
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
