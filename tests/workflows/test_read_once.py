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
from analysis.execution.preflight import KeepOpen, preflight
from fileset.build import build_fileset
from fileset.generate.agc import generate_arrays, write_file
from fileset.generate.nanoaod import generate_nanoaod
from processors.ttbar import TtbarAnalysis

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


def test_run_inflates_only_declared_branches_each_basket_once(tmp_path: Path, basket_log: Counter) -> None:
    """Chunk size 1500 over 1000-entry baskets (coffea alone would cut 3 × 1334 and inflate straddling baskets
    twice): chunks follow the baskets, the declared branches' baskets are read exactly once each, no other
    branch is touched, and the histograms equal those of a run over one-basket files."""
    json_path = _fileset(tmp_path / "small", BASKET)
    declared = set(TtbarAnalysis().columns("ntuple"))
    res = run_ttbar(json_path, executor="iterative", chunksize=1500, progress=False)
    assert res.metrics["fast_path"]  # the local path that reads the branches with uproot directly
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


def test_preflight_keeps_files_open_within_its_budget(tmp_path: Path, basket_log: Counter) -> None:
    """With a keep budget of one file, exactly one (the first) stays open with its TTree, still without payload;
    it is handed over once and closed by ``FileCheck.close``; a zero budget keeps nothing."""
    fileset = build_fileset(_fileset(tmp_path, BASKET))
    checks = preflight(fileset, threads=1, keep=KeepOpen({}, files=1))
    kept = [c for c in checks if c.opened is not None]
    assert [c.path for c in kept] == [checks[0].path] and not basket_log
    f, tree = kept[0].opened
    assert tree.num_entries == EVENTS and not f.closed
    kept[0].close()
    assert f.closed and kept[0].opened is None and kept[0].take_opened() is None
    assert all(c.opened is None for c in preflight(fileset, threads=1, keep=KeepOpen({}, files=1, metadata_bytes=0)))


def test_nanoaod_run_reads_only_declared_branches(tmp_path: Path, basket_log: Counter) -> None:
    """Synthetic NanoAOD (many more branches than needed): only the AGC v2 columns are inflated, each basket once."""
    index = generate_nanoaod(tmp_path, 3000, 1, 4, samples=[("ttbar", "nominal")])
    res = run_ttbar(index, executor="iterative", chunksize=3000, progress=False)
    assert res.metrics["fast_path"] and res.metrics["events_processed"] == 3000
    with uproot.open(next(tmp_path.glob("*.root"))) as f:
        all_branches = set(f["Events"].keys())
    read_branches = {branch for _, branch, _ in basket_log}
    assert read_branches == set(TtbarAnalysis().columns("nanoaod"))
    assert len(all_branches) > len(read_branches) + 5
    assert set(basket_log.values()) == {1}


def test_each_file_opened_once_and_histograms_equal_coffeas_own_reader(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Both chunk readers — the local fast path (``process_columns`` on the branches read by uproot, no coffea) and
    coffea's path with open trees kept (``chunkread``) — open each file (and read its TTree metadata) once for
    all its chunks, close it at the end, and give the same bits as coffea's own per-chunk ``_work_function``
    (re-open per chunk, lazy reads, NanoEvents). The fast path takes over the file the pre-flight opened: one open
    per file for the whole run."""
    import sys

    from coffea.processor.executor import Runner

    from analysis.execution import chunkread, fastpath, preflight
    from analysis.execution.coffea_path import _ReliableRunner

    json_path = _fileset(tmp_path, BASKET)
    opened: Counter = Counter()
    handles: list = []
    real_open = uproot.open

    def counting_open(path, *args, **kwargs):
        caller = sys._getframe(1).f_globals["__name__"]
        if caller in (chunkread.__name__, fastpath.__name__, preflight.__name__):
            opened[(caller, Path(path if isinstance(path, str) else next(iter(path))).name)] += 1
        handles.append(real_open(path, *args, **kwargs))
        return handles[-1]

    monkeypatch.setattr(uproot, "open", counting_open)
    files = [f"{p}__nominal__000.root" for p in ("ttbar", "wjets")]
    fast = run_ttbar(json_path, executor="iterative", chunksize=BASKET, progress=False)
    assert fast.metrics["fast_path"] and fast.metrics["chunks"] == 2 * EVENTS // BASKET
    assert opened == {(preflight.__name__, f): 1 for f in files}
    assert handles and all(h.closed for h in handles)  # closed at the end of the run

    opened.clear()
    monkeypatch.setattr(fastpath, "eligible", lambda *args, **kwargs: False)  # coffea's Runner from here on
    res = run_ttbar(json_path, executor="iterative", chunksize=BASKET, progress=False)
    assert not res.metrics["fast_path"] and res.metrics["chunks"] == 2 * EVENTS // BASKET
    assert opened == {**{(preflight.__name__, f): 1 for f in files}, **{(chunkread.__name__, f): 1 for f in files}}
    assert not chunkread._OPEN  # closed at the end of the run
    assert all(h.closed for h in handles)

    monkeypatch.setattr(_ReliableRunner, "_work_function", staticmethod(Runner._work_function))
    ref = run_ttbar(json_path, executor="iterative", chunksize=BASKET, progress=False)
    for other in (fast, res):
        assert list(ref.hist.axes["variation"]) == list(other.hist.axes["variation"])
        assert list(ref.hist.axes["process"]) == list(other.hist.axes["process"])
        a, b = other.hist.view(flow=True), ref.hist.view(flow=True)
        assert np.array_equal(a["value"], b["value"]) and np.array_equal(a["variance"], b["variance"])
    assert fast.cutflow == ref.cutflow and fast.nevents == ref.nevents


def test_pool_workers_give_process_columns_the_declared_branches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The work function of futures/Dask workers (``chunkread``) hands a processor that offers ``process_columns``
    its declared branches as arrays (no NanoEvents built): same output bits as the NanoEvents path; a subclass that
    overrides ``process`` still gets NanoEvents."""
    from coffea.processor.executor import WorkItem

    from analysis.execution import chunkread
    from schemas.agc import AGCSchema

    fileset = build_fileset(_fileset(tmp_path, BASKET))
    spec = fileset["ttbar__nominal"]
    proc = TtbarAnalysis()

    def work(processor, preload):
        item = WorkItem("ttbar__nominal", spec["files"][0], spec["treename"], 1000, 3000, b"", dict(spec["metadata"]),
                        preload)
        try:
            return chunkread.work_function("root", 60, AGCSchema, False, True, item, processor, {}, {}, None,
                                           lambda: None)
        finally:
            chunkread.close_open_trees()

    events_path = work(proc, None)  # nothing declared: NanoEvents
    real_events = chunkread._events

    def no_nanoevents(*args, **kwargs):
        raise AssertionError("NanoEvents built")

    monkeypatch.setattr(chunkread, "_events", no_nanoevents)
    by_columns = work(proc, tuple(proc.columns("ntuple")))
    from analysis.execution.coffea_path import _Chunked

    # as coffea's Runner hands it over: wrapped (the wrapper once hid process_columns, and every futures/Dask chunk
    # built NanoEvents — 1.4× the CPU)
    wrapped = work(_Chunked(proc), tuple(proc.columns("ntuple")))
    assert wrapped["out"]["cutflow"] == by_columns["out"]["cutflow"]
    # and end to end on coffea's Runner (the path of futures and Dask, here in-process)
    from analysis.execution import fastpath

    monkeypatch.setattr(fastpath, "eligible", lambda *a, **k: False)
    res = run_ttbar(_fileset(tmp_path / "runner", BASKET), None, executor="iterative", progress=False)
    assert res.metrics["fast_path"] is False and res.metrics["chunks"] > 1
    assert by_columns["metrics"]["entries"] == 2000 and by_columns["metrics"]["columns"] == set(proc.columns("ntuple"))
    for key in ("sumw", "sumw2"):
        a, b = by_columns["out"][key], events_path["out"][key]
        assert list(a.axes["variation"]) == list(b.axes["variation"])
        assert np.array_equal(a.view(flow=True), b.view(flow=True)), key
    assert by_columns["out"]["cutflow"] == events_path["out"]["cutflow"]

    class Own(TtbarAnalysis):
        def process(self, events):
            return super().process(events)

    with pytest.raises(Exception, match="NanoEvents built"):
        work(Own(), tuple(proc.columns("ntuple")))
    monkeypatch.setattr(chunkread, "_events", real_events)
    assert work(Own(), tuple(proc.columns("ntuple")))["out"]["cutflow"] == events_path["out"]["cutflow"]
