"""Report of ``ana reweight derive``, built from derivation.json and the PNGs in the output directory.

Tolerant of the document's evolution: closure χ² keys are read as whatever ``chi2_<method>`` entries exist
(``before``, ``spline``/``smooth``, ``kde``, …), normalisation details, warnings and the method description
are shown when present, unknown keys are ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from analysis.report import Quantity, Report, add_remaining_figures, format_duration, read_json

CLOSURE_LABEL = {"before": "before (MC only normalised)", "spline": "after, C¹ spline", "smooth": "after, smooth function",
                 "kde": "after, KDE ratio"}


def _closure_table(variations: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """(header, rows): χ²/ndf per closure method (one column each, whatever ``chi2_<method>`` keys exist) per
    sample and nJets bin."""
    methods: list[str] = []
    for d in variations.values():
        for b in d.get("njets_bins", []):
            for k in (b.get("closure") or {}):
                if k.startswith("chi2_") and k[len("chi2_"):] not in methods:
                    methods.append(k[len("chi2_"):])
    rows = []
    for var, d in variations.items():
        for b in d.get("njets_bins", []):
            c = b.get("closure") or {}
            frac = c.get("mc_stat_fraction")
            rows.append([var, b.get("label", "?"), len(b.get("k", []))]
                        + [f"{c[f'chi2_{m}']:.1f}/{c.get('ndf')}" if f"chi2_{m}" in c else "–" for m in methods]
                        + ["–" if frac is None else f"{frac:.2f}"])
    header = (["sample", "nJets bin", "k bins"] + [f"χ²/ndf {CLOSURE_LABEL.get(m, m)}" for m in methods]
              + ["MC-stat share of the variance"])
    return header, rows


def write_reweight_report(out_dir: str | Path, wall_time_s: float | None = None) -> Path:
    """Write ``out_dir/report.html`` for ``ana reweight derive``.

    Args:
        out_dir: the derivation's output directory (derivation.json, correction file, plots).
        wall_time_s: wall time of the whole derivation in seconds (shown when given).

    Returns:
        The report path.

    Raises:
        AnalysisError: derivation.json is missing or unreadable.
    """
    out = Path(out_dir)
    doc = read_json(out / "derivation.json")
    rep = Report("HT_all reweighting of tt+≥1b", subtitle=f"correction: {doc.get('correction_file', '?')}")
    variations = doc.get("variations") or {}
    rep.section("Summary")
    nom = variations.get("nominal") or {}
    if nom:
        rep.headline(f"nominal: MC normalised to data* by {nom.get('mc_to_data_norm', float('nan')):.4f}; "
                     f"{len(nom.get('njets_bins', []))} nJets bins, {len(variations)} sample variation(s)")
    settings = doc.get("settings") or {}
    nums: dict[str, Any] = {}
    for key, (text, unit) in {"jet_pt_gev": ("jet pT threshold", "GeV"), "lepton_pt_gev": ("lepton pT threshold", "GeV"),
                              "btag_cut": ("b-tag discriminant cut", ""), "selection": ("selection", ""),
                              "process": ("reweighted process", ""), "reweighted": ("reweighted components", "")}.items():
        if key in settings:
            v = settings[key]
            nums[text] = Quantity(", ".join(map(str, v)) if isinstance(v, list) else v, unit)
    method = doc.get("method") or {}
    if isinstance(method, dict) and method.get("description"):
        nums["smoothing"] = Quantity(method.get("smoothing", ""), "", method["description"])
    if doc.get("injected_ht"):
        nums["injected truth (pseudo-data)"] = Quantity(str(doc["injected_ht"]), "", "f(HT, nJets) used to make the data")
    if wall_time_s is not None:
        nums["wall time of the whole derivation"] = Quantity(format_duration(wall_time_s), "", "from start to report")
    rep.numbers(nums)
    for w in doc.get("warnings", []) or []:
        rep.warning(str(w))
    rep.section("Closure", doc.get("closure_definition") if isinstance(doc.get("closure_definition"), str) else None)
    header, rows = _closure_table(variations)
    if rows:
        rep.table(header, rows,
                  caption="χ² of data* against the normalised (reweighted) tt+≥1b MC in fixed-width bins; variance = data "
                          "Poisson ⊕ MC stat. (√Σw²). An MC-stat share near 1 means the closure is limited by the MC sample.")
    for v, d in variations.items():
        krows = []
        for b in d.get("njets_bins", []):
            edges, k, ke = b.get("edges_gev", []), b.get("k", []), b.get("k_err", [])
            for i, (kk, ee) in enumerate(zip(k, ke)):
                krows.append([b.get("label", "?"), f"[{edges[i]:.0f}, {edges[i + 1]:.0f})" if i + 1 < len(edges) else "?",
                              f"{kk:.3f} ± {ee:.3f}"])
        if krows:
            rep.table(["nJets bin", "H_T^all bin [GeV]", "k = data*/MC ± stat."], krows,
                      caption="± is the statistical uncertainty of k_i: data* Poisson (√Σw²), plus the MC's √Σw² when the "
                              "config's mcStatError is on (the default).",
                      collapsed=f"{v}: reweighting factors k_i ({len(krows)} bins)")
    rep.section("Plots")
    for v in variations:
        p = out / f"kfactors_{v}.png"
        if p.is_file():
            rep.figure(p, f"{v}: k_i = data*/MC per H_T^all bin (points, ± stat.) with the smooth function and "
                          "its ±1σ band and the KDE ratio, one panel per nJets bin.", wide=True)
    for v in variations:
        p = out / f"data_mc_{v}.png"
        if p.is_file():
            rep.figure(p, f"{v}: data* (data minus the other processes, √Σw² errors) against the normalised MC before and "
                          "after the reweighting; lower panels data*/MC with the MC stat. band (√Σw²/N).", wide=True)
    add_remaining_figures(rep, out)
    return rep.write(out / "report.html")
