"""Adaptive binning: merge fine bins left to right until each bin has ≥ minEvents events and ≥ minBinWidth."""

from __future__ import annotations

import numpy as np

from analysis.errors import AnalysisError


def adaptive_groups(fine_edges: np.ndarray, events: np.ndarray, mc_entries: np.ndarray, min_events: float,
                    min_width: float, min_mc_entries: float = 0.0) -> list[tuple[int, int]]:
    """Half-open ranges [start, stop) of fine bins forming the adaptive bins.

    The populated range (first to last fine bin with any MC entry) is scanned left to right; a bin closes
    once its ``events`` (data*), raw MC entries and width reach the minima. A trailing remainder that
    does not reach them is merged into the previous bin. A single bin is returned when the whole range
    does not reach the minima.
    """
    fine_edges = np.asarray(fine_edges, dtype=np.float64)
    events, mc_entries = np.asarray(events, dtype=np.float64), np.asarray(mc_entries, dtype=np.float64)
    if len(fine_edges) != len(events) + 1 or len(events) != len(mc_entries):
        raise AnalysisError("adaptive binning: fine edges and contents do not match")
    filled = np.flatnonzero(mc_entries > 0)
    if filled.size == 0:
        raise AnalysisError("adaptive binning: no MC entries in the derivation region")
    first, last = int(filled[0]), int(filled[-1]) + 1
    groups: list[tuple[int, int]] = []
    start, n_ev, n_mc = first, 0.0, 0.0
    for i in range(first, last):
        n_ev += events[i]
        n_mc += mc_entries[i]
        width = fine_edges[i + 1] - fine_edges[start]
        if n_ev >= min_events and n_mc >= min_mc_entries and width >= min_width - 1e-9:
            groups.append((start, i + 1))
            start, n_ev, n_mc = i + 1, 0.0, 0.0
    if start < last:
        if groups:
            groups[-1] = (groups[-1][0], last)
        else:
            groups.append((start, last))
    return groups


def group_sum(values: np.ndarray, groups: list[tuple[int, int]]) -> np.ndarray:
    """Sum a per-fine-bin array (last axis) over each group."""
    return np.stack([np.asarray(values)[..., a:b].sum(axis=-1) for a, b in groups], axis=-1)
