"""Fit inputs that would make the model NaN (R14 kind): negative-weight templates, empty samples.

Each test writes a small AGC-style histograms.root whose pseudodata are the exact sum of the nominal templates
(an Asimov dataset), so the best fit is ttbar_norm = 1 whatever the systematics are.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import uproot

from analysis.agc.inference import build_workspace, fit, load_config
from analysis.agc.templates import check_templates, check_workspace_finite
from analysis.cli import main
from analysis.errors import AnalysisError

EDGES = np.arange(110.0, 551.0, 40.0)  # 11 bins
REGIONS = ("4j1b", "4j2b")
NORMS = {"ttbar": 900.0, "wjets": 250.0, "single_top_s_chan": 8.0, "single_top_tW": 40.0}
VARIATIONS = {"pt_scale_up": lambda i: 1.03 + 0.004 * i, "btag_up": lambda i: 1.02, "btag_down": lambda i: 0.98}

CONFIG = """\
General: {Measurement: m, POI: ttbar_norm, HistogramFolder: "histograms/",
          InputPath: "histograms.root:{RegionPath}_{SamplePath}{VariationPath}", VariationPath: ""}
Regions:
  - {Name: "4j1b CR", RegionPath: "4j1b", Variable: "HT", Binning: [110, 150, 190, 230, 270, 310, 350, 390, 430, 470, 510, 550]}
  - {Name: "4j2b SR", RegionPath: "4j2b", Variable: "mbjj", Binning: [110, 150, 190, 230, 270, 310, 350, 390, 430, 470, 510, 550]}
Samples:
  - {Name: "Pseudodata", SamplePath: "pseudodata", Data: True}
  - {Name: "ttbar", SamplePath: "ttbar"}
  - {Name: "W+jets", SamplePath: "wjets"}
  - {Name: "single top s", SamplePath: "single_top_s_chan"}
  - {Name: "tW", SamplePath: "single_top_tW"}
Systematics:
  - {Name: "JES", Type: "NormPlusShape", Up: {VariationPath: "_pt_scale_up"}, Down: {Symmetrize: True}}
  - {Name: "btag", Type: "NormPlusShape", Up: {VariationPath: "_btag_up"}, Down: {VariationPath: "_btag_down"}}
  - {Name: "lumi", Type: "Normalization", Up: {Normalization: 0.03}, Down: {Normalization: -0.03}}
NormFactors:
  - {Name: "ttbar_norm", Samples: "ttbar", Nominal: 1.0, Bounds: [0, 10]}
"""


def _nominal():
    def shape(region, i):
        x = 0.5 * (EDGES[i] + EDGES[i + 1])
        return np.exp(-0.5 * ((x - (260.0 if region == "4j1b" else 180.0)) / 90.0) ** 2) + 0.05
    return {(r, p): np.array([n * shape(r, i) / 11.0 for i in range(11)]) for r in REGIONS for p, n in NORMS.items()}


def _write(tmp: Path, nominal, overrides=None) -> tuple[Path, Path]:
    """histograms.root (TH1D with Sumw2 via ``hist``) + config; data = Σ nominal."""
    import hist

    overrides = overrides or {}

    def th1(values):
        h = hist.Hist(hist.axis.Variable(EDGES), storage=hist.storage.Weight())
        h.view().value = np.asarray(values, float)
        h.view().variance = np.abs(np.asarray(values, float)) * 0.3
        return h

    path = tmp / "histograms.root"
    with uproot.recreate(path) as f:
        for r in REGIONS:
            total = np.zeros(11)
            for p in NORMS:
                nom = nominal[(r, p)]
                total += nom
                f[f"{r}_{p}"] = th1(nom)
                for v, fn in VARIATIONS.items():
                    f[f"{r}_{p}_{v}"] = th1(overrides.get((r, p, v), nom * np.array([fn(i) for i in range(11)])))
            f[f"{r}_pseudodata"] = th1(total)
    cfg = tmp / "fit_config.yml"
    cfg.write_text(CONFIG)
    return path, cfg


def _workspace(tmp: Path, nominal, overrides=None):
    hists, cfg = _write(tmp, nominal, overrides)
    (tmp / "out").mkdir()
    config = load_config(cfg, hists, tmp / "out")
    return config, build_workspace(config)


def _modifiers(ws, channel, sample, name):
    ch = next(c for c in ws["channels"] if c["name"] == channel)
    smp = next(s for s in ch["samples"] if s["name"] == sample)
    return {m["type"]: m["data"] for m in smp["modifiers"] if m["name"] == name}


def test_negative_bins_in_one_sample_fit_to_one(tmp_path):
    """R14 (a): two negative tW bins in the SR (totals positive): legitimate, ttbar_norm = 1.000."""
    nom = _nominal()
    nom[("4j2b", "single_top_tW")][9:11] = [-0.8, -1.2]
    config, ws = _workspace(tmp_path, nom)
    outcome = fit(config, ws)
    poi, err = outcome.poi
    assert poi == pytest.approx(1.0, abs=1e-3) and 0 < err < 1 and math.isfinite(err)


def test_negative_total_variation_is_pruned_and_named(tmp_path, caplog):
    """R14 (b): tW JES up in 4j1b with total -3.3 → pruned with a warning naming all three; ttbar_norm = 1.000."""
    nom = _nominal()
    nom[("4j2b", "single_top_tW")][9:11] = [-0.8, -1.2]
    over = {("4j1b", "single_top_tW", "pt_scale_up"): np.full(11, -0.3)}
    with caplog.at_level("WARNING"):
        config, ws = _workspace(tmp_path, nom, over)
    msg = [r.getMessage() for r in caplog.records if "JES" in r.getMessage()]
    assert len(msg) == 1 and "'4j1b CR'" in msg[0] and "'tW'" in msg[0] and "pruned" in msg[0]
    mods = _modifiers(ws, "4j1b CR", "tW", "JES")
    assert mods["normsys"] == {"hi": 1.0, "lo": 1.0}
    assert _modifiers(ws, "4j2b SR", "tW", "JES")["normsys"]["hi"] > 1.0  # untouched elsewhere
    check_workspace_finite(ws)
    poi, err = fit(config, ws).poi
    assert poi == pytest.approx(1.0, abs=1e-3) and math.isfinite(err)


def test_negative_total_two_sided_is_symmetrised_from_the_other_side(tmp_path):
    """Same fault, other place: a two-sided systematic whose down side is negative is mirrored from up."""
    nom = _nominal()
    over = {("4j1b", "single_top_tW", "btag_down"): np.full(11, -0.2)}
    _, ws = _workspace(tmp_path, nom, over)
    up = float(np.sum(nom[("4j1b", "single_top_tW")] * 1.02)) / float(np.sum(nom[("4j1b", "single_top_tW")]))
    norm = _modifiers(ws, "4j1b CR", "tW", "btag")["normsys"]
    assert norm["hi"] == pytest.approx(up, rel=1e-9) and norm["lo"] == pytest.approx(2.0 - up, rel=1e-9)


def test_refuse_policy_names_region_sample_systematic(tmp_path):
    nom = _nominal()
    hists, cfg = _write(tmp_path, nom, {("4j1b", "single_top_tW", "pt_scale_up"): np.full(11, -0.3)})
    (tmp_path / "out").mkdir()
    config = load_config(cfg, hists, tmp_path / "out")
    import cabinetry

    cabinetry.templates.collect(config, method="uproot")
    cabinetry.templates.postprocess(config)
    with pytest.raises(AnalysisError, match=r"region '4j1b CR', sample 'tW', systematic 'JES'"):
        check_templates(config, policy="refuse")


def test_sample_empty_in_a_region_is_left_out(tmp_path):
    """A sample that is empty in one region (e.g. R02's empty sample after `ana run`): no NaN norm effects."""
    nom = _nominal()
    for r in REGIONS:
        nom[(r, "single_top_s_chan")] = np.zeros(11)  # empty everywhere
    nom[("4j2b", "single_top_tW")] = np.zeros(11)  # empty in one region
    config, ws = _workspace(tmp_path, nom)
    check_workspace_finite(ws)
    names = {c["name"]: {s["name"] for s in c["samples"]} for c in ws["channels"]}
    assert "single top s" not in names["4j1b CR"] | names["4j2b SR"]
    assert "tW" in names["4j1b CR"] and "tW" not in names["4j2b SR"]
    assert fit(config, ws).poi[0] == pytest.approx(1.0, abs=1e-3)


def test_ana_fit_never_writes_a_nan_workspace(tmp_path, capsys):
    """Unfixable input (the POI's sample empty everywhere): one line, exit 2, no workspace.json."""
    nom = _nominal()
    for r in REGIONS:
        nom[(r, "ttbar")] = np.zeros(11)
    hists, cfg = _write(tmp_path, nom)
    rc = main(["fit", "--config", str(cfg), "--histograms", str(hists), "--out", str(tmp_path / "o"),
               "--no-ranking", "--no-limit"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "'ttbar'" in err[0] and "NormFactor" in err[0], err
    assert not (tmp_path / "o" / "workspace.json").exists()


@pytest.mark.parametrize("edit, words", [
    (('POI: ttbar_norm', 'POI: ttbar_nrom'),
     ["POI 'ttbar_nrom' is not a NormFactor of the config (declared: ttbar_norm)"]),
    (('Binning: [110, 150, 190', 'Binning: [150, 110, 190'),
     ["'4j1b CR'", "[150, 110, 190,", "not strictly increasing"]),
    (('"HT", Binning: [110, 150, 190, 230, 270, 310, 350, 390, 430, 470, 510, 550]', '"HT", Binning: [100, 200, 300]'),
     ["'4j1b CR'", "Binning [100, 200, 300] (2 bins)", ("histogram binning [110, 150, 190, 230, 270, 310, 350, 390, "
                                                        "430, 470, 510, 550] (11 bins)")]),
    # one edge off by 1e-6 relative: more than the 1e-9 tolerance
    (('"mbjj", Binning: [110, 150, 190,', '"mbjj", Binning: [110, 150.00015, 190,'),
     ["'4j2b SR'", "150.00015", "(11 bins) does not match"]),
])
def test_config_not_matching_histograms_is_one_line_exit_2(tmp_path, capsys, edit, words):
    """POI typo, reversed binning, binning of other bins than the histograms: one line, exit 2, no workspace."""
    hists, cfg = _write(tmp_path, _nominal())
    assert edit[0] in cfg.read_text()
    cfg.write_text(cfg.read_text().replace(edit[0], edit[1], 1))
    rc = main(["fit", "--config", str(cfg), "--histograms", str(hists), "--out", str(tmp_path / "o"),
               "--no-ranking", "--no-scan"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "Traceback" not in err[0], err
    assert "fit_config.yml" in err[0] and all(w in err[0] for w in words), err
    assert not (tmp_path / "o" / "workspace.json").exists()


def test_binning_equal_to_histograms_within_tolerance_fits(tmp_path):
    """Edges written with a 1e-12 relative rounding difference still match (the fit runs, POI = 1)."""
    hists, cfg = _write(tmp_path, _nominal())
    cfg.write_text(cfg.read_text().replace('"HT", Binning: [110, 150,', '"HT", Binning: [110, 150.00000000015,', 1))
    (tmp_path / "out").mkdir()
    config = load_config(cfg, hists, tmp_path / "out")
    assert fit(config, build_workspace(config, cfg)).poi[0] == pytest.approx(1.0, abs=1e-3)
