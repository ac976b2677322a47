"""Issue 9: the fast production TtbarAnalysis gives the same histograms as the seed-style baseline.

Bit-identical for every variation (including the seeded JER smearing, which both draw from
``jet_resolution_factors``): the production kernels do the same additions and multiplications in the
same order as the awkward formulation, and the sums are exact (quantised weights). No timing here;
``benchmarks/processor_speed.py`` measures.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from analysis.execution.runner import run_processor
from fileset.build import build_fileset
from fileset.generate.agc import generate_agc
from processors.ttbar import TtbarAnalysis

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str):
    """Import a module from benchmarks/ (not a package)."""
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def ntuples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic AGC ntuples: ttbar nominal (2 files), a ttbar variation sample and W+jets (scale_var)."""
    out = tmp_path_factory.mktemp("speed")
    generate_agc(out / "a", 6000, 2, 11, samples=[("ttbar", "nominal")])
    generate_agc(out / "b", 3000, 1, 12, samples=[("ttbar", "scaleup"), ("wjets", "nominal")])
    doc = json.loads((out / "a" / "ntuples.json").read_text())
    for process, variations in json.loads((out / "b" / "ntuples.json").read_text()).items():
        for variation, entry in variations.items():
            entry["files"] = [{"path": f"b/{f['path']}", "nevts": f["nevts"]} for f in entry["files"]]
            doc.setdefault(process, {})[variation] = entry
    doc["ttbar"]["nominal"]["files"] = [{"path": f"a/{f['path']}", "nevts": f["nevts"]}
                                        for f in doc["ttbar"]["nominal"]["files"]]
    path = out / "ntuples.json"
    path.write_text(json.dumps(doc))
    return path


def test_production_equals_baseline_bit_for_bit(ntuples: Path) -> None:
    """Every (region, process, variation) sum and sum of squares is bitwise equal; same cutflow."""
    baseline = _load("baseline_processor").BaselineTtbarAnalysis()
    fileset = build_fileset(ntuples)
    prod, _ = run_processor(fileset, TtbarAnalysis(), executor="iterative", chunksize=2500, progress=False)
    base, _ = run_processor(fileset, baseline, executor="iterative", chunksize=4000, progress=False)
    assert prod["cutflow"] == base["cutflow"] and prod["nevents"] == base["nevents"]
    hp, hb = prod["hist"], base["hist"]
    compared = 0
    for process in hb.axes["process"]:
        for variation in hb.axes["variation"]:
            if f"{process}/{variation}" not in base["norms"]:
                continue
            for region in ("4j1b", "4j2b"):
                b = hb[:, region, process, variation].view(flow=True)
                p = hp[:, region, process, variation].view(flow=True)
                assert np.array_equal(p["value"], b["value"]), (region, process, variation)
                assert np.array_equal(p["variance"], b["variance"]), (region, process, variation)
                compared += 1
    # nominal ttbar: nominal + 8 b-tag + 2 jet-pT; W+jets adds scale_var; scaleup only itself
    assert compared == 2 * (11 + 13 + 1)
    assert set(prod["norms"]) == set(base["norms"])
    # production has a (zero) category for every recorded variation; nothing extra is non-zero
    for key in set(prod["norms"]) - set(base["norms"]):
        raise AssertionError(f"production recorded {key} that the baseline did not")
    assert hp[:, "4j2b", "ttbar", "pt_res_up"].values().sum() != hp[:, "4j2b", "ttbar", "nominal"].values().sum()


def test_benchmark_script_runs_small(ntuples: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The benchmark prints rates for raw read, baseline and production and their ratios (no timing checks)."""
    bench = _load("processor_speed")
    result = bench.main(["--events", "12000", "--events-per-file", "6000", "--chunksize", "4000", "--repeat", "1",
                         "--workdir", str(tmp_path / "work"), "--no-memory"])
    text = capsys.readouterr().out
    for label in ("raw uproot read", "baseline", "production", "production / baseline", "production / raw read"):
        assert label in text
    assert result["production"]["events"] == 12000 and result["baseline"]["events"] == 12000
    assert all(result[k]["events_per_cpu_s"] > 0 for k in ("raw", "baseline", "production"))


def test_per_event_observables_bitwise(ntuples: Path) -> None:
    """Per selected event and variation, production kernels and the awkward baseline give the same
    HT and m_bjj bits (histogram equality alone would hide ulp-level differences inside bins)."""
    from coffea.nanoevents import NanoEventsFactory

    from processors.ttbar import jet_factors
    from schemas.agc import AGCSchema
    from processors.objects import ntuple_view

    baseline = _load("baseline_processor").BaselineTtbarAnalysis()
    path = str(ntuples.parent / json.loads(ntuples.read_text())["ttbar"]["nominal"]["files"][0]["path"])
    meta = {"dataset": "ttbar__nominal", "process": "ttbar", "variation": "nominal", "filename": path}
    events = NanoEventsFactory.from_root({path: "events"}, schemaclass=AGCSchema, mode="virtual", metadata=meta).events()
    prod = TtbarAnalysis()
    c = prod.cuts_for("ntuple")
    view = ntuple_view(events, c)
    rows = np.flatnonzero(view.n_lepton == 1)
    sub = view.subset(rows)
    observed = prod.variation_observables(sub, c, jet_factors(sub, c, "ttbar__nominal", True))
    names = {"pt_nominal": "nominal", "pt_scale_up": "pt_scale_up", "pt_res_up": "pt_res_up"}
    checked = 0
    for pt_var, regions, _ in baseline.selections(events):
        njet, nb, ht, lead_pt, in_1b, in_2b, mbjj = observed[names[pt_var]]
        for region, got in (("4j1b", ht[in_1b]), ("4j2b", mbjj[in_2b])):
            expected = regions[region][0]
            assert got.shape == expected.shape and got.shape[0] > 500
            assert np.array_equal(got, expected), (pt_var, region, np.max(np.abs(got - expected)))
            checked += 1
        if pt_var == "pt_nominal":  # lead pT feeds the b-tag weights: only the nominal jet pT carries them
            lead = np.asarray(regions["4j1b"][1].raw_pt[:, :4].to_list())
            assert np.array_equal(lead_pt[in_1b], lead)
        else:
            assert lead_pt is None
    assert checked == 6


def test_production_reads_only_needed_ntuple_branches(ntuples: Path) -> None:
    """Coffea's access log on AGC ntuples: jets (pt, eta, phi, e, btag), lepton pT, counters, event number."""
    from coffea import processor

    from schemas.agc import AGCSchema

    fileset = build_fileset(ntuples)
    runner = processor.Runner(executor=processor.IterativeExecutor(status=False), schema=AGCSchema, savemetrics=True,
                              chunksize=3000)
    _, metrics = runner(fileset, processor_instance=TtbarAnalysis())
    read = {c.rsplit("-", 1)[0] for c in metrics["columns"]}
    assert read == {"jet_pt", "jet_eta", "jet_phi", "jet_e", "jet_btag", "electron_pt", "muon_pt", "numberjet",
                    "numberelectron", "numbermuon", "event"}
