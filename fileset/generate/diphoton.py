"""Synthetic diphoton background simulation and observed data in the X→γγ tutorial CSV format.

Background: falling m_γγ ∝ (1−x)^a / x^b (x = m/√s), a fraction of fake (less isolated) photons, more jets
and fewer leptons than the signal. Data: the same processes with a smooth exponential tilt in m_γγ
(so the simulation does not describe data perfectly) plus, optionally, an X signal at any mass made by
rescaling the photon pTs of signal events from the nearest simulated mass point.

Signal simulation: the real tutorial samples (``signal_dir``, e.g. ``../shared/data/xboson``) when given;
otherwise a synthetic X→γγ simulation at 500, 750 and 1000 GeV (:func:`synthetic_signal`) is written to
``out_dir/signal/`` in the same format, so the search runs in a fresh clone.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from fileset.errors import FilesetError
from schemas.diphoton import ALL_COLUMNS, read_diphoton_csv

PB_PER_FB = 1000.0  # 1 fb⁻¹ = 1000 pb⁻¹
SQRT_S_GEV = 14000.0  # scale of the background shape's x = m/√s (a shape parameter; search.yml's sqrt_s_tev labels plots)


@dataclass(frozen=True)
class DiphotonTruth:
    """Generator settings and the true content of the data (for injection/recovery checks)."""

    seed: int
    luminosity_fb: float
    background_cross_section_pb: float
    background_filter_efficiency: float
    n_background_sim: int
    n_data_background: int
    tilt: float
    shape_a: float
    shape_b: float
    signal_mass_gev: float | None
    signal_cross_section_pb: float | None
    signal_filter_efficiency: float
    n_data_signal: int
    signal_source_mass_gev: float | None
    signal_simulation: str = "real"


def _sample_mass(rng: np.random.Generator, n: int, a: float, b: float, tilt: float, lo: float, hi: float) -> np.ndarray:
    """Draw m_γγ from (1−x)^a x^−b · exp(tilt·(m−750)/1000) on [lo, hi] by inverse CDF on a fine grid."""
    grid = np.linspace(lo, hi, 20001)
    x = grid / SQRT_S_GEV
    pdf = (1 - x) ** a * x ** (-b) * np.exp(tilt * (grid - 750.0) / 1000.0)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (pdf[1:] + pdf[:-1]) * np.diff(grid))])
    cdf /= cdf[-1]
    return np.interp(rng.uniform(size=n), cdf, grid)


def _background_table(rng: np.random.Generator, mass: np.ndarray) -> pd.DataFrame:
    """Full tutorial-format rows for background events with the given m_γγ."""
    n = len(mass)
    deta = np.abs(rng.normal(0.0, 1.6, n))
    dphi = np.pi + rng.normal(0.0, 0.12, n)
    ratio = np.exp(rng.normal(0.0, 0.12, n))  # pT1/pT2
    pt2 = mass / np.sqrt(2.0 * ratio * (np.cosh(deta) - np.cos(dphi)))
    pt1 = ratio * pt2
    centre = rng.normal(0.0, 0.8, n)
    sign = rng.choice([-1.0, 1.0], n)
    eta1 = centre + sign * deta / 2
    eta2 = centre - sign * deta / 2
    phi1 = rng.uniform(0.0, 2 * np.pi, n)
    phi2 = np.mod(phi1 + dphi, 2 * np.pi)
    fake1 = rng.uniform(size=n) < 0.35
    fake2 = rng.uniform(size=n) < 0.30
    iso1 = rng.normal(0.75, 0.10, n) + fake1 * rng.gamma(2.0, 0.15, n)
    iso2 = rng.normal(0.75, 0.10, n) + fake2 * rng.gamma(2.0, 0.15, n)
    n_jets = rng.poisson(4.3, n).astype(float)
    n_leptons = rng.poisson(1.6, n).astype(float)
    return pd.DataFrame({
        "photon1_pT": pt1, "photon2_pT": pt2, "photon1_phi": phi1, "photon2_phi": phi2,
        "photon1_eta": eta1, "photon2_eta": eta2, "dEta": np.abs(eta1 - eta2), "n_jets": n_jets,
        "average_jet_pT": rng.lognormal(np.log(150.0), 0.6, n) * (n_jets > 0) + 40.0,
        "lead_jets_dPhi": rng.normal(2.0, 1.2, n) + (rng.uniform(size=n) < 0.05) * rng.uniform(0, 25, n),
        "n_leptons": n_leptons, "photon1_isolation": iso1, "photon2_isolation": iso2,
        "missing_energy": rng.exponential(0.15, n),
    })[list(ALL_COLUMNS)]


def write_tutorial_csv(df: pd.DataFrame, path: Path) -> None:
    """Write rows exactly like the tutorial: unnamed leading index column, counts as floats."""
    out = df[list(ALL_COLUMNS)].astype(np.float64).reset_index(drop=True)
    out.to_csv(path, index=True)


SYNTHETIC_SIGNAL_MASSES = (500.0, 750.0, 1000.0)
SIGNAL_RESOLUTION_GEV = 30.0  # m_γγ resolution of the real tutorial samples (σ ≈ 30 GeV at 500, 750, 1000 GeV)


def synthetic_signal(rng: np.random.Generator, mass: float, n: int = 10000) -> pd.DataFrame:
    """``n`` synthetic X→γγ events of mass ``mass`` [GeV], modelled on the real tutorial samples.

    m_γγ ~ Gauss(mass, 30 GeV); |Δη| ~ |Gauss(1.36 + 0.0026·(mass − 500), 0.47)| (the real samples' medians
    1.36/2.08/2.66 at 500/750/1000 GeV); Δφ uniform in [0.3, 2π − 0.3]; pT1/pT2 log-normal (median 0.81,
    width 0.3); photon pTs then follow from m² = 2 pT1 pT2 (cosh Δη − cos Δφ). Prompt, isolated photons
    (isolation ~ Gauss(0.75, 0.105)), n_jets ~ Poisson(3), n_leptons ~ Poisson(3), unlike the background
    (fakes, more jets, fewer leptons). Returns a tutorial-format table (columns ``ALL_COLUMNS``).
    """
    m = rng.normal(mass, SIGNAL_RESOLUTION_GEV, n)
    m = np.where(m > 0.1 * mass, m, mass)
    deta = np.abs(rng.normal(1.36 + 0.0026 * (mass - 500.0), 0.47, n))
    dphi = rng.uniform(0.3, 2 * np.pi - 0.3, n)
    ratio = np.exp(rng.normal(np.log(0.81), 0.3, n))
    pt2 = m / np.sqrt(2.0 * ratio * (np.cosh(deta) - np.cos(dphi)))
    pt1 = ratio * pt2
    eta2 = rng.normal(0.0, 1.0, n)
    eta1 = eta2 + rng.choice([-1.0, 1.0], n) * deta
    phi1 = rng.uniform(0.0, 2 * np.pi, n)
    phi2 = np.mod(phi1 - dphi, 2 * np.pi)
    n_jets = rng.poisson(3.0, n).astype(float)
    return pd.DataFrame({
        "photon1_pT": pt1, "photon2_pT": pt2, "photon1_phi": phi1, "photon2_phi": phi2,
        "photon1_eta": eta1, "photon2_eta": eta2, "dEta": np.abs(eta1 - eta2), "n_jets": n_jets,
        "average_jet_pT": rng.lognormal(np.log(136.0), 0.6, n) + 30.0,
        "lead_jets_dPhi": rng.normal(1.5, 1.0, n) + (rng.uniform(size=n) < 0.1) * rng.uniform(0, 25, n),
        "n_leptons": rng.poisson(3.0, n).astype(float),
        "photon1_isolation": rng.normal(0.75, 0.105, n), "photon2_isolation": rng.normal(0.75, 0.105, n),
        "missing_energy": rng.exponential(0.15, n),
    })[list(ALL_COLUMNS)]


def write_synthetic_signal(out_dir: Path, seed: int, masses: tuple[float, ...] = SYNTHETIC_SIGNAL_MASSES,
                           n: int = 10000) -> Path:
    """Write ``signal_<mass>.csv`` (``n`` events each, :func:`synthetic_signal`) into ``out_dir``; return it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 7])
    for mass in masses:
        write_tutorial_csv(synthetic_signal(rng, mass, n), out_dir / f"signal_{mass:g}.csv")
    return out_dir


def signal_samples(signal_dir: Path) -> dict[float, Path]:
    """The real tutorial signal files ``signal_<mass>.csv`` in ``signal_dir`` keyed by mass in GeV."""
    found = {}
    for p in Path(signal_dir).glob("signal_*.csv"):
        m = re.fullmatch(r"signal_(\d+(?:\.\d+)?)\.csv", p.name)
        if m:
            found[float(m.group(1))] = p
    if not found:
        raise FilesetError(f"{signal_dir}: no signal_<mass>.csv files found (real tutorial signal samples)")
    return dict(sorted(found.items()))


def injected_signal(rng: np.random.Generator, samples: dict[float, Path], mass: float, n: int) -> tuple[pd.DataFrame, float]:
    """``n`` real signal events from the nearest simulated mass with both photon pTs scaled by mass/m_sim."""
    source = min(samples, key=lambda m: abs(m - mass))
    df = read_diphoton_csv(samples[source])
    rows = rng.choice(len(df), size=n, replace=n > len(df))
    sig = df.iloc[rows].reset_index(drop=True).copy()
    scale = mass / source  # m_γγ ∝ sqrt(pT1 pT2) at fixed angles
    sig["photon1_pT"] *= scale
    sig["photon2_pT"] *= scale
    for col in ALL_COLUMNS:
        if col not in sig.columns:
            sig[col] = 0.0
    return sig[list(ALL_COLUMNS)], source


def generate_diphoton(
    out_dir: str | Path,
    *,
    seed: int = 1,
    signal_mass: float | None = None,
    signal_xsec_pb: float | None = None,
    luminosity_fb: float = 0.05,
    n_background_sim: int = 40000,
    tilt: float = 0.3,
    signal_dir: str | Path | None = None,
    mass_range_gev: tuple[float, float] = (500.0, 1000.0),
) -> dict:
    """Write background.csv, data.csv, search.yml and truth.json into ``out_dir``; return paths and truth.

    ``signal_dir``: directory of the real tutorial ``signal_<mass>.csv`` files; ``None`` writes the synthetic
    signal simulation (:func:`synthetic_signal`) to ``out_dir/signal`` and uses it (``result["signal"]``
    says which). Raises FilesetError for inconsistent options or a signal directory without samples.
    """
    if (signal_mass is None) != (signal_xsec_pb is None):
        raise FilesetError("--signal-mass and --signal-xsec must be given together")
    if signal_xsec_pb is not None and signal_xsec_pb < 0:
        raise FilesetError(f"--signal-xsec must be ≥ 0, got {signal_xsec_pb}")
    if luminosity_fb <= 0 or n_background_sim < 100:
        raise FilesetError("luminosity must be > 0 and the background simulation must have ≥ 100 events")
    out = Path(out_dir)
    if signal_dir is not None:
        sig_dir, signal_source = Path(signal_dir), "real"
        if not sig_dir.is_dir():
            raise FilesetError(f"--signal-dir {sig_dir}: no such directory (omit it for the synthetic signal)")
        samples = signal_samples(sig_dir)
    else:
        sig_dir, signal_source = out / "signal", "synthetic"
        samples = None
    if signal_mass is not None:
        masses = sorted(samples) if samples is not None else list(SYNTHETIC_SIGNAL_MASSES)
        if not (min(masses) * 0.7 <= signal_mass <= max(masses) * 1.3):
            raise FilesetError(f"--signal-mass {signal_mass} GeV too far from the simulated masses {masses}")
    out.mkdir(parents=True, exist_ok=True)
    if samples is None:
        samples = signal_samples(write_synthetic_signal(sig_dir, seed))
    rng = np.random.default_rng(seed)
    a, b, lo, hi = 8.0, 4.5, 280.0, 2500.0
    xsec_b, eff_b, eff_s = 12865.0, 0.081, 0.17
    lumi_pb = luminosity_fb * PB_PER_FB

    sim = _background_table(rng, _sample_mass(rng, n_background_sim, a, b, 0.0, lo, hi))
    write_tutorial_csv(sim, out / "background.csv")

    n_bkg = int(rng.poisson(lumi_pb * xsec_b * eff_b))
    data = _background_table(rng, _sample_mass(rng, n_bkg, a, b, tilt, lo, hi))
    n_sig, source = 0, None
    if signal_mass is not None and signal_xsec_pb > 0:
        n_sig = int(rng.poisson(lumi_pb * signal_xsec_pb * eff_s))
        sig, source = injected_signal(rng, samples, float(signal_mass), n_sig)
        data = pd.concat([data, sig], ignore_index=True)
    data = data.iloc[rng.permutation(len(data))]
    write_tutorial_csv(data, out / "data.csv")

    config = {
        "luminosity_fb": luminosity_fb,
        "mass_range_gev": [float(mass_range_gev[0]), float(mass_range_gev[1])],
        "signal": {
            "cross_section_pb": 5.4,
            "filter_efficiency": eff_s,
            "samples": {int(m) if float(m).is_integer() else m: (str(p.relative_to(out)) if signal_source == "synthetic"
                                                                 else str(p.resolve())) for m, p in samples.items()},
        },
        "background": {"cross_section_pb": xsec_b, "filter_efficiency": eff_b, "file": "background.csv"},
        "data": "data.csv",
    }
    (out / "search.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    truth = DiphotonTruth(
        seed=seed, luminosity_fb=luminosity_fb, background_cross_section_pb=xsec_b,
        background_filter_efficiency=eff_b, n_background_sim=n_background_sim, n_data_background=n_bkg,
        tilt=tilt, shape_a=a, shape_b=b, signal_mass_gev=signal_mass, signal_cross_section_pb=signal_xsec_pb,
        signal_filter_efficiency=eff_s, n_data_signal=n_sig, signal_source_mass_gev=source,
        signal_simulation=signal_source,
    )
    (out / "truth.json").write_text(json.dumps(asdict(truth), indent=2))
    return {
        "config": out / "search.yml", "background": out / "background.csv", "data": out / "data.csv",
        "truth": asdict(truth), "signal": signal_source, "signal_dir": sig_dir,
    }

