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
