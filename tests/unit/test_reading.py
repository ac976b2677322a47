"""Basket layout of the generated files and basket-aligned chunk ranges (``schemas.reading``)."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest
import uproot

from fileset.generate.agc import BASKET_ENTRIES, generate_arrays, write_file
from schemas.reading import basket_aligned_ranges


def test_generated_baskets_have_fixed_entry_counts(tmp_path: Path) -> None:
    """Every branch of a generated file has baskets of the requested entry count (the last holds the rest)."""
    path = tmp_path / "a.root"
    write_file(path, generate_arrays("ttbar", "nominal", 2500, 3), basket_entries=1000)
    with uproot.open(path) as f:
        tree = f["events"]
        assert tree.common_entry_offsets() == [0, 1000, 2000, 2500]
        assert all(list(b.entry_offsets) == [0, 1000, 2000, 2500] for b in tree.values())
    assert BASKET_ENTRIES > 0 and 100_000 % BASKET_ENTRIES == 0  # divides the default chunk size


@pytest.mark.parametrize("boundaries, n, limit", [
    ([0, 50_000, 100_000, 150_000, 200_000], 200_000, 100_000),
    ([0, 1000, 2000, 3000, 4000], 4000, 1500),
    ([0, 700, 1500, 1600, 4000, 4100], 4100, 1000),
    ([0, 200_000], 200_000, 100_000),
    ([0, 3, 9, 10], 10, 4),
])
def test_basket_aligned_ranges(boundaries: list[int], n: int, limit: int) -> None:
    """Chunks tile [0, n); a chunk of whole baskets stays within the limit and could not take the next
    basket too; only a basket longer than the limit is cut, into coffea's equal parts."""
    ranges = basket_aligned_ranges(boundaries, n, limit)
    assert ranges[0][0] == 0 and ranges[-1][1] == n
    assert all(r[1] == s[0] for r, s in pairwise(ranges))
    baskets = list(pairwise(boundaries))
    for start, stop in baskets:
        inside = [(a, b) for a, b in ranges if start <= a and b <= stop and (a, b) != (start, stop)]
        if stop - start <= limit:
            assert not inside, (start, stop, inside)
        elif inside:
            parts = max(round((stop - start) / limit), 1)
            step = -(-(stop - start) // parts)
            assert inside == [(a, min(a + step, stop)) for a in range(start, stop, step)]
    for a, b in ranges:
        if a in boundaries and b in boundaries and b - a <= limit:
            nxt = [s for s in boundaries if s > b]
            assert not nxt or nxt[0] - a > limit
    assert basket_aligned_ranges([0, 1000], 1000, 400) == [(0, 500), (500, 1000)]  # as coffea cuts one basket
