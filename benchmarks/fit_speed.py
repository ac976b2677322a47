"""Benchmark (not a test): ``ana fit`` stages vs a plain cabinetry script on the same workspace, and
``ana reinterpret`` vs plain pyhf on a one-channel 20-bin model; CPU seconds and ratios in one run.

    python benchmarks/fit_speed.py --histograms demo/histograms/histograms.root [--config cabinetry_config.yml]

Without --histograms only the reinterpretation comparison runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _cpu() -> float:
    return time.process_time()


def bench_fit(config: Path, histograms: Path, out: Path) -> dict[str, dict[str, float]]:
    """CPU seconds per stage: ours (``run_fit``) and plain cabinetry (fit + MINOS, ranking, scan, plots)."""
    import cabinetry

    from analysis.agc.inference import run_fit

    t0 = _cpu()
    outcome = run_fit(config, histograms, out / "ours", quiet=True)
    ours = {"total": _cpu() - t0, **{f"{k} (wall)": v for k, v in outcome.summary["timing_s"].items()}}

    ws = json.loads((out / "ours" / "workspace.json").read_text())
    model, data = cabinetry.model_utils.model_and_data(ws)
    poi = model.config.poi_name
    plain: dict[str, float] = {}
    t = _cpu()
    fr = cabinetry.fit.fit(model, data, minos=[poi], goodness_of_fit=True)
    plain["fit+minos"] = _cpu() - t
    rk = sc = None
    t = _cpu()
    try:  # cabinetry raises when one of its ranking fits fails (it does on the demo workspace)
        rk = cabinetry.fit.ranking(model, data, fit_results=fr)
    except Exception as err:  # noqa: BLE001 - report and carry on
        print(f"plain cabinetry ranking failed: {type(err).__name__}: {str(err).splitlines()[0][:80]}")
    plain["ranking"] = _cpu() - t
    t = _cpu()
    try:
        sc = cabinetry.fit.scan(model, data, poi, n_steps=21)
    except Exception as err:  # noqa: BLE001
        print(f"plain cabinetry scan failed: {type(err).__name__}: {str(err).splitlines()[0][:80]}")
    plain["scan"] = _cpu() - t
    t = _cpu()
    kw = {"figure_folder": out / "plain", "close_figure": True}
    cabinetry.visualize.pulls(fr, exclude=poi, **kw)
    cabinetry.visualize.correlation_matrix(fr, pruning_threshold=0.05, **kw)
    if rk is not None:
        cabinetry.visualize.ranking(rk, max_pars=15, **kw)
    if sc is not None:
        cabinetry.visualize.scan(sc, **kw)
    for res in (None, fr):
        cabinetry.visualize.data_mc(cabinetry.model_utils.prediction(model, fit_results=res), data, **kw)
    plain["plots"] = _cpu() - t
    plain["total"] = sum(plain.values())
    iv = outcome.poi_interval
    print(f"ours : {iv.text()}  CPU {ours['total']:.1f} s")
    print(f"plain: {poi} = {fr.bestfit[model.config.poi_index]:.4g} "
          f"{fr.minos_uncertainty.get(poi, ('n/a', 'n/a'))}  CPU {plain['total']:.1f} s")
    return {"ours": ours, "plain_cabinetry": plain}


def _recast_inputs(path: Path) -> None:
    import hist
    import uproot

    rng = np.random.default_rng(3)
    edges = np.linspace(1000, 3000, 21)
    x = 0.5 * (edges[1:] + edges[:-1])
    bkg = 2000 * np.exp(-(x - 1000) / 400)
    sig = 30 * np.exp(-0.5 * ((x - 2000) / 100) ** 2)
    data = rng.poisson(bkg).astype(float)

    def h(vals: np.ndarray, var: np.ndarray) -> hist.Hist:
        hh = hist.Hist(hist.axis.Variable(edges, name="mjj"), storage=hist.storage.Weight())
        hh.view().value, hh.view().variance = vals, var
        return hh

    with uproot.recreate(path) as f:
        f["data"], f["bkg"], f["sig"] = h(data, data), h(bkg, (0.05 * bkg) ** 2), h(sig, (0.1 * sig) ** 2)


def bench_reinterpret(out: Path) -> dict[str, float]:
    """CPU seconds: ``reinterpret_histograms`` (scan + limits + plots) vs plain pyhf upper_limit (toms748)."""
    import pyhf

    from analysis.recast.reinterpret import (
        build_workspace,
        read_histogram,
        reinterpret_histograms,
    )

    f = out / "recast20.root"
    _recast_inputs(f)
    t = _cpu()
    res = reinterpret_histograms(f, "data", f, "bkg", f, "sig", outputfile=out / "limit.png", plotfile=out / "spec.png")
    ours = _cpu() - t
    spec = build_workspace(read_histogram(f, "data"), read_histogram(f, "bkg"), read_histogram(f, "sig"))
    ws = pyhf.Workspace(spec)
    model = ws.model()
    pyhf.set_backend("numpy", "scipy")
    t = _cpu()
    obs, _exp = pyhf.infer.intervals.upper_limits.toms748_scan(ws.data(model), model, 0.1, 5.0, rtol=1e-4,
                                                             test_stat="qtilde")
    plain = _cpu() - t
    print(f"reinterpret: ours μ95 = {res.mu_upper_limit_observed:.4g} (CPU {ours:.1f} s, scan + plots); "
          f"plain pyhf μ95 = {float(obs):.4g} (CPU {plain:.1f} s, limits only)")
    return {"ours": ours, "plain_pyhf": plain}


def main() -> None:
    """Run the comparisons and print the ratios."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--histograms", type=Path)
    p.add_argument("--config", type=Path, default=REPO / "cabinetry_config.yml")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    for noisy in ("pyhf", "cabinetry", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        results: dict[str, object] = {}
        if args.histograms is not None:
            results["fit"] = r = bench_fit(args.config, args.histograms, out)
            print(f"ana fit / plain cabinetry CPU ratio: {r['ours']['total'] / r['plain_cabinetry']['total']:.2f}")
        results["reinterpret"] = r2 = bench_reinterpret(out)
        print(f"ana reinterpret / plain pyhf CPU ratio: {r2['ours'] / r2['plain_pyhf']:.2f}")
        print(json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    main()
