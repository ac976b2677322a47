"""``ana run --processor``: your own processor on the execution layer, end to end on tiny generated NanoAOD.

Iterative, futures and a 2-worker Dask LocalCluster (the processor's file shipped to the workers) give
bit-identical histograms; the yields equal an independent uproot + numpy computation; bad specs and a
processor that raises are one-line errors with exit code 2.
"""

from __future__ import annotations

import json
import textwrap

import awkward as ak
import numpy as np
import pytest
import uproot

from analysis.cli import main
from analysis.histio import histogram_digest, read_histograms
from fileset.generate.nanoaod import generate_nanoaod

SAMPLES = [("ttbar", "nominal"), ("single_top_tW", "nominal"), ("wjets", "nominal")]
MODULE = '''
from coffea import processor
from processors.examples.dilepton import DileptonTtbar


class Proc(DileptonTtbar):
    """The example processor defined in a file that Dask workers only get by shipping."""


class Boom(processor.ProcessorABC):
    def process(self, events):
        raise ValueError("boom in chunk")

    def postprocess(self, accumulator):
        return accumulator


class NotAProcessor:
    pass


class BadPost(Proc):
    def postprocess(self, accumulator):
        return accumulator["nope"]
'''


@pytest.fixture(scope="module")
def nano(tmp_path_factory):
    """Three small NanoAOD samples (3000 events each) and a user module file outside the Python path."""
    root = tmp_path_factory.mktemp("userproc")
    index = generate_nanoaod(root / "data", events_per_file=3000, files_per_sample=1, seed=11, samples=SAMPLES)
    (root / "code").mkdir()
    module = root / "code" / "tests_module.py"
    module.write_text(textwrap.dedent(MODULE))
    return index, module


def _run(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(["run", *args, "--no-progress"])
    out, err = capsys.readouterr()
    return rc, out, err


def _expected_ttbar_ht(path: str, norm: float, bins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Independent nominal H_T histogram of the dilepton selection: uproot arrays + numpy, no coffea."""
    t = uproot.open(path)["Events"].arrays()
    e = (t.Electron_pt > 25) & (t.Electron_cutBased >= 4) & (t.Electron_sip3d < 4)
    m = (t.Muon_pt > 25) & t.Muon_tightId & (t.Muon_pfRelIso04_all < 0.15) & (t.Muon_sip3d < 4)
    n_lep = ak.sum(e, axis=1) + ak.sum(m, axis=1)
    charge = ak.sum(t.Electron_charge[e], axis=1) + ak.sum(t.Muon_charge[m], axis=1)
    j = (t.Jet_pt > 30) & (abs(t.Jet_eta) < 2.4) & (t.Jet_jetId >= 2)
    nb = ak.sum(j & (t.Jet_btagCSVV2 > 0.5), axis=1)
    sel = ak.to_numpy((n_lep == 2) & (charge == 0) & (ak.sum(j, axis=1) >= 2) & (nb >= 1))
    ht = ak.to_numpy(ak.sum(t.Jet_pt[j], axis=1))[sel]
    counts, _ = np.histogram(ht, bins)
    return counts * norm, counts * norm**2


def test_user_processor_all_executors_bit_identical(nano, tmp_path, capsys):
    index, module = nano
    spec = f"{module}:Proc"
    runs = {"iterative": ["--executor", "iterative", "--chunksize", "1000"],
            "futures": ["--executor", "futures", "--workers", "2", "--chunksize", "1700"],
            "dask": ["--executor", "dask", "--workers", "2", "--chunksize", "2500"]}
    for name, extra in runs.items():
        rc, out, err = _run(capsys, "--processor", spec, "--fileset", str(index), "--out", str(tmp_path / name), *extra)
        assert rc == 0, err
        assert "processed 9000 events" in out
    digests = {name: histogram_digest(tmp_path / name / "histograms.root") for name in runs}
    assert len(set(digests.values())) == 1, digests
    metrics = json.loads((tmp_path / "dask" / "metrics.json").read_text())
    assert metrics["cluster"]["user_code_shipped"] == ["tests_module.py"]
    assert metrics["events_processed"] == 9000 and metrics["events_lost"] == 0
    hists = read_histograms(tmp_path / "iterative" / "histograms.root")
    keys = {f"ht_{p}_{v}" for p, _ in SAMPLES for v in ("nominal", "lepton_sf_up", "lepton_sf_down", "jes_up", "jes_down")}
    assert set(metrics["histogram_keys"]) == keys and set(hists) == keys
    # yields against an independent computation (normalisation xsec × lumi / N from the fileset)
    from coffea.util import load

    output = load(str(tmp_path / "iterative" / "output.coffea"))
    h = output["ht"]
    edges = h.axes["ht"].edges
    meta = json.loads(index.read_text())
    from fileset.build import load_samples_config

    cfg = load_samples_config()
    norm = cfg["cross_sections_pb"]["ttbar"] * cfg["luminosity_pb"] / meta["ttbar"]["nominal"]["nevts_total"]
    want, want_var = _expected_ttbar_ht(str(index.parent / meta["ttbar"]["nominal"]["files"][0]["path"]), norm, edges)
    assert want.sum() > 0
    np.testing.assert_allclose(h[:, "ttbar", "nominal"].values(), want, rtol=1e-7)
    np.testing.assert_allclose(h[:, "ttbar", "nominal"].variances(), want_var, rtol=1e-7)
    np.testing.assert_allclose(hists["ht_ttbar_nominal"].values(), want, rtol=1e-7)
    # lepton SF variation: (1 ± 0.02)² of nominal, exactly a weight variation
    np.testing.assert_allclose(h[:, "ttbar", "lepton_sf_up"].values(), want * 1.02**2, rtol=1e-7)
    assert output["cutflow"]["ttbar__nominal"]["all"] == 3000


def test_coffea_style_fileset_and_module_name_spec(nano, tmp_path, capsys, monkeypatch):
    """A coffea-style json with the same files and metadata gives the same histograms; spec by module name."""
    index, module = nano
    meta = json.loads(index.read_text())
    from fileset.build import load_samples_config

    cfg = load_samples_config()
    doc = {f"{p}__{v}": {"files": {str(index.parent / meta[p][v]["files"][0]["path"]): "Events"},
                         "metadata": {"process": p, "variation": v, "xsec": cfg["cross_sections_pb"][p],
                                      "lumi": cfg["luminosity_pb"], "nevts": meta[p][v]["nevts_total"]}}
           for p, v in SAMPLES}
    coffea_json = tmp_path / "coffea_fileset.json"
    coffea_json.write_text(json.dumps(doc))
    monkeypatch.syspath_prepend(str(module.parent))
    rc, _, err = _run(capsys, "--processor", "tests_module:Proc", "--fileset", str(coffea_json), "--out",
                      str(tmp_path / "c"), "--executor", "iterative", "--processor-option", "jes=0.05")
    assert rc == 0, err
    rc, _, err = _run(capsys, "--processor", "processors.examples.dilepton:DileptonTtbar", "--fileset", str(index),
                      "--out", str(tmp_path / "a"), "--executor", "iterative", "--processor-option", "jes=0.05",
                      "--schema", "nanoaod")
    assert rc == 0, err
    assert histogram_digest(tmp_path / "c" / "histograms.root") == histogram_digest(tmp_path / "a" / "histograms.root")
    assert json.loads((tmp_path / "c" / "metrics.json").read_text())["schema"].endswith("NanoAODSchema")


@pytest.mark.parametrize("spec, needle", [
    ("nomodule:X", "cannot import module 'nomodule'"),
    ("{module}:NotAProcessor", "is not a coffea ProcessorABC subclass"),
    ("{module}:Missing", "has no attribute 'Missing'"),
    ("{module}", "expected MODULE:CLASS"),
])
def test_bad_processor_spec_one_line(nano, tmp_path, capsys, spec, needle):
    index, module = nano
    rc, _, err = _run(capsys, "--processor", spec.format(module=module), "--fileset", str(index),
                      "--out", str(tmp_path / "o"))
    assert rc == 2 and needle in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("executor", ["iterative", "futures", "dask"])
def test_processor_that_raises_one_line(nano, tmp_path, capsys, executor):
    index, module = nano
    rc, _, err = _run(capsys, "--processor", f"{module}:Boom", "--fileset", str(index), "--out", str(tmp_path / "o"),
                      "--executor", executor, "--retries", "1")
    line = err.strip().splitlines()[-1]
    assert rc == 2, err
    assert line.startswith("ana run: error: processor") and "Boom failed on" in line
    assert "ValueError: boom in chunk (tests_module.py:" in line and "__nanoaod_000.root entries 0-3000" in line
    assert "Traceback" not in err and "Compute Failed" not in err


def test_postprocess_that_raises_one_line(nano, tmp_path, capsys):
    index, module = nano
    rc, _, err = _run(capsys, "--processor", f"{module}:BadPost", "--fileset", str(index), "--out", str(tmp_path / "o"),
                      "--executor", "iterative")
    line = err.strip().splitlines()[-1]
    assert rc == 2 and "BadPost: postprocess failed: KeyError: 'nope' (tests_module.py:" in line, err
    assert "Traceback" not in err


def test_skip_and_account_and_checkpoints(nano, tmp_path, capsys):
    """The reliability layer applies to user processors: a missing file fails in one line or is skipped and
    reported; a rerun with --checkpoint takes every chunk from the checkpoint and gives the same histograms."""
    index, module = nano
    meta = json.loads(index.read_text())
    files = [str(index.parent / meta["ttbar"]["nominal"]["files"][0]["path"]), str(tmp_path / "gone.root")]
    fileset = tmp_path / "fs.json"
    fileset.write_text(json.dumps({"tt": {"files": files, "treename": "Events", "metadata": {"process": "ttbar"}}}))
    common = ["--processor", f"{module}:Proc", "--fileset", str(fileset), "--executor", "iterative", "--chunksize", "1000"]
    rc, _, err = _run(capsys, *common, "--out", str(tmp_path / "strict"))
    assert rc == 2 and "1 unreadable input file(s)" in err and "gone.root: file not found" in err
    assert len(err.strip().splitlines()) == 1
    for attempt in ("first", "again"):
        rc, out, err = _run(capsys, *common, "--out", str(tmp_path / attempt), "--skip-bad-files",
                            "--checkpoint", str(tmp_path / "ckpt"))
        assert rc == 0, err
        assert "SKIPPED 1 file(s)" in out and "gone.root: file not found" in out
    first = json.loads((tmp_path / "first" / "metrics.json").read_text())
    again = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert first["events_processed"] == 3000 and first["chunks"] == 3 and first["chunks_from_checkpoint"] == 0
    assert again["chunks_from_checkpoint"] == 3 and [b["path"] for b in again["bad_files"]] == [files[1]]
    assert histogram_digest(tmp_path / "first" / "histograms.root") == histogram_digest(tmp_path / "again" / "histograms.root")


def test_bad_options_together(nano, tmp_path, capsys):
    index, module = nano
    rc, _, err = _run(capsys, "--processor", f"{module}:Proc", "--fileset", str(tmp_path / "missing.json"),
                      "--out", str(tmp_path / "o"), "--chunksize", "0", "--processor-option", "nope=1")
    assert rc == 2 and len(err.strip().splitlines()) == 1
    for needle in ("chunksize: must be a positive integer", "options ['nope'] do not fit", "missing.json: fileset json not found"):
        assert needle in err, (needle, err)


def test_pool_worker_warnings_are_counted_not_printed(nano, tmp_path, capfd):
    """Warnings raised in futures' worker processes (coffea's NanoAOD schema: "Missing cross-reference index for
    Electron_jetIdx => Jet" on files without those branches) come back with the chunk and are counted into the one
    summary line like those of an in-process run; they were printed raw by each worker (16 lines per chunk)."""
    index, _ = nano
    meta = json.loads(index.read_text())
    p, v = SAMPLES[0]
    doc = {"tt": {"files": {str(index.parent / meta[p][v]["files"][0]["path"]): "Events"}, "metadata": {}}}
    coffea_json = tmp_path / "coffea_fileset.json"
    coffea_json.write_text(json.dumps(doc))
    summaries = []
    for executor in ("futures", "iterative"):
        rc = main(["run", "--processor", "processors.examples.dilepton:DileptonTtbar", "--fileset", str(coffea_json),
                   "--out", str(tmp_path / executor), "--executor", executor, "--no-progress"])
        out, err = capfd.readouterr()
        assert rc == 0, err
        assert "RuntimeWarning" not in err.replace("coffea RuntimeWarning", ""), err  # no raw warning lines
        summaries.append([line for line in err.splitlines() if "library warning(s) hidden" in line])
    assert summaries[0] == summaries[1] and "coffea RuntimeWarning" in summaries[0][0]
