"""correctionlib output: CorrectionSet with ``ht_reweighting`` (inputs systematic, nJets, HT_all)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import correctionlib
import correctionlib.schemav2 as cs

from analysis.errors import AnalysisError
from analysis.reweighting.smooth import SYSTEMATICS, SmoothCorrection

NJETS_TOP = 99  # upper edge of the last (inclusive) nJets bin


def build_correction(name: str, njet_bins: list[int], functions: list[SmoothCorrection],
                     description: dict[str, Any]) -> cs.Correction:
    """One correction: category on systematic → binning on nJets (clamped) → binning on HT_all → formulas.

    Args:
        name: correction name; njet_bins: lower nJets edges (the last bin is inclusive upwards).
        functions: one ``SmoothCorrection`` per nJets bin (its populated range, out-of-range policy and bounds
            are encoded: constants outside, the clipped formula inside).
        description: JSON-serialisable metadata stored as the correction's description.

    Raises:
        AnalysisError: not one function per nJets bin.
    """
    if len(njet_bins) != len(functions):
        raise AnalysisError("correction: one smooth function per nJets bin is needed")
    edges_nj = [float(b) for b in njet_bins] + [float(NJETS_TOP)]
    content = []
    for syst in SYSTEMATICS:
        per_nj = [fn.content(syst) for fn in functions]
        content.append(cs.CategoryItem(key=syst, value=cs.Binning(nodetype="binning", input="nJets", edges=edges_nj,
                                                                     content=per_nj, flow="clamp")))
    lo, hi = functions[0].bounds
    return cs.Correction(
        name=name, version=2, description=json.dumps(description, sort_keys=True),
        inputs=[cs.Variable(name="systematic", type="string", description="nominal, up or down (±1σ statistical)"),
                cs.Variable(name="nJets", type="int", description="jets above the derivation pT threshold; "
                            "below the first bin the first bin's function is used, the last bin is inclusive"),
                cs.Variable(name="HT_all", type="real", description="Σ jet pT + Σ lepton pT [GeV]; outside the "
                            "populated range of each nJets bin the outOfRange policy (constant) applies")],
        output=cs.Variable(name="weight", type="real",
                           description=f"multiplicative event weight for tt+>=1b, clipped to [{lo:g}, {hi:g}]"),
        data=cs.Category(nodetype="category", input="systematic", content=content),
    )


def write_correction_set(corrections: list[cs.Correction], path: str | Path) -> Path:
    """Write the CorrectionSet JSON after a round trip through correctionlib (validation)."""
    cset = cs.CorrectionSet(schema_version=2, description="HT_all reweighting of tt+>=1b (ana reweight derive)",
                            corrections=corrections)
    text = cset.model_dump_json(exclude_unset=True)
    correctionlib.CorrectionSet.from_string(text)  # raises if correctionlib cannot read it
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text + "\n")
    return p
