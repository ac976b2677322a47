"""Systematic variations shared by processors: seeded jet smearing, b-tag and flat weight variations.

Random numbers come from a counter-based hash of the event's identity (dataset, event number, jet
index), never from global state, so results are bit-identical across executors, chunkings and reruns.
"""

from __future__ import annotations

import zlib

import numpy as np

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser: a high-quality 64-bit integer hash, vectorised (wraps modulo 2⁶⁴)."""
    with np.errstate(over="ignore"):  # in place on one copy (same integer operations, fewer temporaries)
        z = np.array(x, dtype=np.uint64)
        z += np.uint64(0x9E3779B97F4A7C15)
        z ^= z >> np.uint64(30)
        z *= np.uint64(0xBF58476D1CE4E5B9)
        z ^= z >> np.uint64(27)
        z *= np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
        return z


def _uniform(keys: np.ndarray, salt: int) -> np.ndarray:
    """Uniform numbers in (0, 1) from 64-bit keys and a salt (53-bit mantissa)."""
    h = splitmix64(keys ^ splitmix64(np.full(1, salt, dtype=np.uint64)))
    h >>= np.uint64(11)
    u = h.astype(np.float64)
    u += 0.5
    u /= float(1 << 53)
    return u


def dataset_salt(name: str) -> int:
    """Stable 32-bit salt for a dataset name."""
    return zlib.crc32(name.encode())


def jet_keys(event_ids: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """One 64-bit key per jet: event identity × 256 + index of the jet in its event."""
    event_ids = np.asarray(event_ids, dtype=np.uint64)
    counts = np.asarray(counts, dtype=np.int64)
    local = np.arange(counts.sum(), dtype=np.int64)
    local -= np.repeat(np.cumsum(counts) - counts, counts)  # index of each jet in its event (≥ 0)
    with np.errstate(over="ignore"):  # in place: event id × 256 (mod 2⁶⁴) + index
        keys = np.repeat(event_ids, counts)
        keys *= np.uint64(256)
        keys += local.view(np.uint64)
        return keys


def seeded_normal(keys: np.ndarray, salt: int) -> np.ndarray:
    """Standard-normal numbers from keys (Box–Muller on two hashed uniforms)."""
    u1 = _uniform(keys, 2 * salt + 1)
    u2 = _uniform(keys, 2 * salt + 2)
    # sqrt(-2 ln u1) · cos(2π u2), evaluated in place (same operations in the same order)
    np.log(u1, out=u1)
    u1 *= -2.0
    np.sqrt(u1, out=u1)
    u2 *= 2.0 * np.pi
    np.cos(u2, out=u2)
    u1 *= u2
    return u1


def jet_resolution_factors(event_ids: np.ndarray, counts: np.ndarray, salt: int, width: float = 0.05) -> np.ndarray:
    """JER smearing factors N(1, width) per jet, deterministic in (salt, event id, jet index).

    ``1 + width * seeded_normal(jet_keys(event_ids, counts), salt)`` (vectorised numpy, no JIT start-up).
    """
    keys = jet_keys(np.ascontiguousarray(event_ids, dtype=np.uint64), np.ascontiguousarray(counts, dtype=np.int64))
    out = seeded_normal(keys, salt)
    out *= width
    out += 1.0
    return out


def event_identity(event_numbers: np.ndarray | None, filename: str, entry_start: int, n: int) -> np.ndarray:
    """Event identity: the stored event number, else a hash of (file, global entry index)."""
    if event_numbers is not None:
        return np.asarray(event_numbers, dtype=np.uint64)
    salt = np.uint64(zlib.crc32(filename.encode()))
    with np.errstate(over="ignore"):
        return splitmix64(np.arange(entry_start, entry_start + n, dtype=np.uint64) ^ (salt << np.uint64(40)))


def run_lumi_event_identity(run: np.ndarray, lumi: np.ndarray, event: np.ndarray) -> np.ndarray:
    """Event identity from CMS (run, luminosity block, event): unique even where event numbers repeat."""
    rl = (np.asarray(run, dtype=np.uint64) << np.uint64(32)) | np.asarray(lumi, dtype=np.uint64)
    with np.errstate(over="ignore"):
        return np.asarray(event, dtype=np.uint64) ^ splitmix64(rl)


def btag_weight_variations(jet_pt: np.ndarray, strength: float = 0.075) -> dict[str, np.ndarray]:
    """AGC b-tag NPs: for the i-th selected jet, weight 1 ± strength·pT_i/50 GeV (i = 0..3)."""
    out = {}
    for i in range(jet_pt.shape[1]):
        shift = strength * jet_pt[:, i] / 50.0
        out[f"btag_var_{i}_up"] = 1.0 + shift
        out[f"btag_var_{i}_down"] = 1.0 - shift
    return out


def flat_variation(n: int, name: str, size: float = 0.025) -> dict[str, np.ndarray]:
    """Flat ±size event-weight variation named ``{name}_up/down``."""
    return {f"{name}_up": np.full(n, 1.0 + size), f"{name}_down": np.full(n, 1.0 - size)}
