"""Report of ``ana reinterpret``, built from its results.json and the plots it lists.

The page goes next to results.json (``DIR/report.html``); the limit and spectrum plots are taken from the
``outputs`` recorded in results.json (they may live elsewhere) plus every PNG in DIR. Unknown keys are ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from analysis.report import Quantity, Report, add_remaining_figures, format_duration, read_json

BANDS = ("−2σ", "−1σ", "median", "+1σ", "+2σ")


def _expected_rows(res: dict[str, Any]) -> list[list[Any]]:
    """Expected μ (and σ) limits per band."""
    mu = res.get("mu_upper_limit_expected") or []
    xs = res.get("cross_section_upper_limit_expected_pb") or [None] * len(mu)
    cls = res.get("cls_expected_at_mu_1") or [None] * len(mu)
    return [[BANDS[i] if i < len(BANDS) else i, f"{m:.4g}", "–" if x is None else f"{x:.4g}",
             "–" if c is None else f"{c:.4g}"] for i, (m, x, c) in enumerate(zip(mu, xs, cls))]


def write_reinterpret_report(results_json: str | Path, wall_time_s: float | None = None) -> Path:
    """Write ``report.html`` next to ``results_json`` (from ``ana reinterpret``).

    Args:
        results_json: the results file the reinterpretation wrote.
        wall_time_s: wall time of the whole step in seconds (shown when given).

    Returns:
        The report path.

    Raises:
        AnalysisError: results.json is missing or unreadable.
    """
    rj = Path(results_json)
    res = read_json(rj)
    out = rj.parent
    poi = res.get("poi", "mu")
    cl = res.get("confidence_level", 0.95)
    rep = Report("Reinterpretation (RECAST): CLs limit on a new signal", subtitle=f"results: {rj}")
    rep.section("Result")
    obs, exp = res.get("mu_upper_limit_observed"), res.get("mu_upper_limit_expected") or []
    head = f"{cl:.0%} CL upper limit on {poi}: observed {obs:.4g}"
    if len(exp) == 5:
        head += f", expected {exp[2]:.4g} (±1σ [{exp[1]:.4g}, {exp[3]:.4g}])"
    rep.headline(head)
    excluded = res.get("signal_excluded_at_mu_1")
    nums: dict[str, Any] = {
        f"signal hypothesis {poi} = 1": Quantity("excluded" if excluded else "not excluded", "",
                                         f"observed CLs = {res.get('cls_observed_at_mu_1', float('nan')):.4g} "
                                         f"{'<' if excluded else '≥'} {1 - cl:.2g}"),
        "test statistic / calculator": Quantity(f"{res.get('test_statistic')} / {res.get('calculator')}", "",
                                                res.get("limit_method", "")),
        "hypothesis tests": Quantity(res.get("n_hypotests"), "", f"{poi} in [0, {res.get('poi_max', float('nan')):.4g}]"),
    }
    quality = res.get("fit_quality") or {}
    if quality:  # the guarded free fit (analysis.stats): never a silent number
        nums["free fit quality"] = Quantity("ok" if quality.get("ok") else "FAILED", "",
                                            "; ".join(quality.get("warnings", [])) or ", ".join(quality.get("attempts", [])))
    pruned = (res.get("controls") or {}).get("pruned") or []
    if pruned:
        nums["pruned modifiers"] = Quantity(", ".join(pruned), "", "near-degenerate or --prune")
    for i, w in enumerate(res.get("warnings") or []):
        nums[f"note {i + 1}"] = Quantity(w, "", "")
    if res.get("signal_cross_section_pb") is not None:
        nums["signal cross-section (μ = 1)"] = Quantity(res["signal_cross_section_pb"], "pb", "as given with --xsec")
        nums["cross-section limit, observed"] = Quantity(res.get("cross_section_upper_limit_observed_pb"), "pb",
                                                         f"{cl:.0%} CL = σ × μ limit")
    y = res.get("yields") or {}
    for key, text in (("data", "observed events"), ("background", "background (pre-fit nominal)"),
                      ("signal_mu_1", f"signal events at {poi} = 1")):
        if key in y:
            nums[text] = Quantity(y[key], "events", "sum over all bins")
    rep.numbers(nums)
    rep.table(["expected band", f"{poi} limit", "σ limit [pb]", f"expected CLs at {poi} = 1"], _expected_rows(res),
              caption="Expected limits under the background-only hypothesis: median and the ±1σ/±2σ quantiles "
                      "(asymptotic formulae).")
    inp = res.get("inputs") or {}
    if inp:
        rep.table(["input", "value"], [[k, ", ".join(map(str, v)) if isinstance(v, list) else v]
                                      for k, v in inp.items() if k != "bin_edges"],
                  caption="Inputs (background normalisation uncertainty as a fraction; MC stat. from the "
                          "background histogram's Σw²).", collapsed="inputs")
    scan = res.get("cls_scan") or {}
    if scan.get("mu"):
        rows = [[f"{m:.4g}", f"{o:.4g}"] + [f"{e[2]:.4g}"] for m, o, e in zip(scan["mu"], scan["observed"], scan["expected"])]
        rep.table([poi, "CLs observed", "CLs expected (median)"], rows, collapsed=f"CLs scan ({len(rows)} points)")
    if wall_time_s is not None:
        rep.section("Run")
        rep.numbers({"wall time of the whole step": Quantity(format_duration(wall_time_s), "", "from start to report")})
    outputs = res.get("outputs") or {}
    rep.section("Plots")
    captions = {
        "limit_plot": f"CLs versus {poi}: observed (points), expected median (dashed) with ±1σ/±2σ bands; the red line "
                      f"is CLs = {1 - cl:.2g} ({cl:.0%} CL), the dotted line the observed limit.",
        "spectrum_plot": "Observed data (√N errors), stacked background and signal at μ = 1, and background + signal at "
                         "the observed limit (dashed). Hatched: background uncertainty (normalisation ⊕ MC stat.); lower "
                         "panel data/background.",
    }
    for kind, cap in captions.items():
        for path in outputs.get(kind, []):
            p = Path(path)
            if p.suffix.lower() == ".png" and p.is_file():
                rep.figure(p, cap)
    add_remaining_figures(rep, out)
    return rep.write(out / "report.html")
