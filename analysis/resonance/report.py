"""Reports of the diphoton workflows, built from their output directories.

* :func:`write_search_report` — ``ana search``: ``results.json`` + ``details.json`` + the plots.
* :func:`write_ftest_report` — ``ana ftest``: ``summary.json`` + per category ``envelope.json``/``ftest.json`` and
  the ``multipdf``/``splusb`` plots.

Both read only what the workflows wrote (unknown keys are ignored) and write ``DIR/report.html``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from analysis.report import PM_MEANING, Quantity, Report, add_remaining_figures, format_duration, pm, read_json

SEARCH_CAPTIONS = {
    "variables": "Selection variables of the simulated background (grey) and signal at each simulated mass, each "
                 "normalised to unit area; dashed red lines: the optimised cuts.",
    "mass_fit": "m_γγ of the selected data with the background-only fit; shaded: ±√B per bin (expected Poisson "
                "fluctuation of the background, not a fit uncertainty). Lower panel: (data − B)/√B. While blinded, the "
                "grey window was never read and the fit uses the sidebands only.",
    "pvalue_scan": "Local p₀ versus the signal mass hypothesis (asymptotic): expected for the reference cross-section "
                   "and, when unblinded, observed; red dotted lines mark 1–5σ.",
    "limits": "95 % CL CLs upper limits on σ(pp→X) (before the filter efficiency, pb) versus m_X: expected median with "
              "±1σ/±2σ bands (asymptotic) and, when unblinded, observed; dotted: the reference cross-section.",
    "signal_model": "Selected signal simulation per mass point with the fitted double-sided Crystal Ball; its width σ "
                    "(legend) is interpolated in m_X for the signal templates. Error bars: √N.",
}
SB_CAPTION = {
    True: "Blinded: background fit to the sidebands plus the expected signal at the most sensitive mass for the reference "
          "cross-section — an expectation, not a fit to data in the window (which was never read).",
    False: "Signal-plus-background fit at the mass of the largest local significance: background part, fitted signal "
           "(dashed) and their sum (red); lower panel (data − B)/√B with (S+B − B)/√B in red.",
}


def _limit_rows(limits: dict[str, Any]) -> list[list[Any]]:
    """One row per mass: expected median, ±1σ, ±2σ and observed limit in pb."""
    rows = []
    obs = limits.get("observed_pb") or [None] * len(limits.get("mass_gev", []))
    for i, m in enumerate(limits.get("mass_gev", [])):
        b1 = limits.get("expected_1sigma_pb", [[None, None]] * (i + 1))[i]
        b2 = limits.get("expected_2sigma_pb", [[None, None]] * (i + 1))[i]
        rows.append([f"{m:g}", f"{limits['expected_pb'][i]:.3g}", f"[{b1[0]:.3g}, {b1[1]:.3g}]",
                     f"[{b2[0]:.3g}, {b2[1]:.3g}]", "–" if obs[i] is None else f"{obs[i]:.3g}"])
    return rows


def write_search_report(out_dir: str | Path, wall_time_s: float | None = None) -> Path:
    """Write ``out_dir/report.html`` for ``ana search`` from results.json, details.json and the plots.

    Args:
        out_dir: the search's output directory.
        wall_time_s: wall time of the whole search in seconds (shown when given).

    Returns:
        The report path.

    Raises:
        AnalysisError: results.json is missing or unreadable.
    """
    out = Path(out_dir)
    res = read_json(out / "results.json")
    det = read_json(out / "details.json") if (out / "details.json").is_file() else {}
    blinded = bool(res.get("blinded"))
    rep = Report("Diphoton resonance search", subtitle=f"{'BLINDED' if blinded else 'unblinded'} · config: "
                 f"{det.get('config', '?')}")
    rep.section("Result")
    if blinded:
        rep.headline("Blinded: data in the search window were never read; expected limits only.")
    else:
        z, zg = res.get("local_significance"), res.get("global_significance")
        rep.headline(f"Largest excess at m_X = {res.get('best_mass_gev'):g} GeV: local Z = {z:.2f}σ, global Z = {zg:.2f}σ")
    nums: dict[str, Any] = {}
    if det.get("luminosity_pb") is not None:
        nums["integrated luminosity"] = Quantity(det["luminosity_pb"] / 1000.0, "fb⁻¹", "")
    exp = det.get("expected") or {}
    if exp.get("nominal_cross_section_pb") is not None:
        nums["reference signal cross-section"] = Quantity(exp["nominal_cross_section_pb"], "pb",
                                                          det.get("cross_section_convention", ""))
    if not blinded:
        g = det.get("global") or {}
        nums["local significance"] = Quantity(res.get("local_significance"), "σ", "asymptotic, at the best mass")
        nums["global significance"] = Quantity(res.get("global_significance"), "σ", g.get("method", "look-elsewhere corrected"))
        nums["evidence (Z ≥ 3) / discovery (Z ≥ 5)"] = Quantity(f"{'yes' if res.get('evidence') else 'no'} / "
                                                                 f"{'yes' if res.get('discovery') else 'no'}", "", "local Z")
        meas = res.get("measurement")
        if meas:
            nums["measured mass"] = Quantity(pm(meas["mass_gev"], meas["mass_err_gev"]), "GeV",
                                             f"± {PM_MEANING['fit']} (profile likelihood)")
            nums["measured cross-section"] = Quantity(pm(meas["cross_section_pb"], meas["cross_section_err_pb"]), "pb",
                                                      f"± {PM_MEANING['fit']}; before the filter efficiency")
    rep.numbers(nums)
    # selection
    sel = res.get("selection") or {}
    rep.section("Selection", f"Method: {sel.get('method', '?')}. Optimised on simulation in ±2σ windows around each "
                "simulated signal mass.")
    cuts = sel.get("cuts") or {}
    if cuts:
        rows = [[var, ", ".join(f"{k.replace('_', ' ')} {v:.4g}" for k, v in spec.items())] for var, spec in cuts.items()]
        rep.table(["variable", "cut"], rows, caption="Cuts chosen by the optimisation (min: keep ≥; max exclusive: keep <).")
    per = sel.get("per_mass") or {}
    if per:
        rows = [[m, f"{d.get('s_before', 0):.1f}", f"{d.get('b_before', 0):.1f}", f"{d.get('z_before', 0):.2f}",
                 f"{d.get('s_after', 0):.1f}", f"{d.get('b_after', 0):.1f}", f"{d.get('z_after', 0):.2f}"]
                for m, d in per.items()]
        rep.table(["m_X [GeV]", "S before", "B before", "Z before [σ]", "S after", "B after", "Z after [σ]"], rows,
                  caption="Expected signal (reference σ) and background events in the mass window before/after the "
                          f"selection and the resulting Asimov Z. Combined Z: {sel.get('combined_z_before', 0):.2f} → "
                          f"{sel.get('combined_z_after', 0):.2f}.")
    # signal model
    fits = det.get("signal_fits") or []
    if fits:
        rep.section("Signal model")
        rep.table(["m_X [GeV]", "selection efficiency", "DSCB mean [GeV]", "DSCB σ [GeV]"],
                  [[f"{f['mass_point_gev']:g}", f"{f.get('efficiency', float('nan')):.3f}",
                    pm(f["mean"], f.get("mean_err", 0.0)), pm(f["sigma"], f.get("sigma_err", 0.0))] for f in fits],
                  caption=f"Double-sided Crystal Ball fits to the selected signal simulation; ± {PM_MEANING['hesse']}.")
    # background
    bc, bf = det.get("background_choice") or {}, det.get("background_fit") or {}
    if bc or bf:
        rep.section("Background model")
        cands = bc.get("candidates") or []
        if cands:
            rep.table(["family", "deviance", "ndf", "p-value", "chosen"],
                      [[c["family"], f"{c['deviance']:.1f}", c["ndof"], f"{c['pvalue']:.3g}",
                        "✔" if c["family"] == bc.get("chosen") else ""] for c in cands],
                      caption="Function families fitted to the background simulation (Poisson deviance goodness of fit).")
        spur = bc.get("spurious_signal_on_simulation") or []
        if spur:
            rep.table(["m_X [GeV]", "spurious μ [pb]", "μ / σ_μ"],
                      [[f"{s['mass_gev']:g}", pm(s["mu_pb"], s["mu_err_pb"]), f"{s['mu_over_err']:+.2f}"] for s in spur],
                      caption=f"Signal fitted on the background-only simulation with the chosen function (± {PM_MEANING['fit']}); "
                              "|μ/σ_μ| well below 1 means the function does not fake a signal.")
        if bf:
            window = bf.get("blind_window_gev")
            rep.numbers({"function fitted to data": Quantity(bf.get("function")),
                         "fit range": Quantity("sidebands only" if bf.get("sideband_only") else "full range", "",
                                               f"blind window {window} GeV" if window else ""),
                         "goodness of fit": Quantity(f"deviance/ndf = {bf.get('deviance', float('nan')):.1f}/{bf.get('ndof')}, "
                                                     f"p = {bf.get('pvalue', float('nan')):.3g}", "", "Poisson deviance"),
                         "selected data events in the fit bins": Quantity(bf.get("data_events_selected_fit_bins"), "events")})
    fq = det.get("fit_quality") or {}
    if fq:
        groups = {k: v for k, v in fq.items() if isinstance(v, dict) and "n_fits" in v}
        counted = ", ".join(f"{k.replace('_', ' ')}: {v['n_fits'] - v['n_not_ok']}/{v['n_fits']} ok" for k, v in groups.items())
        bfq = fq.get("background_fit") or {}
        text = f"background fit to data {'ok' if bfq.get('ok') else 'NOT ok'}; {counted}"
        if fq.get("ok"):
            rep.numbers({"fit quality": Quantity(text, "", "valid minimum, EDM, covariance, not stalled (statistics core)")})
        else:
            problems = [f"{e['fit']}: {'; '.join(e.get('warnings') or [e.get('covariance', '')])}"
                        for v in groups.values() for e in v.get("examples", [])]
            rep.warning(f"fit quality: {text}" + (f" (e.g. {problems[0]})" if problems else "")
                        + ("" if bfq.get("ok", True) else f"; background fit: {'; '.join(bfq.get('warnings') or [])}"))
    # limits
    limits = res.get("limits") or {}
    if limits.get("mass_gev"):
        rep.section("Upper limits")
        rep.table(["m_X [GeV]", "expected [pb]", "expected ±1σ [pb]", "expected ±2σ [pb]", "observed [pb]"],
                  _limit_rows(limits), caption="95 % CL CLs upper limits on σ(pp→X) before the filter efficiency "
                  "(asymptotic); the bands are the 16–84 % and 2.5–97.5 % quantiles under the background-only hypothesis.",
                  collapsed=f"limits at {len(limits['mass_gev'])} mass points")
    if wall_time_s is not None:
        rep.section("Run")
        rep.numbers({"wall time of the whole search": Quantity(format_duration(wall_time_s), "", "from start to report")})
    if any(out.glob("*.png")):
        rep.section("Plots")
    for stem in ("mass_fit", "sb_fit", "pvalue_scan", "limits", "signal_model"):
        p = out / f"{stem}.png"
        if p.is_file():
            rep.figure(p, SB_CAPTION[blinded] if stem == "sb_fit" else SEARCH_CAPTIONS[stem])
    if (out / "variables.png").is_file():
        rep.figure(out / "variables.png", SEARCH_CAPTIONS["variables"], wide=True)
    add_remaining_figures(rep, out)
    return rep.write(out / "report.html")


# ------------------------------------------------------------------------------------------------- ftest
def _ftest_rows(doc: dict[str, Any]) -> list[list[Any]]:
    """Rows of one category's f-test table (ftest.json 'rows'), tolerant of missing columns."""
    rows = []
    for r in doc.get("rows", []):
        def g(key: str, f: str = ".3g") -> str:
            v = r.get(key)
            return "–" if v is None or v == "" else (format(v, f) if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v))
        status = r.get("fit_status") or ("converged" if r.get("converged", True) else "not converged")
        if status == "at bound" and r.get("parameters_at_bounds"):
            status = f"at bound ({r['parameters_at_bounds']})"
        if r.get("reduces_to"):
            status += f"; reduces to {r['reduces_to']}"
        rows.append([g("family"), g("order"), g("n_params"), g("nll", ".2f"), g("gof_pvalue"), g("ftest_pvalue"),
                     "✓" if status == "converged" else status, "✔" if r.get("in_envelope") else ""])
    return rows


def write_ftest_report(out_dir: str | Path, wall_time_s: float | None = None) -> Path:
    """Write ``out_dir/report.html`` for ``ana ftest`` from summary.json and the per-category outputs.

    Args:
        out_dir: the f-test output directory.
        wall_time_s: wall time of the whole run in seconds (shown when given).

    Returns:
        The report path.

    Raises:
        AnalysisError: summary.json is missing or unreadable.
    """
    out = Path(out_dir)
    summary = read_json(out / "summary.json")
    cfg = summary.get("config") or {}
    cats = summary.get("categories") or []
    rep = Report("Background modelling: f-test and envelope", subtitle=f"input: {cfg.get('input', '?')}")
    failed = summary.get("failed") or []
    ok = [c for c in cats if c.get("status") == "ok"]
    rep.section("Summary")
    rep.headline(f"{len(ok)} of {len(cats)} categories modelled" + (f"; failed: {', '.join(map(str, failed))}" if failed else ""))
    rng = cfg.get("range_used") or cfg.get("range")
    nums: dict[str, Any] = {
        "observable": Quantity(f"{cfg.get('observable')}" + (f" [{cfg['unit']}]" if cfg.get("unit") else "")),
        "fit range": Quantity(f"[{rng[0]:.4g}, {rng[1]:.4g}]" if rng else "–", cfg.get("unit", "")),
        "blinded window": Quantity(f"[{cfg['blind'][0]:g}, {cfg['blind'][1]:g}]" if cfg.get("blind") else "none",
                                   cfg.get("unit", ""), "excluded from every fit"),
        "families": Quantity(", ".join(cfg.get("families", []))),
        "f-test threshold": Quantity(cfg.get("pvalue_threshold"), "", "p-value to accept a higher order"),
        "envelope penalty": Quantity(cfg.get("correction"), "", "added to −2 ln L per parameter"),
        "input": Quantity("pseudodata (Poisson-fluctuated simulation)" if cfg.get("pseudodata") else "data"),
    }
    if wall_time_s is not None:
        nums["wall time of the whole run"] = Quantity(format_duration(wall_time_s), "", "from start to report")
    rep.numbers(nums)
    rows = []
    for c in cats:
        if c.get("status") == "ok":
            b = c.get("best") or {}
            rows.append([c["category"], "ok" if c.get("fit_quality_ok", True) else "ok (fit-quality warning)",
                         f"{b.get('name', b.get('family', '?'))}", b.get("n_params", "–"), ", ".join(c.get("envelope", []))])
        else:
            rows.append([c.get("category"), "SKIPPED" if c.get("status") == "skipped" else "FAILED", "–", "–",
                         c.get("error", "")])
    rep.table(["category", "status", "best function", "parameters", "envelope / error"], rows)
    for c in cats:
        name = str(c.get("category"))
        d = Path(c["directory"]) if c.get("directory") else out / name
        if not d.is_dir():
            d = out / name
        rep.section(f"Category {name}")
        if c.get("status") != "ok":
            rep.warning(f"{'skipped' if c.get('status') == 'skipped' else 'failed'}: {c.get('error', '?')}")
            continue
        env = read_json(d / "envelope.json") if (d / "envelope.json").is_file() else {}
        if c.get("fit_quality_warning"):
            rep.warning(f"fit quality: {c['fit_quality_warning']}")
        if env:
            sig = env.get("signal_model") or {}
            rep.numbers({
                "events in the fit bins": Quantity(env.get("events_in_fit_bins"), "events"),
                "bins": Quantity(env.get("bins")),
                "best function": Quantity((env.get("best") or {}).get("name", "?"), "",
                                          "lowest −2 ln L + penalty × parameters"),
                "S+B plot signal (Gaussian)": Quantity(
                    f"m = {sig.get('mass_gev', float('nan')):.4g} {cfg.get('unit', '')}, σ = "
                    f"{sig.get('width_gev', float('nan')):.3g} {cfg.get('unit', '')}, N = {sig.get('events', float('nan')):.1f} events",
                    "", "illustrative, sized to S/√B = 3 in ±2σ" if sig.get("illustrative") else "configured"),
            })
        ft = read_json(d / "ftest.json") if (d / "ftest.json").is_file() else {}
        if ft.get("rows"):
            rep.table(["family", "order", "parameters", "−2 ln L", "GoF p", "f-test p", "fit", "in envelope"],
                      _ftest_rows(ft),
                      caption="Per family and order: −2 ln L of the fit, χ² goodness-of-fit p-value (toys), the "
                              "p-value of the f-test against the next lower order, and the fit's status (✓ converged; "
                              "'at bound': a free parameter ended at its bound; 'reduces to': same −2 ln L as a lower "
                              "order, never preferred by the f-test).",
                      collapsed=f"f-test table ({len(ft['rows'])} fits)")
        for stem, cap in (("multipdf", "Data with every function of the envelope (best in red) on a log scale; lower "
                           "panel: data and each function minus the best fit. Error bars: √N (Poisson)."),
                          ("splusb_blinded", "Blinded S+B model: sideband data, best background function with its ±1σ/±2σ "
                           "band (parameter covariance ⊕ Poisson normalisation), an illustrative Gaussian signal and "
                           "data − B."),
                          ("splusb", "S+B model: data, best background function with its ±1σ/±2σ band (parameter "
                           "covariance ⊕ Poisson normalisation), the Gaussian signal and data − B.")):
            if (d / f"{stem}.png").is_file():
                rep.figure(d / f"{stem}.png", cap)
    add_remaining_figures(rep, out)
    return rep.write(out / "report.html")

