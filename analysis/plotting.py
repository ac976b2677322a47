"""Shared plot style and saving: mplhep CMS-like style, PNG + PDF with the same stem, the one process style map
(PROCESS_STYLE: colour and label per process, also applied to cabinetry's figures) and a readable correlation matrix.

Importing this module changes no global state (the matplotlib backend is the user's choice; the ``ana``
CLI selects Agg for itself)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import mplhep


def use_style() -> None:
    """Apply the project's mplhep style (CMS look) to subsequent figures."""
    plt.style.use(mplhep.style.CMS)
    plt.rcParams["figure.max_open_warning"] = 0


def label(ax: plt.Axes, text: str = "Simulation", lumi: float | None = None, com: float | None = 13) -> None:
    """Put the experiment-style label (luminosity in fb⁻¹ if given, √s in TeV; com=None omits √s) on an axis."""
    if com is not None:
        com = int(com) if float(com).is_integer() else com  # "13 TeV", not "13.0 TeV"
    mplhep.label.exp_label(exp="", llabel=text, ax=ax, lumi=lumi, com=com, data=text == "Data")


def save_figure(fig: plt.Figure, out_dir: str | Path, stem: str, formats: tuple[str, ...] = ("png", "pdf")) -> list[Path]:
    """Save a figure as ``out_dir/stem.{png,pdf}``, close it and return the written paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = out / f"{stem}.{fmt}"
        fig.savefig(path, dpi=110 if fmt == "png" else None, bbox_inches="tight")
        paths.append(path)
    plt.close(fig)
    return paths


# ---------------------------------------------------------------------------------------------- process styles
#: One (colour, label) per process, used by every plot of a run (stacks, fit plots, ML region, reports).
#: Labels are matplotlib mathtext. Keys are the processes' fileset names; cabinetry sample names are mapped
#: to them through the config's ``SamplePath`` (:func:`process_key`). The order is the stacking order
#: (first = bottom), the same as the shipped cabinetry config's sample order.
PROCESS_STYLE: dict[str, tuple[str, str]] = {
    "ttbar": ("#3f90da", r"$t\bar{t}$"),
    "wjets": ("#ffa90e", "W+jets"),
    "single_top_s_chan": ("#92dadd", "single top, s-channel"),
    "single_top_t_chan": ("#832db6", "single top, t-channel"),
    "single_top_tW": ("#bd1f01", "tW"),
}
DATA_STYLE = ("black", "Data")
#: Colours for processes without an entry (cycled in order of appearance).
FALLBACK_COLORS = ("#94a4a2", "#a96b59", "#e76300", "#b9ac70", "#717581", "#5790fc")


def process_key(name: str, config: dict | None = None) -> str:
    """The PROCESS_STYLE key of a process name, a cabinetry sample name (via the config's ``SamplePath``)
    or a label; the name itself when nothing matches."""
    if name in PROCESS_STYLE:
        return name
    for sample in (config or {}).get("Samples", []):
        if sample.get("Name") == name and sample.get("SamplePath") in PROCESS_STYLE:
            return sample["SamplePath"]
    for key, (_, text) in PROCESS_STYLE.items():
        if text == name:
            return key
    return name


def process_style(name: str, config: dict | None = None, index: int = 0) -> tuple[str, str]:
    """(colour, label) of a process; unknown processes get a fallback colour (by ``index``) and their name."""
    key = process_key(name, config)
    if key in PROCESS_STYLE:
        return PROCESS_STYLE[key]
    return FALLBACK_COLORS[index % len(FALLBACK_COLORS)], name


def ordered_processes(names: list[str]) -> list[str]:
    """Processes in stacking order: PROCESS_STYLE's order first, then the others alphabetically."""
    known = [p for p in PROCESS_STYLE if p in names]
    return known + sorted(p for p in names if p not in PROCESS_STYLE)


def cabinetry_colors(config: dict) -> dict[str, str]:
    """``colors`` for ``cabinetry.visualize.data_mc``: sample Name → the process colour."""
    samples = [s for s in config.get("Samples", []) if not s.get("Data")]
    return {s["Name"]: process_style(s["Name"], config, i)[0] for i, s in enumerate(samples)}


#: legend label of the total uncertainty band: ⊕ as mathtext (the CMS style's text font has no ⊕ glyph)
TOTAL_UNCERTAINTY_LABEL = r"Total unc. (syst. $\oplus$ MC stat.)"


def restyle_data_mc(fig: plt.Figure, config: dict, data_label: str | None = None) -> plt.Figure:
    """Relabel a cabinetry data/MC figure's legend with the process labels (colours come from
    :func:`cabinetry_colors`); "Uncertainty" becomes :data:`TOTAL_UNCERTAINTY_LABEL`."""
    data_names = {s["Name"] for s in config.get("Samples", []) if s.get("Data")}
    for ax in fig.axes:
        leg = ax.get_legend()
        if leg is None:
            continue
        for text in leg.get_texts():
            t = text.get_text()
            if t == "Uncertainty":
                text.set_text(TOTAL_UNCERTAINTY_LABEL)
            elif t in data_names or t == "Data":
                text.set_text(data_label or t)
            else:
                text.set_text(process_style(t, config)[1])
        if ax.get_yscale() == "linear":  # room for the longer legend above the stack
            ax.set_ylim(0, ax.get_ylim()[1] * 1.3)
        for text in leg.get_texts():
            text.set_fontsize("medium")
        if ax.get_ylabel().strip().lower() == "events":  # as on the stack plots of the same run
            ax.set_ylabel("Events / bin")
    return fig


def data_label_text(config: dict) -> str:
    """The experiment label's text for a data/model plot of ``config``: "Simulation" when its data sample is
    pseudodata (``Name`` or ``SamplePath`` contains "pseudo", as the AGC's), else "Data"."""
    for sample in config.get("Samples", []):
        if sample.get("Data"):
            names = f"{sample.get('Name', '')} {sample.get('SamplePath', '')}".lower()
            return "Simulation" if "pseudo" in names else "Data"
    return "Simulation"


def data_mc_figures(prediction: Any, data: Any, config: dict, *, lumi_fb: float | None = None,
                    com: float | None = 13, **kwargs: Any) -> list[dict]:
    """``cabinetry.visualize.data_mc`` with the run's process colours and labels (one style for every plot) and
    the experiment label of the run's stack plots (:func:`label`: luminosity and √s).

    Args:
        prediction: a ``cabinetry.model_utils.ModelPrediction`` (pre- or post-fit).
        data: observed data per bin (and auxdata), as cabinetry takes it.
        config: the cabinetry config (sample names → ``SamplePath`` → PROCESS_STYLE).
        lumi_fb: integrated luminosity in fb⁻¹ the templates are normalised to, or None when it is not known
            (the label then shows √s only, never a guessed luminosity).
        com: centre-of-mass energy √s in TeV (None: omitted).
        kwargs: passed on to ``cabinetry.visualize.data_mc`` (figure_folder, close_figure, save_figure, ...).

    Returns:
        cabinetry's list of ``{"region": name, "figure": Figure}``, restyled and labelled.
    """
    import cabinetry

    figs = cabinetry.visualize.data_mc(prediction, data, config=config, colors=cabinetry_colors(config), **kwargs)
    for item in figs or []:
        restyle_data_mc(item["figure"], config)
        label(item["figure"].axes[0], data_label_text(config), lumi=lumi_fb, com=com)
    return figs or []


# ---------------------------------------------------------------------------------------------- correlations
CORRELATION_THRESHOLD = 0.1
CORRELATION_EXCLUDE = ("staterror_",)
CORRELATION_MAX_PARAMETERS = 25


def correlation_selection(labels: list[str], corr, *, threshold: float = CORRELATION_THRESHOLD,
                          exclude_prefixes: tuple[str, ...] = CORRELATION_EXCLUDE,
                          max_parameters: int = CORRELATION_MAX_PARAMETERS, keep: tuple[str, ...] = ()) -> dict:
    """Which parameters a readable correlation matrix shows: systematics only, each with some |ρ| ≥ threshold.

    Args:
        labels: parameter names, length n.
        corr: correlation matrix, shape (n, n).
        threshold: a candidate is shown if its largest off-diagonal |ρ| with another candidate is at least this
            (``keep`` names, e.g. the POI, are always shown).
        exclude_prefixes: parameter-name prefixes left out (per-bin MC-stat parameters by default).
        max_parameters: at most this many, the most correlated first.

    Returns:
        ``{"indices": [...], "shown": [...], "excluded_prefix": n, "below_threshold": n, "over_limit": n,
        "threshold": t, "excluded_prefixes": [...]}`` — report captions quote what was left out.
    """
    import numpy as np

    c = np.asarray(corr, dtype=float)
    idx = [i for i, lab in enumerate(labels) if not lab.startswith(tuple(exclude_prefixes))]
    sub = np.abs(c[np.ix_(idx, idx)]) - np.eye(len(idx))
    strength = sub.max(axis=1) if len(idx) > 1 else np.zeros(len(idx))
    chosen = [(i, s) for i, s in zip(idx, strength) if s >= threshold or labels[i] in keep]
    below = len(idx) - len(chosen)
    chosen.sort(key=lambda t: (labels[t[0]] not in keep, -t[1]))
    over = max(0, len(chosen) - max_parameters)
    sel = sorted(i for i, _ in chosen[:max_parameters])  # back to the model's order
    return {"indices": sel, "shown": [labels[i] for i in sel], "excluded_prefix": len(labels) - len(idx),
            "below_threshold": below, "over_limit": over, "threshold": threshold,
            "excluded_prefixes": list(exclude_prefixes)}


def correlation_figure(labels: list[str], corr, *, keep: tuple[str, ...] = (), **selection) -> plt.Figure:
    """The correlation matrix of :func:`correlation_selection`'s parameters, with values printed in a font
    that stays readable at report size (half-page width)."""
    import numpy as np

    info = correlation_selection(labels, corr, keep=keep, **selection)
    sel = info["indices"]
    m = np.asarray(corr, dtype=float)[np.ix_(sel, sel)]
    n = max(len(sel), 1)
    size = min(4.0 + 0.55 * n, 14.0)
    fig, ax = plt.subplots(figsize=(size + 1.2, size), layout="constrained")
    im = ax.imshow(m if len(sel) else np.zeros((1, 1)), vmin=-1, vmax=1, cmap="RdBu_r")
    font = max(8.0, min(14.0, 160.0 / n))
    ax.set_xticks(range(len(sel)), info["shown"], rotation=45, ha="right", fontsize=font + 1)
    ax.set_yticks(range(len(sel)), info["shown"], fontsize=font + 1)
    for (j, i), v in np.ndenumerate(m):
        ax.text(i, j, f"{v:.2f}", ha="center", va="center", fontsize=font, color="white" if abs(v) > 0.6 else "black")
    cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
    cb.set_label("correlation ρ", fontsize=font + 2)
    ax.set_title(f"Post-fit correlations (parameters with some |ρ| ≥ {info['threshold']:g})", fontsize=font + 2)
    return fig
