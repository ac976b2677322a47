"""DiphotonProcessor: m_γγ histogram and per-event feature arrays for the X→γγ search (coffea ProcessorABC).

Blinding is enforced here: when a ``blind`` window is given, events with m_γγ inside it are dropped
before anything is filled or kept, so no histogram, array or number downstream can see them.
"""

from __future__ import annotations

from typing import Callable, Mapping

import awkward as ak
import hist
import numpy as np
from coffea import processor

# cut/classifier features: non-mass variables only (the photon kinematics build m_γγ)
FEATURES = (
    "n_jets", "n_leptons", "photon1_isolation", "photon2_isolation",
    "average_jet_pT", "lead_jets_dPhi", "missing_energy",
)
REQUIRED_FEATURES = FEATURES[:4]

SelectionFn = Callable[[Mapping[str, np.ndarray]], np.ndarray]


def diphoton_mass(events: ak.Array) -> np.ndarray:
    """m_γγ of the two photons in GeV (photon masses are 0)."""
    pair = events.photon[:, 0] + events.photon[:, 1]
    return ak.to_numpy(pair.mass).astype(np.float64)


def event_features(events: ak.Array) -> dict[str, np.ndarray]:
    """The non-mass per-event features present in the input (required ones always)."""
    iso = events.photon.isolation
    out = {
        "photon1_isolation": ak.to_numpy(iso[:, 0]).astype(np.float64),
        "photon2_isolation": ak.to_numpy(iso[:, 1]).astype(np.float64),
    }
    for name in FEATURES:
        if name not in out and name in events.fields:
            out[name] = ak.to_numpy(events[name]).astype(np.float64)
    return out


class DiphotonProcessor(processor.ProcessorABC):
    """Fill the selected m_γγ histogram (weighted) and keep per-event arrays outside the blind window."""

    def __init__(
        self,
        edges: np.ndarray,
        *,
        weight: float = 1.0,
        selection: SelectionFn | None = None,
        blind: tuple[float, float] | None = None,
        keep_arrays: bool = True,
    ) -> None:
        self.edges = np.asarray(edges, dtype=np.float64)
        self.weight = float(weight)
        self.selection = selection
        self.blind = blind
        self.keep_arrays = keep_arrays

    def process(self, events: ak.Array) -> dict:
        """Return ``{dataset: {"hist", "arrays", "n_events"}}``; n_events counts only events outside the blind window."""
        dataset = events.metadata.get("dataset", "unknown")
        mass = diphoton_mass(events)
        features = event_features(events)
        keep = np.ones(len(mass), dtype=bool)
        if self.blind is not None:
            lo, hi = self.blind
            keep = ~((mass >= lo) & (mass < hi))
        mass = mass[keep]
        features = {k: v[keep] for k, v in features.items()}
        selected = np.ones(len(mass), dtype=bool) if self.selection is None else np.asarray(self.selection(features), bool)
        h = hist.Hist(hist.axis.Variable(self.edges, name="mass", label=r"$m_{\gamma\gamma}$ [GeV]"), storage=hist.storage.Weight())
        h.fill(mass=mass[selected], weight=np.full(int(selected.sum()), self.weight))
        out = {
            "hist": h,
            "n_events": processor.value_accumulator(int, int(keep.sum())),
            "arrays": processor.dict_accumulator(),
        }
        if self.keep_arrays:
            cols = {"mass": mass, "selected": selected.astype(np.float64), **features}
            out["arrays"] = processor.dict_accumulator({k: processor.column_accumulator(v) for k, v in cols.items()})
        return {dataset: processor.dict_accumulator(out)}

    def postprocess(self, accumulator: dict) -> dict:
        """Nothing to merge beyond the accumulators themselves."""
        return accumulator


def process_events(events: ak.Array, proc: DiphotonProcessor) -> dict:
    """Apply the processor to one in-memory (eager) NanoEvents array, no executor; return plain objects (hist, numpy arrays, ints).

    Not to be confused with ``analysis.execution.run_processor``, which runs a processor over a fileset on an executor.
    """
    result = proc.postprocess(proc.process(events))
    (payload,) = result.values()
    arrays = {k: np.asarray(v.value) for k, v in payload["arrays"].items()}
    return {
        "hist": payload["hist"],
        "arrays": arrays,
        "n_events": int(payload["n_events"].value),
    }
