"""Plots of the HT_all reweighting: k_i with the smooth function, its band and the KDE per nJets bin;
data* vs MC before and after the reweighting with ratio panels."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from analysis.plotting import label, save_figure, use_style
from analysis.reweighting.derive import M0, MW2, Derivation, reweighted_fine


def plot_kfactors(der: Derivation, out_dir: str | Path) -> list[Path]:
    """k_i ± σ (bin widths) with the shipped function f, its ±1σ band, the KDE ratio, the populated range and,
    when known, the injected truth; closure χ²/ndf per nJets bin in the panel. One panel per nJets bin."""
    use_style()
    n = len(der.bins)
    fig, axes = plt.subplots(1, n, figsize=(6.5 * n, 6), squeeze=False, sharey=True)
    for ax, b in zip(axes[0], der.bins):
        fn = b.function
        x = np.linspace(b.edges[0], b.edges[-1], 600)
        f, up, down = fn(x), fn(x, "up"), fn(x, "down")
        poly_name = ""
        if fn.poly is not None:
            top = max(e["order"] for e in fn.poly.scan)
            poly_name = (f"AIC-averaged polynomial (orders 0–{top})" if fn.poly.criterion == "aic_average" and top
                         else f"order-{fn.poly.order} polynomial fit")
        name = {"polynomial": poly_name,
                "flat": "flat (one bin)", "exact_integral": "exact-integral C¹ quadratic"}[fn.method]
        ax.axvspan(x[0], fn.x_lo, color="grey", alpha=0.12, lw=0)
        ax.axvspan(fn.x_hi, x[-1], color="grey", alpha=0.12, lw=0, label=f"outside populated range ({fn.out_of_range})")
        ax.fill_between(x, down, up, color="tab:blue", alpha=0.25, label=r"$\pm1\sigma$ (up/down)")
        ax.plot(x, f, color="tab:blue", label="f (nominal)")
        inside = (x >= fn.x_lo) & (x <= fn.x_hi)
        with np.errstate(all="ignore"):
            r, rb = b.kde(x[inside]), b.kde.band(x[inside])
        ax.plot(x[inside], r, color="tab:orange", ls="--", label=f"KDE ratio (h = {b.kde.bandwidth:.0f} GeV)")
        ax.fill_between(x[inside], r - rb, r + rb, color="tab:orange", alpha=0.12)
        if b.truth is not None:
            ax.plot(*b.truth, color="tab:green", lw=2, ls="-.", label="injected truth / its MC mean")
        centers, half = 0.5 * (b.edges[1:] + b.edges[:-1]), 0.5 * np.diff(b.edges)
        ax.errorbar(centers, b.k, xerr=half, yerr=b.k_err, fmt="o", color="black", label=r"$k_i$ = data*/MC")
        ax.axhline(1.0, color="grey", lw=1, ls=":")
        c = b.closure
        ax.text(0.04, 0.04, f"closure $\\chi^2$/ndf: before {c['chi2_before']:.1f}/{c['ndf']}, "
                f"after {c['chi2_smooth']:.1f}/{c['ndf']}", transform=ax.transAxes, fontsize=12)
        ax.set_xlim(x[0], x[-1])
        ax.set_xlabel(r"$H_T^{all}$ [GeV]")
        ax.text(0.96, 0.96, f"{b.label}\n{name}", transform=ax.transAxes, ha="right", va="top", fontsize=14)
        label(ax, "Data")
        if b.clipping:
            ax.axhline(fn.bounds[0], color="red", lw=1, ls="--")
    grid = [np.linspace(b.edges[0], b.edges[-1], 200) for b in der.bins]
    lo = min(min(float(np.min(b.k - 2 * b.k_err)), float(b.function(x, "down").min())) for b, x in zip(der.bins, grid))
    hi = max(max(float(np.max(b.k + 2 * b.k_err)), float(b.function(x, "up").max())) for b, x in zip(der.bins, grid))
    lo, hi = max(lo, 0.0), min(hi, 3.0)
    axes[0][0].set_ylim(max(0.0, lo - 0.1), hi + 0.35 * (hi - lo) + 0.1)
    axes[0][0].set_ylabel("Reweighting factor")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=13, loc="upper center", ncol=4, bbox_to_anchor=(0.5, -0.05), frameon=False)
    fig.subplots_adjust(wspace=0.14)
    return save_figure(fig, out_dir, f"kfactors_{der.variation}")


def plot_data_mc(der: Derivation, out_dir: str | Path) -> list[Path]:
    """data* vs normalised MC before and after the reweighting (fine bins merged ×5), ratio panel below."""
    use_style()
    n = len(der.bins)
    fig, axes = plt.subplots(2, n, figsize=(7 * n, 8), squeeze=False, sharex="col",
                             gridspec_kw={"height_ratios": [3, 1], "hspace": 0.05, "wspace": 0.2})
    for col, b in enumerate(der.bins):
        mm, s = b.fine["mc"], b.fine["norm"]
        fine_edges = b.fine["fine_edges"]
        step = 5
        m = len(mm[M0]) // step * step
        rb = lambda a: a[:m].reshape(-1, step).sum(axis=1)  # noqa: E731
        edges = fine_edges[: m + 1 : step]
        lo, hi = b.edges[0], b.edges[-1]
        keep = (edges[:-1] >= lo - 1e-9) & (edges[1:] <= hi + 1e-9)
        d, dv = rb(b.fine["dstar"])[keep], rb(b.fine["var_dstar"])[keep]
        before, after = s * rb(mm[M0])[keep], s * rb(reweighted_fine(b, fine_edges))[keep]
        e = np.concatenate([edges[:-1][keep], edges[1:][keep][-1:]])
        c = 0.5 * (e[1:] + e[:-1])
        top, bot = axes[0][col], axes[1][col]
        top.stairs(before, e, color="tab:red", label="MC (normalised), before")
        top.stairs(after, e, color="tab:blue", label="MC × f, after")
        top.errorbar(c, d, yerr=np.sqrt(np.clip(dv, 0, None)), fmt="o", color="black", label="data* = data − other MC")
        if col == 0:
            top.set_ylabel("Events / bin")
        top.text(0.96, 0.96, b.label, transform=top.transAxes, ha="right", va="top", fontsize=16)
        label(top, "Data")
        with np.errstate(all="ignore"):
            for pred, color in ((before, "tab:red"), (after, "tab:blue")):
                ok = pred > 0
                bot.errorbar(c[ok], d[ok] / pred[ok], yerr=np.sqrt(np.clip(dv[ok], 0, None)) / pred[ok], fmt="o", ms=4,
                             color=color)
            mc_rel = np.nan_to_num(np.sqrt(s * s * rb(mm[MW2])[keep]) / before)
        bot.fill_between(e, np.append(1 - mc_rel, (1 - mc_rel)[-1:]), np.append(1 + mc_rel, (1 + mc_rel)[-1:]),
                         step="post", color="grey", alpha=0.3, label="MC stat.")
        bot.axhline(1.0, color="grey", lw=1)
        bot.set_ylim(0.5, 1.5)
        bot.set_xlabel(r"$H_T^{all}$ [GeV]")
        if col == 0:
            bot.set_ylabel("data*/MC")
    axes[0][0].legend(fontsize=12)
    return save_figure(fig, out_dir, f"data_mc_{der.variation}")


def plot_all(derivations: dict[str, Derivation], out_dir: str | Path) -> list[Path]:
    """k-factor plots for every sample variation, data/MC before/after for the nominal one."""
    paths: list[Path] = []
    for der in derivations.values():
        paths += plot_kfactors(der, out_dir)
    if "nominal" in derivations:
        paths += plot_data_mc(derivations["nominal"], out_dir)
    return paths
