"""The vectorised ttbar kernels against a plain per-event loop (the definition), bit for bit, with and without a
shared :func:`processors.ttbar_kernels.jet_layout`."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest

from processors.ttbar_kernels import count_jets, jet_events, jet_layout, selected_jets, trijet_mass

PT_MIN, BTAG_MIN = 25.0, 0.5


def _events(seed: int, n: int = 400, ties: bool = False):
    """Random jets; ``ties``: pT and φ from a few values, so that trijets of equal pT (ties) are common."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 9, n)
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    m = int(offsets[-1])
    pt = rng.choice([30.0, 60.0], m) if ties else rng.uniform(15.0, 120.0, m)
    phi = rng.choice([0.0, np.pi / 2], m) if ties else rng.uniform(-np.pi, np.pi, m)
    eta = rng.uniform(-2.4, 2.4, m)
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    e = np.sqrt(px * px + py * py + pz * pz + rng.uniform(0.0, 100.0, m))
    btag, ok = rng.uniform(0.0, 1.0, m), rng.uniform(0.0, 1.0, m) > 0.1
    return offsets, pt, px, py, pz, e, btag, ok


def _reference(offsets, pt, px, py, pz, e, btag, ok, factor):
    """Per event, jet by jet: (njet, nb, HT, lead pT, m_bjj of the highest-pT b-tagged trijet for njet ≥ 4, nb ≥ 2)."""
    n = offsets.shape[0] - 1
    f = np.broadcast_to(factor, pt.shape)
    njet, nb, ht = np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n)
    lead, mbjj = np.zeros((n, 4)), np.full(n, np.nan)
    for i in range(n):
        jets = [j for j in range(offsets[i], offsets[i + 1]) if ok[j] and pt[j] * f[j] > PT_MIN]
        njet[i] = len(jets)
        nb[i] = sum(btag[j] > BTAG_MIN for j in jets)
        total = 0.0
        for r, j in enumerate(jets):
            total = total + pt[j] * f[j]
            if r < 4:
                lead[i, r] = pt[j]
        ht[i] = total
        if njet[i] >= 4 and nb[i] >= 2:
            best, best_pt2 = None, -1.0
            for a, b, c in combinations(jets, 3):
                if not (btag[a] > BTAG_MIN or btag[b] > BTAG_MIN or btag[c] > BTAG_MIN):
                    continue
                sx = (px[a] * f[a] + px[b] * f[b]) + px[c] * f[c]
                sy = (py[a] * f[a] + py[b] * f[b]) + py[c] * f[c]
                if sx * sx + sy * sy > best_pt2:
                    best, best_pt2 = (a, b, c, sx, sy), sx * sx + sy * sy
            if best is not None:
                a, b, c, sx, sy = best
                sz = (pz[a] * f[a] + pz[b] * f[b]) + pz[c] * f[c]
                se = (e[a] * f[a] + e[b] * f[b]) + e[c] * f[c]
                m2 = se * se - sx * sx - sy * sy - sz * sz
                mbjj[i] = np.sqrt(m2) if m2 > 0.0 else 0.0
    return njet, nb, ht, lead, mbjj


@pytest.mark.parametrize("seed, kind, ties", [(1, "nominal", False), (2, "scalar", False), (3, "per-jet", False),
                                              (4, "nominal", True), (5, "scalar", True)])
def test_kernels_match_the_per_event_loop(seed, kind, ties):
    offsets, pt, px, py, pz, e, btag, ok = _events(seed, ties=ties)
    factor = {"nominal": np.float64(1.0), "scalar": np.float64(1.03),
              "per-jet": np.random.default_rng(seed).normal(1.0, 0.1, pt.shape[0])}[kind]
    njet_r, nb_r, ht_r, lead_r, m_r = _reference(offsets, pt, px, py, pz, e, btag, ok, factor)
    jet_event = jet_events(offsets)
    selected = selected_jets(pt, ok, factor, PT_MIN)
    for layout, tagged in ((None, None), (jet_layout(offsets, selected[1], jet_event), btag > BTAG_MIN)):
        lead = np.zeros((offsets.shape[0] - 1, 4))
        njet, nb, ht = count_jets(offsets, pt, btag, ok, factor, PT_MIN, BTAG_MIN, lead, jet_event,
                                  selected=selected, layout=layout, tagged=tagged)
        without_lead = count_jets(offsets, pt, btag, ok, factor, PT_MIN, BTAG_MIN, None, jet_event,
                                  selected=selected, layout=layout, tagged=tagged)
        assert all(np.array_equal(u, v) for u, v in zip(without_lead, (njet, nb, ht)))
        want = (njet >= 4) & (nb >= 2)
        mbjj = trijet_mass(offsets, pt, px, py, pz, e, btag, ok, factor, PT_MIN, BTAG_MIN, want, jet_event,
                           selected=selected[1], layout=layout)
        assert np.array_equal(njet, njet_r) and np.array_equal(nb, nb_r)
        assert np.array_equal(ht, ht_r) and np.array_equal(lead, lead_r)  # bit for bit
        assert np.array_equal(mbjj, m_r, equal_nan=True)
    assert np.isfinite(m_r).sum() > 20  # the trijet search is exercised
