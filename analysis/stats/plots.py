"""The one Brazil-band drawing of every workflow: CLs versus the POI, and limits versus a model parameter.

:func:`expected_bands` draws the expected median with its ±1σ/±2σ bands and the observed curve in one
style; :func:`brazil_band` (CLs versus μ: AGC, RECAST) and the diphoton search's limit-versus-mass plot
both call it, so every Brazil band of a run looks the same.
"""

from __future__ import annotations

from typing import Any

import numpy as np


BAND_COLOURS = {2: "#FFDF7F", 1: "#85D1FB"}  # ±2σ, ±1σ


def expected_bands(ax: Any, x: np.ndarray, median: np.ndarray, one_sigma: np.ndarray, two_sigma: np.ndarray, *,
                   observed: np.ndarray | None = None, expected_label: str = "Expected",
                   observed_label: str = "Observed", observed_marker: str = ".") -> None:
    """Draw expected median (dashed), ±1σ/±2σ bands and, when given, the observed curve (solid) on ``ax``.

    Args:
        ax: matplotlib axes.
        x: abscissa, shape (n,), increasing (μ, or a model parameter such as m_X in GeV).
        median: expected median, shape (n,).
        one_sigma, two_sigma: (lower, upper) band edges, shape (n, 2).
        observed: observed curve, shape (n,), or None (blinded).
    """
    x = np.asarray(x, float)
    one, two = np.asarray(one_sigma, float), np.asarray(two_sigma, float)
    ax.fill_between(x, two[:, 0], two[:, 1], color=BAND_COLOURS[2], lw=0, label=r"Expected $\pm 2\sigma$")
    ax.fill_between(x, one[:, 0], one[:, 1], color=BAND_COLOURS[1], lw=0, label=r"Expected $\pm 1\sigma$")
    ax.plot(x, np.asarray(median, float), "k--", label=expected_label)
    if observed is not None:
        ax.plot(x, np.asarray(observed, float), "k-", marker=observed_marker, label=observed_label)


def brazil_band(mu: np.ndarray, cls_observed: np.ndarray, cls_expected: np.ndarray, *, level: float = 0.05,
                observed_limit: float | None = None, expected_limit: float | None = None, poi_label: str = r"$\mu$",
                log_x: bool = False, ax: Any = None) -> Any:
    """Observed CLs, expected median with ±1σ/±2σ bands and the CLs = ``level`` line; limits marked.

    Args:
        mu: POI values, shape (n,); cls_observed: (n,); cls_expected: (n, 5) ordered −2σ…+2σ.
        observed_limit, expected_limit: drawn as vertical lines and quoted in the legend when given.
        log_x: logarithmic POI axis (for limits spanning decades).

    Returns:
        The matplotlib figure.
    """
    import matplotlib.pyplot as plt

    mu = np.asarray(mu, float)
    order = np.argsort(mu)
    mu, obs, exp = mu[order], np.asarray(cls_observed, float)[order], np.asarray(cls_expected, float)[order]
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 5))
    else:
        fig = ax.figure
    expected_bands(ax, mu, exp[:, 2], exp[:, [1, 3]], exp[:, [0, 4]], observed=obs,
                   expected_label="Expected" + (f" ({expected_limit:.3g})" if expected_limit else ""),
                   observed_label="Observed" + (f" ({observed_limit:.3g})" if observed_limit else ""))
    ax.axhline(level, color="red", lw=1.5, label=rf"CL$_s$ = {level:g} ({100 * (1 - level):.0f}% CL)")
    if observed_limit is not None:
        ax.axvline(observed_limit, color="black", lw=1, ls=":")
    if log_x:
        ax.set_xscale("log")
    else:
        ax.set_xlim(0, mu[-1])
    ax.set_ylim(0, 1.05)
    ax.set_xlabel(poi_label)
    ax.set_ylabel(r"CL$_s$")
    ax.legend(loc="upper right", fontsize=10, frameon=False)
    return fig


def limit_figure(limit: Any, poi_label: str | None = None, log_x: bool = False) -> Any:
    """:func:`brazil_band` of an :class:`analysis.stats.limits.LimitResult`."""
    return brazil_band(np.asarray(limit.mu), np.asarray(limit.cls_observed), np.asarray(limit.cls_expected),
                       level=limit.level, observed_limit=limit.observed, expected_limit=limit.expected[2],
                       poi_label=poi_label or limit.poi_name, log_x=log_x)
