"""Synthetic AGC inputs in CMS NanoAOD format (tree ``Events``, ``nJet``/``Jet_pt``/... branches).

The physics comes from :func:`fileset.generate.agc.generate_arrays` (the same events the ntuple
generator writes); this module renames the columns to NanoAOD conventions and adds the object-ID
columns of the AGC v2 selection (``Electron_cutBased``/``sip3d``, ``Muon_tightId``/``sip3d``/
``pfRelIso04_all``, ``Jet_jetId``), drawn from a separate seeded stream with plausible efficiencies.
Branch types follow NanoAOD (float32 kinematics, int32 IDs, bool ``tightId``, uint32 run/lumi,
uint64 event); the ``n<Collection>`` counters are Int_t because uproot's writer fixes the counter
type (real NanoAOD uses UInt_t; both read identically).
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

from fileset.generate.agc import SAMPLES, basket_compression, extend_in_baskets, generate_arrays

ELECTRON_MASS_GEV = 0.000511
MUON_MASS_GEV = 0.10566
JET_ID_VALUES = np.array([6, 2, 0], dtype=np.int32)  # tight+tightLepVeto, tight only, none
JET_ID_PROB = np.array([0.965, 0.025, 0.010])


def _rng(seed: int, process: str, variation: str, index: int) -> np.random.Generator:
    """Stream for the NanoAOD-only columns, independent of the physics stream of ``generate_arrays``."""
    ss = np.random.SeedSequence([seed, zlib.crc32(process.encode()), zlib.crc32(variation.encode()), index,
                                 zlib.crc32(b"nanoaod-ids")])
    return np.random.Generator(np.random.PCG64(ss))


def _like(counts: np.ndarray, flat: np.ndarray) -> ak.Array:
    """Jagged array with the given per-event counts."""
    return ak.unflatten(flat, counts)


def _lepton_ids(pt: np.ndarray, rng: np.random.Generator, muon: bool) -> dict[str, np.ndarray]:
    """ID/IP/isolation columns: soft leptons (mostly non-prompt fakes) pass less often."""
    hard = pt > 20.0
    sip3d = np.where(hard, rng.exponential(1.3, pt.shape), rng.exponential(4.0, pt.shape)).astype(np.float32)
    if muon:
        iso = np.where(hard, rng.exponential(0.04, pt.shape), rng.exponential(0.3, pt.shape)).astype(np.float32)
        tight = rng.random(pt.shape) < np.where(hard, 0.93, 0.6)
        return {"sip3d": sip3d, "pfRelIso04_all": iso, "tightId": tight}
    p_tight = np.where(hard, 0.80, 0.35)
    cut_based = np.where(rng.random(pt.shape) < p_tight, 4, rng.integers(0, 4, pt.shape)).astype(np.int32)
    iso = np.where(hard, rng.exponential(0.04, pt.shape), rng.exponential(0.3, pt.shape)).astype(np.float32)
    return {"sip3d": sip3d, "pfRelIso03_all": iso, "cutBased": cut_based}


def nanoaod_columns(cols: dict, rng: np.random.Generator, lumi_block: int) -> dict[str, ak.Array | np.ndarray]:
    """Map ``generate_arrays`` output to NanoAOD collections (records) and event-level branches."""
    f32 = lambda a: np.asarray(a, dtype=np.float32)  # noqa: E731
    jet = cols["jet"]
    jcounts = ak.to_numpy(ak.num(jet["pt"])).astype(np.int64)
    jflat = {k: ak.to_numpy(ak.flatten(v)) for k, v in jet.items()}
    n_jets = jcounts.sum()
    jet_rec = {
        "pt": f32(jflat["pt"]), "eta": f32(jflat["eta"]), "phi": f32(jflat["phi"]), "mass": f32(jflat["mass"]),
        "btagCSVV2": f32(jflat["btag"]), "jetId": rng.choice(JET_ID_VALUES, size=n_jets, p=JET_ID_PROB),
        "hadronFlavour": jflat["hadronFlavour"].astype(np.int32),
    }
    out: dict[str, ak.Array | np.ndarray] = {"Jet": ak.zip({k: _like(jcounts, v) for k, v in jet_rec.items()})}
    for src, name, mass, pdg in (("electron", "Electron", ELECTRON_MASS_GEV, 11), ("muon", "Muon", MUON_MASS_GEV, 13)):
        lep = cols[src]
        counts = ak.to_numpy(ak.num(lep["pt"])).astype(np.int64)
        pt = ak.to_numpy(ak.flatten(lep["pt"]))
        charge = rng.choice(np.array([-1, 1], dtype=np.int32), size=pt.shape[0])
        rec = {"pt": f32(pt), "eta": f32(ak.to_numpy(ak.flatten(lep["eta"]))),
               "phi": f32(ak.to_numpy(ak.flatten(lep["phi"]))), "mass": np.full(pt.shape[0], mass, np.float32),
               "charge": charge, "pdgId": (-pdg * charge).astype(np.int32)}
        rec.update(_lepton_ids(pt, rng, muon=src == "muon"))
        out[name] = ak.zip({k: _like(counts, v) for k, v in rec.items()})
    n = len(cols["event"])
    out["MET_pt"] = f32(cols["met_pt"])
    out["MET_phi"] = f32(cols["met_phi"])
    out["genWeight"] = np.ones(n, np.float32)
    out["run"] = np.ones(n, np.uint32)
    out["luminosityBlock"] = np.full(n, lumi_block, np.uint32)
    out["event"] = np.asarray(cols["event"], dtype=np.uint64)
    return out


def flat_nanoaod_fields(data: dict[str, ak.Array | np.ndarray]) -> dict[str, ak.Array | np.ndarray]:
    """NanoAOD's flat naming: each collection ``Jet`` becomes ``nJet`` (counts) and ``Jet_pt``, ``Jet_eta``, …"""
    out: dict[str, ak.Array | np.ndarray] = {}
    for name, values in data.items():
        if isinstance(values, ak.Array) and values.fields:
            out[f"n{name}"] = ak.num(values, axis=1).to_numpy().astype(np.uint32)
            for field in values.fields:
                out[f"{name}_{field}"] = values[field]
        else:
            out[name] = values
    return out


def _counter_name(collection: str) -> str:
    """NanoAOD's counter branch of a jagged collection (``nJet`` for ``Jet``)."""
    return "n" + collection


def write_nanoaod_file(path: Path, data: dict[str, ak.Array | np.ndarray], container: str = "ttree") -> int:
    """Write NanoAOD-named columns as ``Events`` (a TTree, or an RNTuple like CMS NanoAOD from ROOT 6.34+);
    return the number of events. The RNTuple holds the same flat fields (``nJet``, ``Jet_pt``, …) as the TTree."""
    if container == "rntuple":
        with uproot.recreate(path, compression=basket_compression()) as fout:
            fout.mkrntuple("Events", ak.Array(flat_nanoaod_fields(data)))
        return len(data["event"])
    if container != "ttree":
        raise ValueError(f"unknown container {container!r} (ttree or rntuple)")
    with uproot.recreate(path, compression=basket_compression()) as fout:
        tree = fout.mktree(
            "Events",
            {k: v.type if isinstance(v, ak.Array) else v.dtype for k, v in data.items()},
            counter_name=_counter_name,
            field_name=lambda outer, inner: f"{outer}_{inner}",
        )
        extend_in_baskets(tree, data, counter_name=_counter_name)
    return len(data["event"])


def generate_nanoaod(out: str | Path, events_per_file: int = 20_000, files_per_sample: int = 2, seed: int = 1,
                     ttbar_scale: float = 1.0, samples: list[tuple[str, str]] | None = None,
                     container: str = "ttree") -> Path:
    """Write synthetic NanoAOD files for all nine AGC sample sets and ``out/nanoaod_inputs.json``.

    ``container``: ``"ttree"`` (default) or ``"rntuple"`` (same events and fields, stored as an RNTuple).
    """
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    index: dict[str, dict[str, dict]] = {}
    for process, variation in samples or SAMPLES:
        files = []
        for i in range(files_per_sample):
            name = f"{process}__{variation}__nanoaod_{i:03d}.root"
            cols = generate_arrays(process, variation, events_per_file, seed, i)
            data = nanoaod_columns(cols, _rng(seed, process, variation, i), lumi_block=i + 1)
            files.append({"path": name, "nevts": write_nanoaod_file(out_dir / name, data, container)})
        entry = {"nevts_total": sum(f["nevts"] for f in files), "files": files, "format": "nanoaod"}
        if process == "ttbar" and variation in ("ME_var", "PS_var") and ttbar_scale != 1.0:
            entry["pseudodata_scale"] = ttbar_scale
        index.setdefault(process, {})[variation] = entry
    path = out_dir / "nanoaod_inputs.json"
    path.write_text(json.dumps(index, indent=2) + "\n")
    return path
