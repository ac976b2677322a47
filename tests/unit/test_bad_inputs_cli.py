"""Bad inputs through the CLI: exit 2 and exactly one stderr line naming the culprit, before any processing."""

from __future__ import annotations

from pathlib import Path

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


def _unwritable_roots(tmp_path):
    """Parents an output cannot be created under: a regular file, and /proc (refuses new entries even for root,
    where ``os.access`` says writable)."""
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    roots = [blocker]
    if Path("/proc/self").exists():
        roots.append(Path("/proc"))
    return roots


OUTPUT_COMMANDS = [
    (["run", "ttbar", "--fileset", "ntuples.json", "--out"], "OUT/o"),
    (["run", "ttbar", "--fileset", "ntuples.json", "--out", "ok", "--checkpoint"], "OUT/ckpt"),
    (["demo", "--out"], "OUT/demo"),
    (["fit", "--config", "c.yml", "--histograms", "h.root", "--out"], "OUT/fit"),
    (["reinterpret", "--workspace", "ws.json", "--outputfile"], "OUT/limit.png"),
    (["reinterpret", "--workspace", "ws.json", "--json"], "OUT/results.json"),
    (["scale", "--input", "h.root", "--hist", "x", "--xsec", "1", "--sumweights", "1", "--luminosity", "1", "--out"],
     "OUT/s.root"),
    (["reweight", "apply", "--fileset", "n.json", "--correction", "c.json", "--out"], "OUT/ap"),
    (["generate", "spectrum", "--out"], "OUT/t.parquet"),
]


@pytest.mark.parametrize(("argv", "target"), OUTPUT_COMMANDS, ids=lambda x: x[0] if isinstance(x, list) else "")
def test_unwritable_output_refused_before_processing(tmp_path, capsys, argv, target):
    """Every writing command checks its output path when the arguments are parsed: one line naming it, exit 2."""
    from analysis.cli import main

    for root in _unwritable_roots(tmp_path):
        path = target.replace("OUT", str(root))
        rc = main([*argv, path])
        line = one_line(capsys)
        assert rc == 2
        assert path in line, line
        assert not Path(path).exists()


def test_writable_output_leaves_nothing_behind(tmp_path):
    """The write test creates and removes a scratch directory: nothing is left in the existing parent."""
    from analysis.cli.types import output_dir, output_file

    assert output_dir(str(tmp_path / "a" / "b")) == str(tmp_path / "a" / "b")
    assert output_file(str(tmp_path / "x.root")) == str(tmp_path / "x.root")
    assert list(tmp_path.iterdir()) == []
