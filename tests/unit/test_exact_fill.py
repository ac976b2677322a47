"""fill_exact: equal to a plain fill within 1e-7 relative, and bit-identical for any chunking and merge order."""

from __future__ import annotations

import hist
import numpy as np
import pytest

from processors.errors import ProcessorError
from processors.exact import fill_exact


def _empty(storage=hist.storage.Weight()) -> hist.Hist:
    return hist.Hist(hist.axis.Regular(20, 0.0, 200.0, name="x"),
                     hist.axis.StrCategory([], name="variation", growth=True), storage=storage)


@pytest.fixture(scope="module")
def entries():
    rng = np.random.default_rng(20240611)
    n = 200_000
    x = rng.exponential(60.0, n) - 5.0  # under- and overflow populated
    w = rng.lognormal(0.0, 0.4, n) * rng.choice([1.0, -1.0], n, p=[0.9, 0.1])  # negative weights too
    var = rng.choice(["nominal", "up", "down"], n)
    return x, w, var


def _chunked(x, w, var, bounds, order) -> hist.Hist:
    """One histogram per chunk (as a coffea run does), added up in the given order."""
    parts = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        h = _empty()
        for v in ("down", "nominal", "up"):  # categories appear in a chunk-dependent order
            m = var[lo:hi] == v
            fill_exact(h, x=x[lo:hi][m], variation=v, weight=w[lo:hi][m])
        parts.append(h)
    total = None
    for i in order:
        total = parts[i] if total is None else total + parts[i]
    return total


def test_equals_plain_fill_within_1e7(entries):
    x, w, var = entries
    exact, plain = _empty(), _empty()
    fill_exact(exact, x=x, variation=var, weight=w)
    plain.fill(x=x, variation=var, weight=w)
    for v in ("nominal", "up", "down"):
        a, b = exact[:, v], plain[:, v]
        np.testing.assert_allclose(a.values(flow=True), b.values(flow=True), rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(a.variances(flow=True), b.variances(flow=True), rtol=1e-7, atol=1e-9)
    # independent truth: numpy sums of w and w² per bin
    m = (var == "up") & (x >= 0) & (x < 200)
    idx = np.floor(x[m] / 10.0).astype(int)
    np.testing.assert_allclose(exact[:, "up"].values(), np.bincount(idx, w[m], 20), rtol=1e-7)
    np.testing.assert_allclose(exact[:, "up"].variances(), np.bincount(idx, w[m] ** 2, 20), rtol=1e-7)


def test_bit_identical_for_any_chunking_and_merge_order(entries):
    x, w, var = entries
    n = x.shape[0]
    rng = np.random.default_rng(1)
    reference = _chunked(x, w, var, [0, n], [0])
    for n_chunks in (7, 64):
        bounds = np.unique(np.concatenate([[0, n], rng.integers(1, n, n_chunks - 1)]))
        k = bounds.shape[0] - 1
        for order in (list(range(k)), list(rng.permutation(k))):
            h = _chunked(x, w, var, bounds, order)
            for v in ("nominal", "up", "down"):
                assert np.array_equal(h[:, v].values(flow=True), reference[:, v].values(flow=True)), (n_chunks, v)
                assert np.array_equal(h[:, v].variances(flow=True), reference[:, v].variances(flow=True)), (n_chunks, v)
    # a plain fill is not order-independent in general; the exact one is, by construction
    assert reference[:, "nominal"].values().sum() != 0


def test_double_storage_scalar_weight_and_errors():
    h = _empty(hist.storage.Double())
    fill_exact(h, x=np.array([5.0, 15.0, 15.0]), variation="a", weight=0.1)
    assert h[:, "a"].values()[:2].tolist() == [round(0.1 * 2**24) / 2**24, 2 * round(0.1 * 2**24) / 2**24]
    with pytest.raises(ProcessorError, match="Weight or Double"):
        fill_exact(hist.Hist(hist.axis.Regular(2, 0, 1), storage=hist.storage.Int64()), x=[0.5])
    with pytest.raises(ProcessorError, match="non-finite"):
        fill_exact(_empty(), x=[1.0], variation="a", weight=[np.nan])
    with pytest.raises(ProcessorError, match="beyond exact"):
        fill_exact(_empty(), x=[1.0], variation="a", weight=[1e9])
