"""Accumulator helpers that make histogram sums exact, hence independent of chunking and merge order."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Event weights are rounded to multiples of 2⁻²⁴ (relative precision ~6e-8 for O(1) weights) before
# filling. Every partial sum is then an exactly representable double while it stays below 2²⁹ weight
# units per bin, so any grouping of chunks gives the same bits.
QUANTUM_EXP = 24


def quantise(w: np.ndarray) -> np.ndarray:
    """Round weights to the 2⁻²⁴ grid so that their sums are exact in double precision."""
    scale = float(1 << QUANTUM_EXP)
    return np.rint(np.asarray(w, dtype=np.float64) * scale) / scale


@dataclass(frozen=True)
class Constant:
    """A per-dataset constant (e.g. normalisation) that merges only with an equal value."""

    value: float

    def __add__(self, other: "Constant") -> "Constant":
        if not isinstance(other, Constant) or other.value != self.value:
            raise ValueError(f"inconsistent constants while merging: {self.value} vs {other}")
        return self
