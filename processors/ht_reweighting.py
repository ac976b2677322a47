"""HT_all reweighting processors.

``HTAllProcessor`` fills, in a configurable derivation region, the per-event moments of
HT_all = Σ jet pT + Σ lepton pT per dataset, truth component and exact nJets, in fine HT bins:
Σw, Σw², Σw·u, Σw·u² (u = HT_all − fine-bin lower edge) and raw entries. Moments (rather than a
plain histogram) make the smooth-function bin-integral constraints exact for any coarser binning.

``ReweightedTtbarAnalysis`` is TtbarAnalysis with the derived correctionlib weight applied to the
reweighted ttbar components, plus ``ht_reweight_up``/``ht_reweight_down`` variations.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import awkward as ak
import correctionlib
import hist
import numpy as np
from coffea import processor

from fileset.normalisation import mc_normalisation
from processors.errors import ProcessorError
from fileset.expr import Expression, parse
from fileset.loaders import load_json
from processors.accumulators import Constant, quantise
from processors.ttbar import TtbarAnalysis

EVENT_VARIABLES = frozenset({"nJets", "nBTags", "nLeptons", "nElectrons", "nMuons", "HT_all", "HT", "MET", "hfClass"})
MOMENTS = ("sumw", "sumw2", "sumwu", "sumwu2", "entries")
HF_BRANCH = "hf_class"
DEFAULT_COMPONENTS = {"ttbb": "hfClass == 3", "ttb": "hfClass == 2", "ttc": "hfClass == 1", "ttlight": "hfClass == 0"}


@dataclass(frozen=True)
class RegionSpec:
    """Derivation region: object thresholds, a selection expression and a weight expression."""

    selection: str = "nLeptons == 1 and nJets >= 5 and nBTags >= 3"
    weight: str = "1"
    jet_pt: float = 25.0
    lepton_pt: float = 25.0
    btag: float = 0.5
    ht_bin_width: float = 10.0
    ht_max: float = 4000.0
    njets_max: int = 15
    component_process: str = "ttbar"
    components: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_COMPONENTS))
    component_weights: dict[str, str] = field(default_factory=dict)

    def compiled(self) -> tuple[Expression, Expression, dict[str, Expression], dict[str, Expression]]:
        """Parse every expression once (errors name the offending config key)."""
        sel = parse(self.selection, EVENT_VARIABLES, allow_logic=True, what="selection")
        w = parse(self.weight, EVENT_VARIABLES, what="weight")
        comps = {k: parse(v, EVENT_VARIABLES, allow_logic=True, what=f"{k}_selection") for k, v in self.components.items()}
        cw = {k: parse(v, EVENT_VARIABLES, what=f"weight of component {k}") for k, v in self.component_weights.items()}
        return sel, w, comps, cw


def event_variables(events: ak.Array, jet_pt: float, lepton_pt: float, btag: float) -> dict[str, np.ndarray]:
    """Per-event variables usable in selections/weights (objects above the given thresholds)."""
    jpt = ak.values_astype(events.jet.pt, np.float64)
    good = jpt > jet_pt
    ht = ak.to_numpy(ak.sum(ak.where(good, jpt, 0.0), axis=1))
    out = {"nJets": ak.to_numpy(ak.sum(good, axis=1)).astype(np.int64),
           "nBTags": ak.to_numpy(ak.sum(good & (events.jet.btag > btag), axis=1)).astype(np.int64), "HT": ht}
    ht_all = ht.copy()
    for name, key in (("electron", "nElectrons"), ("muon", "nMuons")):
        lpt = ak.values_astype(events[name].pt, np.float64)
        out[key] = ak.to_numpy(ak.sum(lpt > lepton_pt, axis=1)).astype(np.int64)
        ht_all = ht_all + ak.to_numpy(ak.sum(ak.where(lpt > lepton_pt, lpt, 0.0), axis=1))
    out["nLeptons"] = out["nElectrons"] + out["nMuons"]
    out["HT_all"] = ht_all
    out["MET"] = ak.to_numpy(events.met.pt).astype(np.float64)
    fields = events.fields
    out["hfClass"] = ak.to_numpy(events[HF_BRANCH]).astype(np.int64) if HF_BRANCH in fields else np.full(len(events), -1)
    return out


def make_moment_hist(region: RegionSpec) -> hist.Hist:
    """Empty dataset × component × nJets × HT_all × moment histogram (Double storage)."""
    n_bins = int(round(region.ht_max / region.ht_bin_width))
    return (
        hist.Hist.new.StrCat([], name="dataset", growth=True)
        .StrCat([], name="component", growth=True)
        .Integer(0, region.njets_max + 1, name="njets", label="Number of jets")
        .Reg(n_bins, 0.0, n_bins * region.ht_bin_width, name="ht", label=r"$H_T^{all}$ [GeV]")
        .StrCat(list(MOMENTS), name="moment")
        .Double()
    )


class CorrectionWeights:
    """Evaluates an ``ht_reweighting`` correction (nominal/up/down) for selected processes and components."""

    def __init__(self, correction_json: str, name: str = "ht_reweighting", processes: tuple[str, ...] = ("ttbar",),
                 classes: tuple[int, ...] = (2, 3), use_alternative: bool = True) -> None:
        self.text, self.name, self.processes, self.classes = correction_json, name, processes, classes
        self.use_alternative = use_alternative
        self._cset = None

    @classmethod
    def from_file(cls, path: str | Path, **kwargs) -> "CorrectionWeights":
        """Read a correctionlib JSON file (validated when first used)."""
        p = Path(path)
        if not p.is_file():
            raise ProcessorError(f"{p}: correction file not found")
        try:
            obj = cls(p.read_text(), **kwargs)
            names = obj.corrections()
        except UnicodeDecodeError:
            raise ProcessorError(f"{p}: not a text file (expected a correctionlib JSON file)") from None
        except ProcessorError as err:
            raise ProcessorError(f"{p}: {err}") from None
        if obj.name not in names:
            raise ProcessorError(f"{p}: no correction named {obj.name!r} (has: {', '.join(names) or 'none'})")
        return obj

    def corrections(self) -> list[str]:
        """Names of the corrections in the set."""
        return list(self._evaluator().keys())

    def _evaluator(self):
        if self._cset is None:
            try:
                self._cset = correctionlib.CorrectionSet.from_string(self.text)
            except Exception as err:  # correctionlib raises plain RuntimeError/ValueError on bad JSON
                raise ProcessorError(f"invalid correctionlib JSON: {str(err).splitlines()[0]}") from None
        return self._cset

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_cset"] = None  # compiled evaluator is rebuilt in each worker
        return state

    def name_for(self, variation: str) -> str:
        """Correction to use for a sample variation (alternative-sample derivation when present)."""
        alt = f"{self.name}_{variation}"
        return alt if self.use_alternative and variation != "nominal" and alt in self.corrections() else self.name

    def weights(self, process: str, variation: str, hf: np.ndarray, njet: np.ndarray, ht_all: np.ndarray,
                systematics: tuple[str, ...] = ("nominal", "up", "down")) -> dict[str, np.ndarray]:
        """Per-event weights per systematic: the correction for reweighted events, 1 elsewhere."""
        out = {s: np.ones(len(hf)) for s in systematics}
        if process not in self.processes:
            return out
        mask = np.isin(hf, self.classes)
        if not mask.any():
            return out
        corr = self._evaluator()[self.name_for(variation)]
        nj = np.asarray(njet[mask], dtype=np.int64)
        x = np.asarray(ht_all[mask], dtype=np.float64)
        for s in systematics:
            out[s][mask] = corr.evaluate(s, nj, x)
        return out


class HTAllProcessor(processor.ProcessorABC):
    """Fills HT_all moments in the derivation region per dataset, component and nJets (optionally corrected)."""

    def __init__(self, region: RegionSpec = RegionSpec(), correction: CorrectionWeights | None = None,
                 systematic: str = "nominal") -> None:
        region.compiled()  # fail early on bad expressions
        self.region, self.correction, self.systematic = region, correction, systematic

    def process(self, events: ak.Array) -> dict:
        """Select the region and fill the moments of HT_all."""
        meta = events.metadata
        dataset, process, variation = meta["dataset"], meta["process"], meta["variation"]
        is_data = process == "data"
        r = self.region
        sel, wexpr, comps, cweights = r.compiled()
        if process == r.component_process and HF_BRANCH not in events.fields:
            raise ProcessorError(f"{meta.get('filename', dataset)}: branch {HF_BRANCH!r} (heavy-flavour truth label) is missing")
        var = event_variables(events, r.jet_pt, r.lepton_pt, r.btag)
        mask = np.broadcast_to(np.asarray(sel(**var), dtype=bool), (len(events),))
        v = {k: a[mask] for k, a in var.items()}
        n_sel = int(mask.sum())
        w = np.ones(n_sel) if is_data else np.broadcast_to(np.asarray(wexpr(**v), dtype=np.float64), (n_sel,)).copy()
        comp = np.full(n_sel, "none", dtype=object)
        if process == r.component_process:
            taken = np.zeros(n_sel, dtype=bool)
            for name, expr in comps.items():
                m = np.broadcast_to(np.asarray(expr(**v), dtype=bool), (n_sel,))
                if (m & taken).any():
                    raise ProcessorError(f"component selections overlap: {name!r} shares events with another component")
                comp[m] = name
                taken |= m
                if name in cweights:
                    w[m] = w[m] * np.broadcast_to(cweights[name](**v), (n_sel,))[m]
            if self.correction is not None:
                w = w * self.correction.weights(process, variation, v["hfClass"], v["nJets"], v["HT_all"],
                                                (self.systematic,))[self.systematic]
        if not np.all(np.isfinite(w)):
            raise ProcessorError(f"{dataset}: non-finite event weight in the derivation region")
        out = make_moment_hist(r)
        x = v["HT_all"]
        top = out.axes["ht"].edges[-1]
        low = np.minimum(np.floor(np.clip(x, 0.0, None) / r.ht_bin_width) * r.ht_bin_width, top)
        u = x - low  # moments about the fine bin's lower edge (overflow: about the upper axis edge)
        wq = quantise(w)
        values = {"sumw": wq, "sumw2": quantise(w * w), "sumwu": quantise(wq * u), "sumwu2": quantise(wq * u * u),
                  "entries": np.ones(n_sel)}
        njets = np.minimum(v["nJets"], r.njets_max + 1)
        for moment, val in values.items():
            out.fill(dataset=dataset, component=comp.astype(str), njets=njets, ht=x, moment=moment, weight=val)
        norm = 1.0 if is_data else mc_normalisation(meta["xsec"], meta["lumi"], meta["nevts"], sample=dataset)
        return {"moments": out, "nevents": {dataset: len(events)}, "selected": {dataset: n_sel},
                "norms": {dataset: Constant(norm)}}

    def postprocess(self, accumulator: dict) -> dict:
        """Nothing to add: normalisation is applied by the derivation."""
        return accumulator


class ReweightedTtbarAnalysis(TtbarAnalysis):
    """TtbarAnalysis whose reweighted ttbar components carry the HT_all correction and its ±1σ variations."""

    def __init__(self, correction: CorrectionWeights, lepton_pt: float | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.correction = correction
        self.lepton_pt = self.cuts.lepton_pt if lepton_pt is None else lepton_pt

    def event_weights(self, events: ak.Array, njet: np.ndarray, ht: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Nominal correction as base weight; ``ht_reweight_up/down`` as absolute per-event weights."""
        meta = events.metadata
        process, variation = meta["process"], meta["variation"]
        n = len(events)
        if process not in self.correction.processes:
            return np.ones(n), {}
        if HF_BRANCH not in events.fields:
            raise ProcessorError(f"{meta.get('filename', meta['dataset'])}: branch {HF_BRANCH!r} (heavy-flavour truth label) is missing")
        ht_all = np.asarray(ht, dtype=np.float64).copy()
        for name in ("electron", "muon"):
            lpt = ak.values_astype(events[name].pt, np.float64)
            ht_all += ak.to_numpy(ak.sum(ak.where(lpt > self.lepton_pt, lpt, 0.0), axis=1))
        hf = ak.to_numpy(events[HF_BRANCH]).astype(np.int64)
        w = self.correction.weights(process, variation, hf, np.asarray(njet), ht_all)
        return w["nominal"], {"ht_reweight_up": w["up"], "ht_reweight_down": w["down"]}


def correction_metadata(path: str | Path) -> dict:
    """The derivation settings stored in a correction file's description (JSON), if any."""
    doc = load_json(path, "correction file")  # missing / broken JSON: one line naming the file
    if not isinstance(doc, dict) or not isinstance(doc.get("corrections", []), list):
        raise ProcessorError(f"{path}: not a correctionlib JSON file (expected an object with a 'corrections' list)")
    for corr in doc.get("corrections", []):
        if not isinstance(corr, dict):
            continue
        if corr.get("name") == "ht_reweighting":
            try:
                return json.loads(corr.get("description", "{}")).get("settings", {})
            except json.JSONDecodeError:
                return {}
    return {}
