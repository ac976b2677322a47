"""Compiled per-event kernels for the ttbar selection: jet counting, HT and the bjj trijet mass."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def select_jets(offsets, pt, px, py, pz, e, btag, factor, pt_min, btag_min, lead_pt):  # pragma: no cover - compiled
    """Per event under a jet-pT variation: number of selected jets, b-tags, HT and m_bjj.

    A jet is selected if factor·pT > pt_min; the whole four-vector is scaled by ``factor``.
    m_bjj is the mass of the highest-pT trijet of selected jets containing at least one b-tag
    (NaN when fewer than three selected jets). ``lead_pt`` receives the nominal pT of the first
    four selected jets (for the b-tag weight variations).
    """
    n = offsets.shape[0] - 1
    njet = np.zeros(n, np.int64)
    nb = np.zeros(n, np.int64)
    ht = np.zeros(n, np.float64)
    mbjj = np.full(n, np.nan)
    idx = np.empty(64, np.int64)
    for ev in range(n):
        k = 0
        for j in range(offsets[ev], offsets[ev + 1]):
            if pt[j] * factor[j] > pt_min:
                if k < 64:
                    idx[k] = j
                if k < 4:
                    lead_pt[ev, k] = pt[j]
                k += 1
                ht[ev] += pt[j] * factor[j]
                if btag[j] > btag_min:
                    nb[ev] += 1
        njet[ev] = k
        kk = min(k, 64)
        best_pt2 = -1.0
        for a in range(kk):
            ja = idx[a]
            for b in range(a + 1, kk):
                jb = idx[b]
                for c in range(b + 1, kk):
                    jc = idx[c]
                    if btag[ja] <= btag_min and btag[jb] <= btag_min and btag[jc] <= btag_min:
                        continue
                    sx = px[ja] * factor[ja] + px[jb] * factor[jb] + px[jc] * factor[jc]
                    sy = py[ja] * factor[ja] + py[jb] * factor[jb] + py[jc] * factor[jc]
                    pt2 = sx * sx + sy * sy
                    if pt2 > best_pt2:
                        best_pt2 = pt2
                        sz = pz[ja] * factor[ja] + pz[jb] * factor[jb] + pz[jc] * factor[jc]
                        se = e[ja] * factor[ja] + e[jb] * factor[jb] + e[jc] * factor[jc]
                        m2 = se * se - sx * sx - sy * sy - sz * sz
                        mbjj[ev] = np.sqrt(m2) if m2 > 0.0 else 0.0
    return njet, nb, ht, mbjj
