"""Per-event kernels for the ttbar selection: jet counting, HT and the bjj trijet mass (vectorised numpy).

A jet is selected under a jet-pT variation if it passes the variation-independent quality mask
``ok`` and factor·pT > pt_min; the whole four-vector is scaled by ``factor``. The kernels do the
same additions and multiplications in the same order as the per-event loop (and the awkward
formulation of ``benchmarks/baseline_processor.py``), so results are bit-identical to it: per-event
sums run over the jets in order (``np.add.at``, which adds element by element in index order), never
through numpy's pairwise summation. Plain numpy on purpose: no JIT start-up
(loading compiled numba kernels cost ~0.5 s CPU in every process and worker).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np


def jet_events(offsets: np.ndarray) -> np.ndarray:
    """int64 per jet: the index of its event (offsets: int64 (n + 1,))."""
    return np.repeat(np.arange(offsets.shape[0] - 1, dtype=np.int64), np.diff(offsets))


def _is_one(factor: np.ndarray | float) -> bool:
    """True if ``factor`` is the scalar 1 (the nominal jet pT: multiplying by it changes no bit)."""
    return np.ndim(factor) == 0 and float(factor) == 1.0


def _masked_counts(offsets: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(cumulative count of the mask with a leading 0, masked count per event)."""
    csum = np.zeros(mask.shape[0] + 1, np.int64)
    np.cumsum(mask, out=csum[1:])
    return csum, csum[offsets[1:]] - csum[offsets[:-1]]


def jet_layout(offsets: np.ndarray, mask: np.ndarray, jet_event: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The masked jets' layout: (their positions, their events, their rank among the masked jets of their event,
    masked count per event), all int64.

    Computed once per jet-pT variation and shared by :func:`count_jets` and :func:`trijet_mass`.
    ``jet_event``: :func:`jet_events` of ``offsets`` if already known (saves recomputing it)."""
    n = offsets.shape[0] - 1
    csum, count = _masked_counts(offsets, mask)
    where = np.flatnonzero(mask)
    event = jet_event.take(where) if jet_event is not None else np.repeat(np.arange(n, dtype=np.int64), count)
    rank = csum.take(where) - csum[offsets[:-1]].take(event)
    return where, event, rank, count


def selected_jets(pt: np.ndarray, ok: np.ndarray, factor: np.ndarray | float, pt_min: float) -> tuple[np.ndarray, np.ndarray]:
    """(factor·pT as float64, selection mask ``ok & factor·pT > pt_min``) per jet under one jet-pT variation."""
    p = pt if _is_one(factor) and pt.dtype == np.float64 else pt * factor  # float64 (factor is float64); x·1 = x
    return p, ok & (p > pt_min)


def count_jets(offsets: np.ndarray, pt: np.ndarray, btag: np.ndarray, ok: np.ndarray, factor: np.ndarray,
               pt_min: float, btag_min: float, lead_pt: np.ndarray | None,
               jet_event: np.ndarray | None = None,
               selected: tuple[np.ndarray, np.ndarray] | None = None,
               layout: tuple[np.ndarray, ...] | None = None,
               tagged: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per event: number of selected jets, of b-tagged selected jets, and HT = Σ factor·pT (in jet order).

    Args:
        offsets: int64 (n + 1,) jet offsets; pt, btag, ok: per jet (float, float, bool); factor: float64 per jet,
            or one float64 for all jets.
        pt_min, btag_min: selection thresholds (GeV, score).
        lead_pt: float64 (n, 4), C-contiguous, filled in place with the unvaried pT of the first four selected jets
            (0 if fewer); None: not wanted.
        jet_event: optional :func:`jet_events` of ``offsets`` (int64 per jet), reused across calls.
        selected: optional :func:`selected_jets` of (pt, ok, factor, pt_min), if already computed.
        layout: optional :func:`jet_layout` of (offsets, selection mask, jet_event), if already computed.
        tagged: optional ``btag > btag_min`` per jet (bool), if already computed (it does not depend on the variation).
    Returns:
        (njet int64 (n,), nb int64 (n,), ht float64 (n,)).
    """
    n = offsets.shape[0] - 1
    p, sel = selected if selected is not None else selected_jets(pt, ok, factor, pt_min)
    where, event, rank, njet = layout if layout is not None else jet_layout(offsets, sel, jet_event)
    if tagged is None:
        tagged = btag > btag_min
    nb = _masked_counts(offsets, sel & tagged)[1]
    ht = np.zeros(n)
    np.add.at(ht, event, p.take(where))  # unbuffered, in jet order: ((0 + p0) + p1) + ... per event
    if lead_pt is not None:
        first = np.flatnonzero(rank < 4)
        # one flat scatter into the C-contiguous (n, 4) array (a 2-D fancy assignment costs ~4× more)
        lead_pt.reshape(-1)[event.take(first) * 4 + rank.take(first)] = pt.take(where.take(first))
    return njet, nb, ht


@lru_cache(maxsize=64)
def _triples(k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index triples a < b < c of k items in nested-loop (lexicographic) order."""
    a, b, c = np.array([(a, b, c) for a in range(k) for b in range(a + 1, k) for c in range(b + 1, k)],
                       dtype=np.int64).reshape(-1, 3).T
    return a, b, c


def trijet_mass(offsets: np.ndarray, pt: np.ndarray, px: np.ndarray, py: np.ndarray, pz: np.ndarray, e: np.ndarray,
                btag: np.ndarray, ok: np.ndarray, factor: np.ndarray, pt_min: float, btag_min: float,
                want: np.ndarray, jet_event: np.ndarray | None = None, selected: np.ndarray | None = None,
                layout: tuple[np.ndarray, ...] | None = None) -> np.ndarray:
    """m_bjj per event where ``want``: mass of the highest-pT trijet of selected jets with ≥ 1 b-tag.

    Trijet sums are ((j_a + j_b) + j_c) of factor-scaled components; ties in trijet pT keep the first
    combination in (a < b < c) order, like ``ak.argmax``. NaN where not wanted or without a
    b-tagged trijet.

    Args:
        offsets: int64 (n + 1,); pt, px, py, pz, e, btag: float per jet; ok: bool per jet; factor: float64 per jet,
            or one float64 for all jets.
        want: bool (n,), events whose mass is wanted.
        jet_event: optional :func:`jet_events` of ``offsets`` (int64 per jet), reused across calls.
        selected: optional selection mask of :func:`selected_jets` (pt, ok, factor, pt_min), if already computed.
        layout: optional :func:`jet_layout` of (offsets, selection mask, jet_event), if already computed.
    Returns:
        float64 (n,) m_bjj in GeV.
    """
    n = offsets.shape[0] - 1
    mbjj = np.full(n, np.nan)
    if layout is None:
        sel = selected if selected is not None else selected_jets(pt, ok, factor, pt_min)[1]
        layout = jet_layout(offsets, sel, jet_event)
    where, event, _, count = layout
    jets = where[want.take(event)]  # the selected jets of wanted events, in order
    k_per_event = np.where(want, count, 0)
    x, y, z, en = px.take(jets), py.take(jets), pz.take(jets), e.take(jets).astype(np.float64, copy=False)
    if not _is_one(factor):  # x·1 = x exactly: the nominal needs no products
        f = factor if np.ndim(factor) == 0 else factor.take(jets)
        x, y, z, en = x * f, y * f, z * f, en * f
    tag = btag.take(jets) > btag_min
    start = np.zeros(n + 1, np.int64)
    np.cumsum(k_per_event, out=start[1:])
    # wanted events grouped by their number k of selected jets (one sort, not one pass over all events per k)
    wanted = np.flatnonzero(want)
    k_wanted = k_per_event.take(wanted)
    by_k = wanted.take(np.argsort(k_wanted, kind="stable"))
    groups = np.bincount(k_wanted)
    bounds = np.zeros(groups.shape[0] + 1, np.int64)
    np.cumsum(groups, out=bounds[1:])
    for k in np.flatnonzero(groups[3:]) + 3:
        evs = by_k[bounds[k]:bounds[k + 1]]
        first = start.take(evs)
        idx = np.arange(k)[:, None] + first  # (k, m): row j holds the positions of the events' j-th selected jets
        a, b, c = _triples(int(k))
        xs, ys, tags = x.take(idx), y.take(idx), tag.take(idx)  # (k, m)
        # (triples, m) arrays built row by row in place (row gathers are contiguous copies): ((j_a + j_b) + j_c) and
        # pT² = sx·sx + sy·sy, the same operations in the same order as per event
        sx = xs.take(a, axis=0)
        sx += xs.take(b, axis=0)
        sx += xs.take(c, axis=0)
        sy = ys.take(a, axis=0)
        sy += ys.take(b, axis=0)
        sy += ys.take(c, axis=0)
        pt2 = sx * sx
        pt2 += sy * sy
        untagged = tags.take(a, axis=0)
        untagged |= tags.take(b, axis=0)
        untagged |= tags.take(c, axis=0)
        np.logical_not(untagged, out=untagged)
        np.putmask(pt2, untagged, -1.0)  # not b-tagged: never the maximum (pt2 >= 0 > -1)
        best = np.argmax(pt2, axis=0)  # first maximum: ties keep the first triple in (a < b < c) order
        cols = np.arange(evs.shape[0])
        has = ~untagged[best, cols]  # the best triple is b-tagged unless none is
        ja, jb, jc = first + a.take(best), first + b.take(best), first + c.take(best)
        bx, by = sx[best, cols], sy[best, cols]
        bz = (z.take(ja) + z.take(jb)) + z.take(jc)
        be = (en.take(ja) + en.take(jb)) + en.take(jc)
        m2 = be * be - bx * bx - by * by - bz * bz
        mass = np.where(m2 > 0.0, np.sqrt(np.where(m2 > 0.0, m2, 0.0)), 0.0)
        mbjj[evs[has]] = mass[has]
    return mbjj


def gather_events(offsets: np.ndarray, rows: np.ndarray, pt: np.ndarray, eta: np.ndarray, phi: np.ndarray,
                  energy: np.ndarray, btag: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, ...]:
    """Jets of the events at ``rows`` (sorted), in order: (offsets, pt, eta, phi, energy, btag, ok).

    ``pt`` and ``btag`` come back as float64 (inputs may be float32: the conversion is exact); ``eta``, ``phi`` and
    ``energy`` keep their stored dtype (their users convert the few jets they read); ``ok`` as bool.
    """
    counts = np.diff(offsets)[rows]
    new_offsets = np.zeros(rows.shape[0] + 1, np.int64)
    np.cumsum(counts, out=new_offsets[1:])
    # positions of the kept jets: one gather index for all columns (cheaper than a per-jet mask per column)
    index = np.arange(new_offsets[-1], dtype=np.int64) + np.repeat(offsets[:-1][rows] - new_offsets[:-1], counts)

    def f64(a: np.ndarray) -> np.ndarray:
        return a.take(index).astype(np.float64, copy=False)

    return (new_offsets, f64(pt), eta.take(index), phi.take(index), energy.take(index), f64(btag),
            ok.take(index).astype(bool, copy=False))
