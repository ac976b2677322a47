"""Adaptive binning: merge fine bins left to right until each bin reaches the statistical minima.

A bin closes once it holds ≥ minEvents data* events, ≥ minMCEntries raw MC entries, is ≥ minBinWidth wide
and (with a target) its k_i = data*_i / MC_i has a relative statistical error ≤ targetRelError, estimated as
sqrt(Var(data*)/data*² + Var(MC)/MC²) (the normalisation, common to all bins, is left out).
"""

from __future__ import annotations

import numpy as np

from analysis.errors import AnalysisError


def relative_error(d: float, var_d: float, m: float, var_m: float) -> float:
    """Relative 1σ of d/m for independent d, m (inf when d or m is not positive)."""
    if d <= 0 or m <= 0:
        return float("inf")
    return float(np.sqrt(max(var_d, 0.0) / (d * d) + max(var_m, 0.0) / (m * m)))


def adaptive_groups(fine_edges: np.ndarray, events: np.ndarray, mc_entries: np.ndarray, min_events: float,
                    min_width: float, min_mc_entries: float = 0.0, *, target_rel_error: float | None = None,
                    events_var: np.ndarray | None = None, mc_sumw: np.ndarray | None = None,
                    mc_var: np.ndarray | None = None) -> list[tuple[int, int]]:
    """Half-open ranges [start, stop) of fine bins forming the adaptive bins.

    Args:
        fine_edges: (n+1,) fine HT_all edges [GeV].
        events: (n,) data* per fine bin (data minus the constant samples).
        mc_entries: (n,) raw MC entries of the reweighted samples per fine bin.
        min_events, min_width, min_mc_entries: the seed's minima (events, GeV, entries).
        target_rel_error: maximal relative error of k_i (None: no precision requirement); needs
            ``events_var`` (Var data*), ``mc_sumw`` (Σw of the reweighted MC) and ``mc_var`` (its Σw², or 0).

    Returns:
        Contiguous groups covering the populated range (first to last fine bin with an MC entry). A trailing
        remainder that does not reach the minima is merged into the previous bin; a single group is returned
        when the whole range cannot be split into two bins that reach them.

    Raises:
        AnalysisError: inconsistent shapes or no MC entry at all.
    """
    fine_edges = np.asarray(fine_edges, dtype=np.float64)
    events, mc_entries = np.asarray(events, dtype=np.float64), np.asarray(mc_entries, dtype=np.float64)
    if len(fine_edges) != len(events) + 1 or len(events) != len(mc_entries):
        raise AnalysisError("adaptive binning: fine edges and contents do not match")
    precise = target_rel_error is not None
    if precise and (events_var is None or mc_sumw is None or mc_var is None):
        raise AnalysisError("adaptive binning: targetRelError needs the data* variance and the MC sums")
    zeros = np.zeros_like(events)
    ev_var = np.asarray(events_var if events_var is not None else zeros, dtype=np.float64)
    msum = np.asarray(mc_sumw if mc_sumw is not None else zeros, dtype=np.float64)
    mvar = np.asarray(mc_var if mc_var is not None else zeros, dtype=np.float64)
    filled = np.flatnonzero(mc_entries > 0)
    if filled.size == 0:
        raise AnalysisError("adaptive binning: no MC entries in the derivation region")
    first, last = int(filled[0]), int(filled[-1]) + 1
    groups: list[tuple[int, int]] = []
    start = first
    acc = np.zeros(5)  # events, MC entries, Var(events), MC Σw, MC Σw²
    for i in range(first, last):
        acc += (events[i], mc_entries[i], ev_var[i], msum[i], mvar[i])
        width = fine_edges[i + 1] - fine_edges[start]
        ok = acc[0] >= min_events and acc[1] >= min_mc_entries and width >= min_width - 1e-9
        if ok and precise:
            ok = relative_error(acc[0], acc[2], acc[3], acc[4]) <= target_rel_error
        if ok:
            groups.append((start, i + 1))
            start, acc = i + 1, np.zeros(5)
    if start < last:
        if groups:
            groups[-1] = (groups[-1][0], last)
        else:
            groups.append((start, last))
    return groups


def group_sum(values: np.ndarray, groups: list[tuple[int, int]]) -> np.ndarray:
    """Sum a per-fine-bin array (last axis) over each group."""
    return np.stack([np.asarray(values)[..., a:b].sum(axis=-1) for a, b in groups], axis=-1)
