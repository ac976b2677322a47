"""``reweight.yml``: the seed's options (basePath, weight, selection, reweightVar, minBinWidth, reweightSample,
constSample, component selections, ttbar_Reweight, NormFactor_*) plus binning, smoothing and safety settings.
Validated once at the boundary; unknown keys are errors. Defaults reproduce the single-lepton setup.

Smoothing (see ``analysis.reweighting.smooth``): ``method: polynomial`` (default) fits polynomials of order
0..``maxOrder`` in HT_all to the k_i by weighted least squares, combined by ``orderSelection`` (``aic_average``:
Akaike-weighted average with the model-choice uncertainty in the band; ``aic`` or ``ftest``: one order);
``method: exact_integral`` is the seed's C¹ piecewise quadratic that keeps every bin integral.
Bins are merged until each k_i reaches ``targetRelError`` (as well as ``minEvents``/``minMCEntries``/
``minBinWidth``). Outside the populated HT_all range the correction follows ``outOfRange`` (``hold``: the edge
value; ``unity``: 1 with an uncertainty covering the edge value); nominal, up and down are clipped to ``bounds``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from analysis.errors import AnalysisError
from analysis.config import load_yaml, validate
from fileset.expr import parse
from processors.ht_reweighting import EVENT_VARIABLES, RegionSpec

COMPONENTS = ("ttbb", "ttb", "ttc", "ttlight")
OTHER_PROCESSES = ("single_top_s_chan", "single_top_t_chan", "single_top_tW", "wjets")

DEFAULTS: dict[str, Any] = {
    "basePath": None,
    "weight": "1",
    "selection": "nLeptons == 1 and nJets >= 5 and nBTags >= 3",
    "reweightVar": "HT_all",
    "minBinWidth": 50.0,
    "minEvents": 200.0,
    "minMCEntries": 20,
    "targetRelError": 0.1,
    "method": "polynomial",
    "maxOrder": 3,
    "orderSelection": "aic_average",
    "ftestAlpha": 0.05,
    "outOfRange": "hold",
    "bounds": [0.05, 5.0],
    "outputFile": "ht_reweighting.json",
    "reweightSample": ["ttb", "ttbb"],
    "constSample": ["ttc", "ttlight", *OTHER_PROCESSES],
    "ttbb_selection": "hfClass == 3",
    "ttb_selection": "hfClass == 2",
    "ttc_selection": "hfClass == 1",
    "ttlight_selection": "hfClass == 0",
    "ttbar_Reweight": "1",
    "NormFactor_ttbb": 1.0,
    "NormFactor_ttb": 1.0,
    "NormFactor_ttc": 1.0,
    "NormFactor_ttlight": 1.0,
    "nJetsBins": [5, 6, 7],
    "normalisation": "inclusive",
    "alternativeSamples": ["scaleup", "scaledown", "ME_var", "PS_var"],
    "mcStatError": True,
    "kdeBandwidth": None,
    "closureBinWidth": 50.0,
    "jetPt": 25.0,
    "leptonPt": 25.0,
    "btagCut": 0.5,
    "htBinWidth": 10.0,
    "htMax": 4000.0,
    "dataProcess": "data",
    "componentProcess": "ttbar",
}

_EXPR = {"type": "string", "minLength": 1}
_NORM = {"oneOf": [{"type": "number", "exclusiveMinimum": 0},
                   {"type": "object", "minProperties": 1,
                    "additionalProperties": {"type": "number", "exclusiveMinimum": 0}}]}
_NAMES = {"type": "array", "items": {"type": "string", "minLength": 1}, "uniqueItems": True}

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "basePath": {"type": ["string", "null"]},
        "weight": _EXPR,
        "selection": _EXPR,
        "reweightVar": {"enum": ["HT_all"]},
        "minBinWidth": {"type": "number", "exclusiveMinimum": 0},
        "minEvents": {"type": "number", "minimum": 0},
        "minMCEntries": {"type": "integer", "minimum": 0},
        "targetRelError": {"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": 1},
        "method": {"enum": ["polynomial", "exact_integral"]},
        "maxOrder": {"type": "integer", "minimum": 0, "maximum": 3},
        "orderSelection": {"enum": ["aic", "aic_average", "ftest"]},
        "ftestAlpha": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
        "outOfRange": {"enum": ["hold", "unity"]},
        "bounds": {"type": "array", "items": {"type": "number", "exclusiveMinimum": 0}, "minItems": 2, "maxItems": 2},
        "outputFile": {"type": "string", "pattern": r"^[^/\\]+\.json$"},
        "reweightSample": dict(_NAMES, minItems=1),
        "constSample": _NAMES,
        "ttbb_selection": _EXPR,
        "ttb_selection": _EXPR,
        "ttc_selection": _EXPR,
        "ttlight_selection": _EXPR,
        "ttbar_Reweight": _EXPR,
        "NormFactor_ttbb": _NORM,
        "NormFactor_ttb": _NORM,
        "NormFactor_ttc": _NORM,
        "NormFactor_ttlight": _NORM,
        "nJetsBins": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 15}, "minItems": 1},
        "normalisation": {"enum": ["inclusive", "per_njets"]},
        "alternativeSamples": _NAMES,
        "mcStatError": {"type": "boolean"},
        "kdeBandwidth": {"type": ["number", "null"], "exclusiveMinimum": 0},
        "closureBinWidth": {"type": "number", "exclusiveMinimum": 0},
        "jetPt": {"type": "number", "minimum": 0},
        "leptonPt": {"type": "number", "minimum": 0},
        "btagCut": {"type": "number"},
        "htBinWidth": {"type": "number", "exclusiveMinimum": 0},
        "htMax": {"type": "number", "exclusiveMinimum": 0},
        "dataProcess": {"type": "string", "minLength": 1},
        "componentProcess": {"type": "string", "minLength": 1},
    },
}


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Defaults, updated from a YAML file and then ``overrides``; validated as a whole."""
    doc: dict[str, Any] = {}
    source = "reweight config"
    if path is not None:
        doc = load_yaml(path)
        source = str(path)
    if overrides:
        doc = {**doc, **overrides}
    validate(doc, SCHEMA, source)
    cfg = copy.deepcopy(DEFAULTS)
    cfg.update(doc)
    _check_semantics(cfg, source)
    return cfg


def _check_semantics(cfg: dict[str, Any], source: str) -> None:
    """Cross-key checks the JSON schema cannot express."""
    bins = cfg["nJetsBins"]
    if any(b >= a for a, b in zip(bins[1:], bins[:-1])):
        raise AnalysisError(f"{source}: nJetsBins: must be strictly increasing, got {bins}")
    overlap = set(cfg["reweightSample"]) & set(cfg["constSample"])
    if overlap:
        raise AnalysisError(f"{source}: reweightSample and constSample share {sorted(overlap)}")
    lo, hi = cfg["bounds"]
    if not lo < 1.0 < hi:
        raise AnalysisError(f"{source}: bounds: need floor < 1 < ceiling, got [{lo:g}, {hi:g}]")
    bad = [s for s in cfg["reweightSample"] if s not in COMPONENTS]
    if bad:
        raise AnalysisError(f"{source}: reweightSample: {bad} are not ttbar components ({', '.join(COMPONENTS)})")
    if cfg["htMax"] / cfg["htBinWidth"] > 2000 or abs(cfg["htMax"] / cfg["htBinWidth"] - round(cfg["htMax"] / cfg["htBinWidth"])) > 1e-9:
        raise AnalysisError(f"{source}: htMax must be a multiple of htBinWidth with at most 2000 fine bins")
    parse(cfg["selection"], EVENT_VARIABLES, allow_logic=True, what=f"{source}: selection")
    parse(cfg["weight"], EVENT_VARIABLES, what=f"{source}: weight")
    parse(cfg["ttbar_Reweight"], EVENT_VARIABLES, what=f"{source}: ttbar_Reweight")
    for comp in COMPONENTS:
        parse(cfg[f"{comp}_selection"], EVENT_VARIABLES, allow_logic=True, what=f"{source}: {comp}_selection")


def norm_factor(cfg: dict[str, Any], component: str, variation: str) -> float:
    """NormFactor_<component> for a ttbar sample variation (a number applies to all; a mapping falls back to nominal)."""
    value = cfg[f"NormFactor_{component}"]
    if isinstance(value, dict):
        return float(value.get(variation, value.get("nominal", 1.0)))
    return float(value)


def region_spec(cfg: dict[str, Any]) -> RegionSpec:
    """The processor's derivation-region settings from a config."""
    const_tt = [c for c in cfg["constSample"] if c in ("ttc", "ttlight")]
    return RegionSpec(
        selection=cfg["selection"], weight=cfg["weight"], jet_pt=cfg["jetPt"], lepton_pt=cfg["leptonPt"],
        btag=cfg["btagCut"], ht_bin_width=cfg["htBinWidth"], ht_max=cfg["htMax"], njets_max=15,
        component_process=cfg["componentProcess"],
        components={c: cfg[f"{c}_selection"] for c in COMPONENTS},
        component_weights={c: cfg["ttbar_Reweight"] for c in const_tt} if cfg["ttbar_Reweight"].strip() != "1" else {},
    )
