"""Selection optimisation on simulation: cut scan (coordinate ascent) or a gradient-boosted classifier.

The figure of merit is the Asimov counting significance Z_A(s, b) = √(2((s+b)ln(1+s/b) − s)) in a
±2σ m_γγ window around each simulated signal mass, combined over masses as √(Σ Z_A²). Only non-mass
variables are used (the photon kinematics build m_γγ and would sculpt the background).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from analysis.errors import AnalysisError
from analysis.resonance.likelihood import asimov_z

Arrays = Mapping[str, np.ndarray]
INTEGER_FEATURES = ("n_jets", "n_leptons")


@dataclass
class CutSelection:
    """Lower/upper bounds per variable: keep lo ≤ x < hi."""

    cuts: dict[str, tuple[float, float]] = field(default_factory=dict)

    def __call__(self, features: Arrays) -> np.ndarray:
        """Boolean mask of events passing all cuts."""
        n = len(next(iter(features.values())))
        mask = np.ones(n, bool)
        for var, (lo, hi) in self.cuts.items():
            if var not in features:
                raise AnalysisError(f"selection variable {var!r} is not in the input")
            x = features[var]
            mask &= (x >= lo) & (x < hi)
        return mask

    def describe(self) -> dict:
        """JSON-friendly cut list (infinite bounds omitted)."""
        out = {}
        for var, (lo, hi) in self.cuts.items():
            d = {}
            if np.isfinite(lo):
                d["min"] = float(lo)
            if np.isfinite(hi):
                d["max_exclusive"] = float(hi)
            if d:
                out[var] = d
        return out


@dataclass
class ClassifierSelection:
    """Keep events whose gradient-boosted classifier score is ≥ threshold."""

    model: object
    variables: tuple[str, ...]
    threshold: float

    def score(self, features: Arrays) -> np.ndarray:
        """Classifier signal probability."""
        from threadpoolctl import threadpool_limits

        x = np.column_stack([features[v] for v in self.variables])
        with threadpool_limits(1):  # OpenMP spinning on busy shared cores costs 100× more than it gains here
            return self.model.predict_proba(x)[:, 1]

    def __call__(self, features: Arrays) -> np.ndarray:
        """Boolean mask of events passing the score cut."""
        return self.score(features) >= self.threshold


@dataclass
class Sample:
    """Simulated events for optimisation: features, m_γγ and per-event weight."""

    features: dict[str, np.ndarray]
    mass: np.ndarray
    weight: np.ndarray


def window_sums(sig: dict[float, Sample], bkg: Sample, windows: dict[float, tuple[float, float]],
                mask_s: dict[float, np.ndarray], mask_b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted s, b and raw background counts in each mass window after masks."""
    s, b, nb = [], [], []
    for m, (lo, hi) in windows.items():
        ws = (sig[m].mass >= lo) & (sig[m].mass < hi) & mask_s[m]
        wb = (bkg.mass >= lo) & (bkg.mass < hi) & mask_b
        s.append(float(np.sum(sig[m].weight[ws])))
        b.append(float(np.sum(bkg.weight[wb])))
        nb.append(int(np.sum(wb)))
    return np.array(s), np.array(b), np.array(nb)


def combined_z(s: np.ndarray, b: np.ndarray) -> float:
    """√(Σ Z_A²) over the signal masses."""
    return float(np.sqrt(np.sum(asimov_z(s, b) ** 2)))


def _candidates(values: np.ndarray, var: str, nq: int) -> np.ndarray:
    """Threshold candidates: half-integers for counts, quantiles otherwise."""
    if var in INTEGER_FEATURES:
        return np.arange(np.floor(values.min()), np.ceil(values.max()) + 1) + 0.5
    return np.unique(np.quantile(values, np.linspace(0.0, 1.0, nq + 1)[1:-1]))


def optimise_cuts(sig: dict[float, Sample], bkg: Sample, windows: dict[float, tuple[float, float]],
                  variables: tuple[str, ...], *, min_bkg_events: int = 100, nq: int = 40, max_passes: int = 4) -> tuple[CutSelection, dict]:
    """Coordinate ascent over (lower, upper) cuts per variable maximising the combined Asimov Z.

    The background in each window after cuts is b_window × ε_b(cuts), with ε_b measured on all simulated
    background events spanning the windows (the cut variables do not build m_γγ), so sparse high-mass
    windows do not drive the choice; at least ``min_bkg_events`` simulated background events must survive.
    """
    for v in variables:
        if v not in bkg.features:
            raise AnalysisError(f"selection variable {v!r} is not in the background simulation")
    lo_all = min(w[0] for w in windows.values())
    hi_all = max(w[1] for w in windows.values())
    region = (bkg.mass >= lo_all) & (bkg.mass < hi_all)
    if region.sum() < min_bkg_events:
        raise AnalysisError(f"background simulation has only {int(region.sum())} events in the search windows")
    bfeat = {v: bkg.features[v][region] for v in variables}
    bw = bkg.weight[region]
    ones_b = np.ones(len(bkg.mass), bool)
    _, b_win, _ = window_sums(sig, bkg, windows, {m: np.ones(len(x.mass), bool) for m, x in sig.items()}, ones_b)
    sig_in = {}
    for m, x in sig.items():
        w = (x.mass >= windows[m][0]) & (x.mass < windows[m][1])
        sig_in[m] = ({v: x.features[v][w] for v in variables}, x.weight[w])
    cuts = {v: (-np.inf, np.inf) for v in variables}
    pooled = {v: np.concatenate([bkg.features[v]] + [s.features[v] for s in sig.values()]) for v in variables}
    cands = {v: _candidates(pooled[v], v, nq) for v in variables}
    total_bw = float(bw.sum())

    def evaluate(c: dict[str, tuple[float, float]]) -> tuple[float, np.ndarray, np.ndarray]:
        sel = CutSelection(c)
        mb = sel(bfeat)
        eff_b = float(bw[mb].sum()) / total_bw
        s = np.array([float(w[sel(f)].sum()) for f, w in sig_in.values()])
        b = b_win * eff_b
        z = combined_z(s, b) if mb.sum() >= min_bkg_events else -1.0
        return z, s, b

    z0, s0, b0 = evaluate(cuts)
    best = z0
    for _ in range(max_passes):
        improved = False
        for v in variables:
            for side in (0, 1):
                for t in cands[v]:
                    trial = dict(cuts)
                    lo, hi = trial[v]
                    trial[v] = (t, hi) if side == 0 else (lo, t)
                    if trial[v][0] >= trial[v][1]:
                        continue
                    z = evaluate(trial)[0]
                    if z > best * (1 + 1e-6):
                        best, cuts, improved = z, trial, True
        if not improved:
            break
    z1, s1, b1 = evaluate(cuts)
    sel = CutSelection({v: c for v, c in cuts.items() if np.isfinite(c[0]) or np.isfinite(c[1])})
    _, _, nb1 = window_sums(sig, bkg, windows, {m: sel(x.features) for m, x in sig.items()}, sel(bkg.features))
    report = _report("cuts", list(windows), s0, b0, s1, b1, nb1)
    report["cuts"] = sel.describe()
    report["background_estimate"] = "window yield before cuts × cut efficiency over all windows (factorised)"
    return sel, report


def _report(method: str, masses: list[float], s0: np.ndarray, b0: np.ndarray, s1: np.ndarray, b1: np.ndarray, nb1: np.ndarray) -> dict:
    """Per-mass s, b and Asimov Z before/after and the combined gain."""
    z0, z1 = asimov_z(s0, b0), asimov_z(s1, b1)
    per_mass = {
        f"{m:g}": {"s_before": float(a), "b_before": float(b), "z_before": float(c), "s_after": float(d),
                   "b_after": float(e), "z_after": float(f), "bkg_sim_events_after": int(g)}
        for m, a, b, c, d, e, f, g in zip(masses, s0, b0, z0, s1, b1, z1, nb1)
    }
    zc0, zc1 = combined_z(s0, b0), combined_z(s1, b1)
    return {"method": method, "per_mass": per_mass, "combined_z_before": zc0, "combined_z_after": zc1,
            "gain": zc1 / zc0 if zc0 > 0 else float("nan")}


def train_classifier(sig: dict[float, Sample], bkg: Sample, windows: dict[float, tuple[float, float]],
                     variables: tuple[str, ...], *, seed: int = 0, min_bkg_events: int = 20) -> tuple[ClassifierSelection, dict]:
    """Gradient-boosted classifier (sklearn) on half the simulation; score cut chosen and reported on the other half."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(seed)
    split_s = {m: rng.uniform(size=len(s.mass)) < 0.5 for m, s in sig.items()}
    split_b = rng.uniform(size=len(bkg.mass)) < 0.5
    xs = np.concatenate([np.column_stack([s.features[v] for v in variables])[split_s[m]] for m, s in sig.items()])
    xb = np.column_stack([bkg.features[v] for v in variables])[split_b]
    x = np.vstack([xs, xb])
    y = np.concatenate([np.ones(len(xs)), np.zeros(len(xb))])
    w = np.concatenate([np.full(len(xs), 0.5 / len(xs)), np.full(len(xb), 0.5 / len(xb))]) * len(y)
    clf = HistGradientBoostingClassifier(max_iter=150, learning_rate=0.1, max_leaf_nodes=15,
                                         random_state=int(rng.integers(2**31 - 1)))
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        clf.fit(x, y, sample_weight=w)
    # evaluation on the held-out half, weights doubled
    test_sig = {m: Sample({v: s.features[v][~split_s[m]] for v in variables}, s.mass[~split_s[m]], 2 * s.weight[~split_s[m]])
                for m, s in sig.items()}
    test_bkg = Sample({v: bkg.features[v][~split_b] for v in variables}, bkg.mass[~split_b], 2 * bkg.weight[~split_b])
    proto = ClassifierSelection(clf, tuple(variables), 0.0)
    score_s = {m: proto.score(s.features) for m, s in test_sig.items()}
    score_b = proto.score(test_bkg.features)
    all_ones = {m: np.ones(len(s.mass), bool) for m, s in test_sig.items()}
    s0, b0, _ = window_sums(test_sig, test_bkg, windows, all_ones, np.ones(len(test_bkg.mass), bool))
    best = (combined_z(s0, b0), 0.0)
    for t in np.unique(np.quantile(score_b, np.linspace(0.0, 0.995, 200))):
        s, b, nb = window_sums(test_sig, test_bkg, windows, {m: score_s[m] >= t for m in test_sig}, score_b >= t)
        if np.all(nb >= min_bkg_events // 2):
            z = combined_z(s, b)
            if z > best[0]:
                best = (z, float(t))
    sel = ClassifierSelection(clf, tuple(variables), best[1])
    s1, b1, nb1 = window_sums(test_sig, test_bkg, windows, {m: score_s[m] >= best[1] for m in test_sig}, score_b >= best[1])
    report = _report("classifier", list(windows), s0, b0, s1, b1, nb1)
    report["threshold"] = best[1]
    report["variables"] = list(variables)
    report["evaluated_on"] = "held-out half of the simulation"
    return sel, report
