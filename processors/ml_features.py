"""MLFeatures: per-event features and labels of the ttbar 4j2b region, as columns (self-contained awkward).

Selection (seed 004, AGC ntuples): exactly one lepton (e or μ) with pT > 25 GeV, ≥ 4 jets with pT > 25 GeV
and ≥ 2 of them b-tagged (score > 0.5): the 4j2b signal region of ``TtbarAnalysis``, nominal jets only.
The thresholds are the public ``Cuts`` defaults (``processors.objects``). ``m_bjj`` is the mass of the
highest-pT trijet with at least one b-tag, computed with the same additions in the same order as the
ttbar processor (so a histogram of it equals that processor's 4j2b histogram).

Each chunk returns its columns under a unique key (dataset, file, first entry); ``postprocess`` joins
them in key order, so the table is identical for every executor, chunk size and merge order. With a
trained model (``analysis.ml.save_model``), a ``score`` column is added and events with score > cut
fill ``hist``: the observable of the score-defined region per process, normalised to xsec × lumi.
"""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import hist
import numpy as np
from coffea import processor

from fileset.normalisation import mc_normalisation
from processors.objects import Cuts

# physics features (GeV for energies/momenta); the classifier inputs are chosen from these
FEATURES: tuple[str, ...] = (
    "m_bjj",  # trijet (bjj) mass: the 4j2b observable
    "trijet_pt",  # pT of that trijet
    "trijet_max_btag",  # highest b-tag score among its jets
    "lepton_pt",
    "lepton_abs_eta",
    "lead_jet_pt",
    "n_jets",
    "n_btag",
    "ht",  # scalar sum of selected jet pT
    "met_pt",
    "mt_w",  # transverse mass of lepton + MET
    "m_w_cand",  # mass of the untagged dijet closest to m_W (0 if < 2 untagged jets)
    "m_top_cand",  # mass of the b + untagged-dijet system closest to m_top (0 if none)
    "m_lb_min",  # smallest lepton + b-jet mass
    "dr_bb",  # ΔR of the two leading b-tagged jets
)
M_W_GEV, M_TOP_GEV = 80.4, 172.5
# bookkeeping columns next to the features
META_COLUMNS: tuple[str, ...] = ("label", "weight", "process", "dataset", "event")
SIGNAL_PROCESS = "ttbar"


def _flat(array: ak.Array) -> np.ndarray:
    """Flat float64 numpy content of a jagged numeric column."""
    return np.asarray(ak.to_numpy(ak.flatten(array, axis=None)), dtype=np.float64)


def _jagged(flat: np.ndarray, counts: np.ndarray) -> ak.Array:
    """Rebuild a jagged array from flat content and counts."""
    return ak.unflatten(flat, counts)


def _mass(*parts: ak.Array) -> ak.Array:
    """Invariant mass of the sum of records with px, py, pz, e (0 for space-like sums)."""
    px, py, pz, e = (sum(p[f] for p in parts) for f in ("px", "py", "pz", "e"))
    m2 = e * e - px * px - py * py - pz * pz
    return np.sqrt(ak.where(m2 > 0.0, m2, 0.0))


def _np(values: ak.Array) -> np.ndarray:
    """Per-event awkward values (missing → 0) as a float64 numpy array."""
    return np.asarray(ak.to_numpy(ak.fill_none(values, 0.0)), dtype=np.float64)


def _closest(values: ak.Array, target: float) -> np.ndarray:
    """Per event, the value closest to ``target`` (0 where an event has none)."""
    best = ak.argmin(abs(values - target), axis=1, keepdims=True)
    return _np(ak.firsts(values[best]))


def region_columns(events: ak.Array, cuts: Cuts) -> dict[str, np.ndarray]:
    """Feature columns for the events of the 4j2b region (one row per selected event) plus ``row``."""
    el_pt, mu_pt = events.electron.pt, events.muon.pt
    el_sel, mu_sel = el_pt > cuts.lepton_pt, mu_pt > cuts.lepton_pt
    n_lep = ak.to_numpy(ak.sum(el_sel, axis=1) + ak.sum(mu_sel, axis=1))

    jets = events.jet
    jet_counts = ak.to_numpy(ak.num(jets.pt, axis=1))
    pt, eta, phi = _flat(jets.pt), _flat(jets.eta), _flat(jets.phi)
    energy, btag = _flat(jets.energy), _flat(jets.btag)
    sel = _jagged(pt > cuts.jet_pt, jet_counts)
    tagged = _jagged(btag > cuts.btag, jet_counts)
    n_jets = ak.to_numpy(ak.sum(sel, axis=1))
    n_btag = ak.to_numpy(ak.sum(sel & tagged, axis=1))
    in_region = (n_lep == 1) & (n_jets >= 4) & (n_btag >= 2)
    rows = np.flatnonzero(in_region)

    # selected jets of the region's events, with Cartesian momenta (numpy, like the ttbar kernels)
    jet = ak.zip({"pt": _jagged(pt, jet_counts), "eta": _jagged(eta, jet_counts), "phi": _jagged(phi, jet_counts),
                  "px": _jagged(pt * np.cos(phi), jet_counts),
                  "py": _jagged(pt * np.sin(phi), jet_counts), "pz": _jagged(pt * np.sinh(eta), jet_counts),
                  "e": _jagged(energy, jet_counts), "btag": _jagged(btag, jet_counts)})
    jet = jet[sel][rows]
    tri = ak.combinations(jet, 3, fields=["a", "b", "c"])
    sx = (tri.a.px + tri.b.px) + tri.c.px
    sy = (tri.a.py + tri.b.py) + tri.c.py
    sz = (tri.a.pz + tri.b.pz) + tri.c.pz
    se = (tri.a.e + tri.b.e) + tri.c.e
    max_btag = np.maximum(tri.a.btag, np.maximum(tri.b.btag, tri.c.btag))
    has_b = max_btag > cuts.btag
    pt2 = ak.where(has_b, sx * sx + sy * sy, -1.0)
    best = ak.argmax(pt2, axis=1, keepdims=True)
    m2 = _np(ak.firsts((se * se - sx * sx - sy * sy - sz * sz)[best]))

    # the one selected lepton
    lep_pt = ak.concatenate([el_pt[el_sel], mu_pt[mu_sel]], axis=1)[rows]
    lep_eta = ak.concatenate([events.electron.eta[el_sel], events.muon.eta[mu_sel]], axis=1)[rows]
    lep_phi = ak.concatenate([events.electron.phi[el_sel], events.muon.phi[mu_sel]], axis=1)[rows]
    lepton_pt, lepton_eta, lepton_phi = _np(ak.firsts(lep_pt)), _np(ak.firsts(lep_eta)), _np(ak.firsts(lep_phi))
    met_pt = np.asarray(ak.to_numpy(events.met.pt), dtype=np.float64)[rows]
    met_phi = np.asarray(ak.to_numpy(events.met.phi), dtype=np.float64)[rows]

    # top-reconstruction features: W → jj from untagged jets, t → bjj, leptonic-side m_lb, b-jet ΔR
    is_b = jet.btag > cuts.btag
    bjet, light = jet[is_b], jet[~is_b]
    pairs = ak.combinations(light, 2, fields=["a", "b"])
    m_w = _closest(_mass(pairs.a, pairs.b), M_W_GEV)
    bjj = ak.cartesian({"b": bjet, "w": pairs}, axis=1)
    m_top = _closest(_mass(bjj.b, bjj.w.a, bjj.w.b), M_TOP_GEV)
    lep_e = ak.concatenate([events.electron.energy[el_sel], events.muon.energy[mu_sel]], axis=1)[rows]
    lepton = ak.zip({"px": lepton_pt * np.cos(lepton_phi), "py": lepton_pt * np.sin(lepton_phi),
                     "pz": lepton_pt * np.sinh(lepton_eta), "e": _np(ak.firsts(lep_e))})
    m_lb = _np(ak.min(_mass(bjet, lepton), axis=1))
    b1, b2 = bjet[:, 0], bjet[:, 1]
    dphi = (b1.phi - b2.phi + np.pi) % (2 * np.pi) - np.pi
    dr_bb = np.sqrt(_np((b1.eta - b2.eta) ** 2 + dphi**2))

    return {
        "row": rows,
        "m_bjj": np.where(m2 > 0.0, np.sqrt(np.maximum(m2, 0.0)), 0.0),
        "trijet_pt": np.sqrt(_np(ak.firsts(pt2[best]))),
        "trijet_max_btag": _np(ak.firsts(max_btag[best])),
        "lepton_pt": lepton_pt,
        "lepton_abs_eta": np.abs(lepton_eta),
        "lead_jet_pt": _np(ak.max(jet.pt, axis=1)),
        "n_jets": n_jets[rows].astype(np.float64),
        "n_btag": n_btag[rows].astype(np.float64),
        "ht": _np(ak.sum(jet.pt, axis=1)),
        "met_pt": met_pt,
        "mt_w": np.sqrt(np.maximum(2.0 * lepton_pt * met_pt * (1.0 - np.cos(lepton_phi - met_phi)), 0.0)),
        "m_w_cand": m_w,
        "m_top_cand": m_top,
        "m_lb_min": m_lb,
        "dr_bb": dr_bb,
    }


class MLFeatures(processor.ProcessorABC):
    """Per-event 4j2b features + labels (ttbar = 1) as columns; optionally a classifier score region.

    ``model_path``/``score_cut``: a model saved by ``analysis.ml.save_model``; every event gets its
    ``score`` and those with score > ``score_cut`` fill ``hist`` (``observable`` of the region per process).
    """

    def __init__(self, cuts: Cuts | None = None, model_path: str | Path | None = None, score_cut: float | None = None,
                 observable: str = "m_bjj", n_bins: int = 25, lo: float = 50.0, hi: float = 550.0) -> None:
        """Selection thresholds (public ``Cuts`` defaults), optional model + cut, histogram binning."""
        if (model_path is None) != (score_cut is None):
            from processors.errors import ProcessorError

            raise ProcessorError("a score-defined region needs both a model path and a score cut")
        if observable not in FEATURES:
            from processors.errors import ProcessorError

            raise ProcessorError(f"observable {observable!r} is not a feature (choose from {', '.join(FEATURES)})")
        self.cuts = cuts or Cuts()
        self.model_path = None if model_path is None else str(model_path)
        self.score_cut = score_cut
        self.observable, self.n_bins, self.lo, self.hi = observable, n_bins, lo, hi

    def process(self, events: ak.Array) -> dict:
        """Columns of one chunk under the key ``dataset|file|first entry``."""
        meta = events.metadata
        dataset, process = meta["dataset"], meta["process"]
        norm = 1.0 if process == "data" else mc_normalisation(meta["xsec"], meta["lumi"], meta["nevts"], sample=dataset)
        cols = region_columns(events, self.cuts)
        rows = cols.pop("row")
        n = rows.shape[0]
        event = (np.asarray(ak.to_numpy(events.event), dtype=np.uint64)[rows] if "event" in events.fields
                 else (rows + int(meta.get("entrystart", 0))).astype(np.uint64))
        cols.update({
            "label": np.full(n, 1 if process == SIGNAL_PROCESS else 0, dtype=np.int8),
            "weight": np.full(n, norm, dtype=np.float64),
            "process": np.full(n, process, dtype=object),
            "dataset": np.full(n, dataset, dtype=object),
            "event": event,
        })
        if self.model_path is not None:
            from processors.ml_model import load_model

            cols["score"] = load_model(self.model_path).score(cols)
        key = f"{dataset}|{meta.get('filename', '')}|{int(meta.get('entrystart', 0)):015d}"
        return {"nevents": {dataset: len(events)}, "chunks": {key: cols}}

    def postprocess(self, accumulator: dict) -> dict:
        """Join chunks in key order into ``columns``; with a model, fill the score-region ``hist``."""
        chunks = accumulator.pop("chunks", {})
        keys = sorted(chunks)
        names = list(chunks[keys[0]]) if keys else list(FEATURES + META_COLUMNS)
        columns = {name: (np.concatenate([chunks[k][name] for k in keys]) if keys else np.zeros(0)) for name in names}
        accumulator["columns"] = columns
        if self.model_path is not None:
            accumulator["hist"] = score_region_hist(columns, self.score_cut, self.observable,
                                                    self.n_bins, self.lo, self.hi)
        return accumulator


def score_region_hist(columns: dict[str, np.ndarray], score_cut: float, observable: str = "m_bjj",
                      n_bins: int = 25, lo: float = 50.0, hi: float = 550.0) -> hist.Hist:
    """Weighted histogram of ``observable`` per process for rows with ``score`` > ``score_cut``."""
    h = (hist.Hist.new.Reg(n_bins, lo, hi, name="observable", label=f"{observable} [GeV]")
         .StrCat([], name="process", label="Process", growth=True).Weight())
    keep = np.asarray(columns["score"]) > score_cut
    procs = np.asarray(columns["process"])
    for p in sorted(set(procs[keep].tolist())):
        m = keep & (procs == p)
        h.fill(observable=np.asarray(columns[observable])[m], process=p, weight=np.asarray(columns["weight"])[m])
    return h
