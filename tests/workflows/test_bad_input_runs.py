"""Bad ROOT inputs through `ana` on every local executor: exit 2 and exactly one stderr line naming the file.

A compressed basket overwritten (deterministic: not retried, no per-attempt lines); the hint to skip unreadable
files only where the command has ``--skip-bad-files``; a missing branch named with its file on every executor;
a NaN cross-section; a mistyped ``--processor-option``."""

from __future__ import annotations

import shutil
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from analysis.cli import main
from fileset.generate.agc import generate_agc


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """Nine sample sets × one file × 1000 events."""
    return generate_agc(tmp_path_factory.mktemp("agc"), events_per_file=1000, files_per_sample=1, seed=21)


@pytest.fixture()
def agc(source, tmp_path) -> Path:
    dest = tmp_path / "agc"
    shutil.copytree(source.parent, dest)
    return dest / "ntuples.json"


def corrupt_basket(path: Path, branch: str = "jet_pt") -> None:
    """Overwrite bytes in the middle of a branch's compressed basket (header and metadata intact)."""
    with uproot.open(path) as f:
        b = f["events"][branch]
        seek, nbytes = int(b.member("fBasketSeek")[0]), int(b.member("fBasketBytes")[0])
    data = bytearray(path.read_bytes())
    mid = seek + nbytes // 2
    data[mid:mid + 256] = np.random.default_rng(3).integers(0, 256, 256, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))


def drop_branch(path: Path, branch: str) -> None:
    """Rewrite the AGC ntuple without ``branch`` (same counters ``numberX`` and names ``X_field``)."""
    with uproot.open(path) as f:
        t = f["events"]
        keys, arrs = t.keys(), t.arrays(library="ak")
    out = {c: ak.zip({k[len(c) + 1:]: arrs[k] for k in keys if k.startswith(c + "_") and k != branch})
           for c in ("jet", "electron", "muon")}
    out.update({k: arrs[k] for k in keys if not k.startswith(("jet_", "electron_", "muon_", "number"))})
    with uproot.recreate(path) as g:
        tree = g.mktree("events", {k: v.type for k, v in out.items()}, counter_name=lambda c: "number" + c,
                        field_name=lambda o, i: f"{o}_{i}")
        tree.extend(out)


def run_cli(capsys, *argv: str) -> tuple[int, list[str]]:
    capsys.readouterr()
    rc = main(list(argv))
    return rc, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize("executor", ["iterative", "futures"])
def test_corrupt_basket_one_line_not_retried(agc, tmp_path, capsys, executor):
    bad = agc.parent / "ttbar__nominal__000.root"
    corrupt_basket(bad)
    # progress on: the bar of the failed run is removed, the error is the only line
    rc, err = run_cli(capsys, "run", "ttbar", "--fileset", str(agc), "--out", str(tmp_path / "o"), "--executor",
                      executor, "--workers", "2")
    assert rc == 2
    assert len(err) == 1, err
    assert f"{bad}: cannot read entries 0-1000: the stored data are corrupt (" in err[0]
    assert "rerun with --skip-bad-files" in err[0]  # ana run has the flag
    assert not (tmp_path / "o" / "histograms.root").exists()


def test_skip_hint_only_where_the_flag_exists(agc, tmp_path, capsys):
    """`ana ml features` has no --skip-bad-files: the message does not suggest it."""
    bad = agc.parent / "ttbar__nominal__000.root"
    corrupt_basket(bad)
    rc, err = run_cli(capsys, "ml", "features", "--input", str(agc), "--out", str(tmp_path / "ml"),
                      "--executor", "iterative", "--no-progress")
    assert rc == 2 and len(err) == 1, err
    assert str(bad) in err[0] and "--skip-bad-files" not in err[0] and "repair the file(s)" in err[0]


@pytest.mark.parametrize("executor", ["iterative", "futures"])
def test_missing_branch_names_the_file(agc, tmp_path, capsys, executor):
    bad = agc.parent / "wjets__nominal__000.root"
    drop_branch(bad, "jet_btag")
    rc, err = run_cli(capsys, "run", "ttbar", "--fileset", str(agc), "--out", str(tmp_path / "o"), "--executor",
                      executor, "--workers", "2", "--no-progress")
    assert rc == 2 and len(err) == 1, err
    assert str(bad) in err[0] and "jet_btag" in err[0]


def test_nan_cross_section_schema_rule(agc, tmp_path, capsys):
    samples = tmp_path / "samples.yml"
    samples.write_text("luminosity_pb: 3378\ncross_sections_pb:\n  ttbar: .nan\n  wjets: 1\n"
                       "  single_top_s_chan: 1\n  single_top_t_chan: 1\n  single_top_tW: 1\n")
    rc, err = run_cli(capsys, "run", "ttbar", "--fileset", str(agc), "--out", str(tmp_path / "o"), "--samples",
                      str(samples), "--no-progress")
    assert rc == 2 and len(err) == 1, err
    assert "samples.yml: invalid config: cross_sections_pb.ttbar: must be a finite number > 0, got nan" in err[0]


@pytest.mark.parametrize(("option", "expected"), [("bins=abc", "bins='abc': expected int"),
                                                  ("jes=abc", "jes='abc': expected float")])
def test_processor_option_type_one_line(agc, tmp_path, capsys, option, expected):
    rc, err = run_cli(capsys, "run", "--processor", "processors.examples.dilepton:DileptonTtbar",
                      "--processor-option", option, "--fileset", str(agc), "--out", str(tmp_path / "o"),
                      "--no-progress")
    assert rc == 2 and len(err) == 1, err
    assert expected in err[0]
