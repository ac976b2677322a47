"""``ana ftest`` end to end: categories in parallel, per-category failures, input formats, bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.cli import main
from analysis.resonance.ftest_config import make_config
from analysis.resonance.ftest_workflow import run_ftest

ENVELOPE_KEYS = {"category", "families", "best"}
ORDER_KEYS = {"nll", "n_params", "gof_pvalue", "ftest_pvalue", "parameters"}


def _events(seed: int, spec: dict[str, tuple[float, int]]) -> pd.DataFrame:
    """Exponential mass spectra (τ, N) per category in [100, 180], with weight 0.5."""
    rng = np.random.default_rng(seed)
    frames = []
    for cat, (tau, n) in spec.items():
        x = 100.0 + rng.exponential(tau, size=4 * n)
        x = x[x < 180.0][:n]
        frames.append(pd.DataFrame({"mass": x, "cat": cat, "weight": np.full(len(x), 0.5)}))
    return pd.concat(frames, ignore_index=True)


def _check_category(out: Path, name: str) -> dict:
    """envelope.json has issue 5's keys and the plots/tables exist; returns the document."""
    d = out / name
    doc = json.loads((d / "envelope.json").read_text())
    assert ENVELOPE_KEYS <= set(doc) and doc["category"] == name
    assert {"family", "order", "n_params"} <= set(doc["best"])
    for fam in doc["families"].values():
        assert {"orders", "truncation_order", "envelope_orders"} <= set(fam)
        for rec in fam["orders"].values():
            assert ORDER_KEYS <= set(rec)
    for stem in ("multipdf", "splusb_blinded"):
        assert (d / f"{stem}.png").stat().st_size > 1000 and (d / f"{stem}.pdf").is_file()
    assert (d / "ftest_table.md").read_text().startswith("# f-test")
    assert (d / "ftest_table.csv").read_text().startswith("function,family,order,n_params,deviance")
    return doc


def test_cli_three_categories_one_empty_futures(tmp_path, capsys):
    """a, b finish (in parallel), c is empty: skipped with its count, exit 1; --keep-going turns the exit code to 0."""
    path = tmp_path / "events.csv"
    _events(1, {"a": (25.0, 3000), "b": (40.0, 2000)}).to_csv(path, index=False)
    out = tmp_path / "out"
    argv = ["ftest", "--input", str(path), "--observable", "mass", "--category-column", "cat", "--categories",
            "a,b,c", "--range", "100", "180", "--blind", "115", "135", "--bins", "40", "--out", str(out),
            "--executor", "futures", "--workers", "2"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "category c skipped: too few events to fit: 0 in the fit bins (need ≥ 20)" in err
    for name in ("a", "b"):
        doc = _check_category(out, name)
        assert doc["best"]["family"] in doc["families"]
        exp = doc["families"]["exponential"]
        assert exp["truncation_order"] == 1 and 1 in exp["envelope_orders"]
        # sideband-only prefit normalisation: fit bins = sidebands, window interpolated
        norm = doc["prefit_normalisation"]
        assert norm["fit_bin_events"] == doc["events_in_fit_bins"]
        assert norm["signal_window_events_expected"] > 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["failed"] == ["c"] and [c["status"] for c in summary["categories"]] == ["ok", "ok", "skipped"]
    assert summary["categories"][2]["n_events"] == 0 and not (out / "c").exists()
    assert main(argv[:-4] + ["--executor", "iterative", "--keep-going", "--families", "exponential,bernstein"]) == 0


def test_cli_root_histograms_dask_with_too_few_events(tmp_path, capsys):
    """A ROOT file of histograms (one per category) on Dask: the 8-event category (6 outside the blind window) is
    skipped, the other finishes."""
    import uproot

    edges = np.linspace(100.0, 180.0, 41)
    rng = np.random.default_rng(4)
    good = np.histogram(100 + rng.exponential(30.0, 5000), bins=edges)[0].astype(float)
    few = np.zeros(40)
    few[[1, 5, 9, 20]] = 2.0
    path = tmp_path / "hists.root"
    with uproot.recreate(path) as f:
        f["cat0"] = (good, edges)
        f["cat1"] = (few, edges)
    out = tmp_path / "out"
    rc = main(["ftest", "--input", str(path), "--observable", "mgg", "--blind", "115", "135", "--out", str(out),
               "--executor", "dask", "--workers", "2", "--families", "exponential,powerlaw"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "category cat1 skipped: too few events to fit: 6 in the fit bins" in err
    doc = _check_category(out, "cat0")
    assert doc["bins"] == 40 and doc["range"] == [100.0, 180.0]
    assert set(doc["families"]) == {"exponential", "powerlaw"}


def test_cli_root_tree_pseudodata_is_seeded(tmp_path):
    """A ROOT tree of weighted background simulation: --pseudodata Poisson-fluctuates the weighted histogram;
    the same seed reproduces the result, another seed changes it; the yield follows the weights (×0.5)."""
    import uproot

    df = _events(2, {"0": (30.0, 6000)})
    path = tmp_path / "bkg.root"
    with uproot.recreate(path) as f:
        f.mktree("Events", {"mass": np.float64, "cat": np.int32, "weight": np.float64})
        f["Events"].extend({"mass": df["mass"].to_numpy(), "cat": np.zeros(len(df), dtype=np.int32),
                            "weight": df["weight"].to_numpy()})
        f["other"] = {"x": np.arange(3.0)}  # an RNTuple next to the tree: --tree chooses
    docs = []
    for seed, name in ((5, "s5a"), (5, "s5b"), (6, "s6")):
        cfg = make_config({"input": str(path), "tree": "Events", "observable": "mass", "category_column": "cat", "weight_column": "weight",
                           "pseudodata": True, "seed": seed, "range": (100.0, 180.0), "bins": 40,
                           "executor": "iterative", "families": ["exponential"], "n_toys": 100})
        run = run_ftest(cfg, tmp_path / name)
        assert run.ok
        docs.append(json.loads((tmp_path / name / "0" / "envelope.json").read_text()))
    assert docs[0]["events_in_fit_bins"] == docs[1]["events_in_fit_bins"] != docs[2]["events_in_fit_bins"]
    assert docs[0]["events_in_fit_bins"] == pytest.approx(3000, abs=4 * np.sqrt(3000))
    assert docs[0]["pseudodata"] is True and (tmp_path / "s5a" / "0" / "splusb.png").is_file()
    # the compute step alone (no output directory: nothing written) gives the same envelope.json document
    from analysis.resonance.ftest_category import fit_category
    from analysis.resonance.ftest_inputs import read_categories

    (cat,) = read_categories(cfg)
    fit = fit_category(cat, cfg, cfg.range)
    assert json.loads(json.dumps(fit.to_dict(), default=lambda o: o.tolist())) == docs[2]


def test_config_yaml_and_2d_ftest(tmp_path):
    """Options from YAML (input relative to the config), parquet input, auto categories, 2D f-test output."""
    _events(3, {"1": (30.0, 3000), "2": (20.0, 2500)}).to_parquet(tmp_path / "ev.parquet")
    (tmp_path / "cfg.yml").write_text(
        "input: ev.parquet\nobservable: mass\ncategory_column: cat\nrange: [100, 180]\nblind: [115, 135]\n"
        "bins: 40\nexecutor: iterative\nfamilies: [exponential, bernstein]\nftest_2d: [exponential, bernstein]\n"
        "signal: {mass_gev: 125, width_gev: 1.5, events: 50}\n")
    out = tmp_path / "out"
    assert main(["ftest", "--config", str(tmp_path / "cfg.yml"), "--out", str(out)]) == 0
    for name in ("1", "2"):
        doc = _check_category(out, name)
        assert doc["ftest_2d"]["families"] == ["exponential", "bernstein"]
        assert doc["ftest_2d"]["path"][0] == [1, 0]
        assert doc["signal_model"] == {"mass_gev": 125.0, "width_gev": 1.5, "events": 50.0, "illustrative": False}
        assert json.loads((out / name / "ftest.json").read_text())["ftest_2d"]["truncation_orders"]


def test_no_category_with_enough_events_is_one_line_exit_2(tmp_path, capsys):
    """Every category empty or below min_events (here 15 events, 8 of them in the blind window, and 0): exit 2,
    one line naming each category with its count in the fit bins, nothing written."""
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.uniform(140.0, 180.0, 7), rng.uniform(116.0, 134.0, 8)])
    path = tmp_path / "few.csv"
    pd.DataFrame({"mass": x, "cat": "a"}).to_csv(path, index=False)
    out = tmp_path / "o"
    argv = ["ftest", "--input", str(path), "--observable", "mass", "--category-column", "cat", "--categories", "a,b",
            "--range", "100", "180", "--blind", "115", "135", "--out", str(out), "--executor", "iterative"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [("ana ftest: error: no category has enough events to fit (need ≥ 20 in the fit bins): "
                    "a has 7, b has 0")], err
    assert not out.exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--input", "{tmp}/nope.csv"], "nope.csv: input file not found"),
        (["--observable", "mgg"], "no column 'mgg' (has: mass, cat, weight)"),
        (["--range", "100", "180", "--blind", "90", "120"], "must lie strictly inside the range"),
        (["--families", "exponential,spline"], "unknown background family 'spline'"),
        (["--range", "150", "120"], "range [150.0, 120.0]: need two finite numbers LO < HI"),
        (["--config", "{tmp}/bad.yml"], "bad.yml: invalid config: colour: unknown option"),
        (["--input", "{tmp}/bad.csv"], "bad.csv: column 'mass' has a non-finite value in row 1"),
    ],
)
def test_bad_inputs_are_one_line_errors(tmp_path, capsys, extra, message):
    """User mistakes exit 2 with one line on stderr naming the culprit (file, column, row, option)."""
    path = tmp_path / "events.csv"
    _events(1, {"a": (25.0, 50)}).to_csv(path, index=False)
    (tmp_path / "bad.yml").write_text("colour: red\n")
    (tmp_path / "bad.csv").write_text("mass,cat\n120,a\nnan,a\n")
    argv = ["ftest", "--input", str(path), "--observable", "mass", "--category-column", "cat",
            "--out", str(tmp_path / "o")] + [e.format(tmp=tmp_path) for e in extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ana ftest: error:") and message in err[0], err
    assert not (tmp_path / "o").exists()
