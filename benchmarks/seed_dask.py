"""coffea's dask-awkward path for the seed-style AGC ttbar processor: ``preprocess`` + ``apply_to_fileset``,
computed with dask's synchronous scheduler (one core, one process).

The physics is that of ``benchmarks/seed_processor.py`` (same schema and selection), written for
dask-awkward: histograms are ``hist.dask`` histograms, the jet-resolution factors are drawn per
partition with ``map_partitions``, the b-tag weights use ``pad_none`` instead of ``singletons``.
Needs dask-awkward and dask-histogram (not dependencies of this project; the side-by-side benchmark
runs this script with ``--dak-python``).

    python benchmarks/seed_dask.py FILESET_JSON [--chunksize 100000]

Prints one JSON line: {"events": N, "sum_4j1b": ..., "sum_4j2b": ...}.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import awkward as ak
import dask
import dask_awkward as dak
import hist.dask as hda
import numpy as np
from coffea import processor
from coffea.dataset_tools import apply_to_fileset, preprocess

sys.path.insert(0, str(Path(__file__).resolve().parent))
from seed_processor import AGCSchema, fileset_from_json


def _smear(pt):
    """N(1, 0.05) factors shaped like the jets (one partition)."""
    counts = ak.num(pt)
    flat = ak.flatten(pt)
    if ak.backend(flat) == "typetracer":
        return ak.Array(ak.to_layout(pt).to_typetracer(forget_length=True)) * 1.0
    return ak.unflatten(np.random.normal(np.ones(len(flat)), 0.05), counts)


class SeedDaskTtbarAnalysis(processor.ProcessorABC):
    """The notebook's processor, dask-awkward edition (same cuts, observables and variations)."""

    def process(self, events):
        histogram = (
            hda.Hist.new.Reg(25, 50, 550, name="observable", label="observable [GeV]")
            .StrCat(["4j1b", "4j2b"], name="region", label="Region")
            .StrCat([], name="process", label="Process", growth=True)
            .StrCat([], name="variation", label="Systematic variation", growth=True)
            .Weight()
        )
        process = events.metadata["process"]
        variation = events.metadata["variation"]
        xsec_weight = events.metadata["xsec"] * events.metadata["lumi"] / events.metadata["nevts"] if process != "data" else 1

        pt_mod = {"pt_nominal": 1.0, "pt_scale_up": 1.03, "pt_res_up": dak.map_partitions(_smear, events.jet.pt)}
        pt_variations = ["pt_nominal", "pt_scale_up", "pt_res_up"] if variation == "nominal" else ["pt_nominal"]
        for pt_var in pt_variations:
            selected_electrons = events.electron[events.electron.pt > 25]
            selected_muons = events.muon[events.muon.pt > 25]
            jet_filter = events.jet.pt * pt_mod[pt_var] > 25
            selected_jets = events.jet[jet_filter]
            event_filters = (ak.count(selected_electrons.pt, axis=1) + ak.count(selected_muons.pt, axis=1)) == 1
            event_filters = event_filters & (ak.count(selected_jets.pt, axis=1) >= 4)
            event_filters = event_filters & (ak.sum(selected_jets.btag >= 0.5, axis=1) >= 1)
            selected_jets = selected_jets[event_filters]
            modifier = pt_mod[pt_var] if "res" not in pt_var else pt_mod[pt_var][jet_filter][event_filters]
            for region in ["4j1b", "4j2b"]:
                if region == "4j1b":
                    region_filter = ak.sum(selected_jets.btag >= 0.5, axis=1) == 1
                    selected_jets_region = selected_jets[region_filter]
                    m = modifier if "res" not in pt_var else modifier[region_filter]
                    observable = ak.sum(selected_jets_region.pt * m, axis=-1)
                else:
                    region_filter = ak.sum(selected_jets.btag > 0.5, axis=1) >= 2
                    selected_jets_region = selected_jets[region_filter]
                    trijet = ak.combinations(selected_jets_region, 3, fields=["j1", "j2", "j3"])
                    trijet["p4"] = trijet.j1 + trijet.j2 + trijet.j3
                    trijet["max_btag"] = np.maximum(trijet.j1.btag, np.maximum(trijet.j2.btag, trijet.j3.btag))
                    trijet = trijet[trijet.max_btag > 0.5]
                    trijet_mass = trijet["p4"][ak.argmax(trijet.p4.pt, axis=1, keepdims=True)].mass
                    observable = ak.flatten(trijet_mass)
                if pt_var == "pt_nominal":
                    histogram.fill(observable=observable, region=region, process=process, variation=variation,
                                   weight=xsec_weight)
                    if variation == "nominal":
                        if process == "wjets":
                            for sign, direction in ((1, "up"), (-1, "down")):
                                histogram.fill(observable=observable, region=region, process=process,
                                               variation=f"scale_var_{direction}",
                                               weight=xsec_weight * (1 + sign * 0.025) * ak.ones_like(observable))
                        lead = ak.fill_none(ak.pad_none(selected_jets_region.pt, 4, clip=True), 0.0)
                        for i_var in range(4):
                            for sign, direction in ((1, "up"), (-1, "down")):
                                histogram.fill(observable=observable, region=region, process=process,
                                               variation=f"btag_var_{i_var}_{direction}",
                                               weight=xsec_weight * (1 + sign * 0.075 * lead[:, i_var] / 50))
                elif variation == "nominal":
                    histogram.fill(observable=observable, region=region, process=process, variation=pt_var,
                                   weight=xsec_weight)
        return {"nevents": ak.num(events, axis=0), "hist": histogram}

    def postprocess(self, accumulator):
        return accumulator


def main(argv: list[str] | None = None) -> dict:
    """Preprocess (steps of ``--chunksize``), build the task graph, compute it synchronously; print totals."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("fileset", type=Path)
    ap.add_argument("--chunksize", type=int, default=100_000)
    args = ap.parse_args(argv)
    plain = fileset_from_json(args.fileset)
    spec = {name: {"files": {f: "events" for f in ds["files"]}, "metadata": ds["metadata"]} for name, ds in plain.items()}
    with dask.config.set(scheduler="sync"):
        runnable, _ = preprocess(spec, step_size=args.chunksize, scheduler="sync")
        outputs = apply_to_fileset(SeedDaskTtbarAnalysis(), runnable, schemaclass=AGCSchema)
        (computed,) = dask.compute(outputs, scheduler="sync")
    events = sum(int(out["nevents"]) for out in computed.values())
    h = sum(out["hist"] for out in computed.values())
    result = {"events": events, "sum_4j1b": float(h[:, "4j1b", :, "nominal"].values().sum()),
              "sum_4j2b": float(h[:, "4j2b", :, "nominal"].values().sum())}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
