"""Plots of ``ana ftest``, drawn from a category's result (:class:`analysis.resonance.ftest_category.CategoryFit`):
the multipdf plot (data, every envelope function, best fit, residuals) and the blinded S+B model plot.

Draws only: nothing is fitted here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from analysis.resonance.bkgfit import FitResult
from analysis.resonance.envelope import Envelope
from analysis.resonance.ftest_category import CategoryFit, background_band
from analysis.resonance.ftest_config import FTestConfig

__all__ = ["plot_multipdf", "plot_splusb"]


def _curve(env: Envelope, fn: FitResult, x: np.ndarray, width: float) -> np.ndarray:
    """Expected events per bin width at x for a fitted function (normalised on the fit bins)."""
    return fn.norm * fn.spec.density(fn.params, x, env.data.grid) * width


def _axis_label(cfg: FTestConfig) -> str:
    """x-axis label with unit."""
    return f"{cfg.observable} [{cfg.unit}]" if cfg.unit else cfg.observable


def _data_label(cfg: FTestConfig) -> str:
    """Legend/experiment label of the data."""
    return "Pseudodata" if cfg.pseudodata else "Data"


def plot_multipdf(fit: CategoryFit, out: Path) -> list[Path]:
    """Standard multipdf plot: data, every envelope function, the best fit highlighted, residual panel.

    Args:
        fit: the category's result (envelope, counts, options: blind window, unit, pseudodata).
        out: directory for ``multipdf.{png,pdf}``.

    Returns:
        The written files.
    """
    env, counts, name, cfg = fit.envelope, fit.counts, fit.name, fit.config
    import matplotlib.pyplot as plt

    from analysis.plotting import label, save_figure, use_style

    use_style()
    grid = env.data.grid
    centers, widths, mask = grid.centers, grid.widths, grid.mask
    width = float(np.median(widths))
    x = np.linspace(grid.lo, grid.hi, 600)
    fig, (ax, rax) = plt.subplots(2, 1, figsize=(10, 9), sharex=True, gridspec_kw={"height_ratios": (3, 1), "hspace": 0.05})
    scale = width / widths
    err = np.sqrt(np.maximum(counts, 1.0))
    ax.errorbar(centers[mask], (counts * scale)[mask], yerr=(err * scale)[mask], xerr=0.5 * widths[mask], fmt="ko",
                ms=4, label=_data_label(cfg), zorder=5)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    best_curve = _curve(env, env.best, x, width)
    for i, fn in enumerate(env.functions):
        is_best = fn is env.best
        y = _curve(env, fn, x, width)
        style = {"lw": 3.0, "color": "red", "zorder": 4} if is_best else {"lw": 1.6, "ls": "--", "color": colors[i % len(colors)]}
        text = f"{fn.name} (deviance+{env.correction:g}·N={fn.nll + env.correction * fn.n_params:.1f})"
        ax.plot(x, y, label=("best: " if is_best else "") + text, **style)
        if not is_best:
            rax.plot(x, y - best_curve, **style)
    exp_best = env.best.expected(grid)
    rax.errorbar(centers[mask], ((counts - exp_best) * scale)[mask], yerr=(err * scale)[mask], xerr=0.5 * widths[mask],
                 fmt="ko", ms=4)
    rax.axhline(0, color="red", lw=2)
    if cfg.blind is not None:
        for a in (ax, rax):
            a.axvspan(*cfg.blind, color="grey", alpha=0.2, lw=0, label="blinded" if a is ax else None)
    ax.set_ylabel(f"Events / {width:g} {cfg.unit}")
    _log_y(ax, (counts * scale)[mask], best_curve)  # spectra fall over decades: log axis
    ax.legend(fontsize=12, title=f"category {name}", title_fontsize=13)
    rax.set_ylabel("Data − best")
    rax.set_xlabel(_axis_label(cfg))
    rax.set_xlim(grid.lo, grid.hi)
    label(ax, _data_label(cfg) if not cfg.pseudodata else "Simulation", com=None)  # √s unknown to the f-test
    return save_figure(fig, out, "multipdf")


def _log_y(ax, points: np.ndarray, curve: np.ndarray) -> None:
    """Log y axis from half the smallest positive value to 30× the largest (room for the legend)."""
    vals = np.concatenate([np.asarray(points, float), np.asarray(curve, float)])
    pos = vals[np.isfinite(vals) & (vals > 0)]
    ax.set_yscale("log")
    if pos.size:
        ax.set_ylim(0.5 * pos.min(), 30 * pos.max())


def plot_splusb(fit: CategoryFit, out: Path) -> list[Path]:
    """Blinded S+B model plot: sideband data, best background with 1σ/2σ bands (:func:`background_band`), S+B, and
    data − B panel.

    Args:
        fit: the category's result (envelope, counts, signal model, options).
        out: directory for ``splusb_blinded.{png,pdf}`` (``splusb`` when nothing is blinded).

    Returns:
        The written files.
    """
    env, counts, signal, name, cfg = fit.envelope, fit.counts, fit.signal, fit.name, fit.config
    import matplotlib.pyplot as plt

    from analysis.plotting import label, save_figure, use_style

    use_style()
    grid = env.data.grid
    edges, centers, widths, mask = grid.edges, grid.centers, grid.widths, grid.mask
    bkg = env.best.expected(grid)
    lo1, hi1, lo2, hi2 = background_band(env)
    sig = signal["counts"]
    fig, (ax, rax) = plt.subplots(2, 1, figsize=(10, 9), sharex=True, gridspec_kw={"height_ratios": (3, 1), "hspace": 0.05})
    ax.fill_between(edges, np.append(lo2, lo2[-1]), np.append(hi2, hi2[-1]), step="post", color="#ffcc00", label="B ±2σ")
    ax.fill_between(edges, np.append(lo1, lo1[-1]), np.append(hi1, hi1[-1]), step="post", color="#00cc00", label="B ±1σ")
    ax.stairs(bkg, edges, color="red", lw=2, ls="--", label=f"B model ({env.best.name})")
    ax.stairs(bkg + sig, edges, color="blue", lw=2, label="S+B model")
    sig_text = f"S: m={signal['mass_gev']:g}, σ={signal['width_gev']:.3g} {cfg.unit}, N={signal['events']:.1f}"
    ax.stairs(sig, edges, color="purple", lw=1.5, label=sig_text + (" (illustrative)" if signal["illustrative"] else ""))
    err = np.sqrt(np.maximum(counts, 1.0))
    ax.errorbar(centers[mask], counts[mask], yerr=err[mask], fmt="ko", ms=4, label=_data_label(cfg) + (" (sidebands)" if cfg.blind else ""), zorder=5)
    rax.fill_between(edges, np.append(lo2 - bkg, 0), np.append(hi2 - bkg, 0), step="post", color="#ffcc00")
    rax.fill_between(edges, np.append(lo1 - bkg, 0), np.append(hi1 - bkg, 0), step="post", color="#00cc00")
    rax.stairs(sig, edges, color="blue", lw=2)
    rax.errorbar(centers[mask], (counts - bkg)[mask], yerr=err[mask], fmt="ko", ms=4)
    rax.axhline(0, color="red", ls="--", lw=2)
    if cfg.blind is not None:
        for a in (ax, rax):
            a.axvspan(*cfg.blind, color="grey", alpha=0.15, lw=0, label="blinded" if a is ax else None)
    width = float(np.median(widths))
    ax.set_ylabel(f"Events / {width:g} {cfg.unit}")
    ax.set_ylim(0, None)
    ax.legend(fontsize=12, title=f"category {name}", title_fontsize=13)
    rax.set_ylabel("Data − B")
    rax.set_xlabel(_axis_label(cfg))
    rax.set_xlim(grid.lo, grid.hi)
    label(ax, _data_label(cfg) if not cfg.pseudodata else "Simulation", com=None)
    return save_figure(fig, out, "splusb_blinded" if cfg.blind else "splusb")
