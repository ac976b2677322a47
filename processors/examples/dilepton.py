"""Dilepton ttbar on NanoAOD: a complete user analysis in one small coffea processor.

Selection: exactly two tight leptons (e/μ, pT > 25 GeV) of opposite charge, ≥ 2 jets (pT > 30 GeV,
|η| < 2.4, tight jet ID) and ≥ 1 b-tag (btagCSVV2 > 0.5). Observable: H_T = Σ pT of the selected jets [GeV].
Systematics: ``lepton_sf_up/down`` (per-lepton scale-factor uncertainty ``lepton_sf_unc``, a weight
variation, fully correlated between the two leptons) and ``jes_up/down`` (all jet pT × (1 ± ``jes``),
a shape variation: selection and H_T are recomputed). Weights are filled with ``fill_exact`` and the
normalisation xsec × lumi / N (from the fileset metadata, 1 if absent) is applied once after merging,
so the histograms are bit-identical for any executor and chunking.

Run it: ``ana run --processor processors.examples.dilepton:DileptonTtbar --fileset F --out O``.
"""

from __future__ import annotations

import awkward as ak
import hist
import numpy as np
from coffea import processor

from fileset.normalisation import mc_normalisation
from processors.accumulators import Constant
from processors.exact import fill_exact

__all__ = ["DileptonTtbar"]


class DileptonTtbar(processor.ProcessorABC):
    """Dilepton ttbar H_T histogram with a lepton-SF weight variation and a JES shape variation."""

    def __init__(self, bins: int = 12, lo: float = 60.0, hi: float = 660.0, jes: float = 0.03,
                 lepton_sf_unc: float = 0.02) -> None:
        """``bins``/``lo``/``hi``: H_T binning [GeV]; ``jes``: relative jet-energy-scale shift; ``lepton_sf_unc``:
        relative scale-factor uncertainty per lepton."""
        self.bins, self.lo, self.hi, self.jes, self.lepton_sf_unc = bins, lo, hi, jes, lepton_sf_unc

    def _hist(self) -> hist.Hist:
        return (hist.Hist.new.Reg(self.bins, self.lo, self.hi, name="ht", label=r"$H_T$ [GeV]")
                .StrCat([], name="variation", growth=True).Weight())

    def process(self, events) -> dict:
        """Select, vary, fill one chunk: ``{"sumw": {dataset: Hist(ht, variation)}, "norm", "process", "cutflow"}``."""
        meta = events.metadata
        dataset = meta["dataset"]
        is_nominal = meta.get("variation", "nominal") == "nominal"
        ele, mu = events.Electron, events.Muon
        ele = ele[(ele.pt > 25) & (ele.cutBased >= 4) & (ele.sip3d < 4)]
        mu = mu[(mu.pt > 25) & mu.tightId & (mu.pfRelIso04_all < 0.15) & (mu.sip3d < 4)]
        n_lep = ak.num(ele) + ak.num(mu)
        charge = ak.sum(ele.charge, axis=1) + ak.sum(mu.charge, axis=1)
        dilepton = ak.to_numpy((n_lep == 2) & (charge == 0))
        w = np.asarray(events.genWeight, dtype=np.float64) if "genWeight" in events.fields else np.ones(len(events))
        sf_up = (1 + self.lepton_sf_unc) ** 2  # two leptons, correlated: Π(1 ± δ)
        sf_down = (1 - self.lepton_sf_unc) ** 2
        jets = events.Jet[(abs(events.Jet.eta) < 2.4) & (events.Jet.jetId >= 2)]
        h = self._hist()
        shifts = {"nominal": 1.0} | ({"jes_up": 1 + self.jes, "jes_down": 1 - self.jes} if is_nominal else {})
        cutflow = {"all": len(events), "2 leptons OS": int(dilepton.sum())}
        for name, scale in shifts.items():
            pt = jets.pt * scale
            good = pt > 30
            njet = ak.to_numpy(ak.sum(good, axis=1))
            nb = ak.to_numpy(ak.sum(good & (jets.btagCSVV2 > 0.5), axis=1))
            ht = ak.to_numpy(ak.sum(pt[good], axis=1))
            sel = dilepton & (njet >= 2) & (nb >= 1)
            label = name if is_nominal else meta.get("variation", name)
            fill_exact(h, ht=ht[sel], variation=label, weight=w[sel])
            if name == "nominal":
                cutflow["selected"] = int(sel.sum())
                if is_nominal:
                    fill_exact(h, ht=ht[sel], variation="lepton_sf_up", weight=w[sel] * sf_up)
                    fill_exact(h, ht=ht[sel], variation="lepton_sf_down", weight=w[sel] * sf_down)
        has_norm = {"xsec", "lumi", "nevts"} <= set(meta)
        norm = mc_normalisation(meta["xsec"], meta["lumi"], meta["nevts"], sample=dataset) if has_norm else 1.0
        return {"sumw": {dataset: h}, "norm": {dataset: Constant(norm)},
                "process": {dataset: Constant(meta.get("process", dataset))}, "cutflow": {dataset: cutflow}}

    def postprocess(self, accumulator: dict) -> dict:
        """``{"ht": Hist(ht, process, variation), "cutflow"}``; ht = Σ over datasets of norm × sums (fixed order)."""
        datasets = sorted(accumulator["sumw"])
        processes = sorted({accumulator["process"][d].value for d in datasets})
        variations = list(dict.fromkeys(v for d in datasets for v in accumulator["sumw"][d].axes["variation"]))
        out = (hist.Hist.new.Reg(self.bins, self.lo, self.hi, name="ht", label=r"$H_T$ [GeV]")
               .StrCat(processes, name="process", growth=True).StrCat(variations, name="variation", growth=True)
               .Weight())
        target = out.view(flow=True)
        for dataset in datasets:
            h, k = accumulator["sumw"][dataset], accumulator["norm"][dataset].value
            pi = out.axes["process"].index(accumulator["process"][dataset].value)
            for vi_in, variation in enumerate(h.axes["variation"]):
                vi = out.axes["variation"].index(variation)
                part = h.view(flow=True)[:, vi_in]
                target["value"][:, pi, vi] += part["value"] * k
                target["variance"][:, pi, vi] += part["variance"] * (k * k)
        return {"ht": out, "cutflow": accumulator["cutflow"]}
