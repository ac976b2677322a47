"""AGC part 1: processing on every executor, exact reproducibility, hand-computed yields, bad inputs."""

from __future__ import annotations

import json

import awkward as ak
import numpy as np
import pytest
import uproot

from analysis.cli import main
from analysis.histio import read_histograms
from analysis.agc.run import run_ttbar
from fileset.build import build_fileset, load_samples_config
from fileset.generate.agc import generate_agc, write_file


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """Small synthetic AGC sample (nine sample sets, two files each)."""
    return generate_agc(tmp_path_factory.mktemp("agc_run"), events_per_file=3000, files_per_sample=2, seed=5)


def _same(h1, h2) -> None:
    """Bit-identical values and variances, same categories."""
    assert list(h1.axes["process"]) == list(h2.axes["process"]) or set(h1.axes["process"]) == set(h2.axes["process"])
    for p in h1.axes["process"]:
        for v in h1.axes["variation"]:
            if v not in h2.axes["variation"]:
                continue
            a, b = h1[:, :, p, v], h2[:, :, p, v]
            assert np.array_equal(a.values(flow=True), b.values(flow=True)), (p, v)
            assert np.array_equal(a.variances(flow=True), b.variances(flow=True)), (p, v)


def test_bit_identical_across_executors_and_chunk_sizes(sample, tmp_path, monkeypatch):
    from analysis.execution import fastpath

    ref = run_ttbar(sample, tmp_path / "it", executor="iterative", chunksize=1000, progress=False)
    assert ref.metrics["events_processed"] == 9 * 2 * 3000
    other_chunks = run_ttbar(sample, executor="iterative", chunksize=777, progress=False)
    futures = run_ttbar(sample, executor="futures", workers=2, chunksize=1300, progress=False)
    dask = run_ttbar(sample, tmp_path / "dask", executor="dask", workers=2, chunksize=2000, progress=False)
    # iterative and Dask runs take the fast path (uproot + process_columns), process pools coffea's Runner
    assert ref.metrics["fast_path"] and other_chunks.metrics["fast_path"] and dask.metrics["fast_path"]
    assert not futures.metrics["fast_path"]
    with monkeypatch.context() as m:  # Dask on coffea's Runner (what a processor without process_columns gets)
        m.setattr(fastpath, "eligible", lambda *args, **kwargs: False)
        dask_coffea = run_ttbar(sample, executor="dask", workers=2, chunksize=1500, progress=False)
    assert not dask_coffea.metrics["fast_path"]
    for other in (other_chunks, futures, dask, dask_coffea):
        _same(ref.hist, other.hist)
        assert other.cutflow == ref.cutflow
    # the written files are identical in content too
    a, b = read_histograms(tmp_path / "it" / "histograms.root"), read_histograms(tmp_path / "dask" / "histograms.root")
    assert set(a) == set(b)
    for k in a:
        assert np.array_equal(a[k].values(), b[k].values()) and np.array_equal(a[k].variances(), b[k].variances()), k


def test_outputs_keys_pseudodata_and_metrics(sample, tmp_path):
    res = run_ttbar(sample, tmp_path, executor="iterative", progress=False)
    hists = read_histograms(tmp_path / "histograms.root")
    for key in ("4j1b_ttbar", "4j2b_ttbar", "4j1b_wjets", "4j2b_wjets_scale_var_down", "4j1b_ttbar_ME_var",
                "4j2b_ttbar_PS_var", "4j1b_ttbar_scaleup", "4j1b_ttbar_scaledown", "4j2b_single_top_tW_pt_res_up",
                "4j1b_single_top_s_chan_pt_scale_up", "4j1b_ttbar_btag_var_3_down", "4j1b_pseudodata", "4j2b_pseudodata"):
        assert key in hists, key
    assert "4j1b_ttbar_scale_var_up" not in hists  # W+jets-only variation
    h = hists["4j1b_ttbar"]
    assert np.allclose(h.axes[0].edges, np.arange(110, 551, 40))
    for region in ("4j1b", "4j2b"):
        expected = 0.5 * (hists[f"{region}_ttbar_ME_var"].values() + hists[f"{region}_ttbar_PS_var"].values()) \
            + hists[f"{region}_wjets"].values()
        assert np.allclose(hists[f"{region}_pseudodata"].values(), expected, rtol=1e-12)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["events_processed"] == 54000
    assert metrics["events_per_dataset"]["ttbar__nominal"] == 6000
    assert metrics["events_per_s"] > 0 and metrics["wall_time_s"] > 0
    # JES up moves both observables: HT in 4j1b and m_bjj in 4j2b
    nominal, jes = res.hist[:, "4j2b", "ttbar", "nominal"], res.hist[:, "4j2b", "ttbar", "pt_scale_up"]
    mean = lambda hh: (hh.values() * hh.axes[0].centers).sum() / hh.values().sum()  # noqa: E731
    assert mean(jes) > mean(nominal) * 1.01


def _tiny_file(path):
    """Three hand-made events: 4j1b, 4j2b, and one rejected (two leptons)."""
    jet = {
        "pt": [[60.0, 50.0, 40.0, 30.0], [80.0, 70.0, 45.0, 35.0, 20.0], [90.0, 80.0, 70.0, 60.0]],
        "eta": [[0.1, -0.2, 0.5, 1.0], [0.0, 0.3, -0.8, 1.2, 0.4], [0.0, 0.0, 0.0, 0.0]],
        "phi": [[0.0, 1.5, 3.0, -1.5], [0.2, 2.5, -2.0, 1.0, 0.0], [0.0, 1.0, 2.0, 3.0]],
        "btag": [[0.9, 0.1, 0.2, 0.3], [0.8, 0.1, 0.7, 0.2, 0.9], [0.9, 0.9, 0.1, 0.1]],
    }
    jet["mass"] = [[5.0] * len(x) for x in jet["pt"]]
    jet["e"] = [[float(np.sqrt((p * np.cosh(e)) ** 2 + m**2)) for p, e, m in zip(ps, es, ms)]
                for ps, es, ms in zip(jet["pt"], jet["eta"], jet["mass"])]
    jet["hadronFlavour"] = [[0] * len(x) for x in jet["pt"]]
    cols = {
        "jet": {k: ak.Array(v) for k, v in jet.items()},
        "electron": {k: ak.Array(v) for k, v in {"pt": [[], [30.0], [40.0]], "eta": [[], [0.1], [0.1]],
                                                   "phi": [[], [0.0], [0.0]], "e": [[], [30.2], [40.2]]}.items()},
        "muon": {k: ak.Array(v) for k, v in {"pt": [[35.0, 10.0], [], [30.0]], "eta": [[0.0, 0.0], [], [0.0]],
                                               "phi": [[0.0, 1.0], [], [0.0]], "e": [[35.0, 10.0], [], [30.0]]}.items()},
        "met_pt": np.array([20.0, 30.0, 40.0]), "met_phi": np.zeros(3), "event": np.array([1, 2, 3], dtype=np.uint64),
    }
    write_file(path, cols)
    return jet


def test_yields_equal_hand_computation(tmp_path):
    jet = _tiny_file(tmp_path / "tiny.root")
    (tmp_path / "ntuples.json").write_text(json.dumps(
        {"ttbar": {"nominal": {"files": [{"path": "tiny.root", "nevts": 3}], "nevts_total": 3}}}))
    res = run_ttbar(tmp_path / "ntuples.json", executor="iterative", progress=False)
    cfg = load_samples_config()
    w = cfg["cross_sections_pb"]["ttbar"] * cfg["luminosity_pb"] / 3
    h = res.hist
    # event 1: 4j1b, HT = 180 GeV
    h1 = h[:, "4j1b", "ttbar", "nominal"]
    assert h1.values().sum() == pytest.approx(w, rel=1e-6)
    assert h1.values()[h1.axes[0].index(180.0)] == pytest.approx(w, rel=1e-6)
    assert h1.variances().sum() == pytest.approx(w * w, rel=1e-6)
    up = h[:, "4j1b", "ttbar", "btag_var_0_up"].values().sum()
    assert up == pytest.approx(w * (1 + 0.075 * 60.0 / 50), rel=1e-6)
    # event 2: 4j2b; jets > 25 GeV: indices 0..3; highest-pT tagged trijet by hand
    pt, eta, phi, e, bt = (np.array(jet[k][1][:4]) for k in ("pt", "eta", "phi", "e", "btag"))
    best, mass = -1.0, None
    for a in range(4):
        for b in range(a + 1, 4):
            for c in range(b + 1, 4):
                idx = [a, b, c]
                if max(bt[idx]) <= 0.5:
                    continue
                px, py = (pt[idx] * np.cos(phi[idx])).sum(), (pt[idx] * np.sin(phi[idx])).sum()
                pz, ee = (pt[idx] * np.sinh(eta[idx])).sum(), e[idx].sum()
                if px**2 + py**2 > best:
                    best, mass = px**2 + py**2, np.sqrt(ee**2 - px**2 - py**2 - pz**2)
    h2 = h[:, "4j2b", "ttbar", "nominal"]
    assert h2.values().sum() == pytest.approx(w, rel=1e-6)
    assert h2.values()[h2.axes[0].index(mass)] == pytest.approx(w, rel=1e-6)
    assert res.cutflow["ttbar__nominal"]["1 lepton"] == 2


def test_empty_selection_and_max_files(sample):
    fs = build_fileset(sample, n_files_max_per_sample=1)
    assert all(len(spec["files"]) == 1 for spec in fs.values())
    assert fs["ttbar__nominal"]["metadata"]["nevts"] == 3000
    assert fs["wjets__nominal"]["metadata"]["xsec"] == pytest.approx(15487.164)
    res = run_ttbar(sample, executor="iterative", max_files=1, progress=False)
    assert res.metrics["events_processed"] == 9 * 3000


def test_remote_paths_kept_as_is(tmp_path):
    doc = {"ttbar": {"nominal": {"files": [{"path": "root://eospublic.cern.ch//eos/x.root", "nevts": 10},
                                           {"path": "https://example.org/y.root", "nevts": 5}], "nevts_total": 15}}}
    (tmp_path / "n.json").write_text(json.dumps(doc))
    fs = build_fileset(tmp_path / "n.json")
    assert fs["ttbar__nominal"]["files"] == ["root://eospublic.cern.ch//eos/x.root", "https://example.org/y.root"]
    assert fs["ttbar__nominal"]["metadata"]["nevts"] == 15


def _cli_error(capsys, argv) -> str:
    """Run ``ana``; assert exit 2 and a single stderr line without traceback; return it."""
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


@pytest.mark.parametrize("problem", ["missing", "corrupt", "truncated", "wrong_tree"])
def test_bad_files_give_one_line_errors(problem, tmp_path, capsys):
    out = generate_agc(tmp_path / "in", events_per_file=500, files_per_sample=1, seed=1,
                       samples=[("ttbar", "nominal"), ("wjets", "nominal")])
    target = tmp_path / "in" / "wjets__nominal__000.root"
    if problem == "missing":
        target.unlink()
    elif problem == "corrupt":
        target.write_bytes(b"this is not a ROOT file" * 100)
    elif problem == "truncated":
        data = target.read_bytes()
        target.write_bytes(data[: len(data) // 2])
    else:
        cols = {"x": np.arange(500, dtype=np.float64)}
        with uproot.recreate(target) as f:
            f["other"] = cols
    line = _cli_error(capsys, ["run", "ttbar", "--fileset", str(out), "--out", str(tmp_path / "o"),
                               "--executor", "iterative", "--no-progress"])
    assert "wjets__nominal__000.root" in line


@pytest.mark.parametrize("content, needle", [
    ("{not json", "not valid JSON"),
    (json.dumps({"ttbar": {"nominal": {"nevts_total": 3}}}), "files"),
    (json.dumps({"ttbar": {"nominal": {"files": [{"path": "a.root"}]}}}), "nevts"),
    (json.dumps({"nope": {"nominal": {"files": [{"path": "a.root", "nevts": 1}]}}}), "cross-section"),
])
def test_bad_fileset_json(content, needle, tmp_path, capsys):
    (tmp_path / "n.json").write_text(content)
    line = _cli_error(capsys, ["run", "ttbar", "--fileset", str(tmp_path / "n.json"), "--out", str(tmp_path / "o"),
                               "--executor", "iterative"])
    assert needle in line and "n.json" in line


def test_nan_jet_kinematics_are_an_error_not_dropped(tmp_path, capsys):
    from fileset.generate.agc import generate_arrays

    cols = generate_arrays("ttbar", "nominal", 1000, seed=1)
    pt = ak.to_numpy(ak.flatten(cols["jet"]["pt"])).copy()
    first_jet_of_entry_7 = int(ak.sum(ak.num(cols["jet"]["pt"])[:7]))
    pt[first_jet_of_entry_7] = np.nan
    cols["jet"]["pt"] = ak.unflatten(pt, ak.num(cols["jet"]["pt"]))
    write_file(tmp_path / "nan.root", cols)
    (tmp_path / "n.json").write_text(json.dumps(
        {"ttbar": {"nominal": {"files": [{"path": "nan.root", "nevts": 1000}], "nevts_total": 1000}}}))
    line = _cli_error(capsys, ["run", "ttbar", "--fileset", str(tmp_path / "n.json"), "--out", str(tmp_path / "o"),
                               "--executor", "iterative", "--no-progress"])
    assert "nan.root" in line and "jet pt is nan at entry 7" in line
