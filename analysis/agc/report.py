"""The AGC ttbar report (``ana demo`` and ``ana fit``), built from the files the steps wrote.

Inputs, all optional except the fit directory's ``fit_results.json`` for the fit sections: ``metrics.json``
(processing), ``fit_results.json`` + ``workspace.json`` + PNGs (fit), the histogram plots directory, and for
the demo the in-memory histogram (yields over the full observable range). Unknown keys in the JSON files are
ignored; keys that later versions of the fit add (``poi_interval`` with MINOS errors, ``goodness_of_fit``,
``fit_quality``, ``warnings``) are shown when present.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from analysis.plotting import correlation_selection, ordered_processes, process_style
from analysis.report import PM_MEANING, Quantity, Report, add_remaining_figures, fmt, format_duration, pm, read_json

REGION_TITLE = {"4j1b": "≥ 4 jets, 1 b-tag (H_T)", "4j2b": "≥ 4 jets, ≥ 2 b-tags (m_bjj)"}
MC_STAT = PM_MEANING["mc_stat"]


def _region_caption(stem: str) -> str | None:
    """Captions of the cabinetry data/MC plots (``<region>_prefit`` / ``<region>_postfit``)."""
    for stage, text in (("_prefit", "before the fit (nuisance parameters at their nominal values)"),
                        ("_postfit", "after the fit (best-fit parameters)")):
        if stem.endswith(stage):
            region = stem[: -len(stage)].replace("_", " ")
            return (f"Data and stacked model in region {region} {text}. Hatched band: total model uncertainty "
                    "(systematics ⊕ MC stat., correlations included); lower panel: data/model with √N data errors.")
    return None


def _captions(fit: dict[str, Any] | None) -> dict[str, str]:
    """Captions of every plot the AGC steps write, by file stem."""
    poi = (fit or {}).get("poi", "POI")
    caps = {
        "stack_4j1b": "Nominal MC stacked per process, ≥ 4 jets with exactly 1 b-tag (H_T), before any fit. "
                      "Hatched: MC stat. unc. (√Σw² of the stacked total).",
        "stack_4j2b": "Nominal MC stacked per process, ≥ 4 jets with ≥ 2 b-tags (m_bjj), before any fit. "
                      "Hatched: MC stat. unc. (√Σw² of the stacked total).",
        "variations_btag_4j1b": "ttbar b-tagging weight variations (up) vs nominal in 4j1b; lower panel variation/nominal "
                                "with the nominal's MC stat. band (√Σw²/N); triangles mark ratios beyond the panel.",
        "variations_jet_4j2b": "ttbar jet energy scale and resolution variations vs nominal in 4j2b; lower panel "
                               "variation/nominal with the nominal's MC stat. band (√Σw²/N).",
        "variations_model_4j2b": "ttbar modelling variations (ME generator, parton shower, scale up/down samples) vs "
                                 "nominal in 4j2b; lower panel with the nominal's MC stat. band (√Σw²/N).",
        "pulls": "Post-fit pulls (θ̂ − θ₀)/Δθ of the constrained nuisance parameters (POI excluded), with their "
                 "post-fit uncertainties; green/yellow: ±1σ/±2σ of the pre-fit constraint.",
        "ranking": f"Impact on {poi} of the highest-ranked nuisance parameters: boxes are the shift of {poi} when a "
                   "parameter is fixed at ±1σ of its pre-fit (open) or post-fit (filled) uncertainty; points: pulls.",
        f"scan_{poi}": f"Profile-likelihood scan of {poi}: Δ(−2 ln L) with all other parameters refitted; the dashed "
                       "parabola is the Gaussian approximation from the HESSE uncertainty. The dotted lines Δ(−2 ln L) = 1 and 4 "
                       "mark 68.3 % and 95.4 % CL (labelled beside the frame).",
        "limit": f"CLs versus {poi} (asymptotic, q̃_μ, log axis): observed, expected median and its ±1σ/±2σ bands; "
                 "the 95 % CL upper limit is where CLs crosses 0.05.",
    }
    if fit and fit.get("labels") and fit.get("correlation"):
        info = correlation_selection(list(fit["labels"]), fit["correlation"], keep=(poi,))
        left = []
        if info["excluded_prefix"]:
            left.append(f"{info['excluded_prefix']} per-bin MC-stat parameters (staterror_*)")
        if info["below_threshold"]:
            left.append(f"{info['below_threshold']} parameters whose |ρ| with every other stays below {info['threshold']:g}")
        if info["over_limit"]:
            left.append(f"{info['over_limit']} more beyond the {len(info['shown'])} most correlated")
        caps["correlation_matrix"] = (f"Post-fit correlation matrix of {len(info['shown'])} parameters (systematics and "
                                      f"the POI). Not shown: " + ("; ".join(left) if left else "nothing") +
                                      ". All correlations are in fit_results.json.")
    return caps


def _yields_from_hist(h: Any) -> tuple[list[str], list[list[str]]]:
    """Nominal yields ± MC stat. (√Σw²) per process and region from the processor histogram (full range)."""
    import numpy as np

    regions = list(h.axes["region"])
    procs = ordered_processes(list(h.axes["process"]))  # the stacks' order
    rows, tot, var = [], {r: 0.0 for r in regions}, {r: 0.0 for r in regions}
    for i, p in enumerate(procs):
        row = [process_style(p, index=i)[1].replace("$t\\bar{t}$", "tt̄")]
        for r in regions:
            hh = h[:, r, p, "nominal"]
            v, e2 = float(np.sum(hh.values())), float(np.sum(hh.variances()))
            tot[r] += v
            var[r] += e2
            row.append(pm(v, math.sqrt(e2)))
        rows.append(row)
    rows.append(["total MC"] + [pm(tot[r], math.sqrt(var[r])) for r in regions])
    return [f"{r}: {REGION_TITLE.get(r, r)}" for r in regions], rows


def _yields_from_workspace(ws: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Pre-fit yields ± MC stat. (staterror modifiers, √Σσ²) per sample and channel, plus observed data."""
    channels = [c["name"] for c in ws.get("channels", [])]
    samples: dict[str, dict[str, tuple[float, float]]] = {}
    for ch in ws.get("channels", []):
        for s in ch["samples"]:
            err2 = 0.0
            for m in s.get("modifiers", []):
                if m.get("type") == "staterror" and m.get("data"):
                    err2 += sum(float(x) ** 2 for x in m["data"])
            samples.setdefault(s["name"], {})[ch["name"]] = (float(sum(s["data"])), err2)
    rows = []
    for name, per in samples.items():
        rows.append([name] + [pm(per[c][0], math.sqrt(per[c][1])) if c in per else "–" for c in channels])
    totals = ["total model (pre-fit)"]
    for c in channels:
        v = sum(per[c][0] for per in samples.values() if c in per)
        totals.append(pm(v, math.sqrt(sum(per[c][1] for per in samples.values() if c in per))))
    rows.append(totals)
    obs = {o["name"]: float(sum(o["data"])) for o in ws.get("observations", [])}
    rows.append(["observed (pseudo)data"] + [f"{obs[c]:.0f}" if c in obs else "–" for c in channels])
    return channels, rows


def _fit_sections(rep: Report, fit: dict[str, Any]) -> None:
    """Headline POI, fit numbers, limits and significance, parameters and ranking tables."""
    poi, val, err = fit["poi"], fit["poi_bestfit"], fit["poi_uncertainty"]
    iv = fit.get("poi_interval") or {}
    head = f"{poi} = {val:.3f} ± {err:.3f} ({PM_MEANING['hesse']})"
    if iv.get("minos_lower") is not None and iv.get("minos_upper") is not None:  # MINOS is the quoted interval
        head = (f"{poi} = {val:.3f} {iv['minos_lower']:+.3f} / {iv['minos_upper']:+.3f} (MINOS, 68 % CL); "
                f"± {err:.3f} ({PM_MEANING['hesse']})")
    rep.section("Fit result")
    rep.headline(head)
    nums: dict[str, Any] = {"−2 ln L at the best fit": Quantity(fit.get("minus_two_log_likelihood"), "", "Poisson + constraint terms")}
    gof = fit.get("goodness_of_fit")
    if isinstance(gof, dict) and "p_value" in gof:
        nums["goodness of fit"] = Quantity(f"χ²/ndf = {gof.get('chi2', float('nan')):.1f}/{gof.get('ndf', '?')}, "
                                           f"p = {gof['p_value']:.3f}", "", "saturated model")
    elif "goodness_of_fit_p_value" in fit:
        p_gof = fit["goodness_of_fit_p_value"]
        nums["goodness-of-fit p-value"] = (Quantity(p_gof, "", "saturated model (cabinetry)") if p_gof is not None and p_gof >= 0
                                           else Quantity("not computed", "", "cabinetry reports −1 when it was not evaluated"))
    sig = fit.get("significance")
    if sig:
        nums["discovery significance, observed"] = Quantity(sig.get("observed"), "σ", f"Z = √q₀ for {poi} = 0 (asymptotic)")
        nums["discovery significance, expected"] = Quantity(sig.get("expected"), "σ", f"pre-fit Asimov data at {poi} = 1")
    lim = fit.get("upper_limit_95cl")
    if lim:
        nums["95 % CL upper limit, observed"] = Quantity(lim.get("observed"), "", f"on {poi}, CLs with q̃_μ (asymptotic)")
        e = lim.get("expected") or []
        if len(e) == 5:
            nums["95 % CL upper limit, expected"] = Quantity(e[2], "", "median under the background-only hypothesis")
            nums["expected ±1σ band"] = Quantity(f"[{e[1]:.4g}, {e[3]:.4g}]", "", "16–84 % quantiles")
            nums["expected ±2σ band"] = Quantity(f"[{e[0]:.4g}, {e[4]:.4g}]", "", "2.5–97.5 % quantiles")
    quality = fit.get("fit_quality") or {}
    if quality:
        nums["fit quality"] = Quantity("ok" if quality.get("ok") else "FAILED", "", "; ".join(quality.get("warnings", [])))
    rep.numbers(nums)
    for w in fit.get("warnings", []) or []:
        rep.warning(str(w))
    rep.note(f"“±” on {poi} and on the parameters is the symmetric HESSE uncertainty (68 % CL) from the "
             "inverse Hessian at the best fit; the impact and limit numbers are from dedicated refits.")
    labels, best, unc = fit.get("labels", []), fit.get("bestfit", []), fit.get("uncertainty", [])
    rows = [[lab, f"{b:.3f}", f"{u:.3f}"] for lab, b, u in zip(labels, best, unc) if not lab.startswith("staterror")]
    if rows:
        n_stat = sum(1 for lab in labels if lab.startswith("staterror"))
        rep.table(["parameter", "best fit", "± (HESSE, 68 % CL)"], rows,
                  caption=f"Normalisation factors and nuisance parameters (θ in units of the pre-fit σ, θ₀ = 0; "
                          f"{n_stat} per-bin MC-stat γ parameters not listed).",
                  collapsed=f"all {len(rows)} fitted parameters")
    ranking = fit.get("ranking") or []
    if ranking:
        ranked = sorted(ranking, key=lambda r: -max(abs(r.get("postfit_impact_up", 0) or 0),
                                                   abs(r.get("postfit_impact_down", 0) or 0)))
        rep.table(["parameter", f"Δ{poi} (θ̂ + σ̂)", f"Δ{poi} (θ̂ − σ̂)"],
                  [[r["parameter"], f"{r['postfit_impact_up']:+.4f}", f"{r['postfit_impact_down']:+.4f}"]
                   for r in ranked[:10]],
                  caption=f"The ten largest post-fit impacts on {poi}: the change of the best-fit {poi} when the "
                          "parameter is fixed one post-fit σ above/below its best fit and the rest refitted.")


def write_agc_report(out_dir: str | Path, *, fit_dir: str | Path | None = None, plots_dir: str | Path | None = None,
                     histograms_dir: str | Path | None = None, hist: Any = None, wall_time_s: float | None = None,
                     steps_s: dict[str, float] | None = None, title: str = "AGC ttbar analysis",
                     subtitle: str | None = None) -> Path:
    """Write ``out_dir/report.html`` for an AGC run from its output files.

    Args:
        out_dir: where report.html goes; every PNG under it appears in the report.
        fit_dir: directory with ``fit_results.json`` (and ``workspace.json``, fit PNGs) from ``run_fit``.
        plots_dir: directory of the histogram plots (``stack_*``, ``variations_*``).
        histograms_dir: directory with ``metrics.json`` from ``run_ttbar``.
        hist: the processor histogram (yields over the full observable range); else the workspace's yields.
        wall_time_s: wall time of the whole workflow in seconds.
        steps_s: wall time per step in seconds (generation, processing, plots, fit, …).

    Returns:
        The path of the report.

    Raises:
        AnalysisError: a JSON file is unreadable.
    """
    out = Path(out_dir)
    fit = read_json(Path(fit_dir) / "fit_results.json") if fit_dir and (Path(fit_dir) / "fit_results.json").is_file() else None
    rep = Report(title, subtitle)
    if fit is not None:
        _fit_sections(rep, fit)
    # workflow and processing numbers
    run_nums: dict[str, Any] = {}
    if wall_time_s is not None:
        run_nums["wall time of the whole workflow"] = Quantity(format_duration(wall_time_s), "", "from start to report")
    for step, t in (steps_s or {}).items():
        run_nums[f"step: {step}"] = Quantity(format_duration(t), "", "wall time")
    if fit is not None and fit.get("timing_s"):
        for step, t in fit["timing_s"].items():
            run_nums[f"fit step: {step}"] = Quantity(format_duration(t), "", "wall time")
    metrics = None
    if histograms_dir is not None and (Path(histograms_dir) / "metrics.json").is_file():
        metrics = read_json(Path(histograms_dir) / "metrics.json")
        m = metrics
        run_nums["executor / workers"] = Quantity(f"{m.get('executor')} / {m.get('workers')}", "", "")
        if "chunks" in m:
            run_nums["chunks (chunk size)"] = Quantity(f"{m['chunks']} ({m.get('chunksize')} events)", "", "")
        run_nums["events processed"] = Quantity(m.get("events_processed"), "events",
                                                f"of {fmt(m.get('events_expected'))} expected, {fmt(m.get('events_lost', 0))} lost")
        t_proc = m.get("processing_time_s", m.get("wall_time_s"))
        run_nums["event processing wall time"] = Quantity(t_proc, "s", "the processing step only (not the whole run)")
        run_nums["throughput"] = Quantity(m.get("events_per_s"), "events/s", "events processed / processing wall time")
        if m.get("bytesread"):
            run_nums["data read"] = Quantity(m["bytesread"] / 1e6, "MB", "compressed bytes read from the files")
    if run_nums:
        rep.section("Run")
        rep.numbers(run_nums)
        if metrics and (metrics.get("bad_files") or metrics.get("lost_chunks")):
            rep.warning(f"{len(metrics.get('bad_files', []))} file(s) and {len(metrics.get('lost_chunks', []))} chunk(s) "
                        "were skipped; see metrics.json for the events lost.")
    # yields
    if hist is not None:
        header, rows = _yields_from_hist(hist)
        rep.section("Yields (nominal, before the fit)")
        rep.table(["process"] + header, rows, caption=f"Expected events (xsec × lumi weighted) over the full observable "
                  f"range; ± is the {MC_STAT} of the simulated samples.")
    elif fit_dir is not None and (Path(fit_dir) / "workspace.json").is_file():
        header, rows = _yields_from_workspace(json.loads((Path(fit_dir) / "workspace.json").read_text()))
        rep.section("Yields (pre-fit, fit range)")
        rep.table(["sample"] + header, rows, caption="Pre-fit expected events in the fitted bins from workspace.json; "
                  f"± is the {MC_STAT} carried by the staterror modifiers (√Σσ² over bins).")
    # plots
    caps = _captions(fit)
    if plots_dir is not None and Path(plots_dir).is_dir():
        rep.section("Histograms")
        for p in sorted(Path(plots_dir).glob("*.png"), key=lambda q: (not q.stem.startswith("stack"), q.stem)):
            rep.figure(p, caps.get(p.stem, p.stem.replace("_", " ")))
    if fit_dir is not None and Path(fit_dir).is_dir():
        pngs = sorted(Path(fit_dir).glob("*.png"))
        order = ["pulls", "ranking", f"scan_{(fit or {}).get('poi', '')}", "limit", "correlation_matrix"]
        data_mc = [p for p in pngs if _region_caption(p.stem)]
        rep.section("Fit plots")
        for p in sorted(data_mc, key=lambda q: (q.stem.endswith("postfit"), q.stem)):
            rep.figure(p, _region_caption(p.stem) or p.stem)
        for p in sorted((p for p in pngs if p not in data_mc), key=lambda q: order.index(q.stem) if q.stem in order else 99):
            rep.figure(p, caps.get(p.stem, p.stem.replace("_", " ")), wide=p.stem == "correlation_matrix")
    add_remaining_figures(rep, out, captions=caps)
    return rep.write(out / "report.html")


def write_fit_report(fit_dir: str | Path, wall_time_s: float | None = None) -> Path:
    """``ana fit``'s ``DIR/report.html``: fit results, pre-fit yields from the workspace and every fit plot."""
    return write_agc_report(fit_dir, fit_dir=fit_dir, wall_time_s=wall_time_s, title="AGC ttbar fit",
                            subtitle=f"ana fit → {fit_dir}")
