"""The one CLs-versus-POI (Brazil band) plot of every workflow."""

from __future__ import annotations

from typing import Any

import numpy as np


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
    ax.fill_between(mu, exp[:, 0], exp[:, 4], color="#FFDF7F", lw=0, label=r"Expected $\pm 2\sigma$")
    ax.fill_between(mu, exp[:, 1], exp[:, 3], color="#85D1FB", lw=0, label=r"Expected $\pm 1\sigma$")
    ax.plot(mu, exp[:, 2], "k--", label="Expected" + (f" ({expected_limit:.3g})" if expected_limit else ""))
    ax.plot(mu, obs, "k-", marker=".", label="Observed" + (f" ({observed_limit:.3g})" if observed_limit else ""))
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
