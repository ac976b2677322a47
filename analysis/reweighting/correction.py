"""correctionlib output: CorrectionSet with ``ht_reweighting`` (inputs systematic, nJets, HT_all)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import correctionlib
import correctionlib.schemav2 as cs
import numpy as np

from analysis.errors import AnalysisError
from analysis.reweighting.spline import QuadraticSpline

SYSTEMATICS = ("nominal", "up", "down")
NJETS_TOP = 99  # upper edge of the last (inclusive) nJets bin
_T = "(min(max(x,[3]),[4])-[3])"


def _formula(spline: QuadraticSpline, cov: np.ndarray, i: int, sign: int) -> cs.Formula:
    """f (sign 0) or f ± σ_f (sign ±1) in HT bin i, with HT_all clamped to the bin (constant outside the range)."""
    a, b, c = (float(v) for v in spline.coef[i])
    lo, hi = float(spline.edges[i]), float(spline.edges[i + 1])
    expr = f"[0]*{_T}*{_T}+[1]*{_T}+[2]"
    params = [a, b, c, lo, hi]
    if sign:
        m = cov[i]
        q = [m[0, 0], 2 * m[0, 1], 2 * m[0, 2] + m[1, 1], 2 * m[1, 2], m[2, 2]]
        expr += f"+[10]*sqrt(abs([5]*{_T}^4+[6]*{_T}^3+[7]*{_T}^2+[8]*{_T}+[9]))"
        params += [float(v) for v in q] + [float(sign)]
    return cs.Formula(nodetype="formula", expression=expr, parser="TFormula", variables=["HT_all"], parameters=params)


def build_correction(name: str, njet_bins: list[int], splines: list[QuadraticSpline], coef_covs: list[np.ndarray],
                     description: dict[str, Any]) -> cs.Correction:
    """One correction: category on systematic → binning on nJets (clamped) → binning on HT_all → formulas."""
    if len(njet_bins) != len(splines) or len(splines) != len(coef_covs):
        raise AnalysisError("correction: one spline and covariance per nJets bin are needed")
    edges_nj = [float(b) for b in njet_bins] + [float(NJETS_TOP)]
    content = []
    for syst, sign in zip(SYSTEMATICS, (0, 1, -1)):
        per_nj = [cs.Binning(nodetype="binning", input="HT_all", edges=[float(e) for e in sp.edges],
                             content=[_formula(sp, cov, i, sign) for i in range(sp.n_bins)], flow="clamp")
                  for sp, cov in zip(splines, coef_covs)]
        content.append(cs.CategoryItem(key=syst, value=cs.Binning(nodetype="binning", input="nJets", edges=edges_nj,
                                                                     content=per_nj, flow="clamp")))
    return cs.Correction(
        name=name, version=1, description=json.dumps(description, sort_keys=True),
        inputs=[cs.Variable(name="systematic", type="string", description="nominal, up or down (±1σ statistical)"),
                cs.Variable(name="nJets", type="int", description="jets above the derivation pT threshold; clamped to the bins"),
                cs.Variable(name="HT_all", type="real", description="Σ jet pT + Σ lepton pT [GeV]; constant outside the fit range")],
        output=cs.Variable(name="weight", type="real", description="multiplicative event weight for tt+>=1b"),
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
