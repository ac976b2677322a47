"""Bias study of the discrete-profiling envelope: toys of a known background plus an injected Gaussian signal,
envelope built on the blinded toy, μ fitted through the envelope; prints mean pull, pull width and how often
each function / family was chosen.

    /work/venv/bin/python benchmarks/bias_study.py --toys 200 --truth exponential
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.errors import UserError  # noqa: E402
from analysis.resonance.envelope import build_envelope  # noqa: E402

EDGES = np.linspace(100.0, 180.0, 41)
BLIND = (115.0, 135.0)
SIGNAL_MASS_GEV, SIGNAL_WIDTH_GEV, SIGNAL_EVENTS = 125.0, 2.0, 60.0
BACKGROUND_EVENTS = 3000.0


def truth_background(kind: str) -> np.ndarray:
    """Expected background per bin: 'exponential' (exp(-(x-100)/30)) or 'powerlaw' ((x/100)^-5), analytic."""
    if kind == "exponential":
        cdf = -np.exp(-(EDGES - 100.0) / 30.0)
    elif kind == "powerlaw":
        cdf = -((EDGES / 100.0) ** -4.0)  # ∫ u^-5 du ∝ -u^-4
    else:
        raise UserError(f"unknown truth {kind!r}: exponential or powerlaw")
    p = np.diff(cdf)
    return BACKGROUND_EVENTS * p / p.sum()


def signal_template() -> np.ndarray:
    """Expected signal per bin at μ = 1."""
    return SIGNAL_EVENTS * np.diff(stats.norm.cdf(EDGES, SIGNAL_MASS_GEV, SIGNAL_WIDTH_GEV))


def run_bias_study(n_toys: int = 60, seed: int = 0, truth: str = "exponential", mu_true: float = 1.0,
                   correction: float = 1.0, n_gof_toys: int = 200) -> dict[str, Any]:
    """Run the toys; pull = (μ̂ − μ_true)/σ with σ the envelope interval's side facing the truth."""
    bkg, sig = truth_background(truth), signal_template()
    rng = np.random.default_rng(seed)
    pulls, mus = [], []
    chosen_function: collections.Counter[str] = collections.Counter()
    chosen_family: collections.Counter[str] = collections.Counter()
    failed = 0
    start = time.perf_counter()
    for i in range(n_toys):
        counts = rng.poisson(bkg + mu_true * sig).astype(float)
        try:
            env = build_envelope(EDGES, counts, blind=BLIND, seed=seed * 100003 + i, correction=correction,
                                 n_toys=n_gof_toys)
            res = env.fit_mu_interval(counts, sig)
        except UserError:
            failed += 1
            continue
        sigma = res.error_up if res.mu < mu_true else res.error_down
        pulls.append((res.mu - mu_true) / sigma)
        mus.append(res.mu)
        chosen_function[res.function] += 1
        chosen_family[next(f.family for f in env.functions if f.name == res.function)] += 1
    pulls_arr = np.array(pulls)
    return {
        "truth": truth, "n_toys": n_toys, "n_failed": failed, "mu_true": mu_true, "correction": correction,
        "mean_pull": float(pulls_arr.mean()), "mean_pull_error": float(pulls_arr.std(ddof=1) / np.sqrt(len(pulls_arr))),
        "pull_width": float(pulls_arr.std(ddof=1)), "median_pull": float(np.median(pulls_arr)),
        "mean_mu": float(np.mean(mus)), "chosen_function": dict(chosen_function.most_common()),
        "chosen_family": dict(chosen_family.most_common()), "seconds": time.perf_counter() - start,
    }


def main(argv: list[str] | None = None) -> int:
    """Print the bias-study numbers (and optionally write them as JSON)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--toys", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--truth", choices=("exponential", "powerlaw"), nargs="+", default=["exponential", "powerlaw"])
    p.add_argument("--correction", type=float, default=1.0)
    p.add_argument("--json", metavar="FILE", help="also write the results here")
    args = p.parse_args(argv)
    results = []
    for truth in args.truth:
        r = run_bias_study(args.toys, args.seed, truth, correction=args.correction)
        results.append(r)
        print(f"truth {truth:12s} toys {r['n_toys']} (failed {r['n_failed']}): mean pull {r['mean_pull']:+.3f} "
              f"± {r['mean_pull_error']:.3f}, pull width {r['pull_width']:.3f}, mean mu {r['mean_mu']:.3f}, "
              f"{r['seconds']:.1f} s")
        print(f"  chosen family: {r['chosen_family']}")
        print(f"  chosen function: {r['chosen_function']}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
