"""Plots of the processor's histograms: stacked MC per region and systematic-variation overlays."""

from __future__ import annotations

from pathlib import Path

import hist
import matplotlib.pyplot as plt
import mplhep
import numpy as np

from analysis.plotting import label, ordered_processes, process_style, save_figure, use_style

OBSERVABLE_LABEL = {"4j1b": r"$H_T$ [GeV]", "4j2b": r"$m_{bjj}$ [GeV]"}
REGION_TITLE = {"4j1b": r"$\geq$ 4 jets, 1 b-tag", "4j2b": r"$\geq$ 4 jets, $\geq$ 2 b-tags"}
MC_ORDER = ("ttbar", "wjets", "single_top_s_chan", "single_top_t_chan", "single_top_tW")  # PROCESS_STYLE's order


def stack_plot(h: hist.Hist, region: str, lumi_fb: float | None = None, com: float = 13) -> plt.Figure:
    """Nominal MC stacked per process (PROCESS_STYLE colours and labels), with the MC statistical band (√Σw²)."""
    use_style()
    fig, ax = plt.subplots(figsize=(8, 6))
    present = [p for p in h.axes["process"] if p not in ("data", "pseudodata")]
    procs = [p for p in ordered_processes(present) if "nominal" in h.axes["variation"]]
    parts = [h[:, region, p, "nominal"] for p in procs]
    styles = [process_style(p, index=i) for i, p in enumerate(procs)]
    mplhep.histplot(parts, stack=True, histtype="fill", label=[s[1] for s in styles], color=[s[0] for s in styles],
                    ax=ax, edgecolor="black", linewidth=0.4)
    total = sum(p.values() for p in parts)
    err = np.sqrt(sum(p.variances() for p in parts))
    edges = h.axes["observable"].edges
    ax.stairs(total + err, edges, baseline=total - err, fill=False, hatch="////", color="#555555", linewidth=0,
              label="MC stat. unc. (√Σw²)")
    ax.set_xlabel(OBSERVABLE_LABEL.get(region, "observable [GeV]"))
    ax.set_ylabel("Events / bin")
    ax.text(0.04, 0.95, REGION_TITLE.get(region, region), transform=ax.transAxes, va="top", fontsize=16)
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles[::-1], labels[::-1], frameon=False, fontsize=12)  # legend top-down = stack top-down
    ax.set_ylim(0, ax.get_ylim()[1] * 1.15)
    label(ax, "Simulation", lumi=lumi_fb, com=com)  # the fit's data/model plots carry the same label
    return fig


def ratio_limits(ratios: list[np.ndarray], rel: np.ndarray, floor: float = 0.05, cap: float = 1.0,
                 max_rel: float = 0.25) -> tuple[float, float]:
    """Symmetric ratio-panel limits around 1 showing every ratio and band of the bins whose nominal MC stat.
    uncertainty ``rel`` is at most ``max_rel`` (sparse edge bins may fall outside; they get arrows)."""
    good = np.isfinite(rel) & (rel <= max_rel)
    dev = [np.abs(r[good & np.isfinite(r)] - 1) for r in ratios] + [rel[good]]
    top = max((float(d.max()) for d in dev if d.size), default=floor)
    half = min(max(1.15 * top, floor), cap)
    return 1 - half, 1 + half


def _mark_outside(rax: plt.Axes, centers: np.ndarray, ratio: np.ndarray, lo: float, hi: float, color: str) -> None:
    """Triangles at the panel edge for ratios outside the shown range (nothing silently clipped)."""
    up, down = np.isfinite(ratio) & (ratio > hi), np.isfinite(ratio) & (ratio < lo)
    pad = 0.06 * (hi - lo)
    rax.plot(centers[up], np.full(up.sum(), hi - pad), "^", color=color, ms=7, clip_on=False)
    rax.plot(centers[down], np.full(down.sum(), lo + pad), "v", color=color, ms=7, clip_on=False)


def variation_plot(h: hist.Hist, region: str, process: str, variations: list[str], title: str) -> plt.Figure:
    """Nominal vs variations of one process, with a variation/nominal panel and the nominal's MC stat. band
    (±√Σw²/N per bin); the panel's range adapts so no ratio is clipped (at most ±100 %)."""
    use_style()
    fig, (ax, rax) = plt.subplots(2, 1, figsize=(8, 7), sharex=True, gridspec_kw={"height_ratios": (3, 1), "hspace": 0.05})
    nominal = h[:, region, process, "nominal"]
    edges = h.axes["observable"].edges
    nom = nominal.values()
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(nom > 0, np.sqrt(nominal.variances()) / nom, np.nan)
    ax.stairs(nom + rel * nom, edges, baseline=nom - rel * nom, fill=True, color="grey", alpha=0.35, linewidth=0,
              label="MC stat. unc. of nominal (√Σw²)")
    ax.stairs(nom, edges, label="nominal", color="black", linewidth=2)
    rax.stairs(1 + np.nan_to_num(rel), edges, baseline=1 - np.nan_to_num(rel), fill=True, color="grey", alpha=0.35,
               linewidth=0)
    ratios = []
    for v in variations:
        if v not in h.axes["variation"]:
            continue
        hv = h[:, region, process, v]
        line = ax.stairs(hv.values(), edges, label=v, linewidth=1.5)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(nom > 0, hv.values() / nom, np.nan)
        ratios.append((ratio, line.get_edgecolor()))
    lo, hi = ratio_limits([r for r, _ in ratios], rel)
    centers = 0.5 * (edges[1:] + edges[:-1])
    for ratio, color in ratios:
        rax.stairs(ratio, edges, baseline=None, linewidth=1.5, color=color)
        _mark_outside(rax, centers, ratio, lo, hi, color)
    rax.axhline(1.0, color="black", linewidth=1)
    rax.set_ylim(lo, hi)
    rax.set_ylabel("var./nom.", fontsize=18)
    rax.set_xlabel(OBSERVABLE_LABEL.get(region, "observable [GeV]"))
    ax.set_ylabel("Events / bin")
    ax.set_ylim(0, ax.get_ylim()[1] * 1.1)
    ax.yaxis.set_major_locator(plt.MaxNLocator(nbins=6, prune="lower"))  # no "0" touching the ratio panel
    ax.set_xlabel("")  # the ratio panel carries the axis label
    ax.set_title(f"{title}: {process_style(process)[1]}, {REGION_TITLE.get(region, region)}", fontsize=13)
    ax.legend(frameon=False, fontsize=11)
    return fig


def histogram_plots(h: hist.Hist, out_dir: str | Path, lumi_fb: float | None = None, com: float = 13) -> dict[str, Path]:
    """The standard set: stacks per region, b-tag and jet-energy variations of ttbar (PNG + PDF)."""
    out: dict[str, Path] = {}
    for region in h.axes["region"]:
        out[f"stack_{region}"] = save_figure(stack_plot(h, region, lumi_fb, com), out_dir, f"stack_{region}")[0]
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
