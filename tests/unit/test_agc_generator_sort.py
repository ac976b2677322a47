"""The per-event pT ordering of the AGC generator's candidates (fileset.generate.agc._sorted_by_event).

Truth: events in order, each by descending stored (float32) pT — ``np.lexsort`` when all pT in an event
differ; with equal pT in one event, the generator keeps the order of its original implementation,
numpy's argsort of the key event << 32 | ~bits(pT) (so that the generated events never changed).
"""

from __future__ import annotations

import numpy as np
import pytest

from fileset.generate.agc import _sorted_by_event


def _lexsort(event: np.ndarray, pt32: np.ndarray) -> np.ndarray:
    return np.lexsort((-pt32.astype(np.float64), event))


def _argsort_of_key(event: np.ndarray, pt32: np.ndarray) -> np.ndarray:
    key = event.astype(np.uint64) << np.uint64(32) | ~pt32.view(np.uint32)
    return np.argsort(key)


def _sources(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """Event indices of ``k`` concatenated candidate sources, each non-decreasing (as the generator builds them)."""
    return np.concatenate([np.repeat(np.arange(n), rng.integers(0, 3, n)) for _ in range(k)])


@pytest.mark.parametrize("n", [1, 1000, 70_001])
def test_order_is_events_then_descending_pt(n):
    rng = np.random.default_rng(n)
    event = _sources(n, 9, rng)
    pt32 = (20.0 + rng.permutation(event.size)).astype(np.float32)  # distinct
    assert np.unique(pt32).size == pt32.size
    order, counts = _sorted_by_event(event, pt32, n)
    np.testing.assert_array_equal(order, _lexsort(event, pt32))
    np.testing.assert_array_equal(counts, np.bincount(event, minlength=n))
    flavour = rng.integers(0, 6, event.size).astype(np.int32)
    (pt_sorted, flavour_sorted), counts = _sorted_by_event(event, pt32, n, (pt32, flavour))
    np.testing.assert_array_equal(pt_sorted, pt32[order])
    np.testing.assert_array_equal(flavour_sorted, flavour[order])
    assert flavour_sorted.dtype == np.int32


def test_equal_pt_in_an_event_keeps_the_argsort_order():
    rng = np.random.default_rng(5)
    event = _sources(20_000, 9, rng)
    pt32 = (20.0 + rng.exponential(40.0, event.size)).astype(np.float32)
    pt32[::50] = np.float32(50.0)  # many events with two equal pT
    (flavour_sorted,), _ = _sorted_by_event(event, pt32, 20_000, (np.arange(event.size),))
    np.testing.assert_array_equal(flavour_sorted, _argsort_of_key(event, pt32))
    order, _ = _sorted_by_event(event, pt32, 20_000)
    np.testing.assert_array_equal(order, _argsort_of_key(event, pt32))


def test_unsorted_events_take_the_argsort_path():
    rng = np.random.default_rng(3)
    event = rng.integers(0, 500, 20_000)  # thousands of runs
    pt32 = rng.exponential(10.0, event.size).astype(np.float32)
    order, counts = _sorted_by_event(event, pt32, 500)
    np.testing.assert_array_equal(order, _argsort_of_key(event, pt32))
    np.testing.assert_array_equal(counts, np.bincount(event, minlength=500))
    (pt_sorted,), _ = _sorted_by_event(event, pt32, 500, (pt32,))
    np.testing.assert_array_equal(pt_sorted, pt32[order])


def test_wide_pt_range_and_empty():
    rng = np.random.default_rng(4)
    event = np.arange(3000).repeat(2)
    pt32 = np.array([0.0, 1e-30, 5.0, 3e38], np.float32)[np.tile([0, 1, 3, 2], 1500)]  # key needs 31 pT bits
    order, _ = _sorted_by_event(event, pt32, 3000)
    np.testing.assert_array_equal(order, _lexsort(event, pt32))
    order, counts = _sorted_by_event(np.zeros(0, np.int64), np.zeros(0, np.float32), 4)
    assert order.size == 0 and counts.tolist() == [0, 0, 0, 0]
