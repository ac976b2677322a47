"""The coffea-style fileset json loader and the format detection of ``fileset.build.load_fileset``."""

from __future__ import annotations

import json

import pytest

from fileset.build import load_coffea_fileset, load_fileset
from fileset.errors import ConfigError, FilesetError


def _write(tmp_path, doc, name="fileset.json"):
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


def test_both_file_forms_relative_and_remote_paths(tmp_path):
    path = _write(tmp_path, {
        "zmm": {"files": {"a.root": "Events", "root://eos.example//b.root": "Events"},
                "metadata": {"xsec": 2.0, "process": "DY"}},
        "data": {"files": ["sub/c.root"], "treename": "tree"},
        "mixed": {"files": {"d.root": None}, "treename": "Events"},
    })
    fs = load_coffea_fileset(path)
    assert fs["zmm"] == {"files": [str(tmp_path / "a.root"), "root://eos.example//b.root"], "treename": "Events",
                         "metadata": {"xsec": 2.0, "process": "DY"}}
    assert fs["data"] == {"files": [str(tmp_path / "sub" / "c.root")], "treename": "tree", "metadata": {}}
    assert fs["mixed"]["treename"] == "Events"
    assert load_fileset(path) == (fs, "coffea")


def test_agc_style_is_recognised(tmp_path):
    path = _write(tmp_path, {"ttbar": {"nominal": {"files": [{"path": "t.root", "nevts": 10}]}}})
    fs, kind = load_fileset(path)
    assert kind == "agc" and fs["ttbar__nominal"]["metadata"]["nevts"] == 10


@pytest.mark.parametrize("doc, error, needle", [
    ({"a": {"files": ["x.root"]}}, FilesetError, "dataset 'a': no tree name"),
    ({"a": {"files": {"x.root": "t1", "y.root": "t2"}}}, FilesetError, "different trees ['t1', 't2']"),
    ({"a": {"files": []}, "b": {"files": ["x.root"], "treename": "t", "typo": 1}}, ConfigError, "'typo' was unexpected"),
    ({"a": {"files": 3}}, ConfigError, "a/files"),
])
def test_bad_filesets_one_line(tmp_path, doc, error, needle):
    with pytest.raises(error) as exc:
        load_coffea_fileset(_write(tmp_path, doc))
    assert needle in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize("doc, needles", [
    ({}, ["<top>: Dictionary should have at least 1 item"]),
    ({"ttbar": {"nominal": {"files": [{"path": "t.root"}]}}}, ["ttbar/nominal/files/0: 'nevts' is required"]),
    ({"ttbar": {"nominal": {"files": [{"path": "t.root", "nevts": -1}], "format": "csv"}}, "wjets": {}},
     ["ttbar/nominal/files/0/nevts: Input should be greater than or equal to 0 (got -1)",
      "ttbar/nominal/format: Input should be 'ntuple' or 'nanoaod' (got 'csv')", "wjets: Dictionary should have"]),
    ({"ttbar": {"nominal": {"files": [{"path": "t.root", "nevts": "10"}]}}}, ["nevts: Input should be a valid integer"]),
])
def test_bad_agc_fileset_json_one_line(tmp_path, doc, needles):
    """AGC-style fileset json problems: one ConfigError line naming the file and every offending key."""
    path = _write(tmp_path, doc)
    with pytest.raises(ConfigError) as exc:
        load_fileset(path)
    msg = str(exc.value)
    assert msg.startswith(f"{path}: invalid config: ") and "\n" not in msg
    for needle in needles:
        assert needle in msg, (needle, msg)


def test_bad_samples_config_one_line(tmp_path):
    """samples.yml: strict numbers (no bools/strings), positive finite values, unknown keys named."""
    from fileset.build import load_samples_config

    cfg = tmp_path / "samples.yml"
    for text, needles in [
        ("luminosity_pb: true\ncross_sections_pb: {ttbar: 0, wjets: '1'}\nlumi: 3\n",
         ("luminosity_pb: Input should be a valid number (got True)", "cross_sections_pb/ttbar: Input should be greater "
          "than 0 (got 0)", "cross_sections_pb/wjets: Input should be a valid number", "unknown key ('lumi' was unexpected)")),
        ("luminosity_pb: .nan\ncross_sections_pb: {ttbar: 1, wjets: .inf}\n",
         ("luminosity_pb: must be a finite number > 0, got nan", "cross_sections_pb.wjets: must be a finite number > 0, got inf")),
    ]:
        cfg.write_text(text)
        with pytest.raises(ConfigError) as exc:
            load_samples_config(cfg)
        msg = str(exc.value)
        assert msg.startswith(f"{cfg}: invalid config: ") and "\n" not in msg
        for needle in needles:
            assert needle in msg, (needle, msg)
    cfg.write_text("luminosity_pb: 3378\ncross_sections_pb: {ttbar: 396.87}\n")
    assert load_samples_config(cfg) == {"luminosity_pb": 3378, "cross_sections_pb": {"ttbar": 396.87}, "tree": "events"}
