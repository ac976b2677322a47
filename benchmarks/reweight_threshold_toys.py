"""False-failure rates of the statistical criteria in tests/workflows/test_reweight.py, from toys.

For each generator seed the test's MC (and pseudo-data) are generated once and processed once; then the data
moments are replaced by toys: Poisson counts with the conditional expectation λ·(f_true·tt+≥1b + other MC) of each
(nJets, 10 GeV HT_all) bin (the generator's per-event Poisson(λ·f) multiplicities summed, so the same law), the
derivation is rerun (``derive_variation``) and every criterion of the test is evaluated against the truth.

    PYTHONPATH=$PWD /work/venv/bin/python benchmarks/reweight_threshold_toys.py --seeds 11 12 13 14 15 --toys 200

Measured (200 toys per seed, seeds 11–15): "≥ 90 % of points within 1.5 σ_f" fails 31–46 %; full-range closure
χ² (p > 1e-3 and χ² < ndf + 4√(2 ndf)) 0.5–13 %; the populated-range closure χ² 0–1.5 %; sup|f − truth|/σ_f ≥ 4,
max |k pull| ≥ 4 or k χ² p < 1e-3 together 0–1.5 %.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import tests.workflows.test_reweight as T
from analysis.reweighting.config import load_config
from analysis.reweighting.derive import (
    M0,
    M1,
    M2,
    MN,
    MW2,
    derive_variation,
    fill_moments,
    reweighted_fine,
)


def run(seed: int, ntoy: int, workdir: Path) -> dict[str, float]:
    """Failure fractions of each criterion over ``ntoy`` toys on the MC realisation of ``seed``."""
    path = T.generate_agc(workdir / f"s{seed}", events_per_file=100_000, files_per_sample=1, seed=seed,
                          samples=T.NOMINAL, inject_ht=T.F_TRUE, samples_config=T.SAMPLES_CFG)
    cfg = load_config(None, dict(T.CONFIG))
    h, norms, fileset = fill_moments(path, cfg, executor="futures", workers=2, samples_config=T.SAMPLES_CFG)
    view = h.view(flow=True)
    ds_names, comps = list(h.axes["dataset"]), list(h.axes["component"])
    off_d, off_c = view.shape[0] - len(ds_names), view.shape[1] - len(comps)
    shape = view.shape[2:4]
    nj = (np.arange(shape[0]) - 1)[:, None] * np.ones(shape)
    lows = (np.arange(shape[1]) - 1) * cfg["htBinWidth"]
    exp, exp1, exp2, tw, twf = (np.zeros(shape) for _ in range(5))
    for ds in fileset:
        if ds.startswith(cfg["dataProcess"]):
            continue
        for comp in comps:
            m = np.asarray(view[ds_names.index(ds) + off_d, comps.index(comp) + off_c, :, :])[..., :5]
            w = m[..., M0] * norms[ds]
            xbar = lows[None, :] + np.where(m[..., M0] > 0, m[..., M1] / np.where(m[..., M0] > 0, m[..., M0], 1), 0)
            rw = ds.startswith("ttbar") and comp in cfg["reweightSample"]
            f = T._f_true(xbar, nj) if rw else 1.0
            exp += w * f
            exp1 += m[..., M1] * norms[ds] * f
            exp2 += m[..., M2] * norms[ds] * f
            if rw:
                tw += w
                twf += w * f
    snorm = twf[6:].sum() / tw[6:].sum()  # <f_true> over nJets >= 5
    di, ci = ds_names.index(f"{cfg['dataProcess']}__nominal") + off_d, comps.index("none") + off_c
    safe = np.where(exp > 0, exp, 1.0)
    rng = np.random.default_rng(1000 + seed)
    rows = []
    for _ in range(ntoy):
        n = rng.poisson(exp)
        for k, val in ((M0, n), (MW2, n), (MN, n), (M1, n * exp1 / safe), (M2, n * exp2 / safe)):
            view[di, ci, :, :, k] = val
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            der = derive_variation(h, norms, fileset, cfg, "nominal")
        frac, zmax, pulls, kchi2, nk, cfull, nfull, cin, nin = [], 0.0, [], 0.0, 0, 0.0, 0, 0.0, 0
        for b in der.bins:
            lo, hi = b.njets
            rows_nj = slice(1 + lo, 1 + hi if hi is not None else None)
            idx = [int(round(e / cfg["htBinWidth"])) + 1 for e in b.edges]
            kt = np.array([twf[rows_nj, a:c].sum() / tw[rows_nj, a:c].sum() / snorm for a, c in zip(idx[:-1], idx[1:])])
            pulls.append((b.k - kt) / b.k_err)
            kchi2 += float((b.k - kt) @ np.linalg.pinv(b.cov_k) @ (b.k - kt))
            nk += len(kt)
            if hi == lo + 1:
                x = np.linspace(b.function.x_lo, b.function.x_hi, 60)
                truth = T._f_true(x, np.full_like(x, lo)) / snorm
                nom, up, dn = (b.function(x, s) for s in ("nominal", "up", "down"))
                frac.append(np.mean(np.abs(nom - truth) <= 1.5 * 0.5 * (up - dn)))
                zmax = max(zmax, float(np.max(np.abs(nom - truth) / (0.5 * (up - dn)))))
            fe = b.fine["fine_edges"]
            pred = b.fine["norm"] * reweighted_fine(b, fe) + b.fine["other"][M0]
            step = int(round(50.0 / cfg["htBinWidth"]))
            nn = len(pred) // step * step
            rb = lambda a: a[:nn].reshape(-1, step).sum(axis=1)
            d, p, v = rb(b.fine["data"][M0]), rb(pred), rb(b.fine["data"][MW2])
            lo50 = fe[:nn:step]
            used = p >= 10.0
            inside = used & (lo50 >= b.function.x_lo) & (lo50 + 50.0 <= b.function.x_hi)
            cfull += float(((d - p) ** 2 / v)[used].sum())
            nfull += int(used.sum())
            cin += float(((d - p) ** 2 / v)[inside].sum())
            nin += int(inside.sum())
        mp = float(np.max(np.abs(np.concatenate(pulls))))
        rows.append({
            "old_coverage": min(frac) < 0.9 or mp >= 3.5,
            "old_closure": stats.chi2.sf(cfull, nfull) < 1e-3 or cfull > nfull + 4 * np.sqrt(2 * nfull),
            "new_recovery": zmax >= 4.0 or mp >= 4.0 or stats.chi2.sf(kchi2, nk) < 1e-3,
            "new_closure": stats.chi2.sf(cin, nin) < 1e-3,
        })
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[11, 12, 13, 14, 15])
    ap.add_argument("--toys", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            rates = run(seed, args.toys, Path(tmp))
            print(f"seed {seed} ({args.toys} toys): " + ", ".join(f"{k} fails {v:.1%}" for k, v in rates.items()))


if __name__ == "__main__":
    main()
