"""``ana generate recast``: tiny RECAST inputs — preserved data/background m_jj histograms and a new signal selection.

Two products, chosen with ``--what``:

* ``preserved``: ``DIR/external_data.root`` with ``data`` (Poisson events from the true background
  density) and ``background`` (weighted background MC of the same density, so it carries Σw² variances),
  the archive the fitting step reads (the seed's EOS ``external_data.root``).
* ``signal``: the *selection* stage for a new signal: a seeded sample of resonance events (Breit–Wigner
  mass ⊗ 10 % jet resolution, generator weights), the selection (two b-tags at 70 % each, m_jj in the
  analysis window) and the raw weighted histogram ``DIR/signal_raw.root:h_mjj``, plus
  ``DIR/signal_selection.json`` (YAML-readable: the yadage ``fromyaml-pub`` publisher reads it) with the
  absolute file path, the histogram name and the sample's total sum of weights Σw for the scaling step.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import hist
import numpy as np
import uproot

from fileset.errors import FilesetError

MJJ_RANGE_GEV = (50.0, 250.0)
BKG_SLOPE_GEV = 45.0
Z_FRACTION, Z_MASS_GEV, Z_RES_GEV = 0.08, 91.2, 9.0
BTAG_EFF = 0.7
JET_RESOLUTION = 0.10


@dataclass(frozen=True)
class RecastInputs:
    """Paths and numbers of what ``generate_recast`` wrote."""

    preserved_file: Path | None
    signal_file: Path | None
    selection_json: Path | None
    sum_of_weights: float | None


def _rng(seed: int, stream: int) -> np.random.Generator:
    """Independent generator per product, seeded from (seed, stream)."""
    return np.random.default_rng(np.random.SeedSequence([seed, stream]))


def _axis(bins: int) -> hist.axis.Regular:
    """The analysis m_jj binning."""
    return hist.axis.Regular(bins, *MJJ_RANGE_GEV, name="mjj", label="m_{jj} [GeV]")


def _sample_background(rng: np.random.Generator, n: int) -> np.ndarray:
    """m_jj of background events: exponential fall-off plus a Z→bb peak, truncated to the window."""
    lo, hi = MJJ_RANGE_GEV
    out = np.empty(0)
    while out.size < n:
        k = 2 * (n - out.size) + 16
        m = np.where(rng.random(k) < Z_FRACTION, rng.normal(Z_MASS_GEV, Z_RES_GEV, k), lo + rng.exponential(BKG_SLOPE_GEV, k))
        out = np.concatenate([out, m[(m >= lo) & (m < hi)]])
    return out[:n]


def write_preserved(out: Path, seed: int, bins: int, background_events: float, mc_events: int) -> Path:
    """Write ``external_data.root`` with the observed ``data`` and the weighted MC ``background``."""
    rng_data, rng_mc = _rng(seed, 0), _rng(seed, 1)
    n_obs = int(rng_data.poisson(background_events))
    data = hist.Hist(_axis(bins), storage=hist.storage.Double())
    data.fill(_sample_background(rng_data, n_obs))
    mc = _sample_background(rng_mc, mc_events)
    raw_w = rng_mc.uniform(0.5, 1.5, mc_events)
    weights = raw_w * background_events / raw_w.sum()
    bkg = hist.Hist(_axis(bins), storage=hist.storage.Weight())
    bkg.fill(mc, weight=weights)
    path = out / "external_data.root"
    with uproot.recreate(path) as f:
        f["data"] = data
        f["background"] = bkg
    return path


def write_signal(out: Path, seed: int, bins: int, mass_gev: float, width_gev: float, n_events: int) -> tuple[Path, Path, float]:
    """Generate, select and histogram a new resonance sample; return (root file, selection json, Σw)."""
    if mass_gev <= 0 or width_gev <= 0 or n_events <= 0:
        raise FilesetError("--signal-mass, --signal-width and --signal-events must be positive")
    rng = _rng(seed, 2)
    true_mass = mass_gev + width_gev / 2 * rng.standard_cauchy(n_events)
    mjj = true_mass * (1.0 + JET_RESOLUTION * rng.standard_normal(n_events))
    weights = rng.uniform(0.5, 1.5, n_events)  # generator weights
    two_btags = (rng.random(n_events) < BTAG_EFF) & (rng.random(n_events) < BTAG_EFF)
    selected = two_btags & (mjj >= MJJ_RANGE_GEV[0]) & (mjj < MJJ_RANGE_GEV[1])
    h = hist.Hist(_axis(bins), storage=hist.storage.Weight())
    h.fill(mjj[selected], weight=weights[selected])
    root_path = out / "signal_raw.root"
    with uproot.recreate(root_path) as f:
        f["h_mjj"] = h
    sumw = float(weights.sum())
    info = {
        "signal_file": str(root_path.resolve()),
        "hist": "h_mjj",
        "sum_of_weights": sumw,
        "n_generated": int(n_events),
        "n_selected": int(selected.sum()),
        "selected_sum_of_weights": float(weights[selected].sum()),
        "signal_mass_gev": float(mass_gev),
        "signal_width_gev": float(width_gev),
        "seed": int(seed),
    }
    json_path = out / "signal_selection.json"
    json_path.write_text(json.dumps(info, indent=1) + "\n")
    return root_path, json_path, sumw


def generate_recast(
    out: str | Path,
    *,
    seed: int = 1,
    what: str = "all",
    bins: int = 20,
    background_events: float = 5000.0,
    mc_events: int = 40000,
    signal_mass_gev: float = 125.0,
    signal_width_gev: float = 4.0,
    signal_events: int = 20000,
) -> RecastInputs:
    """Write the preserved archive and/or the new signal's selected histogram under ``out``."""
    if what not in ("all", "preserved", "signal"):
        raise FilesetError(f"--what must be all, preserved or signal, got {what!r}")
    if bins < 1 or background_events <= 0 or mc_events < 1:
        raise FilesetError("--bins, --background-events and --mc-events must be positive")
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    preserved = write_preserved(out_dir, seed, bins, background_events, mc_events) if what != "signal" else None
    signal = json_path = sumw = None
    if what != "preserved":
        signal, json_path, sumw = write_signal(out_dir, seed, bins, signal_mass_gev, signal_width_gev, signal_events)
    return RecastInputs(preserved, signal, json_path, sumw)
