"""Compiled per-event kernels for the ttbar selection: jet counting, HT and the bjj trijet mass.

A jet is selected under a jet-pT variation if it passes the variation-independent quality mask
``ok`` and factor·pT > pt_min; the whole four-vector is scaled by ``factor``. Only additions and
multiplications happen here (in the same order as the awkward formulation), so results are
bit-identical to it; transcendental functions (px = pT·cos φ, ...) are evaluated by numpy outside.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def count_jets(offsets, pt, btag, ok, factor, pt_min, btag_min, lead_pt):  # pragma: no cover - compiled
    """Per event: number of selected jets, of b-tagged selected jets, and HT = Σ factor·pT.

    ``lead_pt`` (n, 4) receives the unvaried pT of the first four selected jets (b-tag weights).
    """
    n = offsets.shape[0] - 1
    njet = np.zeros(n, np.int64)
    nb = np.zeros(n, np.int64)
    ht = np.zeros(n, np.float64)
    for ev in range(n):
        k = 0
        h = 0.0
        b = 0
        for j in range(offsets[ev], offsets[ev + 1]):
            if ok[j]:
                p = pt[j] * factor[j]
                if p > pt_min:
                    if k < 4:
                        lead_pt[ev, k] = pt[j]
                    k += 1
                    h += p
                    if btag[j] > btag_min:
                        b += 1
        njet[ev] = k
        nb[ev] = b
        ht[ev] = h
    return njet, nb, ht


@numba.njit(cache=True, nogil=True)
def trijet_mass(offsets, pt, px, py, pz, e, btag, ok, factor, pt_min, btag_min, want):  # pragma: no cover - compiled
    """m_bjj per event where ``want``: mass of the highest-pT trijet of selected jets with ≥ 1 b-tag.

    Ties in trijet pT keep the first combination in (a < b < c) order, like ``ak.argmax``; NaN
    where not wanted or without a b-tagged trijet.
    """
    n = offsets.shape[0] - 1
    mbjj = np.full(n, np.nan)
    cap = 0
    for ev in range(n):
        if want[ev]:
            cap = max(cap, offsets[ev + 1] - offsets[ev])
    idx = np.empty(max(cap, 1), np.int64)
    for ev in range(n):
        if not want[ev]:
            continue
        k = 0
        for j in range(offsets[ev], offsets[ev + 1]):
            if ok[j] and pt[j] * factor[j] > pt_min:
                idx[k] = j
                k += 1
        best_pt2 = -1.0
        for a in range(k):
            ja = idx[a]
            xa, ya = px[ja] * factor[ja], py[ja] * factor[ja]
            for b in range(a + 1, k):
                jb = idx[b]
                xab, yab = xa + px[jb] * factor[jb], ya + py[jb] * factor[jb]
                for c in range(b + 1, k):
                    jc = idx[c]
                    if btag[ja] <= btag_min and btag[jb] <= btag_min and btag[jc] <= btag_min:
                        continue
                    sx = xab + px[jc] * factor[jc]
                    sy = yab + py[jc] * factor[jc]
                    pt2 = sx * sx + sy * sy
                    if pt2 > best_pt2:
                        best_pt2 = pt2
                        sz = pz[ja] * factor[ja] + pz[jb] * factor[jb] + pz[jc] * factor[jc]
                        se = e[ja] * factor[ja] + e[jb] * factor[jb] + e[jc] * factor[jc]
                        m2 = se * se - sx * sx - sy * sy - sz * sz
                        mbjj[ev] = np.sqrt(m2) if m2 > 0.0 else 0.0
    return mbjj


@numba.njit(cache=True, nogil=True)
def gather_events(offsets, rows, pt, eta, phi, energy, btag, ok):  # pragma: no cover - compiled
    """Jets of the events at ``rows`` (sorted), in order: (offsets, pt, eta, phi, energy, btag, ok)."""
    m = rows.shape[0]
    new_offsets = np.zeros(m + 1, np.int64)
    for i in range(m):
        ev = rows[i]
        new_offsets[i + 1] = new_offsets[i] + offsets[ev + 1] - offsets[ev]
    total = new_offsets[m]
    out_pt, out_eta, out_phi = np.empty(total), np.empty(total), np.empty(total)
    out_e, out_b, out_ok = np.empty(total), np.empty(total), np.empty(total, np.bool_)
    for i in range(m):
        src = offsets[rows[i]]
        dst = new_offsets[i]
        for k in range(new_offsets[i + 1] - dst):
            out_pt[dst + k] = pt[src + k]
            out_eta[dst + k] = eta[src + k]
            out_phi[dst + k] = phi[src + k]
            out_e[dst + k] = energy[src + k]
            out_b[dst + k] = btag[src + k]
            out_ok[dst + k] = ok[src + k]
    return new_offsets, out_pt, out_eta, out_phi, out_e, out_b, out_ok
