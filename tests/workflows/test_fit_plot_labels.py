"""The fit's data/model plots carry the experiment label of the run's stack plots: luminosity (recorded by
``ana run`` in histograms.root) and √s — and no luminosity at all when the histograms do not record one."""

from __future__ import annotations

import pickle
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
import uproot

from analysis.agc.inference import fit_data_mc_figures, run_fit
from analysis.agc.plots import stack_plot
from analysis.agc.run import run_ttbar
from analysis.histio import METADATA_KEY, read_metadata
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
    assert read_metadata(hists) == {"luminosity_pb": lumi_pb}
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


def test_fit_plots_without_recorded_luminosity_show_none(run_dir: Path, tmp_path: Path) -> None:
    """Histograms from elsewhere (no metadata): √s only, never a guessed luminosity."""
    src = run_dir / "out" / "histograms.root"
    bare = tmp_path / "histograms.root"
    with uproot.open(src) as fin, uproot.recreate(bare) as fout:
        for key in fin.keys(cycle=False):
            if key != METADATA_KEY:
                fout[key] = fin[key]
    assert read_metadata(bare) == {}
    outcome = run_fit(CONFIG, bare, tmp_path / "fit", ranking=False, scan=False, plots=False)
    assert outcome.luminosity_pb is None
    for stem, fig in fit_data_mc_figures(outcome):
        texts = _label_texts(fig)
        assert any("(13 TeV)" in t for t in texts), (stem, texts)
        assert not any("fb" in t for t in texts), (stem, texts)
    plt.close("all")
