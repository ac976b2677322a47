"""The small things a new user trips over, each pinned: input mix-ups named, valid cluster examples, the
synthetic diphoton signal, √s in plot labels (omitted when unknown), the m_γγ spectrum generator."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from analysis.errors import AnalysisError
from fileset.errors import FilesetError


def test_json_given_as_histograms_is_named_as_such(tmp_path):
    """A metrics.json passed where histograms.root is expected: 'a JSON file', not 'not found'."""
    from analysis.histio import require_root_file

    js = tmp_path / "metrics.json"
    js.write_text(json.dumps({"events": 1}))
    with pytest.raises(AnalysisError, match=r"metrics\.json: a JSON file, expected a ROOT histogram file"):
        require_root_file(js)
    with pytest.raises(AnalysisError, match="histogram file not found"):
        require_root_file(tmp_path / "missing.root")
    text = tmp_path / "notes.root"
    text.write_text("hello")
    with pytest.raises(AnalysisError, match="not a ROOT file"):
        require_root_file(text)


def test_json_histograms_through_ana_fit(tmp_path, capsys):
    """`ana fit --histograms x.json` exits 2 with the one-line message."""
    from analysis.cli import main

    js = tmp_path / "metrics.json"
    js.write_text("{}")
    root = Path(__file__).resolve().parents[2]
    assert main(["fit", "--config", str(root / "cabinetry_config.yml"), "--histograms", str(js), "--out",
                 str(tmp_path / "fit")]) == 2
    assert "a JSON file" in capsys.readouterr().err


def test_htcondor_job_flavour_validated():
    """`queue: short` is a Slurm partition, not an HTCondor +JobFlavour: reported with the valid choices."""
    from analysis.execution.cluster import HTCONDOR_JOB_FLAVOURS, check_cluster_config, jobqueue_kwargs

    doc = {"cluster": {"cores": 4, "memory": "16GB", "queue": "short"}}
    with pytest.raises(AnalysisError, match="'short' is not an HTCondor \\+JobFlavour .*espresso"):
        check_cluster_config(doc, "htcondor", "cluster.yml")
    assert check_cluster_config(doc, "slurm", "cluster.yml")["queue"] == "short"
    doc["cluster"]["queue"] = "longlunch"
    cfg = check_cluster_config(doc, "htcondor", "cluster.yml")
    assert jobqueue_kwargs("htcondor", cfg)["job_extra_directives"]["+JobFlavour"] == '"longlunch"'
    assert len(HTCONDOR_JOB_FLAVOURS) == 7



@pytest.mark.parametrize("kind", ["htcondor", "slurm"])
def test_cluster_config_reports_every_problem_in_one_line(tmp_path, capsys, kind):
    """Unknown key + wrong type + unknown HTCondor flavour (+ processes > cores): all named together, exit 2."""
    from analysis.cli import main

    cfg = tmp_path / "cl.yml"
    cfg.write_text("cluster:\n  cores: four\n  memory: 16GB\n  queue: lunchtime\n  foo: 1\n"
                   "  adaptive: {minimum: 5, maximum: 2}\n")
    rc = main(["run", "ttbar", "--cluster", kind, "--cluster-config", str(cfg), "--print-job-script"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "Traceback" not in err[0], err
    line = err[0]
    assert "cl.yml: invalid config:" in line
    assert "'foo' was unexpected" in line and "cluster/cores: 'four' is not of type 'integer'" in line
    assert "cluster/adaptive: minimum 5 exceeds maximum 2" in line
    # 'lunchtime' is a valid Slurm partition name, not an HTCondor +JobFlavour
    assert ("cluster/queue: 'lunchtime' is not an HTCondor +JobFlavour" in line) == (kind == "htcondor")
    assert line.count(";") == (3 if kind == "htcondor" else 2)

def test_sumweights_from_selection_json(tmp_path):
    """`ana scale --sumweights` takes a number or the selection json's sum_of_weights."""
    from analysis.cli.scale import sum_of_weights

    sel = tmp_path / "signal_selection.json"
    sel.write_text(json.dumps({"sum_of_weights": 20050.648468377633}))
    assert sum_of_weights("1234.5") == 1234.5
    assert sum_of_weights(str(sel)) == 20050.648468377633
    (tmp_path / "bad.json").write_text(json.dumps({"n": 3}))
    with pytest.raises(AnalysisError, match="no numeric 'sum_of_weights'"):
        sum_of_weights(str(tmp_path / "bad.json"))
    with pytest.raises(AnalysisError, match="neither a number nor a .json file"):
        sum_of_weights("many")


def test_unblind_writes_next_to_blind_results():
    """--unblind output goes to OUT/unblinded, never over OUT/results.json."""
    from analysis.cli.search import unblinded_dir

    assert unblinded_dir("search") == Path("search") / "unblinded"


def _mass(df: pd.DataFrame) -> np.ndarray:
    """m_γγ of massless photons from the tutorial columns."""
    return np.sqrt(2 * df.photon1_pT * df.photon2_pT * (np.cosh(df.photon1_eta - df.photon2_eta)
                                                       - np.cos(df.photon1_phi - df.photon2_phi))).to_numpy()


@pytest.mark.parametrize("mass", [500.0, 750.0, 1000.0])
def test_synthetic_signal_peak_and_kinematics(mass):
    """Synthetic X→γγ: m_γγ peak at M with σ = 30 GeV (the real samples' resolution), Δη median as modelled."""
    from fileset.generate.diphoton import SIGNAL_RESOLUTION_GEV, synthetic_signal

    df = synthetic_signal(np.random.default_rng(5), mass, 40000)
    m = _mass(df)
    assert np.mean(m) == pytest.approx(mass, abs=4 * SIGNAL_RESOLUTION_GEV / np.sqrt(len(m)))
    assert np.std(m) == pytest.approx(SIGNAL_RESOLUTION_GEV, rel=0.03)
    assert np.median(df.dEta) == pytest.approx(1.36 + 0.0026 * (mass - 500.0), abs=0.02)
    assert np.isfinite(df.to_numpy()).all() and (df.photon1_pT > 0).all() and (df.photon2_pT > 0).all()
    assert ((df.photon1_phi >= 0) & (df.photon1_phi < 2 * np.pi)).all()


def test_generate_diphoton_without_signal_dir(tmp_path):
    """No --signal-dir: synthetic samples written next to the data, search.yml points at them (relative),
    truth says synthetic; a wrong --signal-dir is one clear error."""
    from fileset.generate.diphoton import generate_diphoton
    from schemas.diphoton import read_diphoton_csv

    res = generate_diphoton(tmp_path / "xgg", n_background_sim=500, luminosity_fb=0.005)
    assert res["signal"] == "synthetic"
    cfg = yaml.safe_load((tmp_path / "xgg" / "search.yml").read_text())
    assert cfg["signal"]["samples"] == {500: "signal/signal_500.csv", 750: "signal/signal_750.csv",
                                        1000: "signal/signal_1000.csv"}
    assert len(read_diphoton_csv(tmp_path / "xgg" / "signal" / "signal_750.csv")) == 10000
    assert json.loads((tmp_path / "xgg" / "truth.json").read_text())["signal_simulation"] == "synthetic"
    with pytest.raises(FilesetError, match="no such directory"):
        generate_diphoton(tmp_path / "other", signal_dir=tmp_path / "nowhere")


@pytest.mark.parametrize("com, shown", [(14.0, "14 TeV"), (None, None)])
def test_label_energy_from_argument(com, shown):
    """The experiment label shows the configured √s, and none when it is not configured."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from analysis.plotting import label

    fig, ax = plt.subplots()
    label(ax, "Data", lumi=0.05, com=com)
    texts = " ".join(t.get_text() for t in fig.findobj(matplotlib.text.Text))
    plt.close(fig)
    assert ("TeV" in texts) == (shown is not None)
    if shown:
        assert "14" in texts


def test_spectrum_generator(tmp_path):
    """`ana generate spectrum`: three categories in [100, 180] GeV, counts scaled, peak at 125 GeV."""
    from fileset.generate.spectrum import generate_spectrum

    df = pd.read_parquet(generate_spectrum(tmp_path / "events.parquet", scale=0.5))
    assert sorted(df.cat.unique()) == ["cat0", "cat1", "cat2"] and set(df.columns) == {"mgg", "cat", "weight"}
    assert df.mgg.between(100.0, 180.0).all()
    n0 = (df.cat == "cat0").sum()
    assert 10000 + 60 <= n0 <= 10000 + 75  # 20000·0.5 background + 150·0.5 signal (a few beyond the range)
    with pytest.raises(FilesetError, match=".parquet or .csv"):
        generate_spectrum(tmp_path / "events.txt")


def test_fileset_layout_mixups_name_the_layout(tmp_path):
    """A coffea-style json handed to the AGC reader says which layout is needed; an invalid coffea-style json (no
    "files") gets the coffea message, not the AGC model's (which named an internal class and blamed "treename")."""
    import json

    import pytest

    from fileset.build import load_fileset, load_ntuples_json
    from fileset.errors import ConfigError, FilesetError

    ok = tmp_path / "coffea.json"
    ok.write_text(json.dumps({"tt": {"files": {"a.root": "Events"}, "metadata": {}}}))
    with pytest.raises(FilesetError, match="a coffea-style fileset .*AGC layout .*ana run --processor"):
        load_ntuples_json(ok)
    bad = tmp_path / "nofiles.json"
    bad.write_text(json.dumps({"tt": {"treename": "Events", "metadata": {}}}))
    with pytest.raises(ConfigError) as err:
        load_fileset(bad)
    assert "tt: 'files' is required" in str(err.value) and "_VariationEntry" not in str(err.value)
    agc = tmp_path / "agc.json"  # an AGC-style json keeps its own messages
    agc.write_text(json.dumps({"ttbar": {"nominal": {"files": [{"path": "a.root"}]}}}))
    with pytest.raises(ConfigError, match="nevts"):
        load_ntuples_json(agc)
