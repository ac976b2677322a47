"""A fileset without ttbar (or without its nominal variation) runs through ``ana run ttbar`` — the run writes
what its fileset has — and ``ana fit`` stops at its start, before cabinetry reads a template, with one line
naming the histogram file, the missing sample/variation and its keys (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analysis.cli import main

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "cabinetry_config.yml"


@pytest.fixture(scope="module")
def agc(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("agc_missing")
    assert main(["generate", "agc", "--out", str(root), "--events-per-file", "2000", "--files-per-sample", "1"]) == 0
    return root


def _without(agc: Path, name: str, drop) -> Path:
    doc = json.loads((agc / "ntuples.json").read_text())
    drop(doc)
    path = agc / name
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize("case, drop, words", [
    ("no_ttbar", lambda d: d.pop("ttbar"),
     ["sample 'ttbar' nominal and 14 variation(s)", "'4j1b_ttbar'", "sample 'Pseudodata' nominal",
      "'4j1b_pseudodata'", "ttbar ME_var + ttbar PS_var + wjets nominal"]),
    ("no_ttbar_nominal", lambda d: d["ttbar"].pop("nominal"),
     ["sample 'ttbar' nominal and 10 variation(s)", "'4j1b_ttbar'", "'4j1b_ttbar_pt_scale_up'"]),
])
def test_fit_names_missing_sample_at_its_start(agc, tmp_path, capsys, case, drop, words):
    fileset = _without(agc, f"{case}.json", drop)
    out = tmp_path / "out"
    assert main(["run", "ttbar", "--fileset", str(fileset), "--out", str(out), "--executor", "iterative",
                 "--no-progress"]) == 0  # a run on part of the samples is legitimate
    capsys.readouterr()
    hists = out / "histograms.root"
    rc = main(["fit", "--config", str(CONFIG), "--histograms", str(hists), "--out", str(tmp_path / "fit")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "Traceback" not in err[0], err
    line = err[0]
    assert line.startswith(f"ana fit: error: {hists}: lacks "), line
    assert "cabinetry_config.yml needs" in line and all(w in line for w in words), line
    # before cabinetry read anything: no template collected, no workspace
    assert not (tmp_path / "fit" / "templates").exists() and not (tmp_path / "fit" / "workspace.json").exists()
