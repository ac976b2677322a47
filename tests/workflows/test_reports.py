"""Every workflow writes a self-contained report.html: every PNG of its output directory embedded, the key numbers
of its JSON outputs on the page, the whole workflow's wall time, no external references."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import hist
import numpy as np
import pandas as pd
import pytest

from analysis.cli import main


def _check_self_contained(out: Path) -> str:
    """report.html exists, embeds every PNG under ``out`` byte for byte and references nothing external."""
    html = (out / "report.html").read_text()
    pngs = sorted(out.rglob("*.png"))
    assert pngs, f"no PNG under {out}"
    for png in pngs:
        data = base64.b64encode(png.read_bytes()).decode()
        assert f"data:image/png;base64,{data}" in html, f"{png} not in the report"
    refs = [v for v in re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", html) if not v.startswith("data:")]
    assert refs == [] and "<script" not in html and "<link" not in html
    return html


def _wall_time(html: str) -> float:
    """The whole workflow's wall time printed in the report (seconds)."""
    m = re.search(r"wall time of the whole [^<]*</td><td>([0-9.]+) s", html)
    assert m, "no whole-workflow wall time in the report"
    return float(m.group(1))


def test_ftest_report(tmp_path: Path) -> None:
    from analysis.resonance.ftest_config import make_config
    from analysis.resonance.ftest_workflow import run_ftest

    rng = np.random.default_rng(4)
    x = 100.0 + rng.exponential(20.0, size=12000)
    pd.DataFrame({"mass": x[x < 180.0][:3000], "cat": "a"}).to_csv(tmp_path / "ev.csv", index=False)
    cfg = make_config({"input": str(tmp_path / "ev.csv"), "observable": "mass", "category_column": "cat",
                       "range": (100.0, 180.0), "blind": (120.0, 130.0), "bins": 40, "executor": "iterative",
                       "n_toys": 50, "families": ["exponential", "bernstein"]})
    run = run_ftest(cfg, tmp_path / "out")
    html = _check_self_contained(tmp_path / "out")
    best = run.categories[0]["best"]["name"]
    assert f">{best}</td>" in html and "1 of 1 categories modelled" in html
    env = json.loads((tmp_path / "out" / "a" / "envelope.json").read_text())
    assert f"{env['events_in_fit_bins']:.0f}" in html.replace("\u2009", "")
    assert 0 < _wall_time(html) < 600


def test_search_report_blinded(shared_dir: Path, tmp_path: Path) -> None:
    from analysis.resonance.search import run_search
    from analysis.resonance.search_config import load_config
    from fileset.generate.diphoton import generate_diphoton

    gen = generate_diphoton(tmp_path, signal_dir=shared_dir / "data" / "xboson", seed=3)
    cfg = tmp_path / "fast.yml"
    cfg.write_text(gen["config"].read_text() + "global_toys: 0\nlimit_validation_toys: 0\nscan_step_gev: 50\n"
                   "sqrt_s_tev: 8\n")
    assert load_config(cfg).sqrt_s_tev == 8.0 and load_config(gen["config"]).sqrt_s_tev == 13.0
    res = run_search(cfg, tmp_path / "out")
    html = _check_self_contained(tmp_path / "out")
    assert "BLINDED" in html and "an expectation, not a fit" in html
    lim = res["limits"]
    assert f">{lim['mass_gev'][0]:g}</td><td class='nw'>{lim['expected_pb'][0]:.3g}</td>" in html
    assert 0 < _wall_time(html) < 600


def test_reinterpret_report(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from fileset.generate.recast import generate_recast

    gen = generate_recast(tmp_path / "in", seed=5, bins=8, background_events=2000, mc_events=4000, signal_events=3000)
    out = tmp_path / "out"
    rc = main(["reinterpret", "--filedata", str(gen.preserved_file), "--histdata", "data", "--filebkg",
               str(gen.preserved_file), "--histbkg", "background", "--filesig", str(gen.signal_file), "--histsig",
               "h_mjj", "--scan-points", "9", "--xsec", "0.01", "--outputfile", str(out / "limit.png"),
               "--plotfile", str(out / "spectrum.png")])
    assert rc == 0 and "wrote report:" in capsys.readouterr().out
    html = _check_self_contained(out)
    res = json.loads((out / "results.json").read_text())
    assert f"observed {res['mu_upper_limit_observed']:.4g}" in html
    assert (">excluded<" if res["signal_excluded_at_mu_1"] else ">not excluded<") in html
    from analysis.report import fmt

    assert f"<td>{fmt(res['cross_section_upper_limit_observed_pb'])} pb</td>" in html
    assert 0 < _wall_time(html) < 600


def _gaussian_columns(n: int = 3000, seed: int = 2) -> dict[str, np.ndarray]:
    """Feature columns with a mean shift between ttbar (label 1) and background."""
    from processors.ml_features import FEATURES

    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.5).astype(np.int64)
    cols = {f: rng.normal(0.4 * y * (i % 3 == 0), 1.0) for i, f in enumerate(FEATURES)}
    cols.update(label=y, weight=np.full(n, 0.1), process=np.where(y == 1, "ttbar", "wjets").astype(object))
    return cols


def test_ml_reports_train_and_region(tmp_path: Path) -> None:
    from analysis.ml.report import write_ml_report
    from analysis.ml import region_plot, train_and_evaluate
    from analysis.plotting import save_figure

    out = tmp_path / "ml"
    result = train_and_evaluate(_gaussian_columns(), out, classifiers=["gbdt", "tree"])
    html = _check_self_contained(out)
    ev = result.default
    from analysis.report import pm

    assert pm(ev.auc, ev.auc_uncertainty) in html and "Hanley" in html
    # ana ml region into the same directory: one page with both parts
    h = hist.Hist(hist.axis.Regular(5, 0, 500, name="observable"), hist.axis.StrCategory(["ttbar", "wjets"], name="process"),
                  storage=hist.storage.Weight())
    h.fill(observable=[150.0, 170.0], process="ttbar", weight=2.0)
    h.fill(observable=[300.0], process="wjets", weight=1.5)
    save_figure(region_plot(h, 0.6), out, "score_region")
    (out / "score_region.json").write_text(json.dumps({"model": "model.joblib", "score_cut": 0.6, "observable": "m_bjj",
        "yields": {"ttbar": {"events_4j2b": 10, "events_selected": 7, "efficiency": 0.7, "expected_4j2b": 5.0,
                             "expected_selected": 3.5}}}))
    html = write_ml_report(out).read_text()
    assert "Score-defined region (score &gt; 0.6)" in html and "tt̄" in html and "3.5" in html
    assert "Training and held-out evaluation" in html
    _check_self_contained(out)


def test_demo_report_numbers_and_wall_time(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """ana demo (tiny): POI, every plot, and the whole run's wall time ≥ the sum of its steps ≥ processing alone."""
    out = tmp_path / "demo"
    rc = main(["demo", "--out", str(out), "--events-per-file", "4000", "--files-per-sample", "1", "--executor",
               "iterative", "--no-ranking", "--no-progress"])
    assert rc == 0
    html = _check_self_contained(out)
    summary = json.loads((out / "summary.json").read_text())
    fit = json.loads((out / "fit" / "fit_results.json").read_text())
    metrics = json.loads((out / "histograms" / "metrics.json").read_text())
    iv = fit["poi_interval"]  # MINOS is the quoted interval, HESSE beside it
    assert (f"ttbar_norm = {fit['poi_bestfit']:.3f} {iv['minos_lower']:+.3f} / {iv['minos_upper']:+.3f} (MINOS, 68 % CL); "
            f"± {fit['poi_uncertainty']:.3f} (HESSE, 68 % CL)") in html
    wall = _wall_time(html)
    assert wall >= 0.99 * sum(summary["steps_s"].values()) - 0.1
    assert wall > metrics["processing_time_s"] and wall <= summary["total_time_s"] + 0.1
    assert "per-bin MC-stat parameters (staterror_*)" in html and "± is the MC stat. (√Σw²)" in html
