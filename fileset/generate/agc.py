"""Synthetic CMS-open-data-style AGC ntuples (tree ``events``), written as real ROOT files with uproot.

Physics model (vectorised, all GeV): top quarks decay t→bW, W→qq'/ℓν with isotropic two-body decays;
partons become jets with a Gaussian energy resolution and a b-tag score drawn by flavour; leptons have
an efficiency and a small resolution; soft fake leptons test the pT threshold; MET is the neutrino sum
plus resolution. W+jets has a falling jet spectrum with mostly light jets. Variation samples change the
radiation, top-pT spectrum, jet response and resolution by plausible, visible amounts.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

from fileset.generate.kinematics import P4, from_ptetaphim, two_body_decay

M_TOP, W_TOP = 172.5, 1.4
M_W, W_W = 80.4, 2.1
M_B = 4.8
B_TAG_PROB = {5: 0.70, 4: 0.15, 0: 0.02}  # probability of a score above 0.5 per hadron flavour

# W decay modes: hadronic, electron, muon, hadronic tau (visible part is a jet)
W_MODES = np.array([0, 1, 2, 3])
W_MODE_PROB = np.array([0.676, 0.135, 0.135, 0.054])


@dataclass(frozen=True)
class Tune:
    """Generator settings that variation samples change."""

    isr_mean: float = 1.6  # mean number of extra radiation jets
    isr_scale_gev: float = 32.0  # exponential slope of extra-jet pT above 20 GeV
    top_pt_scale_gev: float = 55.0  # gamma(2, scale) top pT spectrum
    jet_resolution: float = 0.10  # relative jet energy resolution
    jet_response: float = 1.0  # mean jet response
    fake_lepton_mean: float = 0.15  # soft non-prompt leptons per event


NOMINAL = Tune()
TTBAR_VARIATIONS: dict[str, Tune] = {
    "nominal": NOMINAL,
    "scaleup": replace(NOMINAL, isr_mean=1.95, top_pt_scale_gev=52.0),
    "scaledown": replace(NOMINAL, isr_mean=1.3, top_pt_scale_gev=58.0),
    "ME_var": replace(NOMINAL, top_pt_scale_gev=61.0, isr_mean=1.5),
    "PS_var": replace(NOMINAL, jet_resolution=0.13, jet_response=0.975, isr_mean=1.8),
}

# (process, variation) pairs of the AGC sample sets
SAMPLES: list[tuple[str, str]] = [("ttbar", v) for v in TTBAR_VARIATIONS] + [
    ("single_top_s_chan", "nominal"),
    ("single_top_t_chan", "nominal"),
    ("single_top_tW", "nominal"),
    ("wjets", "nominal"),
]


@dataclass
class Partons:
    """Per-event parton-level objects collected as (N, K) slot arrays."""

    n: int
    jets: list[tuple[P4, np.ndarray, np.ndarray]] = field(default_factory=list)  # (p4, flavour, valid)
    leptons: list[tuple[P4, np.ndarray, np.ndarray]] = field(default_factory=list)  # (p4, pdgid, valid)
    neutrinos: list[tuple[P4, np.ndarray]] = field(default_factory=list)  # (p4, valid)


def _top(n: int, tune: Tune, rng: np.random.Generator) -> P4:
    """Top quarks with a gamma-shaped pT spectrum and Gaussian-smeared mass."""
    pt = rng.gamma(2.0, tune.top_pt_scale_gev, n)
    eta = rng.normal(0.0, 1.3, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    mass = rng.normal(M_TOP, W_TOP, n)
    return from_ptetaphim(pt, eta, phi, mass)


def _add_w_decay(ev: Partons, w: P4, rng: np.random.Generator, leptonic_only: bool = False) -> None:
    """Decay W bosons into quark pairs or lepton+neutrino, choosing the mode per event."""
    d1, d2 = two_body_decay(w, 0.0, 0.0, rng)
    prob = np.array([0.0, 0.37, 0.37, 0.26]) if leptonic_only else W_MODE_PROB
    mode = rng.choice(W_MODES, size=ev.n, p=prob)
    had, tau = mode == 0, mode == 3
    charm = rng.random(ev.n) < 0.5
    ev.jets.append((d1, np.where(had & charm, 4, 0), had))
    ev.jets.append((d2, np.zeros(ev.n, dtype=int), had))
    ev.jets.append((d1.scaled(np.full(ev.n, 0.6)), np.zeros(ev.n, dtype=int), tau))
    lep = (mode == 1) | (mode == 2)
    ev.leptons.append((d1, np.where(mode == 1, 11, 13), lep))
    ev.neutrinos.append((d2, lep | tau))


def _add_top(ev: Partons, top: P4, rng: np.random.Generator) -> None:
    """Decay top quarks t→bW and add the decay products."""
    m_w = rng.normal(M_W, W_W, ev.n)
    b, w = two_body_decay(top, M_B, m_w, rng)
    ev.jets.append((b, np.full(ev.n, 5), np.ones(ev.n, dtype=bool)))
    _add_w_decay(ev, w, rng)


def _add_radiation(ev: Partons, mean: float, scale: float, rng: np.random.Generator, max_jets: int = 6) -> None:
    """Extra QCD jets: Poisson multiplicity, falling pT, mostly light flavour."""
    count = rng.poisson(mean, ev.n)
    for k in range(max_jets):
        pt = 20.0 + rng.exponential(scale, ev.n)
        p4 = from_ptetaphim(pt, rng.normal(0.0, 1.6, ev.n), rng.uniform(-np.pi, np.pi, ev.n), np.zeros(ev.n))
        flav = rng.choice([0, 4, 5], size=ev.n, p=[0.90, 0.07, 0.03])
        ev.jets.append((p4, flav, count > k))


def _ttbar(n: int, tune: Tune, rng: np.random.Generator) -> Partons:
    ev = Partons(n)
    _add_top(ev, _top(n, tune, rng), rng)
    _add_top(ev, _top(n, tune, rng), rng)
    _add_radiation(ev, tune.isr_mean, tune.isr_scale_gev, rng)
    return ev


def _single_top(n: int, tune: Tune, rng: np.random.Generator, channel: str) -> Partons:
    ev = Partons(n)
    _add_top(ev, _top(n, replace(tune, top_pt_scale_gev=45.0), rng), rng)
    ones = np.ones(n, dtype=bool)
    if channel == "s_chan":
        pt = 30.0 + rng.exponential(40.0, n)
        b = from_ptetaphim(pt, rng.normal(0, 1.3, n), rng.uniform(-np.pi, np.pi, n), np.full(n, M_B))
        ev.jets.append((b, np.full(n, 5), ones))
    elif channel == "t_chan":
        pt = 25.0 + rng.exponential(35.0, n)
        eta = rng.choice([-1.0, 1.0], n) * np.abs(rng.normal(2.0, 0.9, n))
        ev.jets.append((from_ptetaphim(pt, eta, rng.uniform(-np.pi, np.pi, n), np.zeros(n)), np.zeros(n, dtype=int), ones))
        pt_b = 20.0 + rng.exponential(12.0, n)
        b = from_ptetaphim(pt_b, rng.normal(0, 1.8, n), rng.uniform(-np.pi, np.pi, n), np.full(n, M_B))
        ev.jets.append((b, np.full(n, 5), rng.random(n) < 0.5))
    else:  # tW
        w = from_ptetaphim(rng.gamma(2.0, 40.0, n), rng.normal(0, 1.3, n), rng.uniform(-np.pi, np.pi, n),
                           rng.normal(M_W, W_W, n))
        _add_w_decay(ev, w, rng)
    _add_radiation(ev, 1.2, tune.isr_scale_gev, rng)
    return ev


def _wjets(n: int, tune: Tune, rng: np.random.Generator) -> Partons:
    ev = Partons(n)
    w = from_ptetaphim(rng.exponential(45.0, n), rng.normal(0, 2.0, n), rng.uniform(-np.pi, np.pi, n),
                       rng.normal(M_W, W_W, n))
    _add_w_decay(ev, w, rng, leptonic_only=True)
    count = np.minimum(rng.geometric(0.5, n) - 1, 8)
    for k in range(8):
        pt = 20.0 + rng.exponential(25.0, n)
        p4 = from_ptetaphim(pt, rng.normal(0, 1.6, n), rng.uniform(-np.pi, np.pi, n), np.zeros(n))
        flav = rng.choice([0, 4, 5], size=n, p=[0.92, 0.06, 0.02])
        ev.jets.append((p4, flav, count > k))
    return ev


def _partons(process: str, tune: Tune, n: int, rng: np.random.Generator) -> Partons:
    """Dispatch to the process model."""
    if process == "ttbar":
        return _ttbar(n, tune, rng)
    if process.startswith("single_top_"):
        return _single_top(n, tune, rng, process[len("single_top_"):])
    if process == "wjets":
        return _wjets(n, tune, rng)
    raise ValueError(f"unknown process {process!r}")


def _stack(objs: list[tuple[P4, np.ndarray, np.ndarray]]) -> tuple[P4, np.ndarray, np.ndarray]:
    """Stack slot lists into (N, K) arrays."""
    p4 = P4(*(np.stack([getattr(o[0], c) for o in objs], axis=1) for c in ("px", "py", "pz", "e")))
    return p4, np.stack([o[1] for o in objs], axis=1), np.stack([o[2] for o in objs], axis=1)


def _jagged(mask: np.ndarray, order_key: np.ndarray, columns: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, ak.Array]]:
    """Keep masked slots, sort each event by descending ``order_key``, return counts and jagged columns."""
    key = np.where(mask, order_key, -np.inf)
    order = np.argsort(-key, axis=1, kind="stable")
    kept = np.take_along_axis(mask, order, axis=1)
    counts = kept.sum(axis=1)
    out = {}
    for name, col in columns.items():
        flat = np.take_along_axis(col, order, axis=1)[kept]
        out[name] = ak.unflatten(flat, counts)
    return counts, out


def _btag(flavour: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Discriminator in [0, 1]: tagged jets above 0.5 with a flavour-dependent probability."""
    prob = np.select([flavour == 5, flavour == 4], [B_TAG_PROB[5], B_TAG_PROB[4]], B_TAG_PROB[0])
    tagged = rng.random(flavour.shape) < prob
    high = 0.5 + 0.5 * rng.beta(2.0, 1.0, flavour.shape)
    low = 0.5 * rng.beta(1.0, 2.0, flavour.shape)
    return np.where(tagged, high, low)


def reconstruct(ev: Partons, tune: Tune, rng: np.random.Generator) -> dict[str, ak.Array | np.ndarray]:
    """Detector-level objects (AGC ntuple columns) from partons."""
    n = ev.n
    jp4, flav, valid = _stack(ev.jets)
    smear = rng.normal(tune.jet_response, tune.jet_resolution, flav.shape)
    pt = jp4.pt * np.clip(smear, 0.3, None)
    eta, phi = jp4.eta, jp4.phi
    mass = pt * rng.uniform(0.04, 0.14, flav.shape)
    energy = np.sqrt((pt * np.cosh(eta)) ** 2 + mass**2)
    jmask = valid & (pt > 20.0) & (np.abs(eta) < 2.5)
    btag = _btag(flav, rng)
    njet, jets = _jagged(jmask, pt, {"pt": pt, "eta": eta, "phi": phi, "e": energy, "mass": mass,
                                     "btag": btag, "hadronFlavour": flav})

    lp4, pdg, lvalid = _stack(ev.leptons)
    n_fake = rng.poisson(tune.fake_lepton_mean, n)
    fake_pt = 5.0 + rng.exponential(7.0, (n, 2))
    fake = from_ptetaphim(fake_pt, rng.normal(0, 1.4, (n, 2)), rng.uniform(-np.pi, np.pi, (n, 2)), np.zeros((n, 2)))
    fake_pdg = rng.choice([11, 13], size=(n, 2))
    fake_valid = np.arange(2)[None, :] < n_fake[:, None]
    lpt = np.concatenate([lp4.pt * rng.normal(1.0, 0.02, pdg.shape), fake.pt], axis=1)
    leta = np.concatenate([lp4.eta, fake.eta], axis=1)
    lphi = np.concatenate([lp4.phi, fake.phi], axis=1)
    lpdg = np.concatenate([pdg, fake_pdg], axis=1)
    eff = np.concatenate([rng.random(pdg.shape) < 0.9, np.ones((n, 2), dtype=bool)], axis=1)
    lval = np.concatenate([lvalid, fake_valid], axis=1) & eff & (np.abs(leta) < 2.4) & (lpt > 5.0)
    lep_e = lpt * np.cosh(leta)
    out: dict[str, ak.Array | np.ndarray] = {}
    for name, pid in (("electron", 11), ("muon", 13)):
        _, cols = _jagged(lval & (lpdg == pid), lpt, {"pt": lpt, "eta": leta, "phi": lphi, "e": lep_e})
        out[name] = cols

    nu, nu_valid = _stack([(p, np.zeros(n), v) for p, v in ev.neutrinos])[0], np.stack([v for _, v in ev.neutrinos], 1)
    met_x = (nu.px * nu_valid).sum(axis=1) + rng.normal(0.0, 12.0, n)
    met_y = (nu.py * nu_valid).sum(axis=1) + rng.normal(0.0, 12.0, n)
    out["jet"] = jets
    out["met_pt"] = np.hypot(met_x, met_y)
    out["met_phi"] = np.arctan2(met_y, met_x)
    out["njet_counts"] = njet
    return out


def _seed(seed: int, process: str, variation: str, index: int) -> np.random.SeedSequence:
    """Independent, reproducible stream per (seed, sample, file)."""
    return np.random.SeedSequence([seed, zlib.crc32(process.encode()), zlib.crc32(variation.encode()), index])


def generate_arrays(process: str, variation: str, n: int, seed: int, index: int = 0) -> dict[str, ak.Array | np.ndarray]:
    """Generate one file's worth of events as AGC-ntuple columns (no I/O)."""
    rng = np.random.Generator(np.random.PCG64(_seed(seed, process, variation, index)))
    tune = TTBAR_VARIATIONS.get(variation, NOMINAL) if process == "ttbar" else NOMINAL
    cols = reconstruct(_partons(process, tune, n, rng), tune, rng)
    cols["event"] = np.arange(index * n, (index + 1) * n, dtype=np.uint64) + np.uint64(1)
    return cols


def write_file(path: Path, cols: dict[str, ak.Array | np.ndarray]) -> int:
    """Write columns to ``path`` as tree ``events`` with AGC branch names; return the event count."""
    f32 = lambda a: ak.values_astype(a, np.float32)  # noqa: E731
    data = {
        "jet": ak.zip({k: (f32(v) if k != "hadronFlavour" else ak.values_astype(v, np.int32)) for k, v in cols["jet"].items()}),
        "electron": ak.zip({k: f32(v) for k, v in cols["electron"].items()}),
        "muon": ak.zip({k: f32(v) for k, v in cols["muon"].items()}),
        "met_pt": cols["met_pt"].astype(np.float32),
        "met_phi": cols["met_phi"].astype(np.float32),
        "event": cols["event"],
    }
    with uproot.recreate(path) as fout:
        tree = fout.mktree(
            "events",
            {k: v.type if isinstance(v, ak.Array) else v.dtype for k, v in data.items()},
            counter_name=lambda counted: "number" + counted,
            field_name=lambda outer, inner: f"{outer}_{inner}",
        )
        tree.extend(data)
    return len(cols["event"])


def generate_agc(out: str | Path, events_per_file: int = 20_000, files_per_sample: int = 2, seed: int = 1,
                 ttbar_scale: float = 1.0, samples: list[tuple[str, str]] | None = None) -> Path:
    """Write synthetic AGC ntuples for all nine sample sets and ``out/ntuples.json``; return the json path."""
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    index: dict[str, dict[str, dict]] = {}
    for process, variation in samples or SAMPLES:
        files = []
        for i in range(files_per_sample):
            name = f"{process}__{variation}__{i:03d}.root"
            nevts = write_file(out_dir / name, generate_arrays(process, variation, events_per_file, seed, i))
            files.append({"path": name, "nevts": nevts})
        entry = {"files": files, "nevts_total": sum(f["nevts"] for f in files)}
        if process == "ttbar" and variation in ("ME_var", "PS_var") and ttbar_scale != 1.0:
            entry["pseudodata_scale"] = ttbar_scale
        index.setdefault(process, {})[variation] = entry
    path = out_dir / "ntuples.json"
    path.write_text(json.dumps(index, indent=2) + "\n")
    return path
