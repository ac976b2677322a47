"""Impacts whose refit failed the guard: JSON null, left out of the ranking plot with their names (not a crash)."""

from __future__ import annotations

import json

import matplotlib
import numpy as np

from analysis.stats.ranking import RankingResult

matplotlib.use("Agg")


def test_unknown_impacts_are_null_in_json_and_left_out_of_the_plot(tmp_path):
    import cabinetry

    nan = float("nan")
    r = RankingResult(["JES", "JER", "lumi"], np.array([0.1, -0.2, 0.0]), np.array([0.9, 0.8, 1.0]),
                      np.array([0.05, 0.02, 0.01]), np.array([-0.04, nan, -0.01]),
                      np.array([0.03, 0.01, 0.005]), np.array([-0.03, -0.01, -0.005]), ["JER = -1.045: failed"])
    rows = r.to_list()
    assert rows[1]["prefit_impact_down"] is None and rows[0]["prefit_impact_down"] == -0.04
    json.loads(json.dumps(rows, allow_nan=False))  # valid JSON: no NaN token
    kept, left_out = r.finite()
    assert left_out == ["JER"] and kept.labels == ["JES", "lumi"]
    assert kept.prefit_down.tolist() == [-0.04, -0.01] and kept.warnings == r.warnings
    # cabinetry's ranking plot refuses NaN axis limits ("Axis limits cannot be NaN or Inf"); the kept rows draw
    fig = cabinetry.visualize.ranking(kept.to_cabinetry(), figure_folder=tmp_path, save_figure=False, close_figure=False)
    assert fig is not None
