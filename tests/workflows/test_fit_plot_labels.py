"""The fit's data/model plots carry the experiment label of the run's stack plots: luminosity (recorded by
``ana run`` in the metrics.json written with histograms.root) and √s — and no luminosity at all when that record
is missing or was written for another histograms file."""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
import uproot

from analysis.agc.inference import fit_data_mc_figures, input_luminosity, run_fit
from analysis.agc.plots import stack_plot
from analysis.agc.run import run_ttbar
from fileset.build import load_samples_config
from fileset.generate.agc import generate_agc

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "cabinetry_config.yml"


def _label_texts(fig: plt.Figure) -> list[str]:
    """Texts drawn on the main axes (mplhep's experiment label lives there, above the frame)."""
    return [t.get_text() for t in fig.axes[0].texts]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("labels")
    # seed 6 at 5k events: W+jets 4j2b template not empty (see test_agc_fit._histograms)
    ntuples = generate_agc(root / "data", events_per_file=5000, files_per_sample=1, seed=6)
    result = run_ttbar(ntuples, root / "out", executor="iterative", progress=False)
    (root / "hist.pkl").write_bytes(pickle.dumps(result.hist))  # for the stack-plot comparison
    return root


def test_fit_plots_carry_the_runs_luminosity_label(run_dir: Path, tmp_path: Path) -> None:
    lumi_pb = float(load_samples_config()["luminosity_pb"])  # 3378 /pb: what the MC was normalised to
    hists = run_dir / "out" / "histograms.root"
    metrics = json.loads((run_dir / "out" / "metrics.json").read_text())
    assert metrics["luminosity_pb"] == lumi_pb
    assert metrics["histograms_sha256"] == hashlib.sha256(hists.read_bytes()).hexdigest()
    outcome = run_fit(CONFIG, hists, tmp_path / "fit", ranking=False, scan=False, plots=False)
    assert outcome.luminosity_pb == lumi_pb
    figures = fit_data_mc_figures(outcome)
    assert sorted(stem for stem, _ in figures) == ["4j1b_CR_postfit", "4j1b_CR_prefit", "4j2b_SR_postfit",
                                                   "4j2b_SR_prefit"]
    h = pickle.loads((run_dir / "hist.pkl").read_bytes())
    stack = _label_texts(stack_plot(h, "4j1b", lumi_pb / 1000.0))
    lumi_text = next(t for t in stack if "fb" in t)
    assert lumi_text.startswith(f"{lumi_pb / 1000:g} ") and "(13 TeV)" in lumi_text  # '3.378 fb⁻¹ (13 TeV)'
    for stem, fig in figures:
        texts = _label_texts(fig)
        assert lumi_text in texts, (stem, texts)  # the stack plots' label, character for character
        assert "Simulation" in texts, (stem, texts)  # pseudodata, as the stack plots say
    plt.close("all")


def _copy_run(run_dir: Path, dest: Path) -> Path:
    """A copy of the run's output directory (histograms.root + metrics.json); returns its histograms.root."""
    shutil.copytree(run_dir / "out", dest)
    return dest / "histograms.root"


def _assert_no_luminosity(outcome) -> None:
    assert outcome.luminosity_pb is None
    for stem, fig in fit_data_mc_figures(outcome):
        texts = _label_texts(fig)
        assert any("(13 TeV)" in t for t in texts), (stem, texts)
        assert not any("fb" in t for t in texts), (stem, texts)
    plt.close("all")


def test_copied_run_keeps_its_luminosity(run_dir: Path, tmp_path: Path) -> None:
    """The record travels with the files: a copy of the output directory still gives the run's luminosity."""
    hists = _copy_run(run_dir, tmp_path / "copy")
    config = {"General": {"InputPath": f"{hists}:{{RegionPath}}_{{SamplePath}}{{VariationPath}}"}}
    assert input_luminosity(config) == float(load_samples_config()["luminosity_pb"])


def test_fit_plots_without_metrics_json_show_no_luminosity(run_dir: Path, tmp_path: Path) -> None:
    """Histograms without the metrics.json of their run (copied alone, other tools): √s only, never a guess."""
    hists = _copy_run(run_dir, tmp_path / "bare")
    (hists.parent / "metrics.json").unlink()
    _assert_no_luminosity(run_fit(CONFIG, hists, tmp_path / "fit", ranking=False, scan=False, plots=False))


def test_fit_plots_with_another_files_metrics_json_show_no_luminosity(run_dir: Path, tmp_path: Path) -> None:
    """A metrics.json written for another histograms.root (here: the same histograms rewritten by uproot, so
    equal content but other bytes) is not applied: √s only."""
    hists = _copy_run(run_dir, tmp_path / "other")
    rewritten = tmp_path / "rewritten.root"
    with uproot.open(hists) as fin, uproot.recreate(rewritten) as fout:
        for key in fin.keys(cycle=False):
            fout[key] = fin[key]
    shutil.move(rewritten, hists)
    record = json.loads((hists.parent / "metrics.json").read_text())
    assert record["luminosity_pb"] is not None
    assert record["histograms_sha256"] != hashlib.sha256(hists.read_bytes()).hexdigest()
    _assert_no_luminosity(run_fit(CONFIG, hists, tmp_path / "fit", ranking=False, scan=False, plots=False))


@pytest.mark.parametrize("content", ["{not json", "[]", '{"luminosity_pb": 3378.0}', "\udcff"])
def test_unusable_metrics_json_gives_no_luminosity(run_dir: Path, tmp_path: Path, content: str) -> None:
    """Unreadable metrics.json, not an object, or no digest of the file it belongs to: no luminosity."""
    hists = _copy_run(run_dir, tmp_path / "bad")
    (hists.parent / "metrics.json").write_bytes(content.encode("utf-8", "surrogateescape"))
    config = {"General": {"InputPath": f"{hists}:{{RegionPath}}_{{SamplePath}}{{VariationPath}}"}}
    assert input_luminosity(config) is None


def test_input_files_that_disagree_give_no_luminosity(run_dir: Path, tmp_path: Path) -> None:
    """An InputPath over several files (one per sample here): their records must agree, else no luminosity."""
    for sample in ("ttbar", "wjets"):
        _copy_run(run_dir, tmp_path / sample)
    config = {"General": {"InputPath": f"{tmp_path}/{{SamplePath}}/histograms.root:{{RegionPath}}{{VariationPath}}"}}
    assert input_luminosity(config) == float(load_samples_config()["luminosity_pb"])
    record = tmp_path / "wjets" / "metrics.json"
    record.write_text(json.dumps(dict(json.loads(record.read_text()), luminosity_pb=1000.0)))
    assert input_luminosity(config) is None
