"""Workflow steps return frozen, typed results whose ``to_dict()`` is the JSON they write."""

from __future__ import annotations

import dataclasses
import json

import pytest


def _search_result():
    from analysis.resonance.search import SearchResult

    limits = {"mass_gev": [500.0, 510.0], "observed_pb": None, "expected_pb": [0.1, 0.2],
              "expected_1sigma_pb": [[0.07, 0.14], [0.14, 0.28]], "expected_2sigma_pb": [[0.05, 0.2], [0.1, 0.4]]}
    return SearchResult(blinded=True, selection={"method": "none"}, best_mass_gev=None, local_significance=None,
                        global_significance=None, evidence=False, discovery=False, measurement=None, limits=limits,
                        fit_quality={"ok": True, "warnings": []})


def test_search_result_is_frozen_and_reads_like_results_json():
    res = _search_result()
    doc = res.to_dict()
    assert list(doc) == ["blinded", "selection", "best_mass_gev", "local_significance", "global_significance",
                         "evidence", "discovery", "measurement", "limits", "fit_quality"]
    assert dict(res) == doc and set(res) == set(doc) and len(res) == 10  # the earlier dict interface still reads
    assert res["limits"]["expected_pb"] == [0.1, 0.2] and res.get("nothere") is None
    with pytest.raises(KeyError):
        res["to_dict"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.blinded = False
    assert json.loads(json.dumps(doc)) == doc


@pytest.mark.parametrize("path,name", [("analysis.agc.demo", "DemoResult"), ("analysis.resonance.ftest_category", "CategoryFit"),
                                       ("analysis.resonance.ftest_workflow", "FTestRun"), ("analysis.resonance.search", "SearchResult")])
def test_results_are_frozen_dataclasses_with_to_dict(path, name):
    import importlib

    cls = getattr(importlib.import_module(path), name)
    assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen and callable(cls.to_dict)
