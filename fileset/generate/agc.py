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
25 GeV with ≥ 1 b-tag) are kept, so data files stay small. The data are therefore correlated with the
nominal MC (each MC event appears Poisson(λ) times, λ = xsec·lumi/N_MC ≈ 60 for ttbar at the defaults); the
data entry of ntuples.json lists those samples as ``resampled_from`` so that consumers use the right variance.

Files: every branch has baskets of ``BASKET_ENTRIES`` (50k) entries, which divides the usual chunk sizes,
so that chunks fall on basket boundaries; baskets are ZLIB-compressed with ISA-L when installed. The
random streams are fixed per (seed, sample, file): the same arguments give the same events.

Speed (``benchmarks/generator_speed.py``): objects are generated as flat arrays of the candidates that
exist (counts → flat draws; no draws for empty slots), Gaussians come from a Box–Muller transform and
angles use float32 trigonometry. The distributions are those of the model above; the streams (hence the
individual events) differ from the generator before this layout (fileset 2026-11, commit 8800847). The
random draws are made for whole arrays (which fixes the stream), except the last draw feeding an
element-wise kernel, which is drawn block by block inside it (:class:`_Uniforms`: the same deviates);
the element-wise kinematics run in cache-sized blocks (:func:`_blockwise`), bit for bit as on whole arrays.
Jets are cut per candidate source and gathered straight into float32 columns (no flat float64
candidate arrays: ~625 MB peak for a 1M-event ttbar file). Collections are grouped by event and
pT-sorted in the order of one integer-key argsort, computed by value sorts of packed keys in blocks of
events (:func:`_sort_in_event_blocks`), or by that argsort when two candidates of an event have the same
float32 pT. tests/unit/test_agc_generator_stream.py pins the stream (these speed-ups left every column
bit for bit as it was). Per event (1M-event ttbar files, one core, CPU time, 2026-11-30): ~0.52 µs
generation — partons ~0.24 (four two-body decays ~0.08 with their draws, pT/η/φ ~0.03), jets ~0.2
(response Gaussians, cuts and gathers ~0.04, per-event sort with gathers ~0.07, b-tag ~0.045), leptons
and MET ~0.05 — and ~0.46 µs writing: ~0.29 ISA-L level-1 ZLIB compression of nearly incompressible
float32 baskets (256 MB in, 176 MB out, a quarter of it the baskets' entry offsets), ~0.05 file writes,
~0.1 uproot's basket assembly (big-endian copy, two more copies of each basket, ~2.5 ms of Python per
set of 22 baskets and ~3 ms per file, e.g. ``mktree``). Memory reuse matters: the first
files of a process generate up to ~2× slower while glibc's allocator adapts (fresh pages from the kernel).
"""

from __future__ import annotations

import importlib.util
import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

from fileset.errors import FilesetError
from fileset.expr import Expression, parse
from fileset.generate.kinematics import P4

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
TWO_PI = 2.0 * np.pi


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
    """Parton-level objects as flat candidate lists (only the objects that exist are drawn and stored).

    ``jets`` and ``leptons`` hold tuples ``(event, pt, eta, phi, id)``: ``event`` is the event index of each
    candidate (``None``: one candidate per event, in event order), ``id`` the hadron flavour (jets) or
    the |pdgId| (leptons); pT in GeV. ``extra`` holds the radiation partons: their (event, eta,
    flavour) arrays (event-ordered; the flavour array is shared with the jet candidates), the count
    per event and the index of each event's first one; ``nu_px``/``nu_py`` are the per-event neutrino sums.
    """

    n: int
    jets: list[tuple] = field(default_factory=list)
    leptons: list[tuple] = field(default_factory=list)
    nu_px: np.ndarray | float = 0.0
    nu_py: np.ndarray | float = 0.0
    extra: tuple | None = None  # (event, eta, flavour, count per event, start per event)


# Elements per block of the element-wise kinematics (see _blockwise): the temporaries of a block stay in
# the caches (256 kB per float64 temporary) and numpy's per-call overhead stays small (measured 2026-11-30:
# 32768 ~2 % faster than 16384, 4096 ~10 % slower); a multiple of the SIMD width, so that every element
# sits in the same vector lane as in one call (the results are bit for bit the same for any such block).
BLOCK = 32_768


@dataclass(frozen=True)
class _Uniforms:
    """Uniform deviates in [0, 1) that :func:`_blockwise` draws block by block (``rng.random(k, dtype)``).

    The stream is that of one draw for all elements (numpy's uniform draws consume the generator's
    output one deviate after the other), provided nothing else draws meanwhile: one such argument per
    :func:`_blockwise` call, and it must be the last draw of the whole-array version.
    """

    rng: np.random.Generator
    dtype: type = np.float64


def _blockwise(kernel, n: int, args: tuple, out: tuple[np.ndarray, ...] | int) -> tuple[np.ndarray, ...]:
    """Run ``kernel(*args, out=outputs)`` on blocks of :data:`BLOCK` elements; return the outputs.

    ``args``: length-``n`` arrays (sliced per block), one :class:`_Uniforms` (drawn per block: the
    deviates never fill a length-``n`` array) or scalars (constant arrays: bind them with
    ``functools.partial``); the kernel writes its results into the block slices of the outputs
    (``out``: the length-``n`` output arrays, or their number for new float64 ones). For element-wise
    numpy chains the result is bit for bit that of one call on the whole arrays, ~2× faster for
    1M-element arrays (each temporary otherwise streams through main memory).
    """
    if isinstance(out, int):
        out = tuple(np.empty(n) for _ in range(out))
    if sum(isinstance(a, _Uniforms) for a in args) > 1:
        raise ValueError("at most one _Uniforms argument (two would interleave their draws)")
    sliced = [isinstance(a, np.ndarray) and a.ndim > 0 for a in args]
    for start in range(0, n, BLOCK):
        block = slice(start, start + BLOCK)
        size = min(BLOCK, n - start)
        kernel(*(a[block] if cut else a.rng.random(size, dtype=a.dtype) if isinstance(a, _Uniforms) else a
                 for a, cut in zip(args, sliced)), out=tuple(o[block] for o in out))
    return out


def _phi(n: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform azimuth in [-π, π) (float32: the precision of the stored branches)."""
    phi = rng.random(n, dtype=np.float32)
    phi *= np.float32(TWO_PI)
    phi -= np.float32(np.pi)
    return phi


def _cos_sin(phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(cos φ, sin φ) in float32 (SIMD; float64 sin/cos cost ~10× more and the branches are float32)."""
    phi = phi.astype(np.float32, copy=False)
    return np.cos(phi), np.sin(phi)


def _standard_normal(n: int, rng: np.random.Generator, mu: float = 0.0, sigma: float = 1.0) -> np.ndarray:
    """Standard normal deviates x (float64) by the Box–Muller transform (exact; G. Box, M. Muller 1958),
    returned as x·sigma + mu (two roundings, as ``x *= sigma; x += mu``).

    ~3× faster than numpy's ziggurat here: r = √(−2 ln(1 − u₁)) from a float64 uniform (so the tail
    reaches 8.5σ), the angle from a float32 uniform with float32 sin/cos.
    """
    half = (n + 1) // 2
    u = rng.random(half)
    out = np.empty(2 * half)
    _blockwise(partial(_box_muller, mu, sigma), half, (u, _Uniforms(rng, np.float32)), (out[:half], out[half:]))
    return out[:n]


def _box_muller(mu: float, sigma: float, u: np.ndarray, v: np.ndarray, out: tuple[np.ndarray, np.ndarray]) -> None:
    """out = (r cos φ, r sin φ)·sigma + mu, r = √(−2 ln(1 − u)) (float64) and φ = 2πv − π (float32, as :func:`_phi`)."""
    r = np.log1p(-u)
    r *= -2.0
    np.sqrt(r, out=r)
    for x, trig in zip(out, _cos_sin(_azimuth(v))):
        np.multiply(r, trig, out=x)
        x *= sigma
        x += mu


def _azimuth(v: np.ndarray) -> np.ndarray:
    """φ = 2πv − π in float32 from float32 uniforms v (the arithmetic of :func:`_phi`)."""
    phi = v * np.float32(TWO_PI)
    phi -= np.float32(np.pi)
    return phi


def _normal(mu: float, sigma: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """Gaussian N(mu, sigma²) deviates (float64)."""
    return _standard_normal(n, rng, mu, sigma)


def _from_ptetaphim(pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, mass: np.ndarray) -> P4:
    """Cartesian four-vectors from (pT, η, φ, m) (as :func:`kinematics.from_ptetaphim`, float32 cos/sin φ)."""
    return P4(*_blockwise(_cartesian, pt.shape[0], (pt, eta, phi, mass), 4))


def _cartesian(pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, mass: np.ndarray, out: tuple[np.ndarray, ...]) -> None:
    """out = (px, py, pz, E) from (pT, η, φ, m) (kernel of :func:`_from_ptetaphim`)."""
    px, py, pz, e = out
    c, s = _cos_sin(phi)
    np.multiply(pt, c, out=px)
    np.multiply(pt, s, out=py)
    np.multiply(pt, np.sinh(eta), out=pz)
    np.sqrt(pt**2 + pz**2 + mass**2, out=e)


def _discrete(cum: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices 0..len(cum) drawn with cumulative probabilities ``cum`` (the rest goes to the last index).

    The index of u is the number of thresholds ``cum[k] <= u`` (= ``np.searchsorted(cum, u, "right")``
    for the non-decreasing ``cum``), counted in int8 over the few thresholds: ~5× faster than the search.
    """
    idx = _blockwise(partial(_count_below, cum), n, (_Uniforms(rng),), (np.empty(n, np.int8),))[0]
    return idx.astype(np.intp)


def _count_below(cum: np.ndarray, u: np.ndarray, out: tuple[np.ndarray]) -> None:
    """out = the number of thresholds ``cum[k] <= u`` per uniform (int8; kernel of :func:`_discrete`)."""
    idx = out[0]
    idx[...] = 0
    for c in cum:
        idx += u >= c


def _truncated_poisson_cdf(mean: float, k_max: int) -> np.ndarray:
    """Cumulative P(k) for k < k_max of a Poisson(mean): ``_discrete`` then draws min(Poisson, k_max)."""
    k = np.arange(k_max)
    pmf = np.exp(-mean) * np.cumprod(np.concatenate([[1.0], mean / k[1:]]))
    return np.cumsum(pmf)


def _ptetaphi(px: np.ndarray, py: np.ndarray, pz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pT, η, φ) of Cartesian momenta."""
    return _blockwise(_ptetaphi_kernel, px.shape[0], (px, py, pz), 3)


def _ptetaphi_kernel(px: np.ndarray, py: np.ndarray, pz: np.ndarray, out: tuple[np.ndarray, ...]) -> None:
    """out = (pT, η, φ) of Cartesian momenta (kernel of :func:`_ptetaphi`)."""
    pt, eta, phi = out
    np.sqrt(px * px + py * py, out=pt)
    np.arcsinh(pz / np.maximum(pt, 1e-9), out=eta)
    np.arctan2(py, px, out=phi)


def _polar32(x: np.ndarray, y: np.ndarray, out: tuple[np.ndarray, np.ndarray]) -> None:
    """out = (√(x² + y²), atan2(y, x)) rounded to float32 (the outputs' dtype)."""
    out[0][...] = np.hypot(x, y)
    out[1][...] = np.arctan2(y, x)


def _gamma2(n: int, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Gamma(2, scale) deviates: (x₁ + x₂)·scale with x₁ the first n, x₂ the next n standard exponentials."""
    x = rng.standard_exponential((2, n))
    pt = np.add(x[0], x[1], out=x[0])
    pt *= scale
    return pt


def _decay(parent: P4, mass: np.ndarray, m1: float, m2: float | np.ndarray, rng: np.random.Generator,
           energies: bool = True) -> tuple[P4, P4]:
    """Isotropic two-body decay of ``parent`` (invariant mass ``mass``) into masses m1, m2, in the lab frame.

    Rest-frame momentum q (PDG kinematics, eq. 49.17); boost p = q + P [(P·q)/(m(E+m)) + E₁*/m],
    E = (E E₁* + P·q)/m; the second daughter is parent − first (exact four-momentum conservation).
    ``energies=False``: the daughters' E are not computed (None), their momenta are the same.
    """
    n = mass.shape[0]
    u = rng.random(n)  # cos θ* = 2u − 1
    v = _Uniforms(rng, np.float32)  # φ* (as _phi)
    out = _blockwise(_decay_kernel, n, (parent.px, parent.py, parent.pz, parent.e, mass, m1, m2, u, v),
                     8 if energies else 6)
    if not energies:
        return P4(*out[:3], None), P4(*out[3:], None)
    return P4(*out[:4]), P4(*out[4:])


def _decay_kernel(px: np.ndarray, py: np.ndarray, pz: np.ndarray, e: np.ndarray, mass: np.ndarray, m1: float,
                  m2: float | np.ndarray, u: np.ndarray, v: np.ndarray, out: tuple[np.ndarray, ...]) -> None:
    """out = the daughter four-momenta (px, py, pz, E of the first, then of the second) of :func:`_decay`
    (6 outputs: without the energies)."""
    m = np.maximum(mass, m1 + m2 + 1e-6)
    p = np.sqrt(np.maximum((m**2 - (m1 + m2) ** 2) * (m**2 - (m1 - m2) ** 2), 0.0)) / (2 * m)
    cos_t = u * 2.0 - 1.0
    psin = p * np.sqrt(1.0 - cos_t**2)
    c, s = _cos_sin(_azimuth(v))
    qx, qy, qz = psin * c, psin * s, p * cos_t
    e1 = np.sqrt(p**2 + m1**2) if m1 else p
    pq = px * qx + py * qy + pz * qz
    k = (pq / (e + m) + e1) / m
    x1, y1, z1, x2, y2, z2 = out[:3] + out[-4:-1] if len(out) == 8 else out
    np.add(qx, k * px, out=x1)
    np.add(qy, k * py, out=y1)
    np.add(qz, k * pz, out=z1)
    np.subtract(px, x1, out=x2)
    np.subtract(py, y1, out=y2)
    np.subtract(pz, z1, out=z2)
    if len(out) == 8:
        np.divide(e * e1 + pq, m, out=out[3])
        np.subtract(e, out[3], out=out[7])


def _top(n: int, tune: Tune, rng: np.random.Generator) -> tuple[P4, np.ndarray]:
    """Top quarks: pT ~ Gamma(2, scale) (sum of two exponentials), η ~ N(0, 1.3), Gaussian mass; (p4, mass)."""
    pt = _gamma2(n, tune.top_pt_scale_gev, rng)
    mass = _normal(M_TOP, W_TOP, n, rng)
    return _from_ptetaphim(pt, _normal(0.0, 1.3, n, rng), _phi(n, rng), mass), mass


def _add_w_decay(ev: Partons, w: P4, m_w: np.ndarray, rng: np.random.Generator, leptonic_only: bool = False) -> None:
    """Decay W bosons into quark pairs or lepton+neutrino (mode drawn per event); add the visible objects."""
    d1, d2 = _decay(w, m_w, 0.0, 0.0, rng, energies=False)
    prob = np.array([0.0, 0.37, 0.37, 0.26]) if leptonic_only else W_MODE_PROB
    mode = _discrete(np.cumsum(prob)[:-1], ev.n, rng)
    pt1, eta1, phi1 = _ptetaphi(d1.px, d1.py, d1.pz)
    had = np.flatnonzero(mode == 0)
    if had.size:
        flav1 = np.where(rng.random(had.size) < 0.5, 4, 0).astype(np.int32)
        pt2, eta2, phi2 = _ptetaphi(d2.px[had], d2.py[had], d2.pz[had])
        ev.jets.append((had, pt1[had], eta1[had], phi1[had], flav1))
        ev.jets.append((had, pt2, eta2, phi2, np.zeros(had.size, np.int32)))
    tau = np.flatnonzero(mode == 3)
    ev.jets.append((tau, 0.6 * pt1[tau], eta1[tau], phi1[tau], np.zeros(tau.size, np.int32)))
    lep = np.flatnonzero((mode == 1) | (mode == 2))
    ev.leptons.append((lep, pt1[lep], eta1[lep], phi1[lep], np.where(mode[lep] == 1, 11, 13)))
    nu = mode != 0
    ev.nu_px = ev.nu_px + np.where(nu, d2.px, 0.0)
    ev.nu_py = ev.nu_py + np.where(nu, d2.py, 0.0)


def _add_top(ev: Partons, top: tuple[P4, np.ndarray], rng: np.random.Generator) -> None:
    """Decay top quarks t→bW and add the decay products."""
    m_w = _normal(M_W, W_W, ev.n, rng)
    b, w = _decay(top[0], top[1], M_B, m_w, rng)
    ev.jets.append((None, *_ptetaphi(b.px, b.py, b.pz), np.full(ev.n, 5, np.int32)))
    _add_w_decay(ev, w, m_w, rng)


def _flat_jets(count: np.ndarray, pt_min: float, scale: float, eta_sigma: float, flav_cum: np.ndarray,
               rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """``count`` jets per event (flat, event-ordered): pT = pt_min + Exp(scale), η ~ N(0, eta_sigma), flavour."""
    m = int(count.sum())
    event = np.repeat(np.arange(count.size), count)
    pt = rng.standard_exponential(m)
    pt *= scale
    pt += pt_min
    flav = np.array([0, 4, 5], np.int32)[_discrete(flav_cum, m, rng)]
    return event, pt, _normal(0.0, eta_sigma, m, rng), _phi(m, rng), flav


def _add_radiation(ev: Partons, mean: float, scale: float, rng: np.random.Generator, max_jets: int = 6) -> None:
    """Extra QCD jets: min(Poisson(mean), max_jets) per event, pT = 20 + Exp(scale), mostly light flavour."""
    count = _discrete(_truncated_poisson_cdf(mean, max_jets), ev.n, rng)
    jets = _flat_jets(count, 20.0, scale, 1.6, np.array([0.90, 0.97]), rng)
    ev.jets.append(jets)
    ev.extra = (jets[0], jets[2], jets[4], count, np.cumsum(count) - count)


def _ttbar(n: int, tune: Tune, rng: np.random.Generator) -> Partons:
    ev = Partons(n)
    _add_top(ev, _top(n, tune, rng), rng)
    _add_top(ev, _top(n, tune, rng), rng)
    _add_radiation(ev, tune.isr_mean, tune.isr_scale_gev, rng)
    return ev


def _split_heavy_flavour(ev: Partons, rng: np.random.Generator) -> None:
    """g→bb̄/cc̄: the first two extra partons of some events (with ≥ 2) become a heavy-flavour pair."""
    if ev.extra is None:
        return
    _, _, flav, count, start = ev.extra
    first = start[count >= 2]
    u = rng.random(first.size)
    pair = np.where(u < P_G_TO_BB, 5, np.where(u < P_G_TO_BB + P_G_TO_CC, 4, 0)).astype(np.int32)
    split = pair > 0
    for pos in (first[split], first[split] + 1):
        flav[pos] = pair[split]  # in place: the same array is the flavour of the jet candidates


def hf_class(ev: Partons) -> np.ndarray:
    """Truth label from extra (radiation) partons in acceptance: 3 ≥2b, 2 one b, 1 ≥1c, 0 light."""
    event, eta, flav = ev.extra[:3]
    inside = np.abs(eta) < HF_ETA_MAX
    nb = np.bincount(event[inside & (flav == 5)], minlength=ev.n)
    nc = np.bincount(event[inside & (flav == 4)], minlength=ev.n)
    return np.select([nb >= 2, nb == 1, nc >= 1], [3, 2, 1], 0).astype(np.int32)


def _single_top(n: int, tune: Tune, rng: np.random.Generator, channel: str) -> Partons:
    ev = Partons(n)
    _add_top(ev, _top(n, replace(tune, top_pt_scale_gev=45.0), rng), rng)
    if channel == "s_chan":
        pt = 30.0 + 40.0 * rng.standard_exponential(n)
        ev.jets.append((None, pt, _normal(0.0, 1.3, n, rng), _phi(n, rng), np.full(n, 5, np.int32)))
    elif channel == "t_chan":
        pt = 25.0 + 35.0 * rng.standard_exponential(n)
        eta = np.abs(_normal(2.0, 0.9, n, rng))
        eta[rng.random(n) < 0.5] *= -1.0
        ev.jets.append((None, pt, eta, _phi(n, rng), np.zeros(n, np.int32)))
        has_b = np.flatnonzero(rng.random(n) < 0.5)
        m = has_b.size
        pt_b = 20.0 + 12.0 * rng.standard_exponential(m)
        ev.jets.append((has_b, pt_b, _normal(0.0, 1.8, m, rng), _phi(m, rng), np.full(m, 5, np.int32)))
    else:  # tW
        pt = _gamma2(n, 40.0, rng)
        m_w = _normal(M_W, W_W, n, rng)
        _add_w_decay(ev, _from_ptetaphim(pt, _normal(0.0, 1.3, n, rng), _phi(n, rng), m_w), m_w, rng)
    _add_radiation(ev, 1.2, tune.isr_scale_gev, rng)
    return ev


def _wjets(n: int, tune: Tune, rng: np.random.Generator) -> Partons:
    ev = Partons(n)
    m_w = _normal(M_W, W_W, n, rng)
    w = _from_ptetaphim(45.0 * rng.standard_exponential(n), _normal(0.0, 2.0, n, rng), _phi(n, rng), m_w)
    _add_w_decay(ev, w, m_w, rng, leptonic_only=True)
    count = _discrete(np.cumsum(0.5 ** np.arange(1, 9)), n, rng)  # min(Geometric(1/2) - 1, 8)
    ev.jets.append(_flat_jets(count, 20.0, 25.0, 1.6, np.array([0.92, 0.98]), rng))
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


def _candidates(cands: list[tuple], n: int) -> list[np.ndarray]:
    """Concatenate candidate tuples field by field (``None`` events → one candidate per event)."""
    every = np.arange(n)
    return [np.concatenate([c[0] if c[0] is not None else every for c in cands])] + [
        np.concatenate([c[i] for c in cands]) for i in range(1, len(cands[0]))]


def _sorted_by_event(event: np.ndarray, pt32: np.ndarray, n: int, columns: tuple[np.ndarray, ...] | None = None,
                     ) -> tuple[np.ndarray | list[np.ndarray], np.ndarray]:
    """(order, counts): ``order`` groups candidates by event and sorts each event by descending pT.

    The order is numpy's argsort of the integer key (event << 32 | ~bits(pT)): non-negative float32 bit
    patterns are ordered like the values, so the order is that of the stored float32 pT. ``event`` comes
    as a few non-decreasing runs (one per candidate source): :func:`_sort_in_event_blocks` then sorts key
    values with the candidate index packed in (~2× faster than the argsort, the same order); when two
    candidates of one event have the same float32 pT (~1 per 2M ttbar events), whose order the argsort
    leaves to its algorithm, or with many runs or keys that do not fit 64 bits, the argsort itself.
    With ``columns`` (arrays of the candidates), the first item is instead the list of those columns in
    that order (gathered block by block: the order never fills a whole array).
    """
    counts = np.bincount(event, minlength=n)
    m = event.shape[0]
    bits = pt32.view(np.uint32)
    low, high = (int(bits.min()), int(bits.max())) if m else (0, 0)
    index_bits = max(m - 1, 1).bit_length()
    pt_bits = (high - low).bit_length()
    event_bits = 64 - index_bits - pt_bits  # events per block: 2**event_bits
    runs = np.flatnonzero(event[1:] < event[:-1]) + 1
    if high < 0x8000_0000 and event_bits >= 10 and runs.size < 64:
        out = _sort_in_event_blocks(event, bits, high, (pt_bits, index_bits, event_bits), runs, n, columns)
        if out is not None:
            return out, counts
    key = event.astype(np.uint64)
    key <<= np.uint64(32)
    key |= ~bits
    order = np.argsort(key)  # the generator's order since 2026-11 (ties: as this argsort leaves them)
    return (order if columns is None else [c[order] for c in columns]), counts


def _sort_in_event_blocks(event: np.ndarray, bits: np.ndarray, high: int, widths: tuple[int, int, int],
                          runs: np.ndarray, n: int, columns: tuple[np.ndarray, ...] | None,
                          ) -> np.ndarray | list[np.ndarray] | None:
    """The order (or the ``columns`` in that order) of :func:`_sorted_by_event`, one block of events at a time;
    None if two candidates of one event have the same pT (their order is then the argsort's).

    Key (64 bits): event mod 2**event_bits | high − bits(pT) (pt_bits) | candidate index (index_bits), so
    that sorting the key values (numpy's SIMD sort, much faster than an argsort) and keeping the low bits
    gives the order within a block of 2**event_bits events. ``runs``: starts of the non-decreasing runs of
    ``event`` after the first; each run contributes one contiguous slice to each block, whose keys are
    packed straight into the block's (cache-sized) key array.
    """
    pt_bits, index_bits, event_bits = widths
    m = event.shape[0]
    event = event.view(f"u{event.dtype.itemsize}")  # non-negative integers
    edges = np.arange(0, n + (1 << event_bits), 1 << event_bits)
    edges[-1] = n
    starts = np.concatenate([[0], runs, [m]])
    cuts = np.stack([a + np.searchsorted(event[a:b], edges) for a, b in zip(starts[:-1], starts[1:])])
    sizes = (cuts[:, 1:] - cuts[:, :-1]).sum(axis=0)
    out = [np.empty(m, np.intp)] if columns is None else [np.empty(m, c.dtype) for c in columns]
    columns = out if columns is None else columns
    event_mask, index_mask = np.uint64((1 << event_bits) - 1), np.uint64((1 << index_bits) - 1)
    pt_shift, index_shift, high = np.uint64(pt_bits), np.uint64(index_bits), np.uint32(high)
    pos = 0
    for b in range(edges.size - 1):
        block = np.empty(sizes[b], np.uint64)
        at = 0
        for a, e in cuts[:, b:b + 2]:
            key = block[at:at + e - a]
            np.bitwise_and(event[a:e], event_mask, out=key)
            key <<= pt_shift
            key |= np.subtract(high, bits[a:e])
            key <<= index_shift
            key |= np.arange(a, e, dtype=np.uint64)
            at += e - a
        block.sort()
        event_pt = block >> index_shift
        if np.any(event_pt[1:] == event_pt[:-1]):
            return None
        block &= index_mask
        order = block.view(np.intp)
        if columns is out:
            out[0][pos:pos + order.size] = order
        else:
            for column, sorted_column in zip(columns, out):
                np.take(column, order, out=sorted_column[pos:pos + order.size], mode="clip")
        pos += order.size
    return out[0] if columns is out else out


def _btag(flavour: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Discriminator in [0, 1]: above 0.5 with a flavour-dependent probability p (tagged).

    One uniform u per jet: tagged if u < p, and then v = (p − u)/p (resp. (u − p)/(1 − p)) is a fresh
    uniform; tagged scores are 0.5 + 0.5·Beta(2, 1) = 0.5 + 0.5·√v, untagged 0.5·Beta(1, 2) = 0.5 − 0.5·√v
    (inverse CDFs of Beta(2, 1) and Beta(1, 2)).
    """
    table = np.full(max(B_TAG_PROB) + 1, B_TAG_PROB[0])
    for flav, p in B_TAG_PROB.items():
        table[flav] = p
    m = flavour.shape[0]
    return _blockwise(partial(_btag_kernel, table), m, (flavour, _Uniforms(rng)), (np.empty(m, np.float32),))[0]


def _btag_kernel(table: np.ndarray, flavour: np.ndarray, u: np.ndarray, out: tuple[np.ndarray]) -> None:
    """out = b-tag scores (float32) from uniforms ``u`` and tag probabilities ``table[flavour]`` (see :func:`_btag`)."""
    prob = table[flavour]
    d = prob - u
    v = np.abs(d)
    v /= np.where(d > 0, prob, 1.0 - prob)
    np.sqrt(v, out=v)
    np.copysign(v, d, out=v)
    v *= 0.5
    v += 0.5
    out[0][...] = v  # rounded to float32


def _offsets(counts: np.ndarray) -> ak.index.Index64:
    """List offsets (0, c₀, c₀ + c₁, …) of per-event counts."""
    offsets = np.zeros(counts.size + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    return ak.index.Index64(offsets)


def _jagged(flat: np.ndarray, offsets: ak.index.Index64) -> ak.Array:
    """``ak.unflatten(flat, counts)`` for the ``offsets`` of those counts, sharing them between the columns
    of one collection (no per-column validation and offset computation: ~0.3 ms less per column)."""
    return ak.Array(ak.contents.ListOffsetArray(offsets, ak.contents.NumpyArray(flat)))


def _kept_jets(cands: list[tuple], response: np.ndarray) -> list[np.ndarray]:
    """Jets above 20 GeV with |η| < 2.5 as (event (int32), pT, η, φ (float32), flavour (int32)), in candidate order.

    ``cands``: the jet candidate tuples of :class:`Partons`; ``response``: the response of every
    candidate (all sources in order), multiplied in place by the parton pT. Each source is selected
    on its own (float64 cuts) and gathered straight into the output columns through one reused
    buffer, so neither flat candidate arrays nor per-source temporaries are built.
    """
    sizes = [c[1].shape[0] for c in cands]
    starts = np.cumsum([0] + sizes)
    mask = np.empty(max(sizes, default=0), bool)
    keeps = []
    for (event, ppt, eta, phi, flav), at, k in zip(cands, starts, sizes):
        pt = response[at:at + k]
        _blockwise(_jet_pt_cuts, k, (pt, ppt, eta), (pt, mask[:k]))
        keeps.append(np.flatnonzero(mask[:k]))
    total = sum(keep.shape[0] for keep in keeps)
    out = [np.empty(total, dtype) for dtype in (np.int32, np.float32, np.float32, np.float32, np.int32)]
    buffer = np.empty(max((keep.shape[0] for keep in keeps), default=0), np.float64)
    pos = 0
    for (event, ppt, eta, phi, flav), keep, at, k in zip(cands, keeps, starts, sizes):
        part = slice(pos, pos + keep.shape[0])
        pos += keep.shape[0]
        for column, source in zip(out, (keep if event is None else event, response[at:at + k], eta, phi, flav)):
            if source is keep:
                column[part] = keep
            elif source.dtype == column.dtype:
                np.take(source, keep, out=column[part], mode="clip")
            elif source.dtype.itemsize == buffer.dtype.itemsize:  # float64/int64: gathered in the buffer, then cast
                gathered = buffer[:keep.shape[0]].view(source.dtype)
                np.take(source, keep, out=gathered, mode="clip")
                column[part] = gathered
            else:
                column[part] = source[keep]
    return out


def _jet_pt_cuts(response: np.ndarray, ppt: np.ndarray, eta: np.ndarray, out: tuple[np.ndarray, np.ndarray]) -> None:
    """out = (pT = response × parton pT, pT > 20 GeV and |η| < 2.5) (kernel of :func:`_kept_jets`)."""
    pt, keep = out
    np.multiply(response, ppt, out=pt)
    np.greater(pt, 20.0, out=keep)
    keep &= np.abs(eta) < 2.5


def _mass_energy(pt: np.ndarray, eta: np.ndarray, u: np.ndarray, out: tuple[np.ndarray, np.ndarray]) -> None:
    """out = (m = pT × (0.04 + 0.10 u), E = √((pT cosh η)² + m²)) in float32 (kernel of :func:`reconstruct`)."""
    mass, energy = out
    np.multiply(u, np.float32(0.10), out=mass)
    mass += np.float32(0.04)
    mass *= pt
    np.cosh(eta, out=energy)
    energy *= pt
    energy *= energy
    energy += mass * mass
    np.sqrt(energy, out=energy)


def reconstruct(ev: Partons, tune: Tune, rng: np.random.Generator) -> dict[str, ak.Array | np.ndarray]:
    """Detector-level objects (AGC ntuple columns, float32 kinematics) from partons.

    Jets: pT = parton pT × max(N(response, resolution), 0.3), kept above 20 GeV and |η| < 2.5; mass
    = pT × U(0.04, 0.14). Leptons: prompt ones with 90 % efficiency and 2 % pT resolution, plus
    min(Poisson(fake mean), 2) soft fakes (pT = 5 + Exp(7)); kept for |η| < 2.4 and pT > 5 GeV.
    Collections are sorted by descending pT in each event.
    """
    n = ev.n
    pt = _normal(tune.jet_response, tune.jet_resolution, sum(c[1].shape[0] for c in ev.jets), rng)
    np.maximum(pt, 0.3, out=pt)
    event, pt32, eta, phi, flav = _kept_jets(ev.jets, pt)
    (pt32, eta, phi, flav), njet = _sorted_by_event(event, pt32, n, (pt32, eta, phi, flav))
    mass, energy = np.empty_like(pt32), np.empty_like(pt32)
    _blockwise(_mass_energy, pt32.shape[0], (pt32, eta, _Uniforms(rng, np.float32)), (mass, energy))
    jets = {"pt": pt32, "eta": eta, "phi": phi, "e": energy,
            "mass": mass, "btag": _btag(flav, rng), "hadronFlavour": flav}
    offsets = _offsets(njet)
    jets = {k: _jagged(v, offsets) for k, v in jets.items()}

    real = _candidates(ev.leptons, n)
    real[1] = real[1] * _normal(1.0, 0.02, real[1].size, rng)
    found = rng.random(real[0].size) < 0.9
    real = [a[found] for a in real]
    n_fake = _discrete(_truncated_poisson_cdf(tune.fake_lepton_mean, 2), n, rng)
    f_event = np.repeat(np.arange(n), n_fake)
    f = f_event.size
    fake = (f_event, 5.0 + 7.0 * rng.standard_exponential(f), _normal(0.0, 1.4, f, rng), _phi(f, rng),
            np.where(rng.random(f) < 0.5, 11, 13))
    l_event, lpt, leta, lphi, lpdg = _candidates([tuple(real), fake], n)
    ok = (np.abs(leta) < 2.4) & (lpt > 5.0)
    out: dict[str, ak.Array | np.ndarray] = {}
    for name, pid in (("electron", 11), ("muon", 13)):
        sel = np.flatnonzero(ok & (lpdg == pid))
        pt32 = lpt[sel].astype(np.float32)
        order, counts = _sorted_by_event(l_event[sel], pt32, n)
        idx = sel[order]
        cols = {"pt": pt32[order], "eta": leta[idx].astype(np.float32), "phi": lphi[idx].astype(np.float32),
                "e": (lpt[idx] * np.cosh(leta[idx])).astype(np.float32)}
        offsets = _offsets(counts)
        out[name] = {k: _jagged(v, offsets) for k, v in cols.items()}

    met_x = ev.nu_px + _normal(0.0, 12.0, n, rng)
    met_y = ev.nu_py + _normal(0.0, 12.0, n, rng)
    out["jet"] = jets
    met = (np.empty(n, np.float32), np.empty(n, np.float32))
    out["met_pt"], out["met_phi"] = _blockwise(_polar32, n, (met_x, met_y), met)
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


def write_file(path: Path, cols: dict[str, ak.Array | np.ndarray], basket_entries: int | None = None,
               compression: str = "zlib") -> int:
    """Write columns to ``path`` as tree ``events`` with AGC branch names; return the event count.

    Every branch has baskets of ``basket_entries`` entries (default :data:`BASKET_ENTRIES`; the last
    basket holds the rest), compressed with :func:`basket_compression` (``compression``: "zlib" or "lz4").
    """
    data = {
        "jet": _jagged_records(cols["jet"], {"hadronFlavour": np.int32}),
        "electron": _jagged_records(cols["electron"]),
        "muon": _jagged_records(cols["muon"]),
        "met_pt": cols["met_pt"].astype(np.float32, copy=False),
        "met_phi": cols["met_phi"].astype(np.float32, copy=False),
        "event": cols["event"],
    }
    if "hf_class" in cols:
        data["hf_class"] = np.asarray(cols["hf_class"], dtype=np.int32)
    with uproot.recreate(path, compression=basket_compression(compression)) as fout:
        tree = fout.mktree(
            "events",
            {k: v.type if isinstance(v, ak.Array) else v.dtype for k, v in data.items()},
            counter_name=_counter_name,
            field_name=lambda outer, inner: f"{outer}_{inner}",
        )
        extend_in_baskets(tree, data, basket_entries, _counter_name)
    return len(cols["event"])


def _counter_name(collection: str) -> str:
    """The AGC ntuples' counter branch of a jagged collection (``numberjet`` for ``jet``)."""
    return "number" + collection


def _jagged_records(fields: dict[str, ak.Array], dtypes: dict[str, type] | None = None) -> ak.Array:
    """``ak.zip`` of one collection's jagged columns (float32, or ``dtypes[name]``), for the writer.

    Columns as :func:`generate_arrays` makes them (list-offset arrays with the same offsets) are wrapped
    as one record array around their buffers (no broadcasting, no copy when the dtype already matches:
    ~1 ms less per file); other layouts (e.g. the resampled pseudo-data) go through ``ak.zip``.
    """
    dtypes = dtypes or {}
    want = {k: np.dtype(dtypes.get(k, np.float32)) for k in fields}
    layouts = {k: ak.to_layout(v) for k, v in fields.items()}
    first = next(iter(layouts.values()))
    simple = all(isinstance(x, ak.contents.ListOffsetArray) and isinstance(x.content, ak.contents.NumpyArray)
                 and x.content.data.ndim == 1 for x in layouts.values())
    if simple:
        offsets = np.asarray(first.offsets)
        simple = all(x.offsets is first.offsets or np.array_equal(np.asarray(x.offsets), offsets)
                     for x in layouts.values())
    if not simple:
        return ak.zip({k: ak.values_astype(v, want[k]) for k, v in fields.items()})
    contents = [ak.contents.NumpyArray(np.asarray(x.content.data).astype(want[k], copy=False))
                for k, x in layouts.items()]
    return ak.Array(ak.contents.ListOffsetArray(first.offsets, ak.contents.RecordArray(contents, list(layouts))))


# Entries per basket of the generated files: divides the default chunk size (100k) and the usual
# smaller ones (50k), so that chunk boundaries fall on basket boundaries and no basket is inflated twice.
BASKET_ENTRIES = 50_000


# Basket compressions of the generated files: "zlib" (default) is what the real AGC inputs use; "lz4" is
# opt-in for quick local files (float baskets end up uncompressed: writing ~0.2 µs/event cheaper, reading
# ~5× faster, files ~15 % larger; not representative of the read cost of real AGC inputs).
COMPRESSIONS = ("zlib", "lz4")


def basket_compression(algorithm: str = "zlib") -> uproot.compression.Compression:
    """The compression of the generated baskets (``algorithm`` in :data:`COMPRESSIONS`).

    ``"zlib"``: ISA-L's level 1 (``isal``, when installed), else zlib level 1. Both are standard ZLIB
    streams that every ROOT reader inflates; ISA-L compresses these float columns ~15× faster than zlib
    with a similar ratio, and its output inflates faster. ``"lz4"``: LZ4 (uproot's ``LZ4(1)``, ROOT's
    algorithm 4): LZ4 does not shrink the jet and MET float baskets (random float32 mantissas), which
    uproot (like ROOT) then stores uncompressed; counters, flavours and the sparse lepton columns are
    LZ4-compressed. Writing costs ~0.2 µs/event less, reading the baskets ~5× less, files are ~15 %
    larger (measured 2026-11 on the 1M-event ttbar file). The arrays are the same for both.

    Raises:
        FilesetError: ``algorithm`` is not one of :data:`COMPRESSIONS`.
    """
    if algorithm == "lz4":
        return uproot.LZ4(1)
    if algorithm != "zlib":
        raise FilesetError(f"unknown basket compression {algorithm!r} (choose one of {', '.join(COMPRESSIONS)})")
    if importlib.util.find_spec("isal") is None:
        return uproot.ZLIB(1)
    compression = uproot.ZLIB(3)  # uproot maps ZLIB level 3 to ISA-L level 1
    compression.library = "isal"  # this instance only (the class default stays pinned, see schemas.reading)
    return compression


def extend_in_baskets(tree, data: dict, basket_entries: int | None = None,
                      counter_name: Callable[[str], str] | None = None) -> None:
    """Fill an uproot ``WritableTree`` with ``data`` in baskets of ``basket_entries`` (one extend call each).

    ``counter_name``: the tree's counter naming (as given to ``mktree``); with it, each jagged record
    column goes to uproot as its fields plus the counter (counts from the offsets), which spares uproot
    ~1 ms of awkward calls per basket (``ak.num`` and one field access per branch); the file is the same.
    """
    step = basket_entries or BASKET_ENTRIES
    n = len(next(iter(data.values())))
    if n == 0:
        tree.extend(data)
        return
    for start in range(0, n, step):
        piece = {}
        for key, value in data.items():
            entries = _entries(value, start, min(start + step, n), counter_name is not None)
            if isinstance(entries, tuple):  # (counts, fields) of a jagged record column
                piece[counter_name(key)], piece[key] = entries
            else:
                piece[key] = entries
        tree.extend(piece)


def _entries(array: ak.Array | np.ndarray, start: int, stop: int, split_records: bool = False,
             ) -> ak.Array | np.ndarray | tuple[np.ndarray, dict[str, ak.Array]]:
    """Entries [start, stop) of a column for one basket: jagged (records of) numbers as a new list-offset
    array whose offsets start at 0 over views of the contents (what uproot would otherwise re-slice
    field by field), anything else sliced as it is. ``split_records``: a jagged record column comes as
    (counts (int32), {field: jagged array}) instead."""
    layout = array.layout if isinstance(array, ak.Array) else None
    if not isinstance(layout, ak.contents.ListOffsetArray):
        return array[start:stop]
    content = layout.content
    record = isinstance(content, ak.contents.RecordArray)
    fields = content.contents if record else [content]
    if not all(isinstance(f, ak.contents.NumpyArray) for f in fields) or content.parameters or layout.parameters:
        return array[start:stop]
    offsets = np.asarray(layout.offsets)[start:stop + 1]
    first, last = int(offsets[0]), int(offsets[-1])
    index = ak.index.Index64(offsets - first)
    sliced = [ak.contents.NumpyArray(np.asarray(f.data)[first:last]) for f in fields]
    if record and split_records:
        counts = np.diff(offsets).astype(np.int32)
        return counts, {name: ak.Array(ak.contents.ListOffsetArray(index, f)) for name, f in zip(content.fields, sliced)}
    if record:
        sliced = [ak.contents.RecordArray(sliced, content.fields, length=last - first)]
    return ak.Array(ak.contents.ListOffsetArray(index, sliced[0]))


def generate_agc(out: str | Path, events_per_file: int = 20_000, files_per_sample: int = 2, seed: int = 1,
                 ttbar_scale: float = 1.0, samples: list[tuple[str, str]] | None = None,
                 inject_ht: str | None = None, samples_config: str | Path | dict | None = None,
                 compression: str = "zlib") -> Path:
    """Write synthetic AGC ntuples for all nine sample sets and ``out/ntuples.json``; return the json path.

    With ``inject_ht`` (an expression in ``HT`` and ``nJets``), also write pseudo-data (process ``data``)
    whose tt+≥1b part is reweighted by that function; yields use ``samples_config`` (default: the
    packaged samples.yml) cross-sections and luminosity. ``compression``: the baskets' algorithm,
    "zlib" (as the real AGC files) or "lz4" (see :func:`basket_compression`); the events are the same.
    """
    f_true = parse(inject_ht, {"HT", "nJets"}, what="--inject-ht") if inject_ht is not None else None
    basket_compression(compression)  # an unknown algorithm fails before any file is written
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    index: dict[str, dict[str, dict]] = {}
    kept: dict[str, list[dict]] = {}
    for process, variation in samples or SAMPLES:
        files = []
        for i in range(files_per_sample):
            name = f"{process}__{variation}__{i:03d}.root"
            cols = generate_arrays(process, variation, events_per_file, seed, i)
            nevts = write_file(out_dir / name, cols, compression=compression)
            files.append({"path": name, "nevts": nevts})
            if f_true is not None and variation == "nominal":
                kept.setdefault(process, []).append(cols)
        entry = {"files": files, "nevts_total": sum(f["nevts"] for f in files)}
        if process == "ttbar" and variation in ("ME_var", "PS_var") and ttbar_scale != 1.0:
            entry["pseudodata_scale"] = ttbar_scale
        index.setdefault(process, {})[variation] = entry
    if f_true is not None:
        index["data"] = {"nominal": _write_data(out_dir, kept, f_true, files_per_sample, seed, samples_config,
                                                  compression)}
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
                samples_config: str | Path | dict | None, compression: str = "zlib") -> dict:
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
        files.append({"path": name, "nevts": write_file(out_dir / name, _take(data, chunk), compression=compression)})
    # the data share events with these MC samples (λ = xsec·lumi/N_MC repeats each): a fit or closure test
    # must not treat them as independent (analysis.reweighting.derive reads this key)
    return {"files": files, "nevts_total": n, "injected_ht": f_true.text,
            "luminosity_pb": float(cfg["luminosity_pb"]), "skim": DATA_SKIM,
            "resampled_from": sorted(f"{process}__nominal" for process in kept)}
