"""The local fast path's rules (which runs take it), its merge (coffea's accumulate semantics) and the branch view.

Bit-identical histograms against coffea's path are checked end to end in tests/workflows/test_read_once.py and
test_agc_run.py; here only what decides and combines, without files.
"""

from __future__ import annotations

import awkward as ak
import hist
import numpy as np
import pytest

from analysis.execution.fastpath import Chunk, chunk_groups, chunk_metadata, eligible, merge, plan_chunks
from analysis.execution.preflight import FileCheck
from processors.objects import BranchEvents, flat, jagged_parts
from processors.ttbar_core import TtbarCore
from fileset.errors import UserError

CHECKS = [FileCheck("ttbar__nominal", "/data/a.root", "events", entries=250, uuid=b"\x01" * 16,
                    basket_boundaries=[0, 100, 200, 250])]


class OwnProcess(TtbarCore):
    """Overrides ``process`` only: its ``process`` must run (coffea's path)."""

    def process(self, events):
        return super().process(events)


class OwnWeights(TtbarCore):
    """Overrides a hook that receives NanoEvents: coffea's path."""

    def event_weights(self, events, njet, ht):
        return super().event_weights(events, njet, ht)


class BothOverridden(OwnProcess):
    """Overrides ``process_columns`` below its ``process``: the fast path is its own choice."""

    def process_columns(self, columns, metadata):
        return super().process_columns(columns, metadata)


class NoColumns:
    """A processor without ``process_columns``."""

    def process(self, events):
        return {}


def test_who_takes_the_fast_path() -> None:
    assert eligible(TtbarCore(), "ntuple", None, "iterative", CHECKS)
    assert eligible(TtbarCore(), "nanoaod", None, "iterative", CHECKS)
    assert eligible(BothOverridden(), "ntuple", None, "iterative", CHECKS)
    assert not eligible(TtbarCore(), "ntuple", None, "futures", CHECKS)
    assert eligible(TtbarCore(), "ntuple", None, "dask", CHECKS)  # Dask: run_chunks_dask
    assert not eligible(OwnProcess(), "ntuple", None, "iterative", CHECKS)
    assert not eligible(OwnWeights(), "ntuple", None, "iterative", CHECKS)
    assert not eligible(NoColumns(), "ntuple", None, "iterative", CHECKS)
    assert not eligible(TtbarCore(), None, None, "iterative", CHECKS)  # mixed formats
    rntuple = [FileCheck("ttbar__nominal", "/data/a.root", "Events", entries=250, basket_boundaries=None)]
    assert not eligible(TtbarCore(), "ntuple", None, "iterative", rntuple)

    class CustomSchema:  # any schema but the format's default goes to coffea's path
        pass

    assert not eligible(TtbarCore(), "ntuple", CustomSchema, "iterative", CHECKS)
    from schemas.agc import AGCSchema

    assert eligible(TtbarCore(), "ntuple", AGCSchema, "iterative", CHECKS)


def test_chunks_follow_baskets_and_carry_coffeas_metadata() -> None:
    fileset = {"ttbar__nominal": {"files": ["/data/a.root"], "treename": "events",
                                  "metadata": {"process": "ttbar", "xsec": 1.5}}}
    chunks = plan_chunks(fileset, CHECKS, 120)
    assert [(c.entrystart, c.entrystop) for c in chunks] == [(0, 100), (100, 200), (200, 250)]
    meta = chunk_metadata(chunks[1])
    assert meta == {"dataset": "ttbar__nominal", "filename": "/data/a.root", "treename": "events", "entrystart": 100,
                    "entrystop": 200, "fileuuid": "01010101-0101-0101-0101-010101010101", "process": "ttbar", "xsec": 1.5}
    assert "filename='/data/a.root'" in repr(chunks[0])  # the runner names the file from this form


def test_merge_is_coffeas_accumulate() -> None:
    from coffea.processor import accumulate

    def out(process: str, n: int) -> dict:
        h = hist.Hist.new.StrCat([], name="p", growth=True).Reg(3, 0, 3, name="x").Double()
        h.fill(p=process, x=np.arange(n) % 3)
        return {"nevents": {process: n}, "hist": h, "seen": {process}, "cutflow": {process: {"all": n}}}

    parts = [out("a", 5), out("b", 7), out("a", 2)]
    ours = parts[0]
    for p in [out("b", 7), out("a", 2)]:
        ours = merge(ours, p)
    ref = accumulate([out("b", 7), out("a", 2)], out("a", 5))
    assert ours["nevents"] == ref["nevents"] == {"a": 7, "b": 7}
    assert ours["seen"] == ref["seen"] and list(ours["cutflow"]) == list(ref["cutflow"]) == ["a", "b"]
    assert list(ours["hist"].axes["p"]) == list(ref["hist"].axes["p"]) == ["a", "b"]
    assert np.array_equal(ours["hist"].view(flow=True), ref["hist"].view(flow=True))


def test_branch_events_view() -> None:
    columns = {"numberjet": np.array([2, 0, 1]), "jet_pt": ak.Array([[30.0, 20.0], [], [50.0]]),
               "jet_e": ak.Array([[40.0, 25.0], [], [60.0]]), "event": np.array([7, 8, 9], np.uint64)}
    ev = BranchEvents(columns, {"format": "ntuple", "dataset": "d"})
    assert len(ev) == 3 and ev.metadata["dataset"] == "d"
    assert set(ev.fields) == {"numberjet", "event", "jet"} and "met" not in ev.fields
    assert ev.jet["energy"] is columns["jet_e"] and ev.jet.pt is columns["jet_pt"]
    assert sorted(ev.jet.fields) == ["energy", "pt"]
    assert ev["event"] is columns["event"]
    with pytest.raises(AttributeError):
        ev.muon  # noqa: B018 - not read
    assert not hasattr(ev, "muon") and not hasattr(ev.jet, "phi")
    with pytest.raises(UserError, match="no branch 'jet_phi'"):
        ev.jet["phi"]
    nano = BranchEvents({"nJet": np.array([1]), "Jet_mass": ak.Array([[5.0]])}, {"format": "nanoaod"})
    assert nano.Jet["mass"] is not None and nano.Jet.fields == ["mass"]


def test_buffer_route_equals_awkward_route() -> None:
    """The zero-copy read of a jagged branch's buffers gives what ak.num/ak.flatten give, also for a sliced array."""
    a = ak.Array([[1.5, 2.5], [], [3.5, 4.5, 5.5], [6.5]])
    for arr in (a, a[1:], a[2:3]):
        off, content = jagged_parts(arr)
        counts = ak.to_numpy(ak.num(arr, axis=1))
        assert np.array_equal(np.diff(off), counts) and off[0] == 0
        assert np.array_equal(content, ak.to_numpy(ak.flatten(arr)).astype(np.float64))
        assert np.array_equal(flat(arr, None), ak.to_numpy(ak.flatten(arr)))


def test_missing_branch_is_one_line_naming_it(tmp_path) -> None:
    """A file without a branch the processor needs: the fast-path run fails with one line naming the file and branch."""
    import json

    from analysis.agc.run import run_ttbar
    from analysis.errors import AnalysisError

    from fileset.generate.agc import generate_arrays, write_file

    cols = generate_arrays("ttbar", "nominal", 300, 3)
    del cols["jet"]["phi"]  # the file has no jet_phi
    write_file(tmp_path / "f.root", cols)
    doc = {"ttbar": {"nominal": {"files": [{"path": "f.root", "nevts": 300}], "nevts_total": 300}}}
    (tmp_path / "n.json").write_text(json.dumps(doc))
    with pytest.raises(AnalysisError, match=r"f\.root: .*no branch 'jet_phi'") as err:
        run_ttbar(tmp_path / "n.json", executor="iterative", progress=False)
    assert "\n" not in str(err.value)


def test_dask_tasks_are_runs_of_one_files_chunks() -> None:
    """Consecutive chunks of one file per task (a worker opens the file once for them), bounded so that every worker
    gets about four tasks; chunk order kept."""
    chunks = [Chunk("d", f, "events", a, a + 10, b"") for f in ("a.root", "b.root") for a in range(0, 100, 10)]
    two = chunk_groups(chunks, n_workers=2)  # 20 chunks, 2 workers: runs of at most ceil(20 / 8) = 3
    assert [len(g) for g in two] == [3, 3, 3, 1, 3, 3, 3, 1]
    assert all(len({c.filename for c in g}) == 1 for g in two) and sum(two, []) == chunks
    assert [len(g) for g in chunk_groups(chunks, n_workers=1)] == [5, 5, 5, 5]
    assert [len(g) for g in chunk_groups(chunks[:3], n_workers=8)] == [1, 1, 1]  # few chunks: one per task
    assert chunk_groups([], n_workers=0) == []
    long_file = [Chunk("d", "big.root", "events", a, a + 1, b"") for a in range(100)]
    assert max(len(g) for g in chunk_groups(long_file, n_workers=1)) == 8  # capped (late-joining workers find tasks)


def test_dask_tasks_are_planned_for_the_workers_a_batch_cluster_will_have() -> None:
    """An adaptive batch cluster starts with few workers: the tasks are planned for its maximum (jobs × processes),
    else a 25-job cluster would get four tasks."""
    from analysis.execution.runner import expected_workers

    assert expected_workers(0, {"cores": 4, "memory": "16GB", "adaptive": {"minimum": 1, "maximum": 25}}) == 100
    assert expected_workers(3, {"cores": 4, "processes": 2, "memory": "16GB", "jobs": 5}) == 10
    assert expected_workers(12, {"cores": 1, "memory": "4GB", "jobs": 2}) == 12  # more connected than configured
    assert expected_workers(2, None) == 2  # local cluster or a scheduler address: the workers connected
    chunks = [Chunk("d", f"f{i}.root", "events", 0, 10, b"") for i in range(200)]
    assert len(chunk_groups(chunks, expected_workers(0, {"cores": 4, "memory": "16GB", "adaptive": {"maximum": 25}}))) == 200
