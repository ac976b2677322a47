"""Synthetic CMS-open-data-style AGC ntuples (tree ``events``), written as real ROOT files with uproot.

Physics model (vectorised, all GeV): top quarks decay t→bW, W→qq'/ℓν with isotropic two-body decays;
partons become jets with a Gaussian energy resolution and a b-tag score drawn by flavour; leptons have
an efficiency and a small resolution; soft fake leptons test the pT threshold; MET is the neutrino sum
plus resolution. W+jets has a falling jet spectrum with mostly light jets. Variation samples change the
radiation, top-pT spectrum, jet response and resolution by plausible, visible amounts.

Heavy flavour (ttbar only): extra radiation may split g→bb̄ / g→cc̄ (the first two radiation partons
share the flavour, drawn from a separate random stream so that kinematics are those of the plain
model). Each event carries the truth label ``hf_class`` counting extra (not from t/W decay) b/c partons
with |η| < 2.5: 3 = tt+≥2b, 2 = tt+1b/B, 1 = tt+≥1c, 0 = tt+light, −1 for non-ttbar samples and data.
Inclusive fractions (nominal): about 1.7 % tt+≥2b, 4.2 % tt+1b, 10.7 % tt+≥1c, 83 % tt+light.

``generate_agc(..., inject_ht=EXPR)`` also writes a ``data`` sample: the nominal MC events resampled
at their expected yields (xsec × lumi) with Poisson multiplicities, the tt+≥1b events weighted by
f_true(HT, nJets) = EXPR, where HT = Σ pT of jets and leptons above 25 GeV and nJets counts jets
above 25 GeV (as stored, float32). Only events passing a loose skim (≥ 1 lepton and ≥ 3 jets above
25 GeV with ≥ 1 b-tag) are kept, so data files stay small.

Files: every branch has baskets of ``BASKET_ENTRIES`` (50k) entries, which divides the usual chunk sizes,
so that chunks fall on basket boundaries; baskets are ZLIB-compressed with ISA-L when installed. The
random streams are fixed per (seed, sample, file): the same arguments give the same events.
"""

from __future__ import annotations

import importlib.util
import json
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

from fileset.errors import FilesetError
from fileset.expr import Expression, parse
from fileset.generate.kinematics import P4, from_ptetaphim, two_body_decay

M_TOP, W_TOP = 172.5, 1.4
M_W, W_W = 80.4, 2.1
M_B = 4.8
B_TAG_PROB = {5: 0.70, 4: 0.15, 0: 0.02}  # probability of a score above 0.5 per hadron flavour

# W decay modes: hadronic, electron, muon, hadronic tau (visible part is a jet)
W_MODES = np.array([0, 1, 2, 3])
W_MODE_PROB = np.array([0.676, 0.135, 0.135, 0.054])

# ttbar heavy-flavour truth classes (hf_class branch) and the g→QQ̄ splitting of extra radiation
HF_CLASSES = {3: "ttbb", 2: "ttb", 1: "ttc", 0: "ttlight", -1: "none"}
P_G_TO_BB, P_G_TO_CC = 0.045, 0.05  # per ttbar event with at least two extra partons
HF_ETA_MAX = 2.5  # truth acceptance of extra heavy-flavour partons

# pseudo-data (inject_ht): HT_all/nJets definition and loose skim
DATA_OBJECT_PT_GEV = 25.0
DATA_SKIM = ">= 1 lepton and >= 3 jets with pT > 25 GeV, >= 1 b-tag (score > 0.5)"


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
    extra: list[int] = field(default_factory=list)  # indices in ``jets`` of radiation partons


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
        ev.extra.append(len(ev.jets))
        ev.jets.append((p4, flav, count > k))


def _ttbar(n: int, tune: Tune, rng: np.random.Generator) -> Partons:
    ev = Partons(n)
    _add_top(ev, _top(n, tune, rng), rng)
    _add_top(ev, _top(n, tune, rng), rng)
    _add_radiation(ev, tune.isr_mean, tune.isr_scale_gev, rng)
    return ev


def _split_heavy_flavour(ev: Partons, rng: np.random.Generator) -> None:
    """g→bb̄/cc̄: the first two extra partons of some events become a heavy-flavour pair."""
    if len(ev.extra) < 2:
        return
    i, j = ev.extra[0], ev.extra[1]
    both = ev.jets[i][2] & ev.jets[j][2]
    u = rng.random(ev.n)
    flav = np.where(both & (u < P_G_TO_BB), 5, np.where(both & (u >= P_G_TO_BB) & (u < P_G_TO_BB + P_G_TO_CC), 4, 0))
    for slot in (i, j):
        p4, f, valid = ev.jets[slot]
        ev.jets[slot] = (p4, np.where(flav > 0, flav, f), valid)


def hf_class(ev: Partons) -> np.ndarray:
    """Truth label from extra (radiation) partons in acceptance: 3 ≥2b, 2 one b, 1 ≥1c, 0 light."""
    nb, nc = np.zeros(ev.n, dtype=np.int32), np.zeros(ev.n, dtype=np.int32)
    for slot in ev.extra:
        p4, flav, valid = ev.jets[slot]
        inside = valid & (np.abs(p4.eta) < HF_ETA_MAX)
        nb += inside & (flav == 5)
        nc += inside & (flav == 4)
    return np.select([nb >= 2, nb == 1, nc >= 1], [3, 2, 1], 0).astype(np.int32)


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
    """Keep masked slots, sort each event by descending ``order_key``, return counts and jagged columns.

    One stable per-event argsort, turned into one flat gather index shared by all columns.
    """
    n, k = mask.shape
    key = np.where(mask, order_key, -np.inf)
    order = np.argsort(-key, axis=1, kind="stable")
    order += (np.arange(n, dtype=order.dtype) * k)[:, None]
    flat_order = order.ravel()
    take = flat_order[mask.ravel()[flat_order]]
    counts = mask.sum(axis=1)
    return counts, {name: ak.unflatten(col.ravel()[take], counts) for name, col in columns.items()}


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
    parton_pt = jp4.pt
    pt = parton_pt * np.clip(smear, 0.3, None)
    eta, phi = np.arcsinh(jp4.pz / np.maximum(parton_pt, 1e-9)), jp4.phi  # = jp4.eta, pT computed once
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
    seq = _seed(seed, process, variation, index)
    rng = np.random.Generator(np.random.PCG64(seq))
    tune = TTBAR_VARIATIONS.get(variation, NOMINAL) if process == "ttbar" else NOMINAL
    ev = _partons(process, tune, n, rng)
    if process == "ttbar":  # separate stream: the main one (all kinematics) is untouched
        _split_heavy_flavour(ev, np.random.Generator(np.random.PCG64(seq.spawn(1)[0])))
        label = hf_class(ev)
    else:
        label = np.full(n, -1, dtype=np.int32)
    cols = reconstruct(ev, tune, rng)
    cols["event"] = np.arange(index * n, (index + 1) * n, dtype=np.uint64) + np.uint64(1)
    cols["hf_class"] = label
    return cols


def write_file(path: Path, cols: dict[str, ak.Array | np.ndarray], basket_entries: int | None = None) -> int:
    """Write columns to ``path`` as tree ``events`` with AGC branch names; return the event count.

    Every branch has baskets of ``basket_entries`` entries (default :data:`BASKET_ENTRIES`; the last
    basket holds the rest), compressed with :func:`basket_compression`.
    """
    f32 = lambda a: ak.values_astype(a, np.float32)  # noqa: E731
    data = {
        "jet": ak.zip({k: (f32(v) if k != "hadronFlavour" else ak.values_astype(v, np.int32)) for k, v in cols["jet"].items()}),
        "electron": ak.zip({k: f32(v) for k, v in cols["electron"].items()}),
        "muon": ak.zip({k: f32(v) for k, v in cols["muon"].items()}),
        "met_pt": cols["met_pt"].astype(np.float32),
        "met_phi": cols["met_phi"].astype(np.float32),
        "event": cols["event"],
    }
    if "hf_class" in cols:
        data["hf_class"] = np.asarray(cols["hf_class"], dtype=np.int32)
    with uproot.recreate(path, compression=basket_compression()) as fout:
        tree = fout.mktree(
            "events",
            {k: v.type if isinstance(v, ak.Array) else v.dtype for k, v in data.items()},
            counter_name=lambda counted: "number" + counted,
            field_name=lambda outer, inner: f"{outer}_{inner}",
        )
        extend_in_baskets(tree, data, basket_entries)
    return len(cols["event"])


# Entries per basket of the generated files: divides the default chunk size (100k) and the usual
# smaller ones (50k), so that chunk boundaries fall on basket boundaries and no basket is inflated twice.
BASKET_ENTRIES = 50_000


def basket_compression() -> uproot.compression.Compression:
    """ZLIB for the generated baskets: ISA-L's level 1 (``isal``, when installed), else zlib level 1.

    Both are standard ZLIB streams that every ROOT reader inflates; ISA-L compresses these float
    columns ~15× faster than zlib with a similar ratio, and its output inflates faster.
    """
    if importlib.util.find_spec("isal") is None:
        return uproot.ZLIB(1)
    compression = uproot.ZLIB(3)  # uproot maps ZLIB level 3 to ISA-L level 1
    compression.library = "isal"  # this instance only (the class default stays pinned, see schemas.reading)
    return compression


def extend_in_baskets(tree, data: dict, basket_entries: int | None = None) -> None:
    """Fill an uproot ``WritableTree`` with ``data`` in baskets of ``basket_entries`` (one extend call each)."""
    step = basket_entries or BASKET_ENTRIES
    n = len(next(iter(data.values())))
    if n == 0:
        tree.extend(data)
        return
    for start in range(0, n, step):
        tree.extend({k: v[start:start + step] for k, v in data.items()})


def generate_agc(out: str | Path, events_per_file: int = 20_000, files_per_sample: int = 2, seed: int = 1,
                 ttbar_scale: float = 1.0, samples: list[tuple[str, str]] | None = None,
                 inject_ht: str | None = None, samples_config: str | Path | dict | None = None) -> Path:
    """Write synthetic AGC ntuples for all nine sample sets and ``out/ntuples.json``; return the json path.

    With ``inject_ht`` (an expression in ``HT`` and ``nJets``), also write pseudo-data (process ``data``)
    whose tt+≥1b part is reweighted by that function; yields use ``samples_config`` (default: the
    packaged samples.yml) cross-sections and luminosity.
    """
    f_true = parse(inject_ht, {"HT", "nJets"}, what="--inject-ht") if inject_ht is not None else None
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    index: dict[str, dict[str, dict]] = {}
    kept: dict[str, list[dict]] = {}
    for process, variation in samples or SAMPLES:
        files = []
        for i in range(files_per_sample):
            name = f"{process}__{variation}__{i:03d}.root"
            cols = generate_arrays(process, variation, events_per_file, seed, i)
            nevts = write_file(out_dir / name, cols)
            files.append({"path": name, "nevts": nevts})
            if f_true is not None and variation == "nominal":
                kept.setdefault(process, []).append(cols)
        entry = {"files": files, "nevts_total": sum(f["nevts"] for f in files)}
        if process == "ttbar" and variation in ("ME_var", "PS_var") and ttbar_scale != 1.0:
            entry["pseudodata_scale"] = ttbar_scale
        index.setdefault(process, {})[variation] = entry
    if f_true is not None:
        index["data"] = {"nominal": _write_data(out_dir, kept, f_true, files_per_sample, seed, samples_config)}
    path = out_dir / "ntuples.json"
    path.write_text(json.dumps(index, indent=2) + "\n")
    return path


def object_ht(cols: dict[str, ak.Array | np.ndarray], pt_min: float = DATA_OBJECT_PT_GEV) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(HT_all, nJets, nLeptons, nBTags) from stored (float32) columns with the objects above ``pt_min``."""
    f64 = lambda a: ak.values_astype(ak.values_astype(a, np.float32), np.float64)  # noqa: E731 - as stored
    jet_pt = f64(cols["jet"]["pt"])
    jets = jet_pt > pt_min
    ht = ak.to_numpy(ak.sum(ak.where(jets, jet_pt, 0.0), axis=1)).astype(np.float64)
    n_lep = np.zeros(len(ht), dtype=np.int64)
    for name in ("electron", "muon"):
        lpt = f64(cols[name]["pt"])
        ht += ak.to_numpy(ak.sum(ak.where(lpt > pt_min, lpt, 0.0), axis=1)).astype(np.float64)
        n_lep += ak.to_numpy(ak.sum(lpt > pt_min, axis=1))
    njet = ak.to_numpy(ak.sum(jets, axis=1)).astype(np.int64)
    nb = ak.to_numpy(ak.sum(jets & (ak.values_astype(cols["jet"]["btag"], np.float32) > 0.5), axis=1)).astype(np.int64)
    return ht, njet, n_lep, nb


def _take(cols: dict, idx: np.ndarray) -> dict:
    """Events ``idx`` of a column dictionary."""
    out = {}
    for key, val in cols.items():
        out[key] = {k: v[idx] for k, v in val.items()} if isinstance(val, dict) else val[idx]
    return out


def _concat(parts: list[dict]) -> dict:
    """Concatenate column dictionaries event-wise."""
    out = {}
    for key, val in parts[0].items():
        if isinstance(val, dict):
            out[key] = {k: ak.concatenate([p[key][k] for p in parts]) for k in val}
        else:
            out[key] = np.concatenate([p[key] for p in parts])
    return out


def _write_data(out_dir: Path, kept: dict[str, list[dict]], f_true: Expression, n_files: int, seed: int,
                samples_config: str | Path | dict | None) -> dict:
    """Pseudo-data: nominal MC resampled at xsec×lumi with Poisson multiplicities, tt+≥1b weighted by f_true."""
    from fileset.build import load_samples_config

    cfg = samples_config if isinstance(samples_config, dict) else load_samples_config(samples_config)
    if "ttbar" not in kept:
        raise FilesetError("--inject-ht needs the nominal ttbar sample in the generated set")
    rng = np.random.Generator(np.random.PCG64(_seed(seed, "data", "nominal", 0)))
    parts = []
    for process, file_cols in kept.items():
        if process not in cfg["cross_sections_pb"]:
            raise FilesetError(f"samples config: process {process!r} has no cross-section")
        lam = cfg["cross_sections_pb"][process] * cfg["luminosity_pb"] / sum(len(c["event"]) for c in file_cols)
        for cols in file_cols:
            ht, njet, nlep, nb = object_ht(cols)
            skim = (nlep >= 1) & (njet >= 3) & (nb >= 1)
            weight = np.ones(len(ht))
            hf = cols["hf_class"] >= 2
            if hf.any():
                weight[hf] = np.broadcast_to(f_true(HT=ht[hf], nJets=njet[hf]), (int(hf.sum()),))
            bad = skim & ~(np.isfinite(weight) & (weight >= 0))
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise FilesetError(f"--inject-ht {f_true.text!r} is negative or not finite at HT={ht[i]:.1f}, "
                                    f"nJets={njet[i]} ({process} event {cols['event'][i]})")
            mult = np.where(skim, rng.poisson(lam * np.where(skim, weight, 0.0)), 0)
            if mult.any():
                parts.append(_take(cols, np.repeat(np.arange(len(ht)), mult)))
    data = _concat(parts)
    n = len(data["event"])
    data = _take(data, rng.permutation(n))
    data["event"] = np.arange(1, n + 1, dtype=np.uint64)
    data["hf_class"] = np.full(n, -1, dtype=np.int32)
    files = []
    for i, chunk in enumerate(np.array_split(np.arange(n), n_files)):
        name = f"data__nominal__{i:03d}.root"
        files.append({"path": name, "nevts": write_file(out_dir / name, _take(data, chunk))})
    return {"files": files, "nevts_total": n, "injected_ht": f_true.text,
            "luminosity_pb": float(cfg["luminosity_pb"]), "skim": DATA_SKIM}
