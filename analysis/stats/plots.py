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


def scan_figure(scan: Any) -> Any:
    """cabinetry's profile-likelihood scan plot of an :class:`analysis.stats.intervals.ScanResult`, with the
    confidence-level labels of its Δ(−2 ln L) = 1 and 4 lines in the right margin, outside the frame.

    cabinetry writes "68% CL"/"95% CL" inside the frame at the right edge, just above each line, where the scan
    curve (which rises through Δ = 4 inside a ±2.5σ scan range) and the Gaussian parabola pass: the text is drawn
    over the curve. Outside the frame nothing of the curve is drawn (lines and markers are clipped to the axes),
    so the labels cannot overlap it. The labels give the one-parameter coverage of each line,
    CL = P(χ²₁ ≤ Δ): 68.3 % at Δ = 1 and 95.4 % at Δ = 4 (Wilks; 95 % would be Δ = 3.84).

    Returns:
        The matplotlib figure (open).
    """
    import cabinetry
    from matplotlib.transforms import blended_transform_factory
    from scipy.stats import chi2

    fig = cabinetry.visualize.scan(scan.to_cabinetry(), close_figure=False, save_figure=False)
    ax = fig.axes[0]
    margin = blended_transform_factory(ax.transAxes, ax.transData)  # x: axes fraction, y: Δ(−2 ln L)
    for text in list(ax.texts):
        if text.get_text() not in ("68% CL", "95% CL"):
            continue
        level = float(text.get_position()[1])  # cabinetry's line height: 1 or 4
        text.set_text(f"{100 * chi2.cdf(level, 1):.1f}% CL")
        text.set_transform(margin)
        text.set_position((1.015, level))
        text.set_horizontalalignment("left")
        text.set_verticalalignment("center")
        text.set_clip_on(False)
    return fig


def limit_figure(limit: Any, poi_label: str | None = None, log_x: bool = False) -> Any:
    """:func:`brazil_band` of an :class:`analysis.stats.limits.LimitResult`."""
    return brazil_band(np.asarray(limit.mu), np.asarray(limit.cls_observed), np.asarray(limit.cls_expected),
                       level=limit.level, observed_limit=limit.observed, expected_limit=limit.expected[2],
                       poi_label=poi_label or limit.poi_name, log_x=log_x)
