"""Straightforward AGC ttbar processor, written the way the seed notebook does it: the yardstick for speed.

For every jet-pT variation the full selection is redone with awkward (leptons, jets, event filter,
regions), trijets are built with ``ak.combinations``, and each (region, variation) is one ``hist``
fill. It reads AGC ntuples (AGCSchema) with the seed-004 cuts.

Physics and arithmetic match the production ``processors.ttbar.TtbarAnalysis`` so that the two can
be compared bit for bit: the four-vector of a varied jet is scaled as a whole (so the JES/JER
variations reach m_bjj, as in production), trijet sums are formed from (px, py, pz, E) in the order
(j1 + j2) + j3 instead of through coffea's vector behaviours (whose pt/mass formulas round
differently), and the shared seeded systematics (``jet_resolution_factors``, b-tag and flat weight
variations) and exact quantised sums (``quantise`` → ``normalise``) are used.
"""

from __future__ import annotations

import awkward as ak
import numpy as np
from coffea import processor

from processors.accumulators import Constant, quantise
from processors.systematics import (
    btag_weight_variations,
    dataset_salt,
    event_identity,
    flat_variation,
    jet_resolution_factors,
)
from processors.ttbar import Cuts, make_hist, normalise


def _f64(array: ak.Array) -> ak.Array:
    """Jagged column as float64 (the stored branches are float32)."""
    return ak.values_astype(array, np.float64)


class BaselineTtbarAnalysis(processor.ProcessorABC):
    """Seed-style ttbar processor producing the same exact-sum accumulators as TtbarAnalysis."""

    def __init__(self, n_bins: int = 25, lo: float = 50.0, hi: float = 550.0, cuts: Cuts = Cuts()) -> None:
        self.n_bins, self.lo, self.hi, self.cuts = n_bins, lo, hi, cuts

    def process(self, events: ak.Array) -> dict:
        """One full selection per jet-pT variation, ak.combinations trijets, one fill per variation."""
        c = self.cuts
        meta = events.metadata
        dataset, process, variation = meta["dataset"], meta["process"], meta["variation"]
        is_data = process == "data"
        norm = 1.0 if is_data else meta["xsec"] * meta["lumi"] / meta["nevts"]
        sumw, sumw2 = make_hist(self.n_bins, self.lo, self.hi), make_hist(self.n_bins, self.lo, self.hi)
        out = {"sumw": sumw, "sumw2": sumw2, "nevents": {dataset: len(events)}, "norms": {}, "cutflow": {dataset: {}}}
        for pt_var, regions, cutflow in self.selections(events):
            if pt_var == "pt_nominal":
                out["cutflow"][dataset] = cutflow
            for region, (observable, region_jets) in regions.items():
                ones = np.ones(len(observable))
                if pt_var == "pt_nominal":
                    weights = {variation: ones}
                    if variation == "nominal" and not is_data:
                        lead = ak.to_numpy(ak.fill_none(ak.pad_none(region_jets.raw_pt, 4, clip=True), 0.0))
                        weights.update(btag_weight_variations(lead, c.btag_strength))
                        if process == "wjets":
                            weights.update(flat_variation(len(observable), "scale_var", c.wjets_scale))
                else:
                    weights = {pt_var: ones}
                for name, w in weights.items():
                    sumw.fill(observable=observable, region=region, process=process, variation=name, weight=quantise(w))
                    sumw2.fill(observable=observable, region=region, process=process, variation=name,
                               weight=quantise(w * w))
                    out["norms"][f"{process}/{name}"] = Constant(norm)
        return out

    def selections(self, events: ak.Array):
        """Per jet-pT variation: (name, {region: (observable, region jets)}, cutflow), full selection each time."""
        c = self.cuts
        meta = events.metadata
        dataset, process, variation = meta["dataset"], meta["process"], meta["variation"]
        jets = events.jet
        pt, eta, phi = _f64(jets.pt), _f64(jets.eta), _f64(jets.phi)
        jet_p4 = {"px": pt * np.cos(phi), "py": pt * np.sin(phi), "pz": pt * np.sinh(eta), "e": _f64(jets.energy)}
        modifiers = {"pt_nominal": 1.0}
        if variation == "nominal" and process != "data":
            modifiers["pt_scale_up"] = c.jes_scale
            counts = ak.to_numpy(ak.num(jets)).astype(np.int64)
            ids = event_identity(ak.to_numpy(events.event) if "event" in events.fields else None,
                                 meta.get("filename", ""), int(meta.get("entrystart", 0)), len(events))
            modifiers["pt_res_up"] = ak.unflatten(jet_resolution_factors(ids, counts, dataset_salt(dataset), c.jer_width),
                                                  counts)
        for pt_var, modifier in modifiers.items():
            selected_electrons = events.electron[events.electron.pt > c.lepton_pt]
            selected_muons = events.muon[events.muon.pt > c.lepton_pt]
            varied = ak.zip({"pt": pt * modifier, "raw_pt": pt, "btag": jets.btag,
                             **{k: v * modifier for k, v in jet_p4.items()}})
            selected_jets = varied[varied.pt > c.jet_pt]
            one_lepton = (ak.count(selected_electrons.pt, axis=1) + ak.count(selected_muons.pt, axis=1)) == 1
            four_jets = one_lepton & (ak.count(selected_jets.pt, axis=1) >= 4)
            nbtag = ak.sum(selected_jets.btag > c.btag, axis=1)
            event_filters = four_jets & (nbtag >= 1)
            cutflow = {"all": len(events), "1 lepton": int(ak.sum(one_lepton)), ">= 4 jets": int(ak.sum(four_jets)),
                       ">= 1 b-tag": int(ak.sum(event_filters)), "4j1b": int(ak.sum(event_filters & (nbtag == 1))),
                       "4j2b": int(ak.sum(event_filters & (nbtag >= 2)))}
            selected_jets = selected_jets[event_filters]
            nbtag = nbtag[event_filters]

            regions = {}
            region_jets = selected_jets[nbtag == 1]
            regions["4j1b"] = (ak.to_numpy(ak.sum(region_jets.pt, axis=-1)), region_jets)  # HT
            region_jets = selected_jets[nbtag >= 2]
            trijet = ak.combinations(region_jets, 3, fields=["j1", "j2", "j3"])
            p4 = {k: trijet.j1[k] + trijet.j2[k] + trijet.j3[k] for k in ("px", "py", "pz", "e")}
            max_btag = np.maximum(trijet.j1.btag, np.maximum(trijet.j2.btag, trijet.j3.btag))
            keep = max_btag > c.btag
            p4 = {k: v[keep] for k, v in p4.items()}
            best = ak.argmax(p4["px"] * p4["px"] + p4["py"] * p4["py"], axis=1, keepdims=True)
            sx, sy, sz, se = (ak.flatten(p4[k][best]) for k in ("px", "py", "pz", "e"))
            m2 = ak.to_numpy(se * se - sx * sx - sy * sy - sz * sz)
            regions["4j2b"] = (np.where(m2 > 0.0, np.sqrt(np.maximum(m2, 0.0)), 0.0), region_jets)  # m_bjj
            yield pt_var, regions, cutflow

    def postprocess(self, accumulator: dict) -> dict:
        """Normalised Weight histogram, as TtbarAnalysis."""
        accumulator["hist"] = normalise(accumulator["sumw"], accumulator["sumw2"], accumulator["norms"])
        return accumulator
