"""Plots of the diphoton search: variables, m_γγ fit with residuals, p-value scan, Brazil band, S+B fit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from analysis.plotting import label, save_figure, use_style
from analysis.resonance.likelihood import ParametricModel
from analysis.resonance.signal_model import dscb_pdf
from analysis.stats.plots import expected_bands

UNITS = {"n_jets": "", "n_leptons": "", "photon1_isolation": "", "photon2_isolation": "",
         "average_jet_pT": " [GeV]", "lead_jets_dPhi": " [rad]", "missing_energy": ""}  # tutorial files: missing_energy ~0-1, not GeV


VARIABLE_LABEL = {"n_jets": "number of jets", "n_leptons": "number of leptons",
                  "photon1_isolation": "photon 1 isolation", "photon2_isolation": "photon 2 isolation",
                  "average_jet_pT": r"average jet $p_T$", "lead_jets_dPhi": r"$\Delta\phi$(leading jets)",
                  "missing_energy": "missing energy"}


def plot_variables(out: Path, sig_s: dict, bkg_s: Any, cuts: dict, lumi_fb: float) -> list[Path]:
    """Unit-normalised distributions of the selection variables: background vs each signal mass, with cuts."""
    names = [v for v in UNITS if v in bkg_s.features]
    ncol = 3
    nrow = int(np.ceil(len(names) / ncol))
    with plt.rc_context({"font.size": 14, "axes.labelsize": 15, "xtick.labelsize": 12, "ytick.labelsize": 12}):
        fig, axes = plt.subplots(nrow, ncol, figsize=(5.5 * ncol, 4.3 * nrow), layout="constrained")
        for k, (ax, var) in enumerate(zip(np.ravel(axes), names)):
            pooled = np.concatenate([bkg_s.features[var]] + [s.features[var] for s in sig_s.values()])
            if var in ("n_jets", "n_leptons"):
                bins = np.arange(-0.5, min(np.max(pooled), 15) + 1.5)
            else:
                bins = np.linspace(*np.percentile(pooled, [0.5, 99.5]), 40)
            ax.hist(bkg_s.features[var], bins=bins, density=True, histtype="stepfilled", alpha=0.4, color="grey",
                    label="Background (sim.)")
            for m, s in sig_s.items():
                ax.hist(s.features[var], bins=bins, density=True, histtype="step", lw=2, label=f"X({m:g} GeV)")
            for key, val in cuts.get(var, {}).items():
                ax.axvline(val, color="red", ls="--", lw=1.5, label="optimised cut" if key == next(iter(cuts[var])) else None)
            ax.set_xlabel(VARIABLE_LABEL.get(var, var) + UNITS[var])
            if k % ncol == 0:
                ax.set_ylabel("Fraction / unit")
            ax.set_ylim(0, ax.get_ylim()[1] * 1.3)
        for ax in np.ravel(axes)[len(names):]:
            ax.set_visible(False)
        handles, labels = np.ravel(axes)[0].get_legend_handles_labels()
        for ax in np.ravel(axes)[: len(names)]:  # the cut line may be missing from the first panel
            for h, lab in zip(*ax.get_legend_handles_labels()):
                if lab not in labels:
                    handles.append(h)
                    labels.append(lab)
        fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), fontsize=14, frameon=False)
        fig.suptitle(f"Selection variables, simulation normalised to unit area ({lumi_fb:g} fb$^{{-1}}$ analysis)",
                     fontsize=16)
    return save_figure(fig, out, "variables")


def _data_points(ax: plt.Axes, centers: np.ndarray, counts: np.ndarray, show: np.ndarray, width: np.ndarray) -> None:
    ax.errorbar(centers[show], counts[show], yerr=np.sqrt(counts[show]), xerr=0.5 * width[show], fmt="ko", ms=3, label="Data")


def plot_mass_fit(out: Path, edges: np.ndarray, counts: np.ndarray, side: np.ndarray, blind: tuple | None,
                  b_exp: np.ndarray, family: str, lumi_fb: float, stem: str = "mass_fit",
                  signal: np.ndarray | None = None, signal_label: str = "", sb: np.ndarray | None = None,
                  sb_label: str = "S+B fit", com: float = 13.0) -> list[Path]:
    """m_γγ spectrum with the background fit (and optional signal / S+B curve) and a residual panel."""
    centers = 0.5 * (edges[1:] + edges[:-1])
    width = np.diff(edges)
    fig, (ax, rax) = plt.subplots(2, 1, figsize=(10, 9), sharex=True, gridspec_kw={"height_ratios": [3, 1], "hspace": 0.05})
    _data_points(ax, centers, counts, side, width)
    ax.stairs(b_exp, edges, color="tab:blue", lw=2, label=f"Background fit ({family})")
    ax.fill_between(centers, b_exp - np.sqrt(b_exp), b_exp + np.sqrt(b_exp), step="mid", color="tab:blue", alpha=0.2,
                    label=r"$\pm B^{1/2}$ (Poisson)")
    if sb is not None:
        ax.stairs(sb, edges, color="tab:red", lw=2, label=sb_label)
    if signal is not None:
        ax.stairs(signal, edges, color="tab:orange", lw=2, ls="--", label=signal_label)
    if blind is not None:
        for a in (ax, rax):
            a.axvspan(*blind, color="k", alpha=0.08)
        ax.text(0.5 * (blind[0] + blind[1]), 0.8 * ax.get_ylim()[1] if ax.get_yscale() == "linear" else 1, "BLINDED",
                ha="center", fontsize=14)
    ax.set_yscale("log")
    ax.set_ylim(max(0.1, 0.5 * np.min(b_exp)), 20 * max(np.max(counts), np.max(b_exp)))
    ax.set_ylabel(f"Events / {width[0]:g} GeV")
    ax.legend(fontsize=12)
    label(ax, "Data", lumi=lumi_fb, com=com)
    pull = np.where(side, (counts - b_exp) / np.sqrt(np.clip(b_exp, 1e-9, None)), np.nan)
    rax.bar(centers[side], pull[side], width=width[side], color="grey")
    if sb is not None:
        rax.stairs((sb - b_exp) / np.sqrt(np.clip(b_exp, 1e-9, None)), edges, color="tab:red", lw=2)
    rax.axhline(0, color="k", lw=1)
    rax.set_ylabel(r"(Data$-$B)/$B^{1/2}$")
    rax.set_xlabel(r"$m_{\gamma\gamma}$ [GeV]")
    rax.set_ylim(-4, 4)
    return save_figure(fig, out, stem)


def plot_pvalue_scan(out: Path, grid: np.ndarray, expected_z: list[float], scan: dict | None, xsec: float, lumi_fb: float,
                     com: float = 13.0) -> list[Path]:
    """Local p-value versus mass: observed (when unblinded) and expected for the nominal cross-section."""
    from scipy import stats

    fig, ax = plt.subplots(figsize=(10, 7))
    ax.plot(grid, stats.norm.sf(np.asarray(expected_z)), "b--", label=f"Expected, σ = {xsec:g} pb")
    if scan is not None:
        ax.plot(grid, np.clip(scan["p_local"], 1e-300, 1), "k-", lw=2, label="Observed")
    lo = 1e-7
    for z in range(1, 6):
        p = stats.norm.sf(z)
        ax.axhline(p, color="red", lw=0.8, ls=":")
        ax.text(grid[-1], p, f" {z}σ", color="red", va="center")
        lo = min(lo, p / 10)
    ymin = min(lo, 0.1 * np.min(stats.norm.sf(np.asarray(expected_z)))) if scan is None else min(lo, 0.1 * max(np.min(scan["p_local"]), 1e-300))
    ax.set_yscale("log")
    ax.set_ylim(max(ymin, 1e-60), 2)
    ax.set_xlabel(r"$m_X$ [GeV]")
    ax.set_ylabel(r"Local $p_0$")
    ax.legend()
    label(ax, "Data" if scan is not None else "Simulation", lumi=lumi_fb, com=com)
    return save_figure(fig, out, "pvalue_scan")


def plot_limits(out: Path, limits: dict, xsec: float, lumi_fb: float, com: float = 13.0) -> list[Path]:
    """Brazil-band plot of the 95 % CL CLs upper limits on σ(pp→X)."""
    m = np.asarray(limits["mass_gev"])
    b1 = np.asarray(limits["expected_1sigma_pb"])
    b2 = np.asarray(limits["expected_2sigma_pb"])
    fig, ax = plt.subplots(figsize=(10, 7))
    expected_bands(ax, m, limits["expected_pb"], b1, b2, observed=limits.get("observed_pb"), observed_marker="o")
    ax.axhline(xsec, color="tab:red", ls=":", label=f"Reference σ = {xsec:g} pb")
    ax.set_yscale("log")
    ax.set_xlabel(r"$m_X$ [GeV]")
    ax.set_ylabel(r"95% CL limit on $\sigma(pp\to X)$ [pb]")
    ax.legend()
    label(ax, "Data" if limits.get("observed_pb") is not None else "Simulation", lumi=lumi_fb, com=com)
    return save_figure(fig, out, "limits")


def plot_signal_model(out: Path, sig_sel: dict, fits: list[dict], com: float = 13.0) -> list[Path]:
    """Selected signal m_γγ per simulated mass with the fitted double-sided Crystal Ball."""
    fig, ax = plt.subplots(figsize=(10, 7))
    for f in fits:
        m0 = f["mass_point_gev"]
        x = sig_sel[m0]["mass"]
        bins = np.linspace(m0 * 0.65, m0 * 1.35, 70)
        h, _ = np.histogram(x, bins)
        c = 0.5 * (bins[1:] + bins[:-1])
        ax.errorbar(c, h, np.sqrt(h), fmt="o", ms=3, label=f"X({m0:g}) sim.")
        xx = np.linspace(bins[0], bins[-1], 400)
        pdf = dscb_pdf(xx, f["mean"], f["sigma"], f["alpha_l"], f["n_l"], f["alpha_r"], f["n_r"])
        ax.plot(xx, pdf * len(x) * np.diff(bins)[0], "-", lw=2, label=f"DSCB: σ = {f['sigma']:.1f} GeV")
    ax.set_xlabel(r"$m_{\gamma\gamma}$ [GeV]")
    ax.set_ylabel("Selected events / bin")
    ax.legend(fontsize=11, ncol=2)
    label(ax, "Simulation", com=com)
    return save_figure(fig, out, "signal_model")


def make_all(out: Path, *, cfg: Any, edges: np.ndarray, counts: np.ndarray, side: np.ndarray, blind: tuple | None,
             b_exp: np.ndarray, sig_s: dict, bkg_s: Any, selection: Any, sel_report: dict, smodel: Any,
             sig_fits: list, sig_sel: dict, grid: np.ndarray, templates: np.ndarray, expected_z: list, scan: dict | None,
             limits: dict, results: dict, meas: dict | None, profiler: Any, bounds: np.ndarray) -> list[Path]:
    """Write every plot of the search; data inside the blind window are never drawn (they were never read)."""
    use_style()
    out = Path(out)
    lumi, com = cfg.luminosity_fb, getattr(cfg, "sqrt_s_tev", 13.0)
    family = getattr(profiler, "name", "envelope")
    paths = plot_variables(out, sig_s, bkg_s, sel_report.get("cuts", {}), lumi)
    paths += plot_mass_fit(out, edges, counts, side, blind, b_exp, family, lumi, com=com)
    paths += plot_pvalue_scan(out, grid, expected_z, scan, cfg.signal_xsec_pb, lumi, com)
    paths += plot_limits(out, limits, cfg.signal_xsec_pb, lumi, com)
    paths += plot_signal_model(out, sig_sel, sig_fits, com)
    if results["best_mass_gev"] is not None:
        i = int(np.argmax(scan["z_local"]))
        mu = float(scan["mu_hat"][i])
        t = templates[i]
        if isinstance(profiler, ParametricModel):
            fit = profiler.fit(counts, t, mu)
            bkg_part = profiler.background(fit.theta)
        else:
            bkg_part = b_exp
        paths += plot_mass_fit(out, edges, counts, side, None, bkg_part, family, lumi, stem="sb_fit",
                               signal=mu * t, signal_label=f"Signal, $m_X$ = {grid[i]:g} GeV, σ = {mu:.2g} pb",
                               sb=bkg_part + mu * t, com=com)
    else:  # blinded: the expected S+B shape for the reference cross-section at the most sensitive mass
        i = int(np.argmax(expected_z))
        s = cfg.signal_xsec_pb * templates[i]
        paths += plot_mass_fit(out, edges, counts, side, blind, b_exp, family, lumi, stem="sb_fit", signal=s,
                               signal_label=f"Expected signal, $m_X$ = {grid[i]:g} GeV, σ = {cfg.signal_xsec_pb:g} pb",
                               sb=b_exp + s, sb_label="B (sideband fit) + expected S, not a fit", com=com)
    return paths
