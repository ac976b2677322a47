"""Synthetic diphoton-mass events in categories (H→γγ-like), the input of ``ana ftest``.

Per category a falling m_γγ spectrum — exp(−(m − 100)/τ) · (m/100)^−k, a shape none of the f-test families
reproduces exactly — on [100, 180] GeV, plus optionally a Gaussian signal at ``signal_mass``. Written as a
parquet (or CSV) table with columns ``mgg`` [GeV], ``cat`` (category name) and ``weight`` (1).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fileset.errors import FilesetError


@dataclass(frozen=True)
class CategorySpec:
    """One category: background events, slope τ [GeV], power k, signal events."""

    name: str
    n_background: int
    tau_gev: float
    power: float
    n_signal: int


DEFAULT_CATEGORIES = (
    CategorySpec("cat0", 20000, 25.0, 1.0, 150),
    CategorySpec("cat1", 12000, 35.0, 2.0, 90),
    CategorySpec("cat2", 6000, 50.0, 0.5, 40),
)


def _background(rng: np.random.Generator, n: int, tau: float, power: float, lo: float, hi: float) -> np.ndarray:
    """``n`` masses from exp(−(m − lo)/τ)·(m/lo)^−power on [lo, hi] by inverse CDF on a fine grid."""
    grid = np.linspace(lo, hi, 8001)
    pdf = np.exp(-(grid - lo) / tau) * (grid / lo) ** (-power)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (pdf[1:] + pdf[:-1]) * np.diff(grid))])
    return np.interp(rng.uniform(size=n), cdf / cdf[-1], grid)


def generate_spectrum(out: str | Path, *, seed: int = 1, scale: float = 1.0, signal_mass: float | None = 125.0,
                      signal_width: float = 1.7, categories: tuple[CategorySpec, ...] = DEFAULT_CATEGORIES,
                      mass_range: tuple[float, float] = (100.0, 180.0)) -> Path:
    """Write the events table to ``out`` (``.parquet`` or ``.csv``) and return its path.

    Args:
        out: output file; the suffix picks the format.
        seed: random seed.
        scale: multiplies every category's event counts (background and signal).
        signal_mass: Gaussian signal mean in GeV (``None``: no signal); ``signal_width``: its σ in GeV.
        categories: per-category shapes and counts.
        mass_range: (lo, hi) of m_γγ in GeV.
    Raises:
        FilesetError: unsupported suffix or a non-positive scale.
    """
    path = Path(out)
    if path.suffix not in (".parquet", ".csv"):
        raise FilesetError(f"{path}: output must end in .parquet or .csv")
    if not scale > 0:
        raise FilesetError(f"--scale must be positive, got {scale}")
    lo, hi = mass_range
    rng = np.random.default_rng(seed)
    frames = []
    for cat in categories:
        m = _background(rng, max(1, round(cat.n_background * scale)), cat.tau_gev, cat.power, lo, hi)
        if signal_mass is not None and cat.n_signal:
            s = rng.normal(signal_mass, signal_width, max(1, round(cat.n_signal * scale)))
            m = np.concatenate([m, s[(s > lo) & (s < hi)]])
        frames.append(pd.DataFrame({"mgg": rng.permutation(m), "cat": cat.name, "weight": 1.0}))
    df = pd.concat(frames, ignore_index=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        df.to_parquet(path, index=False)
    else:
        df.to_csv(path, index=False)
    return path
