"""Exact histogram filling: the same bits whatever the chunking, the executor or the merge order.

Why: a coffea run fills one histogram per chunk and adds them up in an order set by the executor (and by
which Dask worker finishes first). Floating-point addition is not associative, so plain ``h.fill(weight=w)``
gives sums that differ in the last bits between runs — harmless for physics, fatal for "did anything
change?" checks, checkpoint resumes and regression tests that compare digests.

How: every weight ``w`` is rounded to a multiple of 2⁻²⁴ (``processors.accumulators.quantise``; relative
change ≤ 2⁻²⁵/|w| ≈ 3e-8 for O(1) weights), and so is ``w²`` — separately, because the square of a quantised
weight has 48 fractional bits and its sums would round again. A sum of numbers on the 2⁻²⁴ grid is exact in
double precision (53-bit mantissa) as long as its magnitude stays below 2²⁹ ≈ 5.4e8, so every partial sum,
in any grouping, is the same number. Fill O(1) weights (e.g. generator weight × scale factors) and apply
large constants such as cross-section × luminosity / N once after merging (one multiplication per bin is
deterministic); ``|Σw|`` and ``Σw²`` per bin must stay below ``EXACT_LIMIT``.

Use it from any coffea processor::

    h = hist.Hist.new.Reg(20, 0, 400, name="ht").StrCat([], name="variation", growth=True).Weight()
    fill_exact(h, ht=ht_values, variation="nominal", weight=w)
"""

from __future__ import annotations

from typing import Any

import hist
import numpy as np

from processors.accumulators import QUANTUM_EXP, quantise
from processors.errors import ProcessorError

__all__ = ["EXACT_LIMIT", "fill_exact", "quantise"]

EXACT_LIMIT = float(2 ** (52 - QUANTUM_EXP))  # sums on the 2⁻²⁴ grid are exact below this magnitude (2²⁸, margin ×2)


def fill_exact(h: hist.Hist, *, weight: Any = None, **axes: Any) -> hist.Hist:
    """Fill ``h`` in place with quantised weights so that sums are exact (order- and chunking-independent).

    Args:
        h: a ``hist.Hist`` with ``Weight`` storage (value and variance are filled) or ``Double`` storage
            (value only). Growing category axes grow exactly as with ``h.fill``.
        weight: per-entry weights, shape ``(n,)`` or a scalar; ``None`` means 1. Dimensionless; keep them
            O(1) (see the module docstring).
        **axes: the values per axis, by axis name, as for ``h.fill`` (arrays of shape ``(n,)`` or scalars).
    Returns:
        ``h`` (filled). Value += Σ q(w), variance += Σ q(w²) with q = rounding to multiples of 2⁻²⁴, so the
        result equals a plain fill within ~3e-8 relative per entry, and is bit-identical for any split of the
        entries into chunks and any order of adding the chunk histograms.
    Raises:
        ProcessorError: storage other than Weight/Double, non-finite weights, or a chunk whose weight sums
            reach the exactness limit.
    """
    storage = h.storage_type
    if storage not in (hist.storage.Weight, hist.storage.Double):
        raise ProcessorError(f"fill_exact needs a Weight or Double storage histogram, not {storage.__name__}")
    n = max((np.shape(v)[0] for v in axes.values() if np.ndim(v) > 0), default=1)
    w = np.ones(n) if weight is None else np.broadcast_to(np.asarray(weight, dtype=np.float64), (n,))
    if not np.all(np.isfinite(w)):
        raise ProcessorError(f"fill_exact: {int((~np.isfinite(w)).sum())} non-finite weight(s)")
    qw, qw2 = quantise(w), quantise(w * w)
    if np.abs(qw).sum() >= EXACT_LIMIT or qw2.sum() >= EXACT_LIMIT:
        raise ProcessorError(f"fill_exact: weight sums of one chunk reach {EXACT_LIMIT:.3g}, beyond exact double "
                             "precision; fill O(1) weights and scale after merging")
    # 1. grow the category axes (zero weight adds exactly 0 to value and variance)
    h.fill(**axes, weight=np.zeros(n))
    # 2. the sums on the grown axes, one Double histogram each for Σq(w) and Σq(w²)
    value = hist.Hist(*h.axes, storage=hist.storage.Double()).fill(**axes, weight=qw)
    view = h.view(flow=True)
    if storage is hist.storage.Weight:
        variance = hist.Hist(*h.axes, storage=hist.storage.Double()).fill(**axes, weight=qw2)
        view["value"] += value.view(flow=True)
        view["variance"] += variance.view(flow=True)
    else:
        view += value.view(flow=True)
    return h
