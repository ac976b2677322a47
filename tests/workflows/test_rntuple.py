"""RNTuple input for `ana run ttbar`: the same events stored as TTree and as RNTuple give the same histograms.

Two cases: synthetic NanoAOD the generator writes both ways (same seed, same events), and the real 10-event CMS
Open Data NanoAOD RNTuple (``../shared/data/cms-open-data``), whose analysis columns are copied by uproot into a
TTree with NanoAOD's layout. Histograms are compared key by key (values and variances, flow bins included) and
the cutflows must be equal; the RNTuple pre-flight must reject a truncated RNTuple like a truncated TTree.
"""

from __future__ import annotations

import json
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from analysis.agc.run import run_ttbar
from analysis.errors import AnalysisError
from analysis.execution.preflight import inspect_file
from analysis.execution.runner import run_processor, schema_for
from analysis.histio import read_histograms
from fileset.build import build_fileset
from fileset.generate.nanoaod import generate_nanoaod, write_nanoaod_file
from processors.ttbar import Cuts, TtbarAnalysis

REAL_RNTUPLE = "data/cms-open-data/cmsopendata2015_ttbar_19980_NANOAOD_RNTupleImporter_rntuple_v1-0-0-1.root"
LOOSE = Cuts(lepton_pt=10.0, lepton_eta=2.4, jet_pt=15.0, jet_eta=2.4)  # populates the regions on few events
SAMPLES = [("ttbar", "nominal"), ("wjets", "nominal")]


def _assert_same_histograms(a: Path, b: Path) -> None:
    """Every histogram of a equals b's: same keys, values and variances bit for bit."""
    ha, hb = read_histograms(a), read_histograms(b)
    assert sorted(ha) == sorted(hb)
    for key in ha:
        np.testing.assert_array_equal(ha[key].values(flow=True), hb[key].values(flow=True), err_msg=key)
        np.testing.assert_array_equal(ha[key].variances(flow=True), hb[key].variances(flow=True), err_msg=key)


def test_generated_rntuple_equals_ttree(tmp_path):
    """`ana run ttbar` on the generator's RNTuple files = on its TTree files (same seed), histogram by histogram."""
    outs = {}
    for container in ("ttree", "rntuple"):
        index = generate_nanoaod(tmp_path / container, 4000, 1, seed=3, samples=SAMPLES, container=container)
        first = json.loads(index.read_text())["ttbar"]["nominal"]["files"][0]["path"]
        classes = uproot.open(tmp_path / container / first).classnames()
        assert classes == {"Events;1": "ROOT::RNTuple" if container == "rntuple" else "TTree"}
        result = run_ttbar(index, tmp_path / f"out_{container}", executor="iterative", progress=False)
        assert result.metrics["events_processed"] == 2 * 4000
        outs[container] = result
    assert outs["ttree"].cutflow == outs["rntuple"].cutflow
    assert outs["ttree"].cutflow["ttbar__nominal"]["4j2b"] > 20
    _assert_same_histograms(tmp_path / "out_ttree" / "histograms.root", tmp_path / "out_rntuple" / "histograms.root")


def _rntuple_as_ttree(src: Path, dest: Path) -> int:
    """Copy the analysis columns (event ids, Jet/Electron/Muon collections, MET, genWeight) of a NanoAOD RNTuple
    into a TTree with NanoAOD's branch layout (``nJet``, ``Jet_pt``, …); return the number of events."""
    ntuple = uproot.open(src)["Events"]
    names = ntuple.keys()
    data = {}
    for coll in ("Jet", "Electron", "Muon"):
        fields = [n for n in names if n.startswith(coll + "_")]
        arrays = ntuple.arrays(fields)
        data[coll] = ak.zip({f[len(coll) + 1:]: arrays[f] for f in fields})
    flat = [n for n in ("run", "luminosityBlock", "event", "genWeight", "MET_pt", "MET_phi") if n in names]
    arrays = ntuple.arrays(flat)
    for n in flat:
        data[n] = ak.to_numpy(arrays[n])
    return write_nanoaod_file(dest, data)


def _one_file_fileset(path: Path, nevts: int, tmp_path: Path, name: str) -> dict:
    doc = {"ttbar": {"nominal": {"files": [{"path": str(path), "nevts": nevts}], "format": "nanoaod"}}}
    index = tmp_path / f"{name}.json"
    index.write_text(json.dumps(doc))
    return build_fileset(index)


def test_real_cms_rntuple_equals_ttree(shared_dir, tmp_path):
    """The real CMS NanoAOD RNTuple (10 events): same cutflow and histograms as its columns stored as a TTree."""
    src = shared_dir / REAL_RNTUPLE
    if not src.is_file():
        pytest.skip(f"{src} not found (the real CMS RNTuple sample)")
    n = _rntuple_as_ttree(src, tmp_path / "as_ttree.root")
    assert n == 10
    outs = {}
    for name, path in (("rntuple", src), ("ttree", tmp_path / "as_ttree.root")):
        fs = _one_file_fileset(path, n, tmp_path, name)
        outs[name], metrics = run_processor(fs, TtbarAnalysis(cuts=LOOSE), executor="iterative",
                                            schema=schema_for(fs), progress=False)
    a, b = outs["rntuple"], outs["ttree"]
    assert a["cutflow"] == b["cutflow"] and a["cutflow"]["ttbar__nominal"]["1 lepton"] > 0, a["cutflow"]
    np.testing.assert_array_equal(a["hist"].values(flow=True), b["hist"].values(flow=True))
    np.testing.assert_array_equal(a["hist"].variances(flow=True), b["hist"].variances(flow=True))
    assert a["hist"].values().sum() > 0  # something was filled

    # and through `ana run ttbar` with the AGC v2 cuts: every event processed
    result = run_ttbar(tmp_path / "rntuple.json", tmp_path / "out", executor="iterative", progress=False)
    assert result.metrics["events_processed"] == 10


def test_truncated_rntuple_is_reported(tmp_path):
    """Pre-flight on a cut RNTuple names the truncation; on the intact file it reads the entry count."""
    generate_nanoaod(tmp_path, 500, 1, seed=2, samples=SAMPLES[:1], container="rntuple")
    good = tmp_path / "ttbar__nominal__nanoaod_000.root"
    check = inspect_file("ttbar__nominal", str(good), "Events", expected_entries=500)
    assert check.ok and check.entries == 500 and check.bytes_per_event > 0
    cut = tmp_path / "cut.root"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    bad = inspect_file("ttbar__nominal", str(cut), "Events", expected_entries=500)
    assert not bad.ok and "truncated" in bad.reason or "not a readable ROOT file" in bad.reason
    wrong = inspect_file("ttbar__nominal", str(good), "Events", expected_entries=499)
    assert wrong.reason == "has 500 entries, the fileset says 499"
    with pytest.raises(AnalysisError, match="cut.root"):
        fs = _one_file_fileset(cut, 500, tmp_path, "cut")
        run_processor(fs, TtbarAnalysis(), executor="iterative", schema=schema_for(fs), progress=False)
