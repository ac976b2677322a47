"""The per-event pT ordering of the AGC generator's candidates (fileset.generate.agc._sorted_by_event).

Truth: ``np.lexsort`` on (event, descending float32 pT, candidate index), i.e. events in order, each by
descending stored pT, equal pT in candidate order.
"""

from __future__ import annotations

import numpy as np
import pytest

from fileset.generate.agc import _sorted_by_event


def _truth(event: np.ndarray, pt32: np.ndarray) -> np.ndarray:
    return np.lexsort((np.arange(event.size), -pt32.astype(np.float64), event))


def _sources(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """Event indices of ``k`` concatenated candidate sources, each non-decreasing (as the generator builds them)."""
    return np.concatenate([np.repeat(np.arange(n), rng.integers(0, 3, n)) for _ in range(k)])


@pytest.mark.parametrize("n", [1, 1000, 70_001])
def test_order_is_events_then_descending_pt(n):
    rng = np.random.default_rng(n)
    event = _sources(n, 9, rng)
    pt32 = (20.0 + rng.exponential(40.0, event.size)).astype(np.float32)
    pt32[::7] = np.float32(50.0)  # ties inside events: candidate order
    order, counts = _sorted_by_event(event, pt32, n)
    np.testing.assert_array_equal(order, _truth(event, pt32))
    np.testing.assert_array_equal(counts, np.bincount(event, minlength=n))
    flavour = rng.integers(0, 6, event.size).astype(np.int32)
    (pt_sorted, flavour_sorted), counts = _sorted_by_event(event, pt32, n, (pt32, flavour))
    np.testing.assert_array_equal(pt_sorted, pt32[_truth(event, pt32)])
    np.testing.assert_array_equal(flavour_sorted, flavour[_truth(event, pt32)])
    assert flavour_sorted.dtype == np.int32


def test_unsorted_events_take_the_argsort_path():
    rng = np.random.default_rng(3)
    event = rng.integers(0, 500, 20_000)  # thousands of runs
    pt32 = rng.exponential(10.0, event.size).astype(np.float32)
    pt32[::5] = np.float32(0.0)
    order, counts = _sorted_by_event(event, pt32, 500)
    np.testing.assert_array_equal(order, _truth(event, pt32))
    np.testing.assert_array_equal(counts, np.bincount(event, minlength=500))
    (pt_sorted,), _ = _sorted_by_event(event, pt32, 500, (pt32,))
    np.testing.assert_array_equal(pt_sorted, pt32[_truth(event, pt32)])


def test_wide_pt_range_and_empty():
    rng = np.random.default_rng(4)
    event = _sources(3000, 4, rng)
    pt32 = rng.choice(np.array([0.0, 1e-30, 5.0, 3e38], np.float32), event.size)  # key needs 31 pT bits
    order, _ = _sorted_by_event(event, pt32, 3000)
    np.testing.assert_array_equal(order, _truth(event, pt32))
    order, counts = _sorted_by_event(np.zeros(0, np.int64), np.zeros(0, np.float32), 4)
    assert order.size == 0 and counts.tolist() == [0, 0, 0, 0]
