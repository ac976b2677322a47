"""Non-finite jet kinematics are corrupt input: one ProcessorError naming quantity, file and entry (one-pass check)."""

from __future__ import annotations

import numpy as np
import pytest

from processors.errors import ProcessorError
from processors.objects import ObjectView
from processors.ttbar_core import check_finite


def _view(pt: np.ndarray) -> ObjectView:
    n_jets = pt.shape[0]
    offsets = np.array([0, 1, n_jets], dtype=np.int64)  # event 0: jet 0; event 1: the rest
    ones = np.ones(n_jets, dtype=pt.dtype)
    return ObjectView(2, offsets, pt, ones, ones, ones, ones, np.ones(n_jets, bool), np.ones(2, np.int64),
                      np.arange(2, dtype=np.uint64))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_non_finite_jet_named_with_entry(bad: float, dtype: type) -> None:
    pt = np.array([30.0, 40.0, bad, 50.0], dtype=dtype)
    with pytest.raises(ProcessorError, match=rf"f\.root: jet pt is {bad} at entry 11 \(1 non-finite value\(s\) in entries 10-12\)"):
        check_finite(_view(pt), {"filename": "f.root", "entrystart": 10, "entrystop": 12})


def test_inf_minus_inf_and_huge_finite_values() -> None:
    with pytest.raises(ProcessorError, match="jet pt is inf at entry 1"):
        check_finite(_view(np.array([1.0, np.inf, -np.inf])), {"filename": "f.root"})
    check_finite(_view(np.array([1.7e308, 1.7e308, 1.0])), {"filename": "f.root"})  # the float64 sum overflows: still fine
    check_finite(_view(np.array([3.0e38, 3.0e38], dtype=np.float32)), {"filename": "f.root"})
