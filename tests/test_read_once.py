"""Read each needed byte once: a processing run inflates exactly the branches the processor declares,
every basket of them exactly once (chunks on basket boundaries), and the pre-flight reads no payload.

uproot's own basket reader is observed (a recording wrapper around ``TBasket.read_members`` that
calls the real method): every basket whose payload is read — and, when compressed, inflated —
is logged as (file, branch, basket number). Histograms of runs with different basket layouts are
compared bit for bit. No timing here; ``benchmarks/side_by_side.py`` measures.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import uproot
from uproot.models.TBasket import Model_TBasket

from analysis.agc.run import run_ttbar
from analysis.execution.preflight import preflight
from fileset.build import build_fileset
from fileset.generate.agc import BASKET_ENTRIES, generate_arrays, write_file
from fileset.generate.nanoaod import generate_nanoaod
from processors.ttbar import TtbarAnalysis
from schemas.reading import basket_aligned_ranges

EVENTS = 4000
BASKET = 1000


@pytest.fixture
def basket_log(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """Counter of (file name, branch, basket number) for every basket payload uproot reads in this process."""
    log: Counter = Counter()
    real = Model_TBasket.read_members

    def recording(self, chunk, cursor, context, file):
        real(self, chunk, cursor, context, file)
        if context.get("read_basket", True):
            log[(Path(file.file_path).name, self._parent.name, self._basket_num)] += 1

    monkeypatch.setattr(Model_TBasket, "read_members", recording)
    return log


def _fileset(tmp: Path, basket_entries: int) -> Path:
    """ttbar nominal and W+jets, 4000 events each, written with baskets of ``basket_entries``."""
    tmp.mkdir(parents=True, exist_ok=True)
    doc = {}
    for process in ("ttbar", "wjets"):
        name = f"{process}__nominal__000.root"
        n = write_file(tmp / name, generate_arrays(process, "nominal", EVENTS, 21), basket_entries=basket_entries)
        doc[process] = {"nominal": {"files": [{"path": name, "nevts": n}], "nevts_total": n}}
    path = tmp / "ntuples.json"
    path.write_text(json.dumps(doc))
    return path


def test_generated_baskets_have_fixed_entry_counts(tmp_path: Path) -> None:
    """Every branch of a generated file has baskets of the requested entry count (the last holds the rest)."""
    path = tmp_path / "a.root"
    write_file(path, generate_arrays("ttbar", "nominal", 2500, 3), basket_entries=1000)
    with uproot.open(path) as f:
        tree = f["events"]
        assert tree.common_entry_offsets() == [0, 1000, 2000, 2500]
        assert all(list(b.entry_offsets) == [0, 1000, 2000, 2500] for b in tree.values())
    assert BASKET_ENTRIES > 0 and 100_000 % BASKET_ENTRIES == 0  # divides the default chunk size


def test_run_inflates_only_declared_branches_each_basket_once(tmp_path: Path, basket_log: Counter) -> None:
    """Chunk size 1500 over 1000-entry baskets (coffea alone would cut 3 × 1334 and inflate straddling baskets
    twice): chunks follow the baskets, the declared branches' baskets are read exactly once each, no other
    branch is touched, and the histograms equal those of a run over one-basket files."""
    json_path = _fileset(tmp_path / "small", BASKET)
    declared = set(TtbarAnalysis().columns("ntuple"))
    res = run_ttbar(json_path, executor="iterative", chunksize=1500, progress=False)
    assert res.metrics["events_processed"] == 2 * EVENTS
    assert res.metrics["chunks"] == 2 * EVENTS // BASKET
    read_branches = {branch for _, branch, _ in basket_log}
    assert read_branches == declared
    assert set(basket_log.values()) == {1}, [k for k, v in basket_log.items() if v > 1][:5]
    per_file = Counter(name for name, _, _ in basket_log)
    assert per_file == {f"{p}__nominal__000.root": len(declared) * EVENTS // BASKET for p in ("ttbar", "wjets")}

    basket_log.clear()
    other = run_ttbar(_fileset(tmp_path / "one", EVENTS), executor="iterative", chunksize=1000, progress=False)
    for p in ("ttbar", "wjets"):
        for v in res.hist.axes["variation"]:
            a, b = res.hist[:, :, p, v].view(flow=True), other.hist[:, :, p, v].view(flow=True)
            assert np.array_equal(a["value"], b["value"]) and np.array_equal(a["variance"], b["variance"]), (p, v)


def test_preflight_reads_metadata_only(tmp_path: Path, basket_log: Counter) -> None:
    """The pre-flight checks every file (entries, truncation) without reading any basket payload."""
    fileset = build_fileset(_fileset(tmp_path, BASKET))
    checks = preflight(fileset, threads=1)
    assert all(c.ok and c.entries == EVENTS for c in checks)
    assert not basket_log


def test_nanoaod_run_reads_only_declared_branches(tmp_path: Path, basket_log: Counter) -> None:
    """Synthetic NanoAOD (many more branches than needed): only the AGC v2 columns are inflated, each basket once."""
    index = generate_nanoaod(tmp_path, 3000, 1, 4, samples=[("ttbar", "nominal")])
    res = run_ttbar(index, executor="iterative", chunksize=3000, progress=False)
    assert res.metrics["events_processed"] == 3000
    with uproot.open(next(tmp_path.glob("*.root"))) as f:
        all_branches = set(f["Events"].keys())
    read_branches = {branch for _, branch, _ in basket_log}
    assert read_branches == set(TtbarAnalysis().columns("nanoaod"))
    assert len(all_branches) > len(read_branches) + 5
    assert set(basket_log.values()) == {1}


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
    assert all(r[1] == s[0] for r, s in zip(ranges, ranges[1:]))
    baskets = list(zip(boundaries[:-1], boundaries[1:]))
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
