"""The automated X→γγ search: config → selection → signal model → background fit → significance → limits.

``run_search(config, out_dir, unblind=False)`` writes ``results.json`` (the issue's exact keys),
``details.json`` (everything else: fits, checks, expected significances, toy validation) and the plots.
While blinded, data with m_γγ inside the blind window (search range widened by ``blind_margin_sigma`` signal
widths, snapped outward to bin edges) are dropped by the processor before any histogram is filled.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from analysis.console import staged
from analysis.errors import AnalysisError
from analysis.resonance import likelihood as lk
from analysis.resonance import limits as lim
from analysis.resonance.report import write_search_report
from analysis.resonance.selection import CutSelection, Sample, optimise_cuts, train_classifier
from analysis.resonance.signal_model import SignalModel, build_signal_model
from analysis.config import load_yaml
from analysis.option_model import OptionModel
from processors.diphoton import FEATURES, REQUIRED_FEATURES, DiphotonProcessor, process_events
from fileset.normalisation import mc_normalisation
from schemas.diphoton import load_events

log = logging.getLogger(__name__)
PB_PER_FB = 1000.0
PositiveFloat = Annotated[float, Field(gt=0)]
Efficiency = Annotated[float, Field(gt=0, le=1)]
Window = tuple[PositiveFloat, PositiveFloat]


def _existing_file(value: Path, info: ValidationInfo) -> Path:
    """A path relative to the config file (``context["base"]``), which must exist."""
    if not str(value) or str(value) == ".":
        raise ValueError("empty path")
    base = (info.context or {}).get("base")
    q = value if value.is_absolute() or base is None else Path(base) / value
    if base is not None and not q.is_file():
        raise ValueError(f"file not found: {q}")
    return q


class SignalOptions(OptionModel):
    """``signal:`` — cross-section [pb] before the filter efficiency, filter efficiency in (0, 1], and one
    simulated sample per mass point (``mass in GeV: file``)."""

    cross_section_pb: PositiveFloat
    filter_efficiency: Efficiency
    samples: dict[PositiveFloat, Path] = Field(min_length=1)

    @field_validator("samples")
    @classmethod
    def _samples(cls, value: dict[float, Path], info: ValidationInfo) -> dict[float, Path]:
        """Files relative to the config, existing; sorted by mass."""
        out = {}
        for m, f in sorted(value.items()):
            try:
                out[m] = _existing_file(f, info)
            except ValueError as err:
                raise ValueError(f"{m:g}: {err}") from None
        return out


class BackgroundOptions(OptionModel):
    """``background:`` — simulated background (cross-section [pb], filter efficiency, file) and the model:
    ``parametric`` (one function, chosen on simulation unless ``function`` is given) or the discrete-profiling
    ``envelope`` over ``families``."""

    cross_section_pb: PositiveFloat
    filter_efficiency: Efficiency
    file: Path
    model: Literal["parametric", "envelope"] = "parametric"
    function: str | None = None
    families: list[str] | None = Field(None, min_length=1)

    check_file = field_validator("file")(_existing_file)

    @field_validator("function")
    @classmethod
    def _function(cls, value: str | None) -> str | None:
        """One of the parametric families."""
        if value is not None and value not in lk.FAMILY_ORDER:
            raise ValueError(f"unknown function {value!r} (choose from {', '.join(lk.FAMILY_ORDER)})")
        return value


class SelectionOptions(OptionModel):
    """``selection:`` — ``cuts`` (optimised rectangular cuts, default), ``classifier`` or ``none``, on the
    photon ``variables`` (default: the processor's required features)."""

    method: Literal["cuts", "classifier", "none"] = "cuts"
    variables: tuple[str, ...] = Field(REQUIRED_FEATURES, min_length=1)

    @field_validator("variables")
    @classmethod
    def _variables(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        """Known features, each once."""
        unknown = [v for v in value if v not in FEATURES]
        if unknown:
            raise ValueError(f"unknown variable(s) {', '.join(unknown)} (choose from {', '.join(FEATURES)})")
        if len(set(value)) != len(value):
            raise ValueError(f"repeated variable in {list(value)}")
        return value


class SearchConfig(OptionModel):
    """The search YAML, defined once: keys, types, bounds, defaults; paths resolved relative to the config file.

    Keys: ``luminosity_fb`` (> 0), ``sqrt_s_tev`` (13), ``mass_range_gev`` [lo, hi] searched, ``signal``,
    ``background``, ``data`` (file), ``fit_range_gev`` (default [max(lo − 200, 1), hi + 500]; must contain the
    mass range with sidebands), ``bin_width_gev`` (10), ``scan_step_gev`` (10), ``blind_margin_sigma`` (2, signal
    widths added to the blind window), ``selection``, ``global_toys`` (20), ``limit_validation_toys`` (200),
    ``seed`` (12345). The flat properties below (``mass_range``, ``signal_xsec_pb``, ...) are views of these keys.
    """

    WHAT = "config"

    luminosity_fb: PositiveFloat
    sqrt_s_tev: PositiveFloat = 13.0
    mass_range_gev: Window
    signal: SignalOptions
    background: BackgroundOptions
    data: Path
    fit_range_gev: Window | None = None
    bin_width_gev: PositiveFloat = 10.0
    scan_step_gev: PositiveFloat = 10.0
    blind_margin_sigma: float = Field(2.0, ge=0)
    selection: SelectionOptions = SelectionOptions()
    global_toys: int = Field(20, ge=0)
    limit_validation_toys: int = Field(200, ge=0)
    seed: int = Field(12345, ge=0)
    _source: Path | None = PrivateAttr(None)

    check_data = field_validator("data")(_existing_file)

    @model_validator(mode="after")
    def _ranges(self) -> "SearchConfig":
        """Mass range ordered, fit range containing it with sidebands."""
        lo, hi = self.mass_range_gev
        if not lo < hi:
            raise ValueError(f"mass_range_gev: lower edge {lo:g} must be below upper edge {hi:g}")
        f_lo, f_hi = self.fit_range
        if not (f_lo < lo and f_hi > hi):
            raise ValueError(f"fit_range_gev {[f_lo, f_hi]} must contain mass_range_gev {[lo, hi]} with sidebands")
        return self

    # views used by the search (one definition above; these only rename)
    @property
    def source(self) -> Path | None:
        """The config file."""
        return self._source

    @property
    def lumi_pb(self) -> float:
        """Integrated luminosity in pb⁻¹."""
        return self.luminosity_fb * PB_PER_FB

    @property
    def mass_range(self) -> tuple[float, float]:
        """Searched mass range [GeV]."""
        return self.mass_range_gev

    @property
    def fit_range(self) -> tuple[float, float]:
        """Fit range [GeV] (default: 200 GeV below, 500 GeV above the searched range, at least 1 GeV)."""
        lo, hi = self.mass_range_gev
        return self.fit_range_gev or (max(lo - 200.0, 1.0), hi + 500.0)

    @property
    def signal_xsec_pb(self) -> float:
        return self.signal.cross_section_pb

    @property
    def signal_filter_eff(self) -> float:
        return self.signal.filter_efficiency

    @property
    def signal_samples(self) -> dict[float, Path]:
        return self.signal.samples

    @property
    def bkg_xsec_pb(self) -> float:
        return self.background.cross_section_pb

    @property
    def bkg_filter_eff(self) -> float:
        return self.background.filter_efficiency

    @property
    def bkg_file(self) -> Path:
        return self.background.file

    @property
    def data_file(self) -> Path:
        return self.data

    @property
    def model(self) -> str:
        return self.background.model

    @property
    def function(self) -> str | None:
        return self.background.function

    @property
    def families(self) -> list[str] | None:
        return self.background.families

    @property
    def bin_width(self) -> float:
        return self.bin_width_gev

    @property
    def scan_step(self) -> float:
        return self.scan_step_gev

    @property
    def selection_method(self) -> str:
        return self.selection.method

    @property
    def selection_variables(self) -> tuple[str, ...]:
        return self.selection.variables


def load_config(path: str | Path) -> SearchConfig:
    """Read and validate the search YAML; resolve file paths relative to it.

    Raises:
        ConfigError: unreadable YAML, or every invalid/missing key and missing file in one line naming the file.
    """
    p = Path(path).resolve()
    cfg = SearchConfig.make(load_yaml(p), source=p, context={"base": p.parent})
    cfg._source = p
    return cfg


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


def run_search(config_path: str | Path, out_dir: str | Path, unblind: bool = False, make_plots: bool = True) -> dict:
    """Run the whole search; write results.json, details.json, plots and report.html into ``out_dir``; return the results."""
    t0 = time.perf_counter()
    cfg = load_config(config_path)
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

    details["fit_quality"] = _fit_quality(bfit, sim_model, profiler)
    (out / "results.json").write_text(json.dumps(results, indent=2, default=_json_default))
    (out / "details.json").write_text(json.dumps(details, indent=2, default=_json_default))
    if make_plots:
        from analysis.resonance import plots

        staged("Plots", plots.make_all, out, cfg=cfg, edges=edges, counts=counts, side=side, blind=blind, b_exp=b_exp,
                       sig_s=sig_s, bkg_s=bkg_s, selection=selection, sel_report=sel_report, smodel=smodel,
                       sig_fits=sig_fits, sig_sel=sig_sel, grid=grid, templates=templates, expected_z=exp_z,
                       scan=scan, limits=limits, results=results, meas=meas, profiler=profiler, bounds=bounds)
    write_search_report(out, wall_time_s=time.perf_counter() - t0)
    return results


def _fit_quality(bfit: lk.ParametricFit, sim_model: lk.ParametricModel, profiler: lk.Profiler) -> dict[str, Any]:
    """The ``fit_quality`` block of details.json (every fit went through the statistics core's guard); one
    warning line per group of fits that failed it."""
    block: dict[str, Any] = {"background_fit": bfit.quality.to_dict(),
                             "spurious_signal_fits": sim_model.tally.to_dict()}
    tally = getattr(profiler, "tally", None)
    if tally is not None:
        block["signal_plus_background_fits"] = tally.to_dict()
    if not bfit.quality.ok:
        log.warning("background fit to data: fit quality not ok: %s", "; ".join(bfit.quality.warnings)
                    or f"covariance {bfit.quality.covariance}")
    for key in ("spurious_signal_fits", "signal_plus_background_fits"):
        rec = block.get(key)
        if rec and rec["n_not_ok"]:
            first = rec["examples"][0]
            log.warning("%s: %d of %d fits failed the fit-quality guard (first: %s: %s)", key.replace("_", " "),
                        rec["n_not_ok"], rec["n_fits"], first["fit"], "; ".join(first["warnings"]) or first["covariance"])
    block["ok"] = bool(bfit.quality.ok and all(block[k]["ok"] for k in block if isinstance(block[k], dict)
                                               and "n_not_ok" in block[k]))
    return block


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
