"""The yardstick: a straightforward AGC ttbar processor, written plainly as the AGC (seed) notebook does.

coffea ``Runner`` with the iterative executor, NanoEvents with the notebook's AGC schema (jets and
leptons as ``PtEtaPhiELorentzVector``), one full awkward selection per jet-pT variation, trijets
with ``ak.combinations`` and vector addition, one ``hist`` fill per (region, variation). Self-contained
on purpose (no imports from this project) so that it measures what a user writing the notebook's
code would get. Not bit-identical to ``TtbarAnalysis`` (vector formulas, numpy's global RNG for the
jet resolution); ``benchmarks/baseline_processor.py`` is the bit-identical reference.

    python benchmarks/seed_processor.py FILESET_JSON [--chunksize 100000]

Prints one JSON line: {"events": N, "sum_4j1b": ..., "sum_4j2b": ...}.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import awkward as ak
import hist
import numpy as np
import yaml
from coffea import processor
from coffea.nanoevents import transforms
from coffea.nanoevents.methods import base, vector
from coffea.nanoevents.schemas.base import BaseSchema, zip_forms

SAMPLES_YML = Path(__file__).resolve().parents[1] / "fileset" / "samples.yml"


def flat_variation(ones):
    """2.5 % weight variations."""
    return (1.0 + np.array([0.025, -0.025], dtype=np.float32)) * ones[:, None]


def btag_weight_variation(i_jet, jet_pt):
    """Weight variation with the i-th jet pT (7.5 % × pT / 50 GeV)."""
    return 1 + np.array([0.075, -0.075]) * (ak.singletons(jet_pt[:, i_jet]) / 50).to_numpy()


def jet_pt_resolution(pt):
    """Normal 5 % smearing factors, shaped like the jets."""
    counts = ak.num(pt)
    pt_flat = ak.flatten(pt)
    resolution_variation = np.random.normal(np.ones_like(pt_flat), 0.05)
    return ak.unflatten(resolution_variation, counts)


class SeedTtbarAnalysis(processor.ProcessorABC):
    """The notebook's processor (without the ML features)."""

    def __init__(self):
        self.hist = (
            hist.Hist.new.Reg(25, 50, 550, name="observable", label="observable [GeV]")
            .StrCat(["4j1b", "4j2b"], name="region", label="Region")
            .StrCat([], name="process", label="Process", growth=True)
            .StrCat([], name="variation", label="Systematic variation", growth=True)
            .Weight()
        )

    def process(self, events):
        histogram = self.hist.copy()
        process = events.metadata["process"]
        variation = events.metadata["variation"]
        xsec_weight = events.metadata["xsec"] * events.metadata["lumi"] / events.metadata["nevts"] if process != "data" else 1

        pt_mod = {"pt_nominal": 1.0, "pt_scale_up": 1.03, "pt_res_up": jet_pt_resolution(events.jet.pt)}
        pt_variations = ["pt_nominal", "pt_scale_up", "pt_res_up"] if variation == "nominal" else ["pt_nominal"]
        for pt_var in pt_variations:
            selected_electrons = events.electron[events.electron.pt > 25]
            selected_muons = events.muon[events.muon.pt > 25]
            jet_filter = events.jet.pt * pt_mod[pt_var] > 25
            selected_jets = events.jet[jet_filter]
            event_filters = (ak.count(selected_electrons.pt, axis=1) + ak.count(selected_muons.pt, axis=1)) == 1
            event_filters = event_filters & (ak.count(selected_jets.pt, axis=1) >= 4)
            B_TAG_THRESHOLD = 0.5
            event_filters = event_filters & (ak.sum(selected_jets.btag >= B_TAG_THRESHOLD, axis=1) >= 1)
            selected_jets = selected_jets[event_filters]
            modifier = pt_mod[pt_var] if "res" not in pt_var else pt_mod[pt_var][jet_filter][event_filters]

            for region in ["4j1b", "4j2b"]:
                if region == "4j1b":
                    region_filter = ak.sum(selected_jets.btag >= B_TAG_THRESHOLD, axis=1) == 1
                    selected_jets_region = selected_jets[region_filter]
                    m = modifier if "res" not in pt_var else modifier[region_filter]
                    observable = ak.sum(selected_jets_region.pt * m, axis=-1)
                else:
                    region_filter = ak.sum(selected_jets.btag > B_TAG_THRESHOLD, axis=1) >= 2
                    selected_jets_region = selected_jets[region_filter]
                    trijet = ak.combinations(selected_jets_region, 3, fields=["j1", "j2", "j3"])
                    trijet["p4"] = trijet.j1 + trijet.j2 + trijet.j3
                    trijet["max_btag"] = np.maximum(trijet.j1.btag, np.maximum(trijet.j2.btag, trijet.j3.btag))
                    trijet = trijet[trijet.max_btag > B_TAG_THRESHOLD]
                    trijet_mass = trijet["p4"][ak.argmax(trijet.p4.pt, axis=1, keepdims=True)].mass
                    observable = ak.flatten(trijet_mass)

                if pt_var == "pt_nominal":
                    histogram.fill(observable=observable, region=region, process=process, variation=variation,
                                   weight=xsec_weight)
                    if variation == "nominal":
                        if process == "wjets":
                            w = flat_variation(np.ones(len(observable)))
                            for i_dir, direction in enumerate(["up", "down"]):
                                histogram.fill(observable=observable, region=region, process=process,
                                               variation=f"scale_var_{direction}", weight=xsec_weight * w[:, i_dir])
                        for i_var in range(4):
                            for i_dir, direction in enumerate(["up", "down"]):
                                w = btag_weight_variation(i_var, selected_jets_region.pt)[:, i_dir] if len(observable) else 1
                                histogram.fill(observable=observable, region=region, process=process,
                                               variation=f"btag_var_{i_var}_{direction}", weight=xsec_weight * w)
                elif variation == "nominal":
                    histogram.fill(observable=observable, region=region, process=process, variation=pt_var,
                                   weight=xsec_weight)
        return {"nevents": {events.metadata["dataset"]: len(events)}, "hist": histogram}

    def postprocess(self, accumulator):
        return accumulator


class AGCSchema(BaseSchema):
    """The notebook's schema: ``<obj>_<field>`` + ``number<obj>`` → vector collections, ``met`` a record."""

    def __init__(self, base_form, *args, **kwargs):
        super().__init__(base_form)
        self._form["fields"], self._form["contents"] = self._build_collections(self._form["fields"],
                                                                               self._form["contents"])

    def _build_collections(self, field_names, input_contents):
        branch_forms = dict(zip(field_names, input_contents))
        names = {k.split("_")[0] for k in branch_forms if not k.startswith("number")}
        names = [k for k in names if k in ("jet", "electron", "muon")]
        output = {}
        for name in names:
            offsets = transforms.counts2offsets_form(branch_forms["number" + name])
            content = {k[len(name) + 1:]: branch_forms[k] for k in branch_forms
                       if k.startswith(name + "_") and k[len(name) + 1:] not in ("e", "mass")}
            content["energy"] = branch_forms[name + "_e"]
            output[name] = zip_forms(content, name, "PtEtaPhiELorentzVector", offsets=offsets)
        output["met"] = zip_forms({k[len("met") + 1:]: branch_forms[k] for k in branch_forms if k.startswith("met_")}, "met")
        return output.keys(), output.values()

    @classmethod
    def behavior(cls):
        behavior = {}
        behavior.update(base.behavior)
        behavior.update(vector.behavior)
        return behavior


def fileset_from_json(path: Path) -> dict:
    """``{process__variation: {files, treename, metadata}}`` as the notebook's ``construct_fileset``."""
    cfg = yaml.safe_load(SAMPLES_YML.read_text())
    doc = json.loads(path.read_text())
    fileset = {}
    for process, variations in doc.items():
        for variation, entry in variations.items():
            files = [str((path.parent / f["path"]).resolve()) for f in entry["files"]]
            fileset[f"{process}__{variation}"] = {
                "files": files, "treename": "events",
                "metadata": {"process": process, "variation": variation, "xsec": cfg["cross_sections_pb"][process],
                             "lumi": cfg["luminosity_pb"], "nevts": sum(f["nevts"] for f in entry["files"])}}
    return fileset


def main(argv: list[str] | None = None) -> dict:
    """Run the processor over the fileset on one core; print and return totals."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("fileset", type=Path)
    ap.add_argument("--chunksize", type=int, default=100_000)
    args = ap.parse_args(argv)
    run = processor.Runner(executor=processor.IterativeExecutor(status=False), schema=AGCSchema,
                           chunksize=args.chunksize)
    out = run(fileset_from_json(args.fileset), processor_instance=SeedTtbarAnalysis())
    h = out["hist"]
    result = {"events": int(sum(out["nevents"].values())),
              "sum_4j1b": float(h[:, "4j1b", :, "nominal"].values().sum()),
              "sum_4j2b": float(h[:, "4j2b", :, "nominal"].values().sum())}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
