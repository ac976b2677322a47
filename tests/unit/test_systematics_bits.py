"""The seeded systematics are computed in place (fewer temporaries): same bits as the plain formulas.

The reference here is the textbook expression of each step (SplitMix64, 53-bit uniforms, Box–Muller,
jet keys), written out independently of the production code; every value must agree bit for bit, so
histograms (which hash-seed the JER smearing per jet) cannot change.
"""

from __future__ import annotations

import numpy as np

from processors.systematics import (
    event_identity,
    jet_keys,
    jet_resolution_factors,
    splitmix64,
)


def _splitmix_ref(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _jer_ref(event_ids: np.ndarray, counts: np.ndarray, salt: int, width: float) -> np.ndarray:
    keys = np.array([int(e) * 256 + j for e, c in zip(event_ids, counts) for j in range(c)], dtype=object)
    keys = np.array([k % 2**64 for k in keys], dtype=np.uint64)

    def uniform(s: int) -> np.ndarray:
        h = _splitmix_ref(keys ^ _splitmix_ref(np.full(1, s, dtype=np.uint64)))
        return ((h >> np.uint64(11)).astype(np.float64) + 0.5) / float(1 << 53)

    u1, u2 = uniform(2 * salt + 1), uniform(2 * salt + 2)
    return 1.0 + width * (np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2))


def test_splitmix_and_jer_factors_bitwise_equal_to_the_plain_formulas() -> None:
    rng = np.random.default_rng(7)
    ids = rng.integers(0, 2**64 - 1, 2000, dtype=np.uint64)
    counts = rng.integers(0, 9, 2000)
    x = ids.copy()
    assert np.array_equal(splitmix64(x), _splitmix_ref(ids)) and np.array_equal(x, ids)  # input untouched
    got = jet_resolution_factors(ids, counts, 123456789, 0.05)
    ref = _jer_ref(ids, counts, 123456789, 0.05)
    assert got.dtype == np.float64 and got.shape == (counts.sum(),)
    assert np.array_equal(got.view(np.uint64), ref.view(np.uint64))
    assert abs(got.mean() - 1.0) < 0.005 and abs(got.std() - 0.05) < 0.005  # N(1, 0.05)
    keys = jet_keys(ids[:3], np.array([2, 0, 1]))
    with np.errstate(over="ignore"):
        assert keys.tolist() == [int(ids[0] * np.uint64(256)), int(ids[0] * np.uint64(256) + np.uint64(1)),
                                 int(ids[2] * np.uint64(256))]
    ident = event_identity(None, "f.root", 10, 5)
    assert ident.dtype == np.uint64 and len(set(ident.tolist())) == 5
