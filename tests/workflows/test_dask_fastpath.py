"""The Dask fast path (``analysis.execution.fastpath.run_chunks_dask``): what the in-process loop gives, bit for bit,
with the reliability layer (retries, skipped chunks with their events, one-line errors) and the workers' warnings
counted in the client. An in-process cluster here; process workers are covered by test_agc_run.py
(bit-identical histograms) and test_scaleout.py (a SIGKILLed worker)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from analysis.errors import UnreadableInputError
from analysis.execution import fastpath
from analysis.execution.preflight import preflight
from analysis.execution.retries import RetryPolicy
from fileset.build import build_fileset
from fileset.generate.agc import generate_agc
from processors.ttbar_core import TtbarCore

distributed = pytest.importorskip("distributed")


class WarningTtbar(TtbarCore):
    """Warns once per chunk (as a library would in a worker)."""

    def process_columns(self, columns, metadata):
        warnings.warn(f"chunk of {metadata['dataset']}", RuntimeWarning)
        return super().process_columns(columns, metadata)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """Two sample sets of two 2000-event files (one basket per branch, cut into chunks of 1000 → 8 chunks)."""
    d = tmp_path_factory.mktemp("dask_fast")
    index = generate_agc(d, events_per_file=2000, files_per_sample=2, seed=11)
    fileset = build_fileset(index)
    fileset = {k: v for k, v in fileset.items() if k in ("ttbar__nominal", "wjets__nominal")}
    return d, fileset


@pytest.fixture(scope="module")
def client():
    # one single-threaded worker in this process: Python's warning capture is per process, not per thread, as in a
    # real (process) worker with threads_per_worker=1 — what ``ana`` starts
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None) as c:
        yield c


def _plan(fileset, size=1000):
    checks = preflight(fileset, {}, branches=TtbarCore().columns("ntuple"))
    return fastpath.plan_chunks(fileset, [c for c in checks if c.ok], size)


def test_dask_equals_the_in_process_loop_and_counts_worker_warnings(sample, client):
    _, fileset = sample
    chunks = _plan(fileset)
    assert len(chunks) >= 8
    branches = TtbarCore().columns("ntuple")
    with pytest.warns(RuntimeWarning, match="chunk of"):  # in this process: raised as they come
        local = fastpath.run_chunks(chunks, WarningTtbar(), branches, {}, RetryPolicy(), progress=False)
    remote = fastpath.run_chunks_dask(chunks, WarningTtbar(), branches, {}, RetryPolicy(), client, progress=False)
    counts = remote.pop("warnings")
    # one warning per chunk, counted by (category, message, file, line) and summed over the tree reduction
    assert sum(counts.values()) == len(chunks)
    assert {k[1] for k in counts} == {"chunk of ttbar__nominal", "chunk of wjets__nominal"}
    for key in ("sumw", "sumw2"):
        a, b = local["out"][key], remote["out"][key]
        assert list(a.axes["variation"]) == list(b.axes["variation"])  # categories in first-appearance order
        assert np.array_equal(a.view(flow=True), b.view(flow=True))  # bit for bit
    assert local["out"]["cutflow"] == remote["out"]["cutflow"] and local["out"]["nevents"] == remote["out"]["nevents"]
    assert remote["metrics"]["chunks"] == len(chunks) and remote["metrics"]["entries"] == 8000
    # the workers read exactly the declared branches, the same bytes as the in-process loop
    assert remote["metrics"]["columns"] == local["metrics"]["columns"] == sorted(branches)
    assert remote["metrics"]["bytesread"] == local["metrics"]["bytesread"] > 0
    with pytest.warns(RuntimeWarning, match="chunk of ttbar__nominal"):
        fastpath.reemit_warnings(counts)


def _damage(path):
    """Overwrite bytes in the middle of jet_pt's first compressed basket: the pre-flight (metadata only) passes."""
    import uproot

    with uproot.open(path) as f:
        b = f["events"]["jet_pt"]
        seek, nbytes = int(b.member("fBasketSeek")[0]), int(b.member("fBasketBytes")[0])
    data = bytearray(path.read_bytes())
    mid = seek + nbytes // 2
    data[mid:mid + 256] = np.random.default_rng(3).integers(0, 256, 256, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))


def test_unreadable_chunk_is_skipped_with_its_events_or_named(sample, client, tmp_path):
    d, fileset = sample
    import shutil

    bad = tmp_path / "bad.root"
    shutil.copy(fileset["wjets__nominal"]["files"][0], bad)
    _damage(bad)
    fs = {"wjets__nominal": dict(fileset["wjets__nominal"], files=[str(bad)])}
    chunks = _plan(fs)
    branches = TtbarCore().columns("ntuple")
    skipped = fastpath.run_chunks_dask(chunks, TtbarCore(), branches, {}, RetryPolicy(retries=1, skip_bad=True), client,
                                       progress=False)
    lost = list(skipped["lost"].values())
    # jet_pt's one basket holds all 2000 entries: both chunks of the file are lost, with their events
    assert sorted((r["entry_start"], r["entry_stop"]) for r in lost) == [(0, 1000), (1000, 2000)] and all(r["path"] == str(bad) and r["events_lost"] == r["entry_stop"] - r["entry_start"] for r in lost)
    processed = skipped["out"].get("nevents", {}).get("wjets__nominal", 0)
    assert processed + sum(r["events_lost"] for r in lost) == 2000  # every event processed or reported lost
    with pytest.raises(UnreadableInputError, match=r"bad\.root: cannot read entries"):
        fastpath.run_chunks_dask(chunks, TtbarCore(), branches, {}, RetryPolicy(retries=1), client, progress=False)


class RefusingTtbar(TtbarCore):
    """A user error raised in the worker (as a processor refusing its input would)."""

    def process_columns(self, columns, metadata):
        from processors.errors import ProcessorError

        raise ProcessorError("jet pT threshold below the trigger plateau")


def test_user_error_in_a_worker_reaches_the_client_as_one_line_naming_the_file(sample, client):
    from fileset.errors import UserError

    _, fileset = sample
    chunks = _plan(fileset)
    with pytest.raises(UserError) as err:
        fastpath.run_chunks_dask(chunks, RefusingTtbar(), TtbarCore().columns("ntuple"), {}, RetryPolicy(retries=2),
                                 client, progress=False)
    text = str(err.value)
    assert "jet pT threshold below the trigger plateau" in text and ".root" in text and "\n" not in text
