"""Shared plot style and saving: mplhep CMS-like style, PNG + PDF with the same stem.

Importing this module changes no global state (the matplotlib backend is the user's choice; the ``ana``
CLI selects Agg for itself)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import mplhep


def use_style() -> None:
    """Apply the project's mplhep style (CMS look) to subsequent figures."""
    plt.style.use(mplhep.style.CMS)
    plt.rcParams["figure.max_open_warning"] = 0


def label(ax: plt.Axes, text: str = "Simulation", lumi: float | None = None, com: float = 13) -> None:
    """Put the experiment-style label (and luminosity in fb⁻¹ if given) on an axis."""
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
