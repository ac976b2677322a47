"""Reliability, each fault for real: truncated / corrupt / wrong-tree / missing ROOT files written by the test,
a corrupt basket found only while reading, transient errors that go away on retry, and a run interrupted
(Ctrl-C, then SIGKILL) and resumed from its checkpoints. Never a silent loss: processed + lost = total."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import uproot

from analysis.cli import main as cli_main
from analysis.errors import UnreadableInputError, UserError
from analysis.histio import histogram_digest
from analysis.agc.run import run_ttbar
from fileset.generate.agc import generate_agc
from processors.ttbar import TtbarAnalysis
from processors.ttbar_core import TtbarCore

REPO = Path(__file__).resolve().parents[2]




@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """Pristine samples: nine sample sets × two files × 1000 events."""
    return generate_agc(tmp_path_factory.mktemp("agc"), events_per_file=1000, files_per_sample=2, seed=21)


@pytest.fixture()
def agc(source, tmp_path) -> Path:
    """A private copy of the samples that a test may damage."""
    dest = tmp_path / "agc"
    shutil.copytree(source.parent, dest)
    return dest / "ntuples.json"


def without(json_path: Path, drop: list[str], out: Path) -> Path:
    """A copy of the fileset json that does not list the given file names (the clean comparison)."""
    doc = json.loads(json_path.read_text())
    for variations in doc.values():
        for entry in variations.values():
            entry["files"] = [dict(f, path=str(json_path.parent / f["path"])) for f in entry["files"] if f["path"] not in drop]
            entry["nevts_total"] = sum(f["nevts"] for f in entry["files"])
    out.write_text(json.dumps(doc))
    return out


def truncate(path: Path, fraction: float = 0.6) -> None:
    """Cut the file short, as an interrupted copy does."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


def corrupt_basket(path: Path, branch: str = "jet_pt") -> None:
    """Overwrite bytes in the middle of a branch's compressed basket (header and metadata stay intact)."""
    with uproot.open(path) as f:
        b = f["events"][branch]
        seek, nbytes = int(b.member("fBasketSeek")[0]), int(b.member("fBasketBytes")[0])
    data = bytearray(path.read_bytes())
    mid = seek + nbytes // 2
    data[mid:mid + 256] = np.random.default_rng(3).integers(0, 256, 256, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))


def damage_four(agc: Path) -> dict[str, str]:
    """Truncated, garbage, wrong-tree and missing files; returns file name → expected reason fragment."""
    d = agc.parent
    truncate(d / "wjets__nominal__001.root")
    (d / "ttbar__scaleup__000.root").write_bytes(b"\x00garbage" * 4000)
    p = d / "single_top_s_chan__nominal__000.root"
    p.unlink()
    with uproot.recreate(p) as f:
        f["Events"] = {"x": np.arange(1000)}
    (d / "single_top_tW__nominal__001.root").unlink()
    return {"wjets__nominal__001.root": "truncated file", "ttbar__scaleup__000.root": "not a readable ROOT file",
            "single_top_s_chan__nominal__000.root": "no tree 'events'", "single_top_tW__nominal__001.root": "file not found"}


def test_bad_files_fail_the_run_with_the_full_list(agc, tmp_path):
    """Without --skip-bad-files: one error naming all four files, their place in the json and why; no output."""
    damaged = damage_four(agc)
    with pytest.raises(UserError) as exc:
        run_ttbar(agc, tmp_path / "out", executor="iterative", progress=False)
    msg = str(exc.value)
    assert msg.startswith("4 unreadable input file(s)") and isinstance(exc.value, UnreadableInputError)
    for name, reason in damaged.items():
        assert f"{name}: {reason}" in msg, (name, msg)
    assert "wjets/nominal/files/1" in msg and "single_top_tW/nominal/files/1" in msg
    assert not (tmp_path / "out").exists()


def test_skip_bad_files_reports_losses_and_matches_a_clean_run(agc, tmp_path, capsys):
    """--skip-bad-files: each file listed with reason and events lost (metrics + end of run); processed + lost =
    total; the histograms equal, bit for bit, a clean run over a fileset that never listed those files
    (MC normalised to the events actually processed)."""
    damaged = damage_four(agc)
    rc = cli_main(["run", "ttbar", "--fileset", str(agc), "--out", str(tmp_path / "skip"), "--executor", "futures",
                   "--workers", "2", "--chunksize", "400", "--skip-bad-files", "--no-progress"])
    printed = capsys.readouterr().out
    assert rc == 0
    m = json.loads((tmp_path / "skip" / "metrics.json").read_text())
    reasons = {Path(r["path"]).name: r["reason"] for r in m["bad_files"]}
    assert set(reasons) == set(damaged)
    assert all(reasons[name].startswith(fragment) for name, fragment in damaged.items()), reasons
    assert all(r["events_lost"] == 1000 for r in m["bad_files"])
    assert m["events_processed"] + m["events_lost"] == m["events_expected"] == 18000
    assert m["events_lost"] == 4000 and m["lost_chunks"] == []
    assert m["events_lost_per_dataset"] == {"single_top_s_chan__nominal": 1000, "single_top_tW__nominal": 1000,
                                            "ttbar__scaleup": 1000, "wjets__nominal": 1000}
    assert "SKIPPED 4 file(s)" in printed and "14000 processed + 4000 lost = 18000 expected" in printed
    for name in damaged:
        assert name in printed
    clean = without(agc, list(damaged), tmp_path / "clean.json")
    run_ttbar(clean, tmp_path / "clean", executor="iterative", chunksize=1000, progress=False)
    assert histogram_digest(tmp_path / "skip" / "histograms.root") == histogram_digest(tmp_path / "clean" / "histograms.root")


def test_corrupt_basket_found_while_reading(agc, tmp_path):
    """A file whose header is fine but whose data do not decompress: fails naming file and entries, or with
    --skip-bad-files every chunk of it is reported lost and the result equals a run without that file."""
    corrupt_basket(agc.parent / "ttbar__nominal__001.root")
    with pytest.raises(UserError) as exc:
        run_ttbar(agc, tmp_path / "fail", executor="iterative", chunksize=400, retries=1, progress=False)
    msg = str(exc.value)  # the checksum failure comes from whichever ZLIB inflater uproot uses (zlib or isal)
    # deterministic (damaged bytes): not retried
    assert "ttbar__nominal__001.root: cannot read entries 0-500: the stored data are corrupt (" in msg
    assert "zlib.error" in msg or "Incorrect checksum" in msg

    res = run_ttbar(agc, tmp_path / "skip", executor="iterative", chunksize=400, retries=1, skip_bad_files=True,
                    progress=False)
    m = res.metrics
    assert m["bad_files"] == []  # the pre-flight cannot see it
    assert [(r["entry_start"], r["entry_stop"], r["events_lost"]) for r in m["lost_chunks"]] == [(0, 500, 500), (500, 1000, 500)]
    assert all(Path(r["path"]).name == "ttbar__nominal__001.root" and (r["reason"].startswith("zlib.error") or "Incorrect checksum" in r["reason"])
               for r in m["lost_chunks"])
    assert m["events_processed"] + m["events_lost"] == 18000 and m["events_lost"] == 1000
    assert res.nevents["ttbar__nominal"] == 1000
    clean = without(agc, ["ttbar__nominal__001.root"], tmp_path / "clean.json")
    run_ttbar(clean, tmp_path / "clean", executor="iterative", chunksize=400, progress=False)
    assert histogram_digest(tmp_path / "skip" / "histograms.root") == histogram_digest(tmp_path / "clean" / "histograms.root")


class FlakyTtbar(TtbarAnalysis):
    """TtbarAnalysis whose first attempt at every chunk fails like a dropped connection (state kept on disk,
    so it works across worker processes)."""

    def __init__(self, marker_dir: str) -> None:
        super().__init__()
        self.marker_dir = marker_dir

    def process(self, events):
        meta = events.metadata
        marker = Path(self.marker_dir) / f"{Path(meta['filename']).name}-{meta['entrystart']}"
        if not marker.exists():
            marker.touch()
            raise OSError("transient: connection reset by peer")
        return super().process(events)


def test_transient_errors_are_retried(source, tmp_path):
    """Every chunk fails once: with retries the result is the clean result; with --retries 0 the run fails."""
    ref = run_ttbar(source, tmp_path / "ref", executor="iterative", chunksize=1000, progress=False)
    (tmp_path / "m1").mkdir()
    res = run_ttbar(source, tmp_path / "flaky", executor="futures", workers=2, chunksize=500, retries=2,
                    progress=False, processor_instance=FlakyTtbar(str(tmp_path / "m1")))
    assert len(list((tmp_path / "m1").iterdir())) == 36  # each of the 36 chunks failed once
    assert res.metrics["events_processed"] == ref.metrics["events_processed"] == 18000
    assert histogram_digest(tmp_path / "flaky" / "histograms.root") == histogram_digest(tmp_path / "ref" / "histograms.root")
    (tmp_path / "m0").mkdir()
    with pytest.raises(UserError, match=r"cannot read entries .* after 1 attempt\(s\) \(OSError: transient"):
        run_ttbar(source, tmp_path / "fail", executor="iterative", chunksize=500, retries=0, progress=False,
                  processor_instance=FlakyTtbar(str(tmp_path / "m0")))


class FlakyColumns(TtbarCore):
    """Like FlakyTtbar, on the local fast path (``process_columns``, no coffea): every chunk fails once."""

    def __init__(self, marker_dir: str) -> None:
        super().__init__()
        self.marker_dir = marker_dir

    def process_columns(self, columns, metadata):
        marker = Path(self.marker_dir) / f"{Path(metadata['filename']).name}-{metadata['entrystart']}"
        if not marker.exists():
            marker.touch()
            raise OSError("transient: connection reset by peer")
        return super().process_columns(columns, metadata)


def test_fast_path_retries_and_shares_checkpoints_with_coffeas_path(source, tmp_path):
    """The local fast path retries like coffea's path, and its checkpoints are coffea's (same keys and content):
    a futures run reuses every chunk a fast-path run stored, with identical histograms."""
    ref = run_ttbar(source, tmp_path / "ref", executor="futures", workers=2, chunksize=500, progress=False)
    assert not ref.metrics["fast_path"]
    (tmp_path / "m").mkdir()
    res = run_ttbar(source, tmp_path / "flaky", executor="iterative", chunksize=500, retries=1, progress=False,
                    processor_instance=FlakyColumns(str(tmp_path / "m")))
    assert res.metrics["fast_path"] and len(list((tmp_path / "m").iterdir())) == 36
    assert histogram_digest(tmp_path / "flaky" / "histograms.root") == histogram_digest(tmp_path / "ref" / "histograms.root")

    ck = tmp_path / "ck"
    fast = run_ttbar(source, tmp_path / "fast", executor="iterative", chunksize=500, checkpoint=ck, progress=False)
    assert fast.metrics["fast_path"] and fast.metrics["chunks_from_checkpoint"] == 0 and len(_checkpoints(ck)) == 36
    again = run_ttbar(source, tmp_path / "again", executor="futures", workers=2, chunksize=500, checkpoint=ck,
                      progress=False)
    assert not again.metrics["fast_path"] and again.metrics["chunks_from_checkpoint"] == 36
    assert histogram_digest(tmp_path / "again" / "histograms.root") == histogram_digest(tmp_path / "ref" / "histograms.root")
    on_dask = run_ttbar(source, tmp_path / "dask", executor="dask", workers=2, chunksize=500, checkpoint=ck,
                        progress=False)  # the Dask fast path: its workers load the same checkpoints
    assert on_dask.metrics["fast_path"] and on_dask.metrics["chunks_from_checkpoint"] == 36
    assert histogram_digest(tmp_path / "dask" / "histograms.root") == histogram_digest(tmp_path / "ref" / "histograms.root")


def _checkpoints(ck: Path) -> dict[Path, tuple[int, int]]:
    """Finished checkpoint files with (inode, mtime_ns)."""
    return {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in ck.rglob("*.coffea")}


def _interrupt(cmd: list[str], ck: Path, at_least: int, sig: int) -> int:
    """Start the CLI, send ``sig`` once ``at_least`` checkpoints exist; return its exit code."""
    env = dict(os.environ, MPLBACKEND="Agg")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while proc.poll() is None and time.time() < deadline:
        if len(list(ck.rglob("*.coffea"))) >= at_least:
            proc.send_signal(sig)
            break
        time.sleep(0.02)
    proc.wait(timeout=60)
    return proc.returncode


def test_interrupted_run_resumes_from_checkpoints(source, tmp_path):
    """Ctrl-C, then SIGKILL, then a full run: only missing chunks are computed; identical histograms."""
    ref_dir = tmp_path / "ref"
    run_ttbar(source, ref_dir, executor="iterative", chunksize=1000, progress=False)
    ck = tmp_path / "ck"
    cmd = [sys.executable, "-m", "analysis.cli", "run", "ttbar", "--fileset", str(source), "--out", str(tmp_path / "out"),
           "--executor", "iterative", "--chunksize", "100", "--checkpoint", str(ck), "--no-progress"]
    assert _interrupt(cmd, ck, 15, signal.SIGINT) == 130  # Ctrl-C: "interrupted"
    first = _checkpoints(ck)
    assert 15 <= len(first) < 180
    assert _interrupt(cmd, ck, len(first) + 15, signal.SIGKILL) == -signal.SIGKILL
    before = _checkpoints(ck)
    assert len(first) + 15 <= len(before) < 180
    assert before.items() >= first.items()  # nothing recomputed on the second attempt

    res = run_ttbar(source, tmp_path / "out", executor="iterative", chunksize=100, checkpoint=ck, progress=False)
    after = _checkpoints(ck)
    assert res.metrics["chunks"] == 180 and len(after) == 180
    assert res.metrics["chunks_from_checkpoint"] == len(before)
    assert {p: after[p] for p in before} == before  # stored chunks were loaded, not recomputed
    assert histogram_digest(tmp_path / "out" / "histograms.root") == histogram_digest(ref_dir / "histograms.root")

    # a different processor configuration never reuses these checkpoints
    other = run_ttbar(source, tmp_path / "other", executor="iterative", chunksize=100, checkpoint=ck, progress=False,
                      processor_instance=TtbarAnalysis(n_bins=20))
    assert other.metrics["chunks_from_checkpoint"] == 0
