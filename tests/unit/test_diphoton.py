"""Diphoton inputs, schema, signal model, Asimov formula and CLI: fast checks against independent truth."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special

from analysis.errors import UserError
from analysis.resonance.likelihood import asimov_z
from analysis.resonance.signal_model import dscb_cdf, dscb_pdf, fit_dscb
from processors.diphoton import DiphotonProcessor, diphoton_mass, process_events
from schemas.diphoton import ALL_COLUMNS, load_events, read_diphoton_csv

ANA = [sys.executable, "-m", "analysis"]


def _signal(shared_dir: Path, mass: int) -> Path:
    return shared_dir / "data" / "xboson" / f"signal_{mass}.csv"


def test_schema_mass_matches_independent_formula(shared_dir: Path) -> None:
    """events.photon[:,0] + events.photon[:,1] gives m_γγ = √(2 pT1 pT2 (cosh Δη − cos Δφ)) from pandas."""
    path = _signal(shared_dir, 750)
    events = load_events(path)
    assert len(events) == 10000
    assert set(np.unique(np.asarray([len(p) for p in events.photon.pt[:100]]))) == {2}
    m = diphoton_mass(events)
    df = pd.read_csv(path, index_col=0)
    ref = np.sqrt(2 * df.photon1_pT * df.photon2_pT * (np.cosh(df.photon1_eta - df.photon2_eta) - np.cos(df.photon1_phi - df.photon2_phi)))
    np.testing.assert_allclose(m, ref.to_numpy(), rtol=1e-9)
    assert abs(np.median(m) - 750) < 3  # the sample's nominal mass
    np.testing.assert_allclose(np.asarray(events.photon.mass), 0.0)
    np.testing.assert_array_equal(np.asarray(events.n_jets), df.n_jets.to_numpy())


def test_processor_blinding_drops_window_events(shared_dir: Path) -> None:
    """With a blind window, nothing inside it reaches the histogram or arrays."""
    events = load_events(_signal(shared_dir, 750))
    edges = np.arange(300.0, 1510.0, 10.0)
    res = process_events(events, DiphotonProcessor(edges, weight=2.0, blind=(700.0, 800.0)))
    mass = diphoton_mass(events)
    outside = (mass < 700) | (mass >= 800)
    assert res["n_events"] == outside.sum()
    assert np.all((res["arrays"]["mass"] < 700) | (res["arrays"]["mass"] >= 800))
    centers = edges[:-1] + 5
    h = res["hist"].values()
    assert np.all(h[(centers > 700) & (centers < 800)] == 0)
    in_range = outside & (mass >= 300) & (mass < 1500)
    assert h.sum() == pytest.approx(2.0 * in_range.sum())


def _write(df: pd.DataFrame, path: Path) -> Path:
    df.to_csv(path, index=True)
    return path


@pytest.mark.parametrize(
    "mutate, column, row, fragment",
    [
        (lambda d: d.drop(columns=["n_leptons"]), "n_leptons", None, "missing required column"),
        (lambda d: d.assign(photon2_pT=d.photon2_pT.where(d.index != 7, np.nan)), "photon2_pT", 7, "not a finite number"),
        (lambda d: d.assign(n_jets=d.n_jets.astype(object).where(d.index != 3, "three")), "n_jets", 3, "'three'"),
        (lambda d: d.assign(missing_energy=d.missing_energy.astype(object).where(d.index != 5, "x")), "missing_energy", 5, "'x'"),
    ],
)
def test_bad_csv_one_line_error(shared_dir: Path, tmp_path: Path, mutate, column: str, row: int | None, fragment: str) -> None:
    """Missing required columns and non-numeric/NaN values name file, column and row on one line."""
    df = pd.read_csv(_signal(shared_dir, 500), index_col=0).iloc[:20]
    path = _write(mutate(df), tmp_path / "bad.csv")
    with pytest.raises(UserError) as err:
        read_diphoton_csv(path)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and column in msg and fragment in msg
    if row is not None:
        assert f"row {row}" in msg


def test_optional_columns_may_be_missing(shared_dir: Path, tmp_path: Path) -> None:
    """Only kinematics, multiplicities and isolations are required."""
    df = pd.read_csv(_signal(shared_dir, 500), index_col=0).iloc[:50].drop(columns=["dEta", "missing_energy", "average_jet_pT"])
    events = load_events(_write(df, tmp_path / "ok.csv"))
    assert "missing_energy" not in events.fields and len(events) == 50


def test_asimov_formula_matches_poisson_likelihood_ratio() -> None:
    """Z_A equals √q0 of a Poisson counting experiment evaluated on the Asimov count n = s + b."""
    rng = np.random.default_rng(7)
    for s, b in zip(rng.uniform(0.5, 50, 20), rng.uniform(0.5, 500, 20)):
        n = s + b
        logpois = lambda mu: n * np.log(mu) - mu - special.gammaln(n + 1)  # noqa: E731
        q0 = -2 * (logpois(b) - logpois(s + b))
        assert asimov_z(s, b) == pytest.approx(np.sqrt(q0), rel=1e-10)
    assert asimov_z(1.0, 1e6) == pytest.approx(1.0 / 1e3, rel=1e-3)  # s ≪ b → s/√b
    # median significance of real Poisson toys agrees with the Asimov value
    s, b = 60.0, 100.0
    n = rng.poisson(s + b, 20001).astype(float)
    q0 = 2 * (n * np.log(n / b) - (n - b))
    assert np.median(np.sqrt(np.where(n > b, q0, 0))) == pytest.approx(asimov_z(s, b), rel=0.03)


def test_dscb_cdf_and_fit() -> None:
    """Analytic DSCB CDF equals numerical integration; a fit recovers a known Gaussian-core + tail sample."""
    par = (700.0, 25.0, 1.1, 3.0, 1.8, 6.0)
    for x in (550.0, 660.0, 700.0, 760.0, 900.0):
        num = integrate.quad(lambda m: dscb_pdf(m, *par), -5e4, x, limit=400, points=[670.0, 745.0])[0]
        assert dscb_cdf(x, *par) == pytest.approx(num, abs=1e-6)
    rng = np.random.default_rng(3)
    x = rng.normal(800.0, 28.0, 8000)
    fit = fit_dscb(x, 800.0)
    assert fit["mean"] == pytest.approx(800.0, abs=3 * fit["mean_err"] + 0.1)
    assert fit["sigma"] == pytest.approx(28.0, abs=3 * fit["sigma_err"] + 0.1)


def test_generated_files_have_tutorial_format(shared_dir: Path, tmp_path: Path) -> None:
    """Background/data CSVs: unnamed leading index, exact columns, float counts; fakes less isolated, more jets."""
    from fileset.generate.diphoton import generate_diphoton

    res = generate_diphoton(tmp_path, seed=2, luminosity_fb=0.01, n_background_sim=3000, signal_dir=shared_dir / "data" / "xboson")
    header = (tmp_path / "background.csv").read_text().splitlines()[0]
    assert header == "," + ",".join(ALL_COLUMNS)
    assert (tmp_path / "data.csv").read_text().splitlines()[1].split(",")[8].endswith(".0")  # n_jets as float
    bkg = read_diphoton_csv(tmp_path / "background.csv")
    sig = read_diphoton_csv(_signal(shared_dir, 750))
    assert len(bkg) == 3000 and abs(len(read_diphoton_csv(tmp_path / "data.csv")) - 0.01 * 1000 * 12865 * 0.081) < 5 * 33
    assert bkg.photon1_isolation.mean() > sig.photon1_isolation.mean() + 0.05
    assert bkg.n_jets.mean() > sig.n_jets.mean() + 0.5 and bkg.n_leptons.mean() < sig.n_leptons.mean() - 0.5
    m = np.sqrt(2 * bkg.photon1_pT * bkg.photon2_pT * (np.cosh(bkg.photon1_eta - bkg.photon2_eta) - np.cos(bkg.photon1_phi - bkg.photon2_phi)))
    h, _ = np.histogram(m, [300, 500, 700, 900, 1100])
    assert np.all(np.diff(h) < 0)  # falling spectrum
    assert np.all((bkg.photon1_phi >= 0) & (bkg.photon1_phi < 2 * np.pi))
    assert res["truth"]["n_data_signal"] == 0


def test_injected_signal_peaks_at_requested_mass(shared_dir: Path) -> None:
    """Rescaling real signal photon pTs moves the peak to a mass between the simulated points."""
    from fileset.generate.diphoton import injected_signal, signal_samples
    from schemas.diphoton import events_from_frame

    rng = np.random.default_rng(1)
    sig, source = injected_signal(rng, signal_samples(shared_dir / "data" / "xboson"), 640.0, 3000)
    assert source == 750.0
    m = diphoton_mass(events_from_frame(sig, "inj"))
    assert np.median(m) == pytest.approx(640.0, rel=0.01)


def test_cli_exit_codes(shared_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """generate → 0; bad config key → 2 with the key named on one line; missing config → 2; bad --signal pair → 2."""
    from analysis.cli import main

    assert main(["generate", "diphoton", "--out", str(tmp_path / "u"), "--luminosity-fb", "0.01", "--background-events", "2000"]) == 0
    capsys.readouterr()
    cfg = (tmp_path / "u" / "search.yml").read_text()
    (tmp_path / "u" / "bad.yml").write_text(cfg + "colour: blue\n")
    assert main(["search", "--config", str(tmp_path / "u" / "bad.yml"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "colour" in err and len(err.strip().splitlines()) == 1
    assert main(["search", "--config", str(tmp_path / "none.yml"), "--out", str(tmp_path / "o")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["generate", "diphoton", "--out", str(tmp_path / "v"), "--signal-mass", "700"]) == 2
    assert "--signal-xsec" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_cli_subprocess_user_error_exit_code(tmp_path: Path) -> None:
    """The installed entry point turns a user error into exit code 2 without a traceback."""
    proc = subprocess.run(ANA + ["search", "--config", str(tmp_path / "none.yml"), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "none.yml" in proc.stderr
