"""Report builder (self-contained HTML), process style map shared by every plot, readable correlation selection,
and the reports built from hand-made output files (tolerant of old and new keys)."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import hist
import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from analysis.errors import AnalysisError, UserError  # noqa: E402
from analysis.plotting import (PROCESS_STYLE, cabinetry_colors, correlation_selection, process_key,  # noqa: E402
                               process_style, restyle_data_mc, save_figure, TOTAL_UNCERTAINTY_LABEL)
from analysis.report import Quantity, Report, fmt, format_duration, pm  # noqa: E402


def _png(directory: Path, stem: str, color: str = "red") -> Path:
    """A small real PNG."""
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [0, 1], color=color)
    return save_figure(fig, directory, stem, ("png",))[0]


def _embedded(html: str, png: Path) -> bool:
    """The PNG's exact bytes are in the page as a data URI."""
    return f"data:image/png;base64,{base64.b64encode(png.read_bytes()).decode()}" in html


def _external_refs(html: str) -> list[str]:
    """src/href values that are not data URIs (a self-contained page has none)."""
    return [v for v in re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", html) if not v.startswith("data:")]


def test_builder_is_self_contained_and_escapes(tmp_path: Path) -> None:
    a, b = _png(tmp_path, "alpha"), _png(tmp_path, "beta", "blue")
    rep = Report("Title <&>", subtitle="sub")
    rep.section("Numbers", "Explanation")
    rep.numbers({"mass": Quantity(125.1234, "GeV", "best fit", error=0.2345, error_meaning="fit, 68 % CL"),
                 "events": (1234, "events"), "plain": "text <b>"})
    rep.table(["a", "b"], [[1, 2.5], ["<x>", None]], caption="cap", collapsed="click")
    rep.figure(a, "first plot")
    rep.figure(b, "second plot", wide=True)
    out = rep.write(tmp_path / "sub" / "report.html")
    html = out.read_text()
    assert html.startswith("<!doctype html>") and html.rstrip().endswith("</html>")
    assert _external_refs(html) == [] and "<link" not in html and "<script" not in html
    assert _embedded(html, a) and _embedded(html, b) and rep.figures == [a, b]
    assert "Title &lt;&amp;&gt;" in html and "&lt;x&gt;" in html and "text &lt;b&gt;" in html
    assert "125.12 ± 0.23" in html and "± fit, 68 % CL; best fit" in html and "GeV" in html
    assert "first plot" in html and "<details><summary>click</summary>" in html and "class='wide'" in html
    assert html.count("<div class='plots'>") == 1 and html.count("</div>") == 1


def test_figure_must_exist_and_be_png(tmp_path: Path) -> None:
    rep = Report("x")
    with pytest.raises(AnalysisError, match="not found"):
        rep.figure(tmp_path / "missing.png", "c")
    (tmp_path / "a.pdf").write_bytes(b"%PDF")
    with pytest.raises(UserError, match="PNG"):
        rep.figure(tmp_path / "a.pdf", "c")


def test_number_formatting() -> None:
    assert pm(1.0670219, 0.0178226) == "1.067 ± 0.018"
    assert pm(668.8089, 4.7938, "fit") == "668.8 ± 4.8 (fit)"
    assert pm(32.363, 4.1029) == "32.4 ± 4.1"
    assert fmt(450000) == "450\u2009000" and fmt(None) == "–" and fmt(True) == "yes" and fmt(2.5e-5) == "2.500e-05"
    assert format_duration(463.2) == "463 s (7 min 43 s)" and format_duration(18.08) == "18.1 s"


def test_correlation_selection_drops_staterror_and_weak() -> None:
    labels = ["mu", "a", "b", "c", "staterror_SR[0]", "staterror_SR[1]"]
    c = np.eye(6)
    c[1, 2] = c[2, 1] = 0.5    # a–b correlated
    c[0, 4] = c[4, 0] = 0.9    # POI with a staterror: ignored (staterror excluded)
    c[3, 1] = c[1, 3] = 0.05   # c only weakly correlated
    info = correlation_selection(labels, c, threshold=0.1, keep=("mu",))
    assert info["shown"] == ["mu", "a", "b"]
    assert info["excluded_prefix"] == 2 and info["below_threshold"] == 1 and info["over_limit"] == 0
    info = correlation_selection(labels, c, threshold=0.1, max_parameters=2, keep=("mu",))
    assert info["shown"] == ["mu", "a"] and info["over_limit"] == 1


CONFIG = {"Samples": [{"Name": "Pseudodata", "SamplePath": "pseudodata", "Data": True},
                      {"Name": "ttbar", "SamplePath": "ttbar"}, {"Name": "W+jets", "SamplePath": "wjets"},
                      {"Name": "tW", "SamplePath": "single_top_tW"}, {"Name": "exotic", "SamplePath": "zprime"}]}


def test_one_style_for_stacks_and_cabinetry_figures() -> None:
    """ttbar and W+jets get the same colour and label in our stack and in cabinetry's data/MC figure."""
    from cabinetry.visualize.plot_model import data_mc

    from analysis.agc.plots import stack_plot

    assert process_key("W+jets", CONFIG) == "wjets" and process_key("wjets") == "wjets"
    assert process_key(r"$t\bar{t}$") == "ttbar" and process_key("exotic", CONFIG) == "exotic"
    colors = cabinetry_colors(CONFIG)
    assert colors["ttbar"] == PROCESS_STYLE["ttbar"][0] and colors["W+jets"] == PROCESS_STYLE["wjets"][0]
    assert colors["exotic"] not in {c for c, _ in PROCESS_STYLE.values()}

    h = hist.Hist(hist.axis.Regular(4, 0, 4, name="observable"), hist.axis.StrCategory(["4j1b"], name="region"),
                  hist.axis.StrCategory(["ttbar", "wjets"], name="process"),
                  hist.axis.StrCategory(["nominal"], name="variation"), storage=hist.storage.Weight())
    h.fill(observable=[0.5, 1.5, 1.5], region="4j1b", process="ttbar", variation="nominal")
    h.fill(observable=[2.5], region="4j1b", process="wjets", variation="nominal")
    fig = stack_plot(h, "4j1b")
    legend = {t.get_text(): patch for t, patch in zip(fig.axes[0].get_legend().get_texts(),
                                                      fig.axes[0].get_legend().legend_handles)}
    stack_colour = {lab: matplotlib.colors.to_hex(p.get_facecolor()) for lab, p in legend.items() if "stat" not in lab}
    assert stack_colour == {PROCESS_STYLE["ttbar"][1]: PROCESS_STYLE["ttbar"][0],
                            PROCESS_STYLE["wjets"][1]: PROCESS_STYLE["wjets"][0]}
    plt.close(fig)

    samples = [{"label": "ttbar", "isData": False, "yields": np.array([3.0, 2.0]), "variable": "x"},
               {"label": "W+jets", "isData": False, "yields": np.array([1.0, 1.0]), "variable": "x"},
               {"label": "Pseudodata", "isData": True, "yields": np.array([4.0, 3.0]), "variable": "x"}]
    cfig = data_mc(samples, np.array([0.5, 0.5]), np.array([0.0, 1.0, 2.0]), colors=colors)
    restyle_data_mc(cfig, CONFIG)
    ax = cfig.axes[0]
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert PROCESS_STYLE["ttbar"][1] in texts and "W+jets" in texts and TOTAL_UNCERTAINTY_LABEL in texts
    bar_colours = {matplotlib.colors.to_hex(c.patches[0].get_facecolor()) for c in ax.containers
                   if hasattr(c, "patches") and c.patches[0].get_fill()}
    assert {PROCESS_STYLE["ttbar"][0], PROCESS_STYLE["wjets"][0]} <= bar_colours
    assert process_style("zprime", index=0)[1] == "zprime"
    plt.close(cfig)


def test_ratio_limits_show_every_populated_ratio() -> None:
    from analysis.agc.plots import ratio_limits

    rel = np.array([0.01, 0.02, 0.9])          # the last bin is sparse
    lo, hi = ratio_limits([np.array([1.3, 0.95, 3.0])], rel)
    assert lo == pytest.approx(1 - 1.15 * 0.3) and hi == pytest.approx(1 + 1.15 * 0.3)
    assert ratio_limits([np.array([1.001, 1.0, np.nan])], rel) == pytest.approx((0.95, 1.05))  # floor ±5 %


# --------------------------------------------------------------------------------------------- reports from files
FIT_RESULTS = {
    "poi": "ttbar_norm", "poi_bestfit": 1.0670219, "poi_uncertainty": 0.0178226,
    "labels": ["JES", "ttbar_norm", "lumi", "staterror_SR[0]"], "bestfit": [0.1, 1.067, -0.2, 1.0],
    "uncertainty": [0.9, 0.018, 0.95, 0.01],
    "correlation": [[1, 0.4, 0.01, 0.3], [0.4, 1, 0.02, 0.1], [0.01, 0.02, 1, 0.0], [0.3, 0.1, 0.0, 1]],
    "minus_two_log_likelihood": 209.8, "goodness_of_fit_p_value": -1,
    "significance": {"observed": 65.37, "expected": 71.43},
    "upper_limit_95cl": {"observed": 1.288, "expected": [0.0029, 0.0040, 0.0057, 0.0082, 0.0117]},
    "ranking": [{"parameter": "JES", "postfit_impact_up": 0.0211, "postfit_impact_down": -0.0207}],
    "timing_s": {"fit": 2.7, "limit": 57.4},
    # keys of the reworked statistics core (shown when present)
    "poi_interval": {"minos_lower": -0.0181, "minos_upper": 0.0176},
    "fit_quality": {"ok": True, "warnings": []}, "future_key": {"anything": 1},
}


def test_fit_report_from_files(tmp_path: Path) -> None:
    from analysis.agc.report import write_fit_report

    (tmp_path / "fit_results.json").write_text(json.dumps(FIT_RESULTS))
    ws = {"channels": [{"name": "SR", "samples": [
        {"name": "ttbar", "data": [10.0, 20.0], "modifiers": [{"type": "staterror", "name": "staterror_SR", "data": [3.0, 4.0]}]},
        {"name": "W+jets", "data": [1.0, 2.0], "modifiers": []}]}],
        "observations": [{"name": "SR", "data": [12, 21]}]}
    (tmp_path / "workspace.json").write_text(json.dumps(ws))
    pngs = [_png(tmp_path, s) for s in ("pulls", "correlation_matrix", "SR_prefit", "SR_postfit", "mystery")]
    html = write_fit_report(tmp_path, wall_time_s=463.0).read_text()
    assert "ttbar_norm = 1.067 -0.018 / +0.018 (MINOS, 68 % CL); ± 0.018 (HESSE, 68 % CL)" in html
    assert "463 s (7 min 43 s)" in html and "not computed" in html and "65.37" in html
    assert "30.0 ± 5.0" in html and "33" in html           # ttbar 10+20 ± √(3²+4²); observed 12+21
    assert "2 parameters (systematics and the POI). Not shown: 1 per-bin MC-stat parameters" in html
    assert "1 parameters whose |ρ| with every other stays below 0.1" in html  # lumi
    assert all(_embedded(html, p) for p in pngs) and _external_refs(html) == []


DERIVATION = {
    "correction_file": "out/ht_reweighting.json", "settings": {"jet_pt_gev": 25.0, "process": "ttbar"},
    "injected_ht": "1 + 0.0005*HT", "closure_definition": "chi2 of data* vs MC",
    "variations": {
        "nominal": {"mc_to_data_norm": 0.9731, "njets_bins": [
            {"label": "5 jets", "edges_gev": [300.0, 400.0, 600.0], "k": [1.1, 1.2], "k_err": [0.05, 0.07],
             "closure": {"ndf": 12, "chi2_before": 40.2, "chi2_spline": 11.5, "chi2_kde": 12.9, "mc_stat_fraction": 0.31}}]},
        "PS_var": {"mc_to_data_norm": 1.01, "normalisation": {"blocks": []}, "warnings": ["w1"], "njets_bins": [
            {"label": "5 jets", "edges_gev": [300.0, 600.0], "k": [1.0], "k_err": [0.1],
             "closure": {"ndf": 12, "chi2_before": 30.0, "chi2_smooth": 14.0, "chi2_kde": 15.0, "p_smooth": 0.3}}]}},
    "warnings": ["a clipping warning"], "method": {"smoothing": "polynomial", "description": "WLS polynomials"},
}


def test_reweight_report_from_files(tmp_path: Path) -> None:
    from analysis.reweighting.report import write_reweight_report

    (tmp_path / "derivation.json").write_text(json.dumps(DERIVATION))
    pngs = [_png(tmp_path, s) for s in ("kfactors_nominal", "kfactors_PS_var", "data_mc_nominal", "extra_plot")]
    html = write_reweight_report(tmp_path, wall_time_s=12.0).read_text()
    assert "0.9731" in html and ">11.5/12</td>" in html and ">14.0/12</td>" in html and "χ²/ndf after, smooth function" in html
    assert ">40.2/12</td>" in html and "a clipping warning" in html and "WLS polynomials" in html
    assert "1.100 ± 0.050" in html and "[300, 400)" in html
    assert all(_embedded(html, p) for p in pngs)


def test_reports_name_the_missing_file(tmp_path: Path) -> None:
    from analysis.ml.report import write_ml_report
    from analysis.recast.report import write_reinterpret_report
    from analysis.resonance.report import write_ftest_report, write_search_report

    for call, name in ((lambda: write_search_report(tmp_path), "results.json"),
                       (lambda: write_ftest_report(tmp_path), "summary.json"),
                       (lambda: write_reinterpret_report(tmp_path / "r.json"), "r.json"),
                       (lambda: write_ml_report(tmp_path), "metrics.json")):
        with pytest.raises(UserError, match=name):
            call()


def test_fit_data_mc_plots_say_events_per_bin(tmp_path):
    """The pre/post-fit data/model plots label their y axis "Events / bin", as the run's stack plots do."""
    import cabinetry
    import matplotlib

    matplotlib.use("Agg")
    from analysis.plotting import data_mc_figures

    config = {"General": {"Measurement": "m", "POI": "mu", "InputPath": "x.root:{RegionPath}", "HistogramFolder": str(tmp_path)},
              "Regions": [{"Name": "SR", "Variable": "m_bjj [GeV]", "Binning": [0.0, 1.0, 2.0]}],
              "Samples": [{"Name": "Data", "Data": True, "SamplePath": "data"}, {"Name": "ttbar", "SamplePath": "ttbar"}],
              "NormFactors": [{"Name": "mu", "Samples": "ttbar", "Nominal": 1, "Bounds": [0, 10]}]}
    spec = {"channels": [{"name": "SR", "samples": [{"name": "ttbar", "data": [10.0, 5.0], "modifiers": [
        {"name": "mu", "type": "normfactor", "data": None}]}]}],
        "observations": [{"name": "SR", "data": [11.0, 4.0]}],
        "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}], "version": "1.0.0"}
    model, data = cabinetry.model_utils.model_and_data(spec)
    figs = data_mc_figures(cabinetry.model_utils.prediction(model), data, config, figure_folder=tmp_path,
                           save_figure=False, close_figure=False)
    assert [item["figure"].axes[0].get_ylabel() for item in figs] == ["Events / bin"]


def test_total_uncertainty_label_renders_without_missing_glyphs(tmp_path):
    """The band's legend label draws with the CMS style's fonts: no "Glyph … missing" warning (⊕ via mathtext)."""
    import warnings

    import mplhep

    with plt.style.context(mplhep.style.CMS), warnings.catch_warnings():
        warnings.simplefilter("error")  # a missing glyph is a UserWarning from the renderer
        fig, ax = plt.subplots()
        ax.plot([0, 1], [0, 1], label=TOTAL_UNCERTAINTY_LABEL)
        ax.legend()
        fig.savefig(tmp_path / "label.png")
        plt.close(fig)
