"""One Brazil-band drawing: CLs-vs-μ (AGC, RECAST) and limit-vs-mass (diphoton search) share bands and style."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # a test process without a display; the package itself never switches backends

import numpy as np  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402

from analysis.resonance.plots import plot_limits  # noqa: E402
from analysis.stats.plots import BAND_COLOURS, brazil_band  # noqa: E402


def _band_artists(ax):
    polys = [c for c in ax.collections if c.get_label().startswith("Expected $\\pm")]
    return {c.get_label(): to_hex(c.get_facecolor()[0], keep_alpha=False) for c in polys}


def test_cls_and_mass_plots_share_the_band_style(tmp_path: Path, monkeypatch) -> None:
    import matplotlib.pyplot as plt

    mu = np.linspace(0.0, 3.0, 7)
    exp = np.column_stack([np.exp(-mu * k) for k in (2.0, 1.6, 1.3, 1.0, 0.8)])
    fig = brazil_band(mu, np.exp(-1.2 * mu), exp, observed_limit=2.5, expected_limit=2.3)
    cls_bands = _band_artists(fig.axes[0])
    # the ±1σ band spans the expected columns 1 and 3 at every μ
    one = next(c for c in fig.axes[0].collections if "1\\sigma" in c.get_label())
    ys = one.get_paths()[0].vertices[:, 1]
    assert np.isclose(ys.min(), exp[:, [1, 3]].min()) and np.isclose(ys.max(), exp[:, [1, 3]].max())
    assert not np.isclose(ys.min(), exp[:, [0, 4]].min())  # not the ±2σ columns
    plt.close(fig)

    figs = []
    monkeypatch.setattr("analysis.resonance.plots.save_figure", lambda f, out, name: figs.append(f) or [])
    m = np.array([500.0, 700.0, 900.0])
    med = np.array([1.0, 0.6, 0.4])
    plot_limits(tmp_path, {"mass_gev": m, "expected_pb": med, "observed_pb": med * 1.1,
                           "expected_1sigma_pb": np.column_stack([med * 0.7, med * 1.4]),
                           "expected_2sigma_pb": np.column_stack([med * 0.5, med * 2.0])}, xsec=1.0, lumi_fb=10.0)
    mass_bands = _band_artists(figs[0].axes[0])
    assert cls_bands == mass_bands == {r"Expected $\pm 2\sigma$": BAND_COLOURS[2].lower(),
                                       r"Expected $\pm 1\sigma$": BAND_COLOURS[1].lower()}
    plt.close(figs[0])
