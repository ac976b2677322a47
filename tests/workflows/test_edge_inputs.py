"""Real-world edge inputs on `ana run`: an empty sample (R02), --max-files edge values (R25)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import uproot

from analysis.agc.run import run_ttbar
from analysis.cli import main
from fileset.build import load_samples_config
from fileset.generate.agc import generate_arrays, write_file
from fileset.normalisation import mc_normalisation


def _fileset(tmp_path, entries: dict[str, list[tuple[str, int]]], name: str = "ntuples.json"):
    """entries: {process: [(file name, events), ...]} of nominal samples → written files + json path."""
    doc = {}
    for process, files in entries.items():
        listed = []
        for i, (fname, n) in enumerate(files):
            if not (tmp_path / fname).exists():
                write_file(tmp_path / fname, generate_arrays(process, "nominal", n, seed=11, index=i))
            listed.append({"path": fname, "nevts": n})
        doc[process] = {"nominal": {"files": listed, "nevts_total": sum(n for _, n in files)}}
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize("executor", ["iterative", "futures"])
def test_empty_sample_contributes_zero(tmp_path, executor):
    """R02: a sample whose only file has 0 entries: exit 0, zero histograms, finite everywhere, 3000 = 3000."""
    fs = _fileset(tmp_path, {"ttbar": [("tt.root", 3000)], "single_top_s_chan": [("schan.root", 0)]})
    result = run_ttbar(fs, tmp_path / "out", executor=executor, workers=2 if executor == "futures" else None,
                       progress=False)
    assert result.metrics["events_processed"] == result.metrics["events_expected"] == 3000
    h = result.hist
    assert np.all(np.isfinite(h.values(flow=True))) and np.all(np.isfinite(h.variances(flow=True)))
    # one empty chunk, as coffea plans an empty file, on every executor (the local fast path too): zero histograms
    assert result.metrics["fast_path"] == (executor == "iterative") and result.metrics["chunks"] == 2
    assert not h[:, :, "single_top_s_chan", :].values(flow=True).any()
    with uproot.open(tmp_path / "out" / "histograms.root") as f:
        for key in f.keys():
            assert np.all(np.isfinite(f[key].values())) and np.all(np.isfinite(f[key].variances())), key
        assert f["4j2b_ttbar"].values().sum() > 0


def test_empty_sample_normalisation_rule():
    """Another place with the same fault: skipped chunks can leave N − lost = 0 (``_correct_norms``)."""
    from analysis.agc.run import _correct_norms
    from processors.accumulators import Constant

    cfg = load_samples_config()
    fileset = {"wjets__nominal": {"metadata": {"xsec": 10.0, "lumi": 3378.0, "nevts": 500}}}
    output = {"norms": {"wjets/nominal": Constant(1.0)}}
    _correct_norms(output, fileset, {"wjets__nominal": 500})  # every event lost: contributes zero, no ZeroDivision
    assert output["norms"]["wjets/nominal"].value == 0.0
    _correct_norms(output, fileset, {"wjets__nominal": 100})
    assert output["norms"]["wjets/nominal"].value == pytest.approx(10.0 * 3378.0 / 400)
    assert mc_normalisation(cfg["cross_sections_pb"]["ttbar"], cfg["luminosity_pb"], 0) == 0.0


@pytest.fixture(scope="module")
def two_file_sample(tmp_path_factory):
    d = tmp_path_factory.mktemp("r25")
    full = _fileset(d, {"ttbar": [("tt0.root", 2000), ("tt1.root", 3000)], "wjets": [("wj0.root", 1500)]}, "full.json")
    first = _fileset(d, {"ttbar": [("tt0.root", 2000)], "wjets": [("wj0.root", 1500)]}, "first.json")
    return d, full, first


def test_max_files_one_equals_first_files_only(two_file_sample, tmp_path):
    """R25: --max-files 1 processes 3500 events, normalised to the files used (= a fileset of first files)."""
    _, full, first = two_file_sample
    assert main(["run", "ttbar", "--fileset", str(full), "--out", str(tmp_path / "m1"), "--max-files", "1",
                 "--executor", "iterative", "--no-progress"]) == 0
    m = json.loads((tmp_path / "m1" / "metrics.json").read_text())
    assert m["events_processed"] == m["events_expected"] == 3500
    ref = run_ttbar(first, tmp_path / "ref", executor="iterative", progress=False)
    with uproot.open(tmp_path / "m1" / "histograms.root") as a, uproot.open(tmp_path / "ref" / "histograms.root") as b:
        assert sorted(a.keys()) == sorted(b.keys())
        for k in b.keys():
            assert np.array_equal(a[k].values(), b[k].values()), k


def test_histograms_root_holds_only_histograms(two_file_sample, tmp_path):
    """Users loop over every key of histograms.root calling .values(): `ana run ttbar` writes TH1s only; the run's
    luminosity goes to metrics.json, with the SHA-256 of the histograms.root it was written with."""
    _, full, _ = two_file_sample
    out = tmp_path / "out"
    assert main(["run", "ttbar", "--fileset", str(full), "--out", str(out), "--executor", "iterative",
                 "--no-progress"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    with uproot.open(out / "histograms.root") as f:
        classes = f.classnames(cycle=False)
        assert sorted(classes) == sorted(m["histogram_keys"]) and "4j2b_wjets" in classes
        assert {k: c for k, c in classes.items() if not c.startswith("TH1")} == {}
        for key in f.keys():
            assert np.isfinite(f[key].values()).all(), key
    assert m["luminosity_pb"] == load_samples_config()["luminosity_pb"] == 3378.0
    assert m["histograms_sha256"] == hashlib.sha256((out / "histograms.root").read_bytes()).hexdigest()


@pytest.mark.parametrize("value", ["0", "-2", "1.5", "x"])
def test_max_files_edge_values_one_line_exit_2(two_file_sample, tmp_path, capsys, value):
    """R25: --max-files 0 / -2 / non-integers: one line, exit 2, nothing written."""
    _, full, _ = two_file_sample
    assert main(["run", "ttbar", "--fileset", str(full), "--out", str(tmp_path / "o"), f"--max-files={value}",
                 "--executor", "iterative", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--max-files" in err[0], err
    assert not (tmp_path / "o").exists()


def test_max_files_api_boundary(two_file_sample):
    """The same rule below the CLI: build_fileset refuses 0 and negatives other than -1 in one line."""
    from fileset.build import build_fileset
    from fileset.errors import FilesetError

    _, full, _ = two_file_sample
    for bad in (0, -2):
        with pytest.raises(FilesetError, match="-1 for all"):
            build_fileset(full, bad)
    assert sum(len(s["files"]) for s in build_fileset(full, -1).values()) == 3
