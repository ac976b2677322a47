"""The profile-scan plot's confidence-level labels never overlap the scan curve (they sit beside the frame)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from analysis.stats.intervals import ScanResult  # noqa: E402
from analysis.stats.plots import scan_figure  # noqa: E402


def _scan(skew: float) -> ScanResult:
    """A ±2.5σ scan (as scan_poi makes it): Δ(−2 ln L) reaches 6.25 at the edges, above the Δ = 4 line."""
    mu = np.linspace(0.5, 1.5, 21)
    z = (mu - 1.0) / 0.2
    return ScanResult("ttbar_norm", 1.0, 0.2, mu, z**2 * (1 + skew * z))


@pytest.mark.parametrize("skew", [0.0, -0.12, 0.12])
def test_cl_labels_beside_the_frame_at_their_lines(skew: float) -> None:
    fig = scan_figure(_scan(skew))
    fig.canvas.draw()
    ax = fig.axes[0]
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    labels = {t.get_text(): t for t in ax.texts if t.get_text().endswith("% CL")}
    assert sorted(labels) == ["68.3% CL", "95.4% CL"]  # P(χ²₁ ≤ 1), P(χ²₁ ≤ 4)
    to_data = ax.transData.inverted()
    x_right = ax.get_xlim()[1]
    for text, level in ((labels["68.3% CL"], 1.0), (labels["95.4% CL"], 4.0)):
        box = text.get_window_extent(renderer)
        (x0, y0), (x1, y1) = to_data.transform([[box.x0, box.y0], [box.x1, box.y1]])
        # entirely right of the plotted range: no part of the curve (scan or parabola) is drawn there
        assert box.x0 >= frame.x1 and x0 > x_right, (text.get_text(), box, frame)
        assert box.x1 <= fig.bbox.x1 + 0.5  # inside the figure (not cut off when saved)
        assert y0 < level < y1  # beside its line
    plt.close(fig)


@pytest.mark.parametrize("skew", [0.0, -0.12])  # curve rising through Δ = 4 near the right edge (as in the AGC fit)
def test_cabinetry_places_the_95_label_on_the_curve(skew: float) -> None:
    """The defect this replaces, on the same scans: cabinetry's own "95% CL" (right edge, just above Δ = 4) has
    the scan curve passing through its box."""
    import cabinetry

    scan = _scan(skew)
    fig = cabinetry.visualize.scan(scan.to_cabinetry(), close_figure=False, save_figure=False)
    fig.canvas.draw()
    ax = fig.axes[0]
    text = next(t for t in ax.texts if t.get_text() == "95% CL")
    box = text.get_window_extent(fig.canvas.get_renderer())
    (x0, y0), (x1, y1) = ax.transData.inverted().transform([[box.x0, box.y0], [box.x1, box.y1]])
    x = np.linspace(x0, x1, 200)
    curve = np.interp(x, scan.values, scan.delta_twice_nll)  # the drawn polyline
    assert curve.min() <= y1 and curve.max() >= y0  # continuous: it crosses the label's box
    plt.close(fig)
