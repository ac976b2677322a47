"""TtbarAnalysis: the AGC ttbar selection, observables and systematics, filling ``hist`` histograms.

Selection (seed 004): exactly one lepton (e or μ) with pT > 25 GeV, ≥ 4 jets with pT > 25 GeV and
≥ 1 b-tag (score > 0.5). Regions: 4j1b (exactly one b-tag, observable HT = Σ jet pT) and 4j2b
(≥ 2 b-tags, observable m_bjj of the highest-pT trijet with at least one b-tag).
"""

from __future__ import annotations

from dataclasses import dataclass

import awkward as ak
import hist
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
from processors.ttbar_kernels import select_jets

REGIONS = ("4j1b", "4j2b")
PT_VARIATIONS = ("pt_scale_up", "pt_res_up")


@dataclass(frozen=True)
class Cuts:
    """Selection thresholds (GeV and b-tag score)."""

    lepton_pt: float = 25.0
    jet_pt: float = 25.0
    btag: float = 0.5
    jes_scale: float = 1.03
    jer_width: float = 0.05
    wjets_scale: float = 0.025
    btag_strength: float = 0.075


def make_hist(n_bins: int = 25, lo: float = 50.0, hi: float = 550.0, storage: str = "double") -> hist.Hist:
    """Empty observable × region × process × variation histogram."""
    h = (
        hist.Hist.new.Reg(n_bins, lo, hi, name="observable", label="observable [GeV]")
        .StrCat(list(REGIONS), name="region", label="Region")
        .StrCat([], name="process", label="Process", growth=True)
        .StrCat([], name="variation", label="Systematic variation", growth=True)
    )
    return h.Weight() if storage == "weight" else h.Double()


def _flat(array: ak.Array, dtype=np.float64) -> np.ndarray:
    """Flatten a jagged column to a contiguous numpy array."""
    return np.ascontiguousarray(ak.to_numpy(ak.flatten(array, axis=None)), dtype=dtype)


class TtbarAnalysis(processor.ProcessorABC):
    """AGC ttbar processor. Output: exact per-chunk sums, turned into a Weight ``hist`` in postprocess."""

    def __init__(self, n_bins: int = 25, lo: float = 50.0, hi: float = 550.0, cuts: Cuts = Cuts()) -> None:
        self.n_bins, self.lo, self.hi, self.cuts = n_bins, lo, hi, cuts

    # ---- per chunk -------------------------------------------------------------------------
    def process(self, events: ak.Array) -> dict:
        """Select, compute observables under every variation, and fill quantised sums."""
        meta = events.metadata
        dataset, process, variation = meta["dataset"], meta["process"], meta["variation"]
        is_data = process == "data"
        norm = 1.0 if is_data else meta["xsec"] * meta["lumi"] / meta["nevts"]
        c = self.cuts
        n = len(events)

        sumw, sumw2 = make_hist(self.n_bins, self.lo, self.hi), make_hist(self.n_bins, self.lo, self.hi)
        out = {"sumw": sumw, "sumw2": sumw2, "nevents": {dataset: n}, "norms": {},
               "cutflow": {dataset: {}}}

        n_lep = ak.to_numpy(ak.sum(events.electron.pt > c.lepton_pt, axis=1) + ak.sum(events.muon.pt > c.lepton_pt, axis=1))
        one_lepton = n_lep == 1

        jets = events.jet
        counts = ak.to_numpy(ak.num(jets, axis=1)).astype(np.int64)
        offsets = np.zeros(n + 1, np.int64)
        np.cumsum(counts, out=offsets[1:])
        pt, eta, phi = _flat(jets.pt), _flat(jets.eta), _flat(jets.phi)
        energy, btag = _flat(jets.energy), _flat(jets.btag)
        px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)

        factors = {"nominal": np.ones_like(pt)}
        if variation == "nominal" and not is_data:
            factors["pt_scale_up"] = np.full_like(pt, c.jes_scale)
            ids = event_identity(ak.to_numpy(events.event) if "event" in events.fields else None,
                                 meta.get("filename", ""), int(meta.get("entrystart", 0)), n)
            factors["pt_res_up"] = jet_resolution_factors(ids, counts, dataset_salt(dataset), c.jer_width)

        for pt_var, factor in factors.items():
            lead_pt = np.zeros((n, 4))
            njet, nb, ht, mbjj = select_jets(offsets, pt, px, py, pz, energy, btag, factor, c.jet_pt, c.btag, lead_pt)
            selected = one_lepton & (njet >= 4) & (nb >= 1)
            label = variation if pt_var == "nominal" else pt_var
            if pt_var == "nominal":
                out["cutflow"][dataset] = {
                    "all": n, "1 lepton": int(one_lepton.sum()), ">= 4 jets": int((one_lepton & (njet >= 4)).sum()),
                    ">= 1 b-tag": int(selected.sum()), "4j1b": int((selected & (nb == 1)).sum()),
                    "4j2b": int((selected & (nb >= 2)).sum()),
                }
            base_w, extra = self.event_weights(events, njet, ht)
            for region, mask, obs in (("4j1b", selected & (nb == 1), ht), ("4j2b", selected & (nb >= 2), mbjj)):
                x = obs[mask]
                w0 = base_w[mask]
                weights = {label: w0}
                if pt_var == "nominal" and variation == "nominal" and not is_data:
                    weights.update({k: w0 * v for k, v in btag_weight_variations(lead_pt[mask], c.btag_strength).items()})
                    if process == "wjets":
                        weights.update({k: w0 * v for k, v in flat_variation(x.shape[0], "scale_var", c.wjets_scale).items()})
                    weights.update({k: v[mask] for k, v in extra.items()})
                for name, w in weights.items():
                    sumw.fill(observable=x, region=region, process=process, variation=name, weight=quantise(w))
                    sumw2.fill(observable=x, region=region, process=process, variation=name, weight=quantise(w * w))
                    out["norms"][f"{process}/{name}"] = Constant(norm)
        return out

    def event_weights(self, events: ak.Array, njet: np.ndarray, ht: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Per-event weight on top of the normalisation, and named weight variations (absolute, per event).

        Hook for subclasses (e.g. a data-driven reweighting): the default is 1 with no variations.
        ``njet``/``ht`` are the selected-jet multiplicity and HT under the current jet variation.
        """
        return np.ones(len(events)), {}

    # ---- after merging ---------------------------------------------------------------------
    def postprocess(self, accumulator: dict) -> dict:
        """Add ``hist``: Weight-storage histogram normalised to cross-section × luminosity."""
        accumulator["hist"] = normalise(accumulator["sumw"], accumulator["sumw2"], accumulator["norms"])
        return accumulator


def normalise(sumw: hist.Hist, sumw2: hist.Hist, norms: dict[str, Constant]) -> hist.Hist:
    """Combine exact sums and per-(process, variation) normalisations into a Weight histogram."""
    obs = sumw.axes["observable"]
    procs, variations = list(sumw.axes["process"]), list(sumw.axes["variation"])
    out = (
        hist.Hist.new.Reg(obs.size, obs.edges[0], obs.edges[-1], name="observable", label=obs.label)
        .StrCat(list(REGIONS), name="region", label="Region")
        .StrCat(procs, name="process", label="Process", growth=True)
        .StrCat(variations, name="variation", label="Systematic variation", growth=True)
        .Weight()
    )
    target, w, w2 = out.view(flow=True), sumw.view(flow=True), sumw2.view(flow=True)
    for pi, p in enumerate(procs):
        for vi, v in enumerate(variations):
            k = norms.get(f"{p}/{v}")
            if k is None:
                continue
            target["value"][:, :, pi, vi] = w[:, :, pi, vi] * k.value
            target["variance"][:, :, pi, vi] = w2[:, :, pi, vi] * (k.value * k.value)
    return out
