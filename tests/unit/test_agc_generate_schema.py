"""AGC part 1: synthetic ntuple generator (format, determinism, physics) and AGCSchema."""

from __future__ import annotations

import json

import awkward as ak
import numpy as np
import pytest
import uproot
from coffea.nanoevents import NanoEventsFactory

from analysis.errors import UserError
from fileset.generate.agc import SAMPLES, generate_agc, generate_arrays, write_file
from schemas.agc import AGCSchema

AGC_BRANCHES = {"numberjet", "jet_pt", "jet_eta", "jet_phi", "jet_e", "jet_mass", "jet_btag", "numberelectron",
                "electron_pt", "electron_eta", "electron_phi", "electron_e", "numbermuon", "muon_pt", "muon_eta",
                "muon_phi", "muon_e", "met_pt", "met_phi"}


@pytest.fixture(scope="module")
def small_sample(tmp_path_factory):
    """Nine sample sets, one small file each."""
    out = tmp_path_factory.mktemp("agc")
    return generate_agc(out, events_per_file=2000, files_per_sample=1, seed=3)


def test_ntuples_json_structure_and_branches(small_sample):
    doc = json.loads(small_sample.read_text())
    assert {(p, v) for p, vs in doc.items() for v in vs} == set(SAMPLES)
    assert len(SAMPLES) == 9
    entry = doc["ttbar"]["nominal"]
    assert entry["nevts_total"] == 2000 and entry["files"][0]["nevts"] == 2000
    path = small_sample.parent / entry["files"][0]["path"]
    with uproot.open(path) as f:
        tree = f["events"]
        assert AGC_BRANCHES <= set(tree.keys())
        assert tree.num_entries == 2000
        counts = tree["numberjet"].array(library="np")
        assert np.array_equal(counts, ak.num(tree["jet_pt"].array()).to_numpy())


def test_same_seed_gives_identical_content(tmp_path):
    a = generate_arrays("ttbar", "nominal", 1000, seed=7, index=2)
    b = generate_arrays("ttbar", "nominal", 1000, seed=7, index=2)
    c = generate_arrays("ttbar", "nominal", 1000, seed=8, index=2)
    write_file(tmp_path / "a.root", a)
    write_file(tmp_path / "b.root", b)
    ta, tb = uproot.open(tmp_path / "a.root")["events"], uproot.open(tmp_path / "b.root")["events"]
    for name in ta.keys():
        assert ak.all(ta[name].array() == tb[name].array(), axis=None), name
    assert not ak.all(ak.flatten(a["jet"]["pt"]) == ak.flatten(c["jet"]["pt"])) if len(ak.flatten(a["jet"]["pt"])) == len(
        ak.flatten(c["jet"]["pt"])) else True
    assert not np.array_equal(a["met_pt"], c["met_pt"])


def _selected(process: str, variation: str = "nominal", n: int = 40_000):
    """Independent plain-awkward selection on generated arrays: (one-lepton mask, njet, nb, ht, mbjj)."""
    cols = generate_arrays(process, variation, n, seed=11)
    j = cols["jet"]
    good = j["pt"] > 25
    pt, eta, phi, e, btag = (j[k][good] for k in ("pt", "eta", "phi", "e", "btag"))
    njet = ak.num(pt).to_numpy()
    nb = ak.sum(btag > 0.5, axis=1).to_numpy()
    ht = ak.sum(pt, axis=1).to_numpy()
    p4 = ak.zip({"px": pt * np.cos(phi), "py": pt * np.sin(phi), "pz": pt * np.sinh(eta), "e": e, "b": btag})
    tri = ak.combinations(p4, 3, fields=["a", "b", "c"])
    sx, sy = tri.a.px + tri.b.px + tri.c.px, tri.a.py + tri.b.py + tri.c.py
    sz, se = tri.a.pz + tri.b.pz + tri.c.pz, tri.a.e + tri.b.e + tri.c.e
    tagged = (tri.a.b > 0.5) | (tri.b.b > 0.5) | (tri.c.b > 0.5)
    pt2 = ak.where(tagged, sx**2 + sy**2, -1.0)
    best = ak.argmax(pt2, axis=1, keepdims=True)
    m2 = (se**2 - sx**2 - sy**2 - sz**2)[best]
    mbjj = ak.fill_none(ak.firsts(np.sqrt(np.maximum(m2, 0))), np.nan).to_numpy()
    nlep = ak.sum(cols["electron"]["pt"] > 25, axis=1).to_numpy() + ak.sum(cols["muon"]["pt"] > 25, axis=1).to_numpy()
    return nlep == 1, njet, nb, ht, mbjj


def test_top_mass_peak_in_4j2b_ttbar():
    onelep, njet, nb, _, mbjj = _selected("ttbar")
    m = mbjj[onelep & (njet >= 4) & (nb >= 2)]
    counts, edges = np.histogram(m, bins=np.arange(100, 260, 6))
    centers = 0.5 * (edges[1:] + edges[:-1])
    k = int(np.argmax(counts))
    sl = slice(max(k - 3, 0), k + 4)  # parabola through log-counts around the maximum
    a, b, _ = np.polyfit(centers[sl], np.log(counts[sl]), 2)
    peak = -b / (2 * a)
    assert abs(peak - 173.0) < 6.0, peak


def test_btag_multiplicity_ttbar_much_higher_than_wjets():
    tt = _selected("ttbar")
    wj = _selected("wjets")
    mean_nb_tt = tt[2][tt[1] >= 4].mean()
    mean_nb_wj = wj[2][wj[1] >= 4].mean()
    assert mean_nb_tt > 1.2 and mean_nb_wj < 0.4, (mean_nb_tt, mean_nb_wj)
    assert mean_nb_tt > 4 * mean_nb_wj
    # W+jets HT falls: more events at low HT than high HT among >= 4 jets
    ht = wj[3][wj[1] >= 4]
    assert (ht < 250).sum() > 3 * (ht > 400).sum()


def test_variation_samples_differ_visibly_from_nominal():
    nom = _selected("ttbar", "nominal")
    for variation in ("scaleup", "scaledown", "ME_var", "PS_var"):
        var = _selected("ttbar", variation)
        sel_nom = (nom[0] & (nom[1] >= 4) & (nom[2] >= 1)).mean()
        sel_var = (var[0] & (var[1] >= 4) & (var[2] >= 1)).mean()
        ht_nom, ht_var = nom[3][nom[1] >= 4].mean(), var[3][var[1] >= 4].mean()
        shift = max(abs(sel_var / sel_nom - 1), abs(ht_var / ht_nom - 1))
        assert 0.005 < shift < 0.3, (variation, sel_nom, sel_var, ht_nom, ht_var)


def test_schema_collections_are_lorentz_vectors(small_sample):
    path = small_sample.parent / "ttbar__nominal__000.root"
    ev = NanoEventsFactory.from_root({str(path): "events"}, schemaclass=AGCSchema, mode="eager").events()
    assert {"jet", "electron", "muon", "met", "event"} <= set(ev.fields)
    assert {"pt", "eta", "phi", "energy", "btag"} <= set(ev.jet.fields)
    assert {"pt", "phi"} == set(ev.met.fields)
    raw = uproot.open(path)["events"].arrays(["jet_e", "jet_mass"])
    assert ak.all(ev.jet.energy == raw["jet_e"])
    # the vector mass from (pt, eta, phi, E) reproduces the stored jet mass
    assert np.allclose(ak.flatten(ev.jet.mass).to_numpy(), ak.flatten(raw["jet_mass"]).to_numpy(), rtol=1e-3, atol=0.05)
    two = ev.jet[ak.num(ev.jet) >= 2]
    assert ak.all((two[:, 0] + two[:, 1]).mass >= 0)


def test_schema_missing_branch_is_named(tmp_path):
    path = tmp_path / "broken.root"
    with uproot.recreate(path) as f:
        f["events"] = {"jet": ak.zip({"pt": ak.Array([[30.0]]), "eta": ak.Array([[0.1]])}), "met_pt": np.array([1.0])}
    with pytest.raises(UserError, match=r"numberjet.*jet_phi|missing branch"):
        NanoEventsFactory.from_root({str(path): "events"}, schemaclass=AGCSchema, mode="eager").events()
