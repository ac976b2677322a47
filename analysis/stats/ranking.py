"""Nuisance-parameter impacts on the POI (cabinetry's definition), fits in parallel threads.

For every free constrained parameter θ: refit with θ fixed at θ̂ ± (pre-fit σ) and θ̂ ± (post-fit σ) and
record Δμ̂ (``cabinetry.fit.ranking``).  The fits are the core's guarded fits started from the best fit;
a fit failing the guard gives a NaN impact and a warning instead of a silent number.  The compiled
likelihood releases the GIL while evaluating, so threads overlap on several cores.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analysis.stats.fit import NEARBY_FIT, FitResult, fit
from analysis.stats.likelihood import Likelihood


@dataclass
class RankingResult:
    """Impacts on the POI, one row per parameter (arrays of shape (n,))."""

    labels: list[str]
    bestfit: np.ndarray
    uncertainty: np.ndarray
    prefit_up: np.ndarray
    prefit_down: np.ndarray
    postfit_up: np.ndarray
    postfit_down: np.ndarray
    warnings: list[str] = field(default_factory=list)

    def to_cabinetry(self):
        """``cabinetry.fit.RankingResults`` for cabinetry's ranking plot."""
        import cabinetry

        return cabinetry.fit.RankingResults(self.bestfit, self.uncertainty, self.labels, self.prefit_up,
                                            self.prefit_down, self.postfit_up, self.postfit_down)

    def to_list(self) -> list[dict[str, Any]]:
        """JSON-ready rows (an impact whose fit failed the guard is ``None``, JSON null, not NaN)."""
        def num(x: float) -> float | None:
            return float(x) if np.isfinite(x) else None

        return [{"parameter": lab, "prefit_impact_up": num(a), "prefit_impact_down": num(b),
                 "postfit_impact_up": num(c), "postfit_impact_down": num(d)}
                for lab, a, b, c, d in zip(self.labels, self.prefit_up, self.prefit_down, self.postfit_up,
                                           self.postfit_down)]

    def finite(self) -> tuple[RankingResult, list[str]]:
        """The rows whose four impacts are all known, and the names of the rows left out (a refit at θ̂ ± Δθ
        failed the guard, e.g. the model has a negative yield there): what can be drawn, and what to say."""
        ok = np.isfinite(np.column_stack([self.prefit_up, self.prefit_down, self.postfit_up, self.postfit_down])).all(axis=1)
        kept = RankingResult([lab for lab, k in zip(self.labels, ok) if k], self.bestfit[ok], self.uncertainty[ok],
                             self.prefit_up[ok], self.prefit_down[ok], self.postfit_up[ok], self.postfit_down[ok],
                             list(self.warnings))
        return kept, [lab for lab, k in zip(self.labels, ok) if not k]


def impacts(lh: Likelihood, best: FitResult, *, include_staterror: bool = False, workers: int = 2) -> RankingResult:
    """Pre- and post-fit impacts of every free constrained parameter on the POI.

    Args:
        lh: likelihood; best: its guarded best fit (with HESSE uncertainties).
        include_staterror: also rank the per-bin MC-statistics parameters.
        workers: threads running the fits.
    """
    from cabinetry.model_utils import prefit_uncertainties

    from analysis.stats.likelihood import pyhf_backend

    with pyhf_backend("numpy"):
        prefit = np.asarray(prefit_uncertainties(lh.model), dtype=float)
    poi = lh.poi_index
    rows = [i for i, name in enumerate(lh.labels)
            if i != poi and not best.fixed[i] and prefit[i] > 0
            and (include_staterror or not name.startswith("staterror_"))]
    jobs = []
    for i in rows:
        v, post = best.bestfit[i], best.uncertainty[i]
        lo, hi = lh.bounds[i]
        for shift in (prefit[i], -prefit[i], post, -post):
            jobs.append((i, float(np.clip(v + shift, lo, hi))))

    def run(job: tuple[int, float]) -> tuple[float, str | None]:
        i, value = job
        if value == best.bestfit[i]:
            return 0.0, None
        r = fit(lh, init=best.bestfit, fix={i: value}, hesse=False, **NEARBY_FIT)
        if not r.quality.ok:
            return float("nan"), f"{lh.labels[i]} = {value:.4g}: " + "; ".join(r.quality.warnings)
        return float(r.bestfit[poi] - best.bestfit[poi]), None

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        out = list(pool.map(run, jobs))
    a = np.array([x for x, _ in out], dtype=float).reshape(-1, 4)
    return RankingResult([lh.labels[i] for i in rows], best.bestfit[rows], best.uncertainty[rows],
                         a[:, 0], a[:, 1], a[:, 2], a[:, 3], [w for _, w in out if w])
