"""Plots of the ML workflow. Each takes a result (training result or region histogram) and returns a figure;
nothing is computed or written here (save with :func:`analysis.plotting.save_figure`)."""

from __future__ import annotations

import hist
import matplotlib.pyplot as plt
import numpy as np

from analysis.ml.report import PRETTY
from analysis.ml.train import TrainingResult
from analysis.plotting import label, ordered_processes, process_style, use_style

__all__ = ["region_plot", "roc_plot", "score_plot"]


def roc_plot(result: TrainingResult) -> plt.Figure:
    """ROC curves of all classifiers on the held-out set (signal vs background efficiency, AUC in legend).

    Args:
        result: from :func:`analysis.ml.train_classifiers` or :func:`analysis.ml.train_and_evaluate`.
    """
    use_style()
    fig, ax = plt.subplots(figsize=(8, 7))
    for ev in result.evaluations.values():
        ax.plot(ev.fpr, ev.tpr, lw=2, label=f"{PRETTY[ev.name]} (AUC = {ev.auc:.3f} ± {ev.auc_uncertainty:.3f})")
    ax.plot([0, 1], [0, 1], ls=":", color="grey", label="random guess")
    ax.set_xlabel("Background efficiency (single top, W+jets)")
    ax.set_ylabel(r"Signal efficiency ($t\bar{t}$)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.05)
    ax.legend(loc="lower right", fontsize=13, frameon=False)
    label(ax, "Simulation")
    return fig


def score_plot(result: TrainingResult, name: str | None = None, bins: int = 25) -> plt.Figure:
    """Score distributions (unit area) of signal and background, test (filled) vs training (points, √N errors).

    Args:
        result: the training result; name: classifier (default: the default classifier); bins: bins on [0, 1].
    """
    use_style()
    ev = result.evaluations[name] if name else result.default
    fig, ax = plt.subplots(figsize=(8, 6))
    edges = np.linspace(0, 1, bins + 1)
    centers = 0.5 * (edges[1:] + edges[:-1])
    for cls, colour, text in ((1, process_style("ttbar")[0], process_style("ttbar")[1]), (0, "#717581", "background")):
        test = ev.test_scores[result.y_test == cls]
        train = ev.train_scores[result.y_train == cls]
        h_test, _ = np.histogram(test, edges, density=True)
        ax.stairs(h_test, edges, fill=True, alpha=0.35, color=colour, label=f"{text} (test)")
        n_train, _ = np.histogram(train, edges)
        width = np.diff(edges)
        dens = n_train / max(n_train.sum(), 1) / width
        err = np.sqrt(n_train) / max(n_train.sum(), 1) / width
        ax.errorbar(centers, dens, yerr=err, fmt="o", ms=4, color=colour, label=f"{text} (train)")
    ax.axvline(ev.score_cut, color="black", ls="--", lw=1, label=f"cut {ev.score_cut:g}")
    ax.set_xlabel(f"{PRETTY[ev.name]} score")
    ax.set_ylabel("Probability density")
    ax.set_ylim(0, 1.45 * ax.get_ylim()[1])
    ax.legend(fontsize=12, frameon=False, ncol=2, loc="upper left")
    label(ax, "Simulation")
    return fig


def region_plot(h: hist.Hist, score_cut: float, observable: str = "m_bjj") -> plt.Figure:
    """Observable of the score-defined region stacked per process (ttbar analysis colours), MC stat. band.

    Args:
        h: histogram with axes ``observable`` (GeV) and ``process`` (Weight storage), e.g. ``FeatureTable.hist``.
        score_cut: the cut, shown in the legend title; observable: its name (axis label).
    """
    import mplhep

    use_style()
    fig, ax = plt.subplots(figsize=(8, 6))
    procs = ordered_processes(list(h.axes["process"]))
    if procs:
        parts = [h[:, p] for p in procs]
        styles = [process_style(p, index=i) for i, p in enumerate(procs)]
        mplhep.histplot(parts, stack=True, histtype="fill", label=[st[1] for st in styles],
                        color=[st[0] for st in styles], ax=ax, edgecolor="black", linewidth=0.4)
        total = sum(p.values() for p in parts)
        err = np.sqrt(sum(p.variances() for p in parts))
        ax.stairs(total + err, h.axes["observable"].edges, baseline=total - err, fill=False, hatch="////",
                  color="#555555", linewidth=0, label="MC stat. unc. (√Σw²)")
    ax.set_xlabel(r"$m_{bjj}$ [GeV]" if observable == "m_bjj" else f"{observable}")
    ax.set_ylabel("Events / bin")
    ax.legend(frameon=False, fontsize=12, title=f"4j2b, classifier score > {score_cut:g}", title_fontsize=13)
    label(ax, "Simulation")
    return fig
