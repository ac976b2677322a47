"""Bad inputs through the CLI: exit 2 and exactly one stderr line naming the culprit, before any processing."""

from __future__ import annotations

import json

import pytest


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.mark.parametrize(("text", "fragment"), [
    ('{"schema_version": 2, "corrections": [\n', "not valid JSON (line 2, column 1)"),
    ("[1, 2]", "not a correctionlib JSON file"),
    ('{"schema_version": 2, "corrections": []}', "no correction named 'ht_reweighting'"),
    ('{"schema_version": 2, "corrections": [{"name": "ht_reweighting"}]}', "invalid correctionlib JSON"),
])
def test_reweight_apply_broken_correction(tmp_path, capsys, text, fragment):
    from analysis.cli import main

    corr = tmp_path / "badcorr.json"
    corr.write_text(text)
    rc = main(["reweight", "apply", "--fileset", str(tmp_path / "ntuples.json"), "--correction", str(corr),
               "--out", str(tmp_path / "ap")])
    line = one_line(capsys)
    assert rc == 2
    assert "badcorr.json: " in line and fragment in line
