"""Plots of the processor's histograms: stacked MC per region and systematic-variation overlays."""

from __future__ import annotations

from pathlib import Path

import hist
import matplotlib.pyplot as plt
import mplhep
import numpy as np

from analysis.plotting import save_figure, use_style

OBSERVABLE_LABEL = {"4j1b": r"$H_T$ [GeV]", "4j2b": r"$m_{bjj}$ [GeV]"}
REGION_TITLE = {"4j1b": r"$\geq$ 4 jets, 1 b-tag", "4j2b": r"$\geq$ 4 jets, $\geq$ 2 b-tags"}
MC_ORDER = ("ttbar", "single_top_tW", "single_top_t_chan", "single_top_s_chan", "wjets")


def stack_plot(h: hist.Hist, region: str, lumi_fb: float | None = None) -> plt.Figure:
    """Nominal MC stacked per process, with the MC statistical uncertainty band."""
    use_style()
    fig, ax = plt.subplots(figsize=(8, 6))
    procs = [p for p in MC_ORDER if p in h.axes["process"] and "nominal" in h.axes["variation"]]
    parts = [h[:, region, p, "nominal"] for p in procs]
    mplhep.histplot(parts, stack=True, histtype="fill", label=procs, ax=ax, edgecolor="grey", linewidth=0.5)
    total = sum(p.values() for p in parts)
    err = np.sqrt(sum(p.variances() for p in parts))
    edges = h.axes["observable"].edges
    ax.stairs(total + err, edges, baseline=total - err, fill=True, alpha=0.3, color="black", hatch="///",
              label="MC stat. unc.")
    ax.set_xlabel(OBSERVABLE_LABEL.get(region, "observable [GeV]"))
    ax.set_ylabel("Events / bin")
    ax.text(0.04, 0.95, REGION_TITLE.get(region, region), transform=ax.transAxes, va="top", fontsize=16)
    ax.legend(frameon=False, fontsize=12)
    ax.set_ylim(0, ax.get_ylim()[1] * 1.15)
    mplhep.label.exp_label(exp="", llabel="Simulation", ax=ax, lumi=lumi_fb, com=13)
    return fig


def variation_plot(h: hist.Hist, region: str, process: str, variations: list[str], title: str) -> plt.Figure:
    """Nominal vs variations of one process, with a ratio-to-nominal panel."""
    use_style()
    fig, (ax, rax) = plt.subplots(2, 1, figsize=(8, 7), sharex=True, gridspec_kw={"height_ratios": (3, 1), "hspace": 0.05})
    nominal = h[:, region, process, "nominal"]
    edges = h.axes["observable"].edges
    mplhep.histplot(nominal, ax=ax, label="nominal", color="black", linewidth=2)
    for v in variations:
        if v not in h.axes["variation"]:
            continue
        hv = h[:, region, process, v]
        mplhep.histplot(hv, ax=ax, label=v, linewidth=1.5)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(nominal.values() > 0, hv.values() / nominal.values(), np.nan)
        rax.stairs(ratio, edges, linewidth=1.5)
    rax.axhline(1.0, color="black", linewidth=1)
    rax.set_ylim(0.8, 1.2)
    rax.set_ylabel("var./nom.")
    rax.set_xlabel(OBSERVABLE_LABEL.get(region, "observable [GeV]"))
    ax.set_ylabel("Events / bin")
    ax.set_xlabel("")  # the ratio panel carries the axis label
    ax.set_title(f"{title}: {process}, {REGION_TITLE.get(region, region)}", fontsize=13)
    ax.legend(frameon=False, fontsize=11)
    return fig


def histogram_plots(h: hist.Hist, out_dir: str | Path, lumi_fb: float | None = None) -> dict[str, Path]:
    """The standard set: stacks per region, b-tag and jet-energy variations of ttbar (PNG + PDF)."""
    out: dict[str, Path] = {}
    for region in h.axes["region"]:
        out[f"stack_{region}"] = save_figure(stack_plot(h, region, lumi_fb), out_dir, f"stack_{region}")[0]
    if "ttbar" in h.axes["process"]:
        btag = [f"btag_var_{i}_up" for i in range(4)]
        out["variations_btag_4j1b"] = save_figure(variation_plot(h, "4j1b", "ttbar", btag, "b-tagging"),
                                                  out_dir, "variations_btag_4j1b")[0]
        jet = ["pt_scale_up", "pt_res_up"]
        out["variations_jet_4j2b"] = save_figure(variation_plot(h, "4j2b", "ttbar", jet, "Jet energy"),
                                                 out_dir, "variations_jet_4j2b")[0]
        model = ["ME_var", "PS_var", "scaleup", "scaledown"]
        out["variations_model_4j2b"] = save_figure(variation_plot(h, "4j2b", "ttbar", model, "ttbar modelling"),
                                                   out_dir, "variations_model_4j2b")[0]
    return out
