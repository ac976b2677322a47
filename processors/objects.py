"""Format adapters for the ttbar analysis: map an input (AGC ntuple or NanoAOD) to one common object view.

The physics (jet-pT variations, event selection, regions, observables, systematics) lives in
``processors.ttbar``; the code here only reads columns and applies the per-format object
definitions whose thresholds come from :class:`Cuts` (``FORMAT_CUTS`` holds the defaults: the seed's
ntuple selection and the AGC v2 NanoAOD selection).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Callable

import awkward as ak
import numpy as np

from processors.errors import ProcessorError
from processors.systematics import event_identity, run_lumi_event_identity
from processors.ttbar_kernels import gather_events, jet_events

INF = math.inf


@dataclass(frozen=True)
class Cuts:
    """Selection thresholds (GeV, |η|, IDs, b-tag score) and systematic sizes.

    ``None``/``inf`` disables a requirement. Jet |η| and ID are variation-independent quality cuts;
    the jet-pT threshold is applied to the varied pT by the processor.
    """

    lepton_pt: float = 25.0
    lepton_eta: float = INF
    electron_cut_based: int | None = None  # required value of Electron_cutBased (4 = tight)
    lepton_sip3d: float = INF
    muon_tight_id: bool = False
    muon_iso: float = INF  # pfRelIso04_all upper bound
    jet_pt: float = 25.0
    jet_eta: float = INF
    jet_id_bit: int | None = None  # bit of Jet_jetId that must be set (2 = tight lepton veto)
    btag: float = 0.5
    jes_scale: float = 1.03
    jer_width: float = 0.05
    wjets_scale: float = 0.025
    btag_strength: float = 0.075


# Seed-004 selection for the AGC flat ntuples; AGC v2 object definitions for CMS NanoAOD.
FORMAT_CUTS: dict[str, Cuts] = {
    "ntuple": Cuts(),
    "nanoaod": Cuts(lepton_pt=30.0, lepton_eta=2.1, electron_cut_based=4, lepton_sip3d=4.0, muon_tight_id=True,
                    muon_iso=0.15, jet_pt=30.0, jet_eta=2.4, jet_id_bit=2),
}


@dataclass
class ObjectView:
    """Common per-chunk view: flat jet columns with event offsets, lepton counts, event ids.

    Jet columns may be float32 (as stored) or float64; :meth:`subset` returns ``pt`` and ``btag`` as float64 (exact),
    ``eta``, ``phi`` and ``energy`` as stored (convert with ``astype(np.float64)`` before computing with them).
    """

    n: int
    offsets: np.ndarray  # int64, length n + 1
    pt: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    energy: np.ndarray
    btag: np.ndarray
    jet_ok: np.ndarray  # bool per jet: variation-independent quality (|η|, ID)
    n_lepton: np.ndarray  # int64 per event: selected electrons + muons
    event_ids: np.ndarray  # uint64 per event: identity used to seed the jet smearing

    @property
    def counts(self) -> np.ndarray:
        """Jets per event."""
        return np.diff(self.offsets)

    @cached_property
    def jet_event(self) -> np.ndarray:
        """int64 per jet: the index of its event (computed once per view)."""
        return jet_events(self.offsets)

    def subset(self, rows: np.ndarray) -> "ObjectView":
        """The view restricted to the events at ``rows`` (sorted indices), jets kept in order."""
        offsets, pt, eta, phi, energy, btag, ok = gather_events(self.offsets, rows.astype(np.int64), self.pt, self.eta,
                                                                self.phi, self.energy, self.btag, self.jet_ok)
        return ObjectView(rows.shape[0], offsets, pt, eta, phi, energy, btag, ok, self.n_lepton[rows], self.event_ids[rows])


class MissingBranch(ProcessorError, KeyError, AttributeError):
    """A branch (or collection) the processor reads is not in the chunk's columns: not in the file, or not declared
    in the processor's ``columns()``. A user error (one line naming it); also a KeyError/AttributeError, so that
    ``hasattr`` and ``in``-style probes behave as on any mapping or object."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class BranchCollection:
    """A collection (``jet``, ``Electron``, …) of :class:`BranchEvents`: ``coll["pt"]`` / ``coll.pt`` is the branch
    ``<prefix>_pt`` (AGC ntuples: ``energy`` is the ``_e`` branch, as ``schemas.agc.AGCSchema`` names it)."""

    def __init__(self, columns: dict, prefix: str, renames: dict[str, str]) -> None:
        self._columns, self._prefix, self._renames = columns, prefix, renames
        stored = [k[len(prefix):] for k in columns if k.startswith(prefix)]
        back = {v: k for k, v in renames.items()}
        self.fields = [back.get(f, f) for f in stored]

    def __getitem__(self, field: str):
        key = self._prefix + self._renames.get(field, field)
        try:
            return self._columns[key]
        except KeyError:
            raise MissingBranch(f"input has no branch {key!r} (or the processor's columns() does not declare it)") from None

    def __getattr__(self, field: str):
        if field.startswith("_"):
            raise AttributeError(field)
        return self[field]


class BranchEvents:
    """The events of one chunk as plain branch arrays: what the object views read of NanoEvents, without coffea.

    ``events.metadata`` (the chunk's metadata), ``len(events)``, ``events.fields`` (event-level branches and
    collection names), ``events.event`` (a branch), ``events.jet`` / ``events["Jet"]`` (a
    :class:`BranchCollection` of the ``jet_*`` / ``Jet_*`` branches). Only the branches given are available.
    """

    def __init__(self, columns: dict, metadata: dict) -> None:
        self.metadata = metadata
        self._columns = columns
        self._renames = {"energy": "e"} if metadata.get("format", "ntuple") == "ntuple" else {}
        names = list(columns)
        self._collections = sorted({k.split("_", 1)[0] for k in names if "_" in k})
        self.fields = [k for k in names if "_" not in k] + self._collections
        counters = [k for k in names if "_" not in k]
        first = columns[counters[0]] if counters else next(iter(columns.values()), ())
        self._n = len(first)

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, name: str):
        if name in self._collections:
            return BranchCollection(self._columns, name + "_", self._renames)
        try:
            return self._columns[name]
        except KeyError:
            raise MissingBranch(f"input has no branch or collection {name!r} (or the processor's columns() does not "
                                "declare it)") from None

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return self[name]


def _list_buffers(array) -> tuple[np.ndarray, np.ndarray] | None:
    """(offsets, content) numpy buffers of a plain singly-jagged numeric awkward array (e.g. as uproot reads a
    branch), without copying; None for anything else (records, virtual or option layouts)."""
    layout = getattr(array, "layout", None)
    if type(layout).__name__ != "ListOffsetArray" or type(layout.content).__name__ != "NumpyArray":
        return None
    offsets, content = layout.offsets.data, layout.content.data
    if type(offsets) is not np.ndarray or type(content) is not np.ndarray or content.ndim != 1:
        return None
    return offsets, content


def jagged_parts(array: ak.Array, dtype=np.float64) -> tuple[np.ndarray, np.ndarray]:
    """(offsets starting at 0, contiguous flat content) of a singly-jagged numeric column (``dtype`` None: as stored)."""
    buffers = _list_buffers(array)
    if buffers is not None:  # a plain list array: read its buffers (same values as the general route below)
        raw, content = buffers
        offsets = raw.astype(np.int64) - int(raw[0])
        flat_ = content[int(raw[0]):int(raw[-1])]
        return offsets, np.ascontiguousarray(flat_, dtype=dtype if dtype is not None else flat_.dtype)
    counts = ak.to_numpy(ak.num(array, axis=1)).astype(np.int64)
    offsets = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    flat = np.ascontiguousarray(ak.to_numpy(ak.flatten(array, axis=None)), dtype=dtype)
    return offsets, flat


def flat(array: ak.Array, dtype=np.float64) -> np.ndarray:
    """Contiguous flat content of a jagged column (``dtype`` None: as stored, no copy when contiguous)."""
    buffers = _list_buffers(array)
    if buffers is not None:
        raw, content = buffers
        flat_ = content[int(raw[0]):int(raw[-1])]
        return np.ascontiguousarray(flat_, dtype=dtype if dtype is not None else flat_.dtype)
    return np.ascontiguousarray(ak.to_numpy(ak.flatten(array, axis=None)), dtype=dtype)


def count_per_event(mask: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Number of true entries per event of a flat boolean mask."""
    c = np.zeros(mask.shape[0] + 1, np.int64)
    np.cumsum(mask, out=c[1:])
    return c[offsets[1:]] - c[offsets[:-1]]


def _require(collection: ak.Array, fields: tuple[str, ...], what: str) -> None:
    """Fail with the missing field names when a cut needs a column the input does not have."""
    missing = [f for f in fields if f not in collection.fields]
    if missing:
        raise ProcessorError(f"{what} input has no {', '.join(missing)} column(s) needed by the selection cuts")


def _check_ntuple_cuts(c: Cuts) -> None:
    """The AGC ntuples carry no lepton/jet IDs: an ID cut on them is a configuration error."""
    bad = [name for name, on in (("electron_cut_based", c.electron_cut_based is not None),
                                 ("lepton_sip3d", c.lepton_sip3d != INF), ("muon_tight_id", c.muon_tight_id),
                                 ("muon_iso", c.muon_iso != INF), ("jet_id_bit", c.jet_id_bit is not None)) if on]
    if bad:
        raise ProcessorError(f"AGC ntuples have no ID/isolation columns; cut(s) {', '.join(bad)} need NanoAOD input")


def ntuple_view(events: ak.Array, c: Cuts) -> ObjectView:
    """AGC flat ntuple (AGCSchema: ``jet``, ``electron``, ``muon`` with ``energy``) → ObjectView."""
    _check_ntuple_cuts(c)
    n = len(events)
    n_lep = np.zeros(n, np.int64)
    for coll in (events.electron, events.muon):
        off, lpt = jagged_parts(coll["pt"], np.float32)
        sel = lpt > c.lepton_pt
        if c.lepton_eta != INF:
            sel &= np.abs(flat(coll["eta"], np.float32)) < c.lepton_eta
        n_lep += count_per_event(sel, off)
    jets = events.jet
    # jet columns stay as stored (float32, no copy): ObjectView.subset converts the selected events' jets
    offsets, pt = jagged_parts(jets["pt"], None)
    eta = flat(jets["eta"], None)
    ok = np.abs(eta.astype(np.float64)) < c.jet_eta if c.jet_eta != INF else np.ones(pt.shape[0], bool)
    ids = event_identity(ak.to_numpy(events.event) if "event" in events.fields else None,
                         events.metadata.get("filename", ""), int(events.metadata.get("entrystart", 0)), n)
    return ObjectView(n, offsets, pt, eta, flat(jets["phi"], None), flat(jets["energy"], None), flat(jets["btag"], None),
                      ok, n_lep, ids)


def nanoaod_view(events: ak.Array, c: Cuts) -> ObjectView:
    """CMS NanoAOD (NanoAODSchema: ``Jet``, ``Electron``, ``Muon``) → ObjectView with AGC v2 object IDs."""
    n = len(events)
    el, mu, jets = events.Electron, events.Muon, events.Jet
    off, ept = jagged_parts(el["pt"], np.float32)
    sel = ept > c.lepton_pt
    if c.lepton_eta != INF:
        sel &= np.abs(flat(el["eta"], np.float32)) < c.lepton_eta
    if c.electron_cut_based is not None:
        _require(el, ("cutBased",), "NanoAOD Electron")
        sel &= flat(el["cutBased"], np.int32) == c.electron_cut_based
    if c.lepton_sip3d != INF:
        _require(el, ("sip3d",), "NanoAOD Electron")
        sel &= flat(el["sip3d"], np.float32) < c.lepton_sip3d
    n_lep = count_per_event(sel, off)

    off, mpt = jagged_parts(mu["pt"], np.float32)
    sel = mpt > c.lepton_pt
    if c.lepton_eta != INF:
        sel &= np.abs(flat(mu["eta"], np.float32)) < c.lepton_eta
    if c.muon_tight_id:
        _require(mu, ("tightId",), "NanoAOD Muon")
        sel &= flat(mu["tightId"], bool)
    if c.lepton_sip3d != INF:
        _require(mu, ("sip3d",), "NanoAOD Muon")
        sel &= flat(mu["sip3d"], np.float32) < c.lepton_sip3d
    if c.muon_iso != INF:
        _require(mu, ("pfRelIso04_all",), "NanoAOD Muon")
        sel &= flat(mu["pfRelIso04_all"], np.float32) < c.muon_iso
    n_lep += count_per_event(sel, off)

    _require(jets, ("btagCSVV2",), "NanoAOD Jet")
    offsets, pt = jagged_parts(jets["pt"])
    eta, phi, mass = flat(jets["eta"]), flat(jets["phi"]), flat(jets["mass"])
    ok = np.abs(eta) < c.jet_eta if c.jet_eta != INF else np.ones(pt.shape[0], bool)
    if c.jet_id_bit is not None:
        _require(jets, ("jetId",), "NanoAOD Jet")
        ok &= (flat(jets["jetId"], np.int32) & (1 << c.jet_id_bit)) != 0
    p = pt * np.cosh(eta)
    energy = np.sqrt(p * p + mass * mass)
    fields = events.fields
    if "event" in fields and "run" in fields and "luminosityBlock" in fields:
        ids = run_lumi_event_identity(ak.to_numpy(events.run), ak.to_numpy(events.luminosityBlock),
                                      ak.to_numpy(events.event))
    else:
        ids = event_identity(ak.to_numpy(events.event) if "event" in fields else None,
                             events.metadata.get("filename", ""), int(events.metadata.get("entrystart", 0)), n)
    return ObjectView(n, offsets, pt, eta, phi, energy, flat(jets["btagCSVV2"]), ok, n_lep, ids)


VIEWS: dict[str, Callable[[ak.Array, Cuts], ObjectView]] = {"ntuple": ntuple_view, "nanoaod": nanoaod_view}


def view_branches(input_format: str, c: Cuts) -> list[str]:
    """The input branches the adapter for ``input_format`` reads under cuts ``c`` (sorted).

    Counters, jet kinematics and b-tag, lepton pT and the columns the configured cuts need, and the
    event identity (``event``; NanoAOD also ``run`` and ``luminosityBlock``). Branches absent from a
    file are simply not read (the identity then falls back to file and entry, see
    ``processors.systematics.event_identity``).
    """
    if input_format == "ntuple":
        out = {"numberjet", "numberelectron", "numbermuon", "jet_pt", "jet_eta", "jet_phi", "jet_e", "jet_btag",
               "electron_pt", "muon_pt", "event"}
        if c.lepton_eta != INF:
            out |= {"electron_eta", "muon_eta"}
        return sorted(out)
    if input_format == "nanoaod":
        out = {"nJet", "nElectron", "nMuon", "Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass", "Jet_btagCSVV2",
               "Electron_pt", "Muon_pt", "event", "run", "luminosityBlock"}
        optional = ((c.lepton_eta != INF, ("Electron_eta", "Muon_eta")),
                    (c.electron_cut_based is not None, ("Electron_cutBased",)),
                    (c.lepton_sip3d != INF, ("Electron_sip3d", "Muon_sip3d")),
                    (c.muon_tight_id, ("Muon_tightId",)), (c.muon_iso != INF, ("Muon_pfRelIso04_all",)),
                    (c.jet_id_bit is not None, ("Jet_jetId",)))
        for on, names in optional:
            if on:
                out |= set(names)
        return sorted(out)
    raise ProcessorError(f"unknown input format {input_format!r} (choose from {', '.join(VIEWS)})")


def object_view(events: ak.Array, input_format: str, c: Cuts) -> ObjectView:
    """Dispatch to the adapter for ``input_format``."""
    try:
        adapter = VIEWS[input_format]
    except KeyError:
        raise ProcessorError(f"unknown input format {input_format!r} (choose from {', '.join(VIEWS)})") from None
    return adapter(events, c)
