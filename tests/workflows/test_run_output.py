"""What `ana run ttbar` prints: a progress bar that finishes (or none with --no-progress), and a throughput
that counts only the chunks computed in this run when a checkpoint supplied the others."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analysis.cli import main as ana
from fileset.generate.agc import generate_agc


@pytest.fixture(scope="module")
def small_agc(tmp_path_factory) -> Path:
    """Two samples, 4000 events in one file each."""
    out = tmp_path_factory.mktemp("agc")
    return generate_agc(out, 4000, 1, 1, samples=[("ttbar", "nominal"), ("wjets", "nominal")])


def test_progress_switch_and_finished_bar(small_agc, tmp_path, capsys):
    """futures: the bar ends at chunks/chunks and no coffea "Merging" bar is left; --no-progress: stderr empty."""
    argv = ["run", "ttbar", "--fileset", str(small_agc), "--executor", "futures", "--workers", "2",
            "--chunksize", "1000"]
    assert ana(argv + ["--out", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert "Processing chunks" in err and "8/8" in err and "Merging" not in err, err
    assert ana(argv + ["--out", str(tmp_path / "b"), "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and "processed 8000 events" in captured.out


def test_throughput_after_checkpoint_resume_counts_computed_chunks(small_agc, tmp_path, capsys):
    """Rerun after losing 3 of 8 checkpointed chunks: 5 chunks (5000 events) reused, events/s over 3000 only."""
    ck = tmp_path / "ck"
    argv = ["run", "ttbar", "--fileset", str(small_agc), "--executor", "iterative", "--chunksize", "1000",
            "--checkpoint", str(ck), "--no-progress"]
    assert ana(argv + ["--out", str(tmp_path / "first")]) == 0
    stored = sorted(ck.rglob("*.coffea"))
    assert len(stored) == 8
    for p in stored[:3]:
        p.unlink()
    assert ana(argv + ["--out", str(tmp_path / "second")]) == 0
    out = capsys.readouterr().out
    m = json.loads((tmp_path / "second" / "metrics.json").read_text())
    assert m["chunks_from_checkpoint"] == 5 and m["events_from_checkpoint"] == 5000
    assert m["events_processed"] == 8000
    assert m["events_per_s"] == pytest.approx(3000 / m["processing_time_s"], rel=1e-9)
    assert "(5000 from the checkpoint)" in out
