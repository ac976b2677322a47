"""NanoAOD input (issue 11): the real 2015 CMS Open Data file and synthetic NanoAOD through the whole chain.

Truth is an independent plain uproot + awkward implementation of the AGC v2 selection written here
(``ak.combinations`` trijets, no processor code); only the seeded JER random numbers are shared with
the processor (the same deterministic source, by design).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
from coffea import processor

from analysis.cli import main as ana
from analysis.errors import UserError
from analysis.agc.run import run_ttbar
from analysis.execution.runner import run_processor, schema_for
from fileset.build import build_fileset, load_samples_config
from fileset.generate.agc import generate_arrays
from fileset.generate.nanoaod import nanoaod_columns, write_nanoaod_file
from processors.systematics import dataset_salt, jet_resolution_factors, run_lumi_event_identity
from processors.ttbar import FORMAT_CUTS, Cuts, TtbarAnalysis
from schemas.nanoaod import AGCNanoAODSchema

REAL = "data/cms-open-data/nanoAOD_2015_CMS_Open_Data_ttbar.root"
EDGES = np.linspace(50.0, 550.0, 26)
FIT_EDGES = np.arange(110.0, 551.0, 40.0)
BRANCHES = ["run", "luminosityBlock", "event", "Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass", "Jet_btagCSVV2", "Jet_jetId",
            "Electron_pt", "Electron_eta", "Electron_cutBased", "Electron_sip3d", "Muon_pt", "Muon_eta", "Muon_tightId",
            "Muon_sip3d", "Muon_pfRelIso04_all"]
# AGC v2 object definitions, written out from ../shared/data/cms-open-data/README.md (jet ID: bit 2 of
# jetId = tight lepton veto, coffea's Jet.isTightLeptonVeto)
AGC_V2 = Cuts(lepton_pt=30.0, lepton_eta=2.1, electron_cut_based=4, lepton_sip3d=4.0, muon_tight_id=True, muon_iso=0.15,
              jet_pt=30.0, jet_eta=2.4, jet_id_bit=2, btag=0.5)
# looser than AGC v2 (the file's jets start at 15 GeV and few events have 4 of them) so that the
# 200 real events populate both regions: 3 events in 4j1b and 3 in 4j2b
LOOSE = Cuts(lepton_pt=10.0, lepton_eta=2.4, jet_pt=15.0, jet_eta=2.4)

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


# ---- independent reference ---------------------------------------------------------------
def reference(paths: list[str], cuts: Cuts, dataset: str, variation: str, norm: float, process: str = "ttbar") -> dict:
    """Cutflow and per-(region, variation) observables and weights, in plain uproot + awkward."""
    a = ak.concatenate([uproot.open(p)["Events"].arrays(BRANCHES) for p in paths])
    el = (a.Electron_pt > cuts.lepton_pt) & (abs(a.Electron_eta) < cuts.lepton_eta)
    if cuts.electron_cut_based is not None:
        el = el & (a.Electron_cutBased == cuts.electron_cut_based)
    el = el & (a.Electron_sip3d < cuts.lepton_sip3d)
    mu = (a.Muon_pt > cuts.lepton_pt) & (abs(a.Muon_eta) < cuts.lepton_eta) & (a.Muon_sip3d < cuts.lepton_sip3d)
    mu = mu & (a.Muon_pfRelIso04_all < cuts.muon_iso)
    if cuts.muon_tight_id:
        mu = mu & a.Muon_tightId
    one_lep = (ak.sum(el, axis=1) + ak.sum(mu, axis=1)) == 1
    good = abs(a.Jet_eta) < cuts.jet_eta
    if cuts.jet_id_bit is not None:
        good = good & ((a.Jet_jetId & (1 << cuts.jet_id_bit)) != 0)
    pt = ak.values_astype(a.Jet_pt, np.float64)
    eta, phi, mass = (ak.values_astype(a[f"Jet_{k}"], np.float64) for k in ("eta", "phi", "mass"))
    energy = np.sqrt((pt * np.cosh(eta)) ** 2 + mass**2)
    factors = {"nominal": ak.ones_like(pt)}
    if variation == "nominal":
        factors["pt_scale_up"] = ak.ones_like(pt) * cuts.jes_scale
        ids = run_lumi_event_identity(a.run.to_numpy(), a.luminosityBlock.to_numpy(), a.event.to_numpy())
        counts = ak.num(pt).to_numpy()
        factors["pt_res_up"] = ak.unflatten(jet_resolution_factors(ids, counts, dataset_salt(dataset), cuts.jer_width), counts)
    out: dict = {"fills": {}}
    for pt_var, f in factors.items():
        jets = ak.zip({"pt": pt * f, "raw_pt": pt, "px": pt * np.cos(phi) * f, "py": pt * np.sin(phi) * f,
                       "pz": pt * np.sinh(eta) * f, "e": energy * f, "btag": a.Jet_btagCSVV2})
        jets = jets[good & (jets.pt > cuts.jet_pt)]
        nj, nb = ak.num(jets), ak.sum(jets.btag > cuts.btag, axis=1)
        sel = one_lep & (nj >= 4) & (nb >= 1)
        if pt_var == "nominal":
            out["cutflow"] = {"all": len(a), "1 lepton": int(ak.sum(one_lep)), ">= 4 jets": int(ak.sum(one_lep & (nj >= 4))),
                              ">= 1 b-tag": int(ak.sum(sel)), "4j1b": int(ak.sum(sel & (nb == 1))),
                              "4j2b": int(ak.sum(sel & (nb >= 2)))}
        j1 = jets[sel & (nb == 1)]
        ht = ak.sum(j1.pt, axis=1).to_numpy()
        j2 = jets[sel & (nb >= 2)]
        tri = ak.combinations(j2, 3, fields=["a", "b", "c"])
        sx, sy = tri.a.px + tri.b.px + tri.c.px, tri.a.py + tri.b.py + tri.c.py
        sz, se = tri.a.pz + tri.b.pz + tri.c.pz, tri.a.e + tri.b.e + tri.c.e
        has_b = (tri.a.btag > cuts.btag) | (tri.b.btag > cuts.btag) | (tri.c.btag > cuts.btag)
        tpt = ak.where(has_b, np.hypot(sx, sy), -1.0)
        best = ak.argmax(tpt, axis=1, keepdims=True)
        m2 = ak.flatten((se**2 - sx**2 - sy**2 - sz**2)[best])
        mbjj = np.sqrt(np.maximum(m2.to_numpy(), 0.0))
        name = variation if pt_var == "nominal" else pt_var
        for region, jj, x in (("4j1b", j1, ht), ("4j2b", j2, mbjj)):
            out["fills"][(region, name)] = (x, np.full(len(x), norm))
            if pt_var == "nominal" and variation == "nominal":
                lead = ak.fill_none(ak.pad_none(jj.raw_pt, 4, clip=True), 0.0).to_numpy()
                for i in range(4):
                    for sign, d in ((1, "up"), (-1, "down")):
                        out["fills"][(region, f"btag_var_{i}_{d}")] = (x, norm * (1 + sign * 0.075 * lead[:, i] / 50))
                if process == "wjets":
                    for sign, d in ((1, "up"), (-1, "down")):
                        out["fills"][(region, f"scale_var_{d}")] = (x, np.full(len(x), norm * (1 + sign * 0.025)))
    return out


def assert_hist_matches(h, ref: dict, process: str) -> None:
    """Every reference (region, variation) equals the processor histogram (in-range bins and total)."""
    for (region, name), (x, w) in ref["fills"].items():
        expected, _ = np.histogram(x, bins=EDGES, weights=w)
        if len(x) == 0:
            assert process not in h.axes["process"] or name not in h.axes["variation"] or \
                not h[:, region, process, name].values(flow=True).any()
            continue
        got = h[:, region, process, name]
        np.testing.assert_allclose(got.values(), expected, rtol=1e-6, atol=1e-9, err_msg=f"{region} {name}")
        np.testing.assert_allclose(got.values(flow=True).sum(), w.sum(), rtol=1e-6, err_msg=f"{region} {name} total")
        np.testing.assert_allclose(got.variances(), np.histogram(x, bins=EDGES, weights=w * w)[0], rtol=1e-6, atol=1e-9)


def real_fileset(shared_dir: Path, tmp_path: Path) -> Path:
    """A one-file AGC-structured json for the real NanoAOD file (absolute path, format nanoaod)."""
    doc = {"ttbar": {"nominal": {"files": [{"path": str(shared_dir / REAL), "nevts": 200}], "format": "nanoaod"}}}
    path = tmp_path / "real.json"
    path.write_text(json.dumps(doc))
    return path


def norm_of(nevts: int, process: str = "ttbar") -> float:
    """AGC normalisation xsec·lumi/N with the packaged samples config."""
    cfg = load_samples_config()
    return cfg["cross_sections_pb"][process] * cfg["luminosity_pb"] / nevts


# ---- real CMS Open Data file ---------------------------------------------------------------
def test_nanoaod_default_cuts_are_agc_v2() -> None:
    """The processor's NanoAOD defaults are the AGC v2 definitions; the ntuple ones stay the seed's."""
    assert FORMAT_CUTS["nanoaod"] == AGC_V2
    assert TtbarAnalysis().cuts_for("nanoaod") == AGC_V2
    assert TtbarAnalysis().cuts_for("ntuple") == Cuts() and Cuts().jet_pt == 25.0 and Cuts().lepton_pt == 25.0
    assert TtbarAnalysis(cuts=LOOSE).cuts_for("nanoaod") == LOOSE


def test_real_file_agc_v2_end_to_end(shared_dir: Path, tmp_path: Path) -> None:
    """AGC v2 cuts on the real file: cutflow equals the independent computation; histograms.root written."""
    result = run_ttbar(real_fileset(shared_dir, tmp_path), tmp_path / "out", executor="iterative", progress=False)
    ref = reference([str(shared_dir / REAL)], AGC_V2, "ttbar__nominal", "nominal", norm_of(200))
    assert result.cutflow["ttbar__nominal"] == ref["cutflow"]
    assert ref["cutflow"]["1 lepton"] > 0  # the lepton IDs select something on real data
    assert_hist_matches(result.hist, ref, "ttbar")
    keys = uproot.open(tmp_path / "out" / "histograms.root").keys(cycle=False)
    for v in ("", "_pt_scale_up", "_pt_res_up", "_btag_var_3_down"):
        assert f"4j1b_ttbar{v}" in keys and f"4j2b_ttbar{v}" in keys
    assert result.metrics["events_processed"] == 200


def test_real_file_loose_cuts_yields(shared_dir: Path, tmp_path: Path) -> None:
    """Looser cuts populate both regions on real data: every variation's histogram equals the reference."""
    fileset = build_fileset(real_fileset(shared_dir, tmp_path))
    out, _ = run_processor(fileset, TtbarAnalysis(cuts=LOOSE), executor="iterative", schema=schema_for(fileset),
                           progress=False)
    ref = reference([str(shared_dir / REAL)], LOOSE, "ttbar__nominal", "nominal", norm_of(200))
    assert out["cutflow"]["ttbar__nominal"] == ref["cutflow"]
    assert ref["cutflow"]["4j1b"] >= 3 and ref["cutflow"]["4j2b"] >= 3, ref["cutflow"]
    assert_hist_matches(out["hist"], ref, "ttbar")
    # the smeared variation really differs from nominal somewhere (it is not a copy)
    h = out["hist"]
    assert not np.array_equal(h[:, "4j1b", "ttbar", "pt_res_up"].values(), h[:, "4j1b", "ttbar", "nominal"].values()) or \
        not np.array_equal(h[:, "4j2b", "ttbar", "pt_res_up"].values(), h[:, "4j2b", "ttbar", "nominal"].values())


def test_nanoaod_reads_only_needed_branches(shared_dir: Path, tmp_path: Path) -> None:
    """Coffea's access log: of the 947 branches only the AGC v2 columns are read."""
    fileset = build_fileset(real_fileset(shared_dir, tmp_path))
    runner = processor.Runner(executor=processor.IterativeExecutor(status=False), schema=AGCNanoAODSchema,
                              savemetrics=True)
    _, metrics = runner(fileset, processor_instance=TtbarAnalysis())
    read = {c.rsplit("-", 1)[0] for c in metrics["columns"]}
    assert read == set(BRANCHES) | {"nJet", "nElectron", "nMuon"}


# ---- synthetic NanoAOD -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic NanoAOD for all nine samples via ``ana generate agc --format nanoaod`` (one 4k-event file each)."""
    out = tmp_path_factory.mktemp("nano")
    assert ana(["generate", "agc", "--format", "nanoaod", "--out", str(out), "--events-per-file", "4000",
                "--files-per-sample", "1", "--seed", "7"]) == 0
    return out / "nanoaod_inputs.json"


def test_synthetic_branches_and_types(synthetic: Path) -> None:
    """NanoAOD branch names and types; every entry says format nanoaod; NanoAODSchema reads the file."""
    doc = json.loads(synthetic.read_text())
    assert {e["format"] for p in doc.values() for e in p.values()} == {"nanoaod"}
    path = synthetic.parent / doc["ttbar"]["nominal"]["files"][0]["path"]
    t = uproot.open(path)["Events"]
    types = {k: t[k].typename for k in t.keys()}
    assert types["Jet_pt"] == "float[]" and types["Jet_jetId"] == "int32_t[]" and types["Muon_tightId"] == "bool[]"
    assert types["Electron_cutBased"] == "int32_t[]" and types["event"] == "uint64_t" and types["run"] == "uint32_t"
    assert types["MET_pt"] == "float" and types["nJet"] in ("int32_t", "uint32_t")
    from coffea.nanoevents import NanoEventsFactory, NanoAODSchema

    ev = NanoEventsFactory.from_root({str(path): "Events"}, schemaclass=NanoAODSchema, mode="virtual").events()
    assert len(ev) == 4000 and ak.all(ak.num(ev.Jet) == t["nJet"].array())
    # Jet.mass consistent with the generator's energy (PtEtaPhiM → E): physical, non-negative masses
    assert ak.all(ev.Jet.mass >= 0) and 0.6 < ak.mean(ev.Jet.isTightLeptonVeto) < 1.0


def test_synthetic_cli_run_matches_reference(synthetic: Path, tmp_path: Path) -> None:
    """``ana run ttbar`` on synthetic NanoAOD: cutflow and AGC-keyed histograms equal the reference."""
    out = tmp_path / "run"
    assert ana(["run", "ttbar", "--fileset", str(synthetic), "--out", str(out), "--executor", "iterative",
                "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    hists = {k: v for k, v in ((k.split(";")[0], h) for k, h in uproot.open(out / "histograms.root").items())}
    doc = json.loads(synthetic.read_text())
    for process in ("ttbar", "wjets"):
        paths = [str(synthetic.parent / f["path"]) for f in doc[process]["nominal"]["files"]]
        ref = reference(paths, AGC_V2, f"{process}__nominal", "nominal", norm_of(4000, process), process)
        assert metrics["cutflow"][f"{process}__nominal"] == ref["cutflow"]
        assert ref["cutflow"]["4j1b"] > 50 and ref["cutflow"]["4j2b"] > 50 or process == "wjets"
        for (region, name), (x, w) in ref["fills"].items():
            key = f"{region}_{process}" if name == "nominal" else f"{region}_{process}_{name}"
            expected, _ = np.histogram(x, bins=FIT_EDGES, weights=w)
            np.testing.assert_allclose(hists[key].values(), expected, rtol=1e-6, atol=1e-9, err_msg=key)
    assert "4j2b_wjets_scale_var_up" in hists and "4j1b_pseudodata" in hists


def test_fileset_agc_nanoaod_inputs_structure(tmp_path: Path) -> None:
    """AGC's nanoaod_inputs.json layout: remote paths untouched, N_FILES_MAX honoured, --format override."""
    base = "https://xrootd-local.unl.edu:1094//store/user/AGC/nanoAOD/TT_TuneCUETP8M1_13TeV-powheg-pythia8/"
    files = [{"path": f"{base}cmsopendata2015_ttbar_19980_{i:04d}.root", "nevts": 1000 + i} for i in range(3)]
    doc = {"ttbar": {"nominal": {"nevts_total": sum(f["nevts"] for f in files), "files": files}},
           "wjets": {"nominal": {"files": [{"path": "root://eospublic.cern.ch//eos/opendata/w.root", "nevts": 5}]}}}
    path = tmp_path / "nanoaod_inputs.json"
    path.write_text(json.dumps(doc))
    fs = build_fileset(path, n_files_max_per_sample=2, input_format="nanoaod")
    tt = fs["ttbar__nominal"]
    assert tt["files"] == [files[0]["path"], files[1]["path"]]
    assert tt["treename"] == "Events" and tt["metadata"]["format"] == "nanoaod" and tt["metadata"]["nevts"] == 2001
    assert fs["wjets__nominal"]["files"] == ["root://eospublic.cern.ch//eos/opendata/w.root"]
    assert schema_for(fs).__name__.endswith("NanoAODSchema")
    assert build_fileset(path)["ttbar__nominal"]["metadata"]["format"] == "ntuple"  # no field, no override
    with pytest.raises(UserError, match="unknown input format 'miniaod'"):
        build_fileset(path, input_format="miniaod")


def test_missing_nanoaod_branch_is_a_clear_error(tmp_path: Path) -> None:
    """A NanoAOD file without Jet_btagCSVV2 fails with a one-line error naming the branch."""
    data = nanoaod_columns(generate_arrays("ttbar", "nominal", 500, 3), np.random.default_rng(3), 1)
    data["Jet"] = data["Jet"][[f for f in data["Jet"].fields if f != "btagCSVV2"]]
    write_nanoaod_file(tmp_path / "bad.root", data)
    doc = {"ttbar": {"nominal": {"files": [{"path": "bad.root", "nevts": 500}], "format": "nanoaod"}}}
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(UserError, match="btagCSVV2"):
        run_ttbar(tmp_path / "bad.json", executor="iterative", progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from coffea.nanoevents import NanoEventsFactory

        with pytest.raises(UserError, match="Jet_btagCSVV2"):
            NanoEventsFactory.from_root({str(tmp_path / "bad.root"): "Events"}, schemaclass=AGCNanoAODSchema,
                                        mode="virtual").events()


def test_same_events_same_histograms_in_both_formats(tmp_path: Path) -> None:
    """Identical generated events written as AGC ntuple and as NanoAOD, analysed with the same cuts,
    give the same cutflow and HT histograms (bit for bit) and m_bjj within float32 storage rounding."""
    from fileset.generate.agc import generate_agc
    from fileset.generate.nanoaod import generate_nanoaod

    sample = [("ttbar", "nominal")]
    outs = {}
    for fmt, gen in (("ntuple", generate_agc), ("nanoaod", generate_nanoaod)):
        index = gen(tmp_path / fmt, 3000, 1, 5, samples=sample)
        fs = build_fileset(index)
        outs[fmt], _ = run_processor(fs, TtbarAnalysis(cuts=Cuts()), executor="iterative", schema=schema_for(fs),
                                     progress=False)
    a, b = outs["ntuple"], outs["nanoaod"]
    assert a["cutflow"] == b["cutflow"] and a["cutflow"]["ttbar__nominal"]["4j2b"] > 100
    for v in ("nominal", "pt_scale_up", "btag_var_0_up", "btag_var_3_down"):
        assert np.array_equal(a["hist"][:, "4j1b", "ttbar", v].values(flow=True),
                              b["hist"][:, "4j1b", "ttbar", v].values(flow=True)), v
        x, y = a["hist"][:, "4j2b", "ttbar", v].values(flow=True), b["hist"][:, "4j2b", "ttbar", v].values(flow=True)
        assert x.sum() == pytest.approx(y.sum(), rel=1e-12)
        assert np.abs(x - y).sum() <= 0.01 * x.sum(), v  # a bin migration from rounding at most
    with pytest.raises(UserError, match="need NanoAOD input"):
        fs = build_fileset(tmp_path / "ntuple" / "ntuples.json")
        run_processor(fs, TtbarAnalysis(cuts=AGC_V2), executor="iterative", schema=schema_for(fs), progress=False)
