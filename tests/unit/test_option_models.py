"""Option sets are defined once (pydantic models) and validated at the boundary with one-line errors."""

from __future__ import annotations

import pytest

from analysis.errors import AnalysisError, ConfigError
from analysis.execution.options import EXECUTORS, RunOptions
from analysis.resonance.ftest_config import FTestConfig, make_config


def test_run_options_every_problem_in_one_line():
    with pytest.raises(AnalysisError) as exc:
        RunOptions.make(chunksize=0, retries=-1, executor="futures", scheduler="tcp://h:1", workers=0)
    msg = str(exc.value)
    assert msg.startswith("invalid run options: ") and "\n" not in msg
    for needle in ("chunksize: must be a positive integer", "retries: must be a non-negative integer",
                   "workers: must be a positive integer", "need the dask executor"):
        assert needle in msg
    with pytest.raises(AnalysisError, match="unknown run option"):
        RunOptions.make(chunk_size=10)


def test_run_options_merge_and_resolve():
    base = RunOptions.make(executor="iterative", chunksize=500)
    merged = RunOptions.make(base, chunksize=700, workers=None)  # None = not given
    assert (merged.executor, merged.chunksize, merged.retries) == ("iterative", 700, 3)
    assert RunOptions.make(scheduler="tcp://h:1").resolved_executor == "dask"
    assert RunOptions.make().resolved_executor == "futures"


def test_ftest_config_one_definition(tmp_path):
    cfg = make_config({"input": "x.csv", "observable": "m", "families": ["Exp", "bern"], "range": [100, 180],
                       "categories": [1, 2.0], "category_column": "c"})
    assert cfg.families == ["exponential", "bernstein"] and cfg.range == (100.0, 180.0)
    assert cfg.categories == ["1", "2"] and cfg.executor in EXECUTORS
    with pytest.raises(AnalysisError) as exc:
        make_config({"observable": "m", "bins": 2, "executor": "threads", "range": (1, 0)})
    msg = str(exc.value)
    for needle in ("input: missing (--input or 'input:' in the config)", "bins: Input should be greater than or equal to 3",
                   "executor: Input should be 'iterative', 'futures' or 'dask'", "range [1.0, 0.0]: need two finite"):
        assert needle in msg, (needle, msg)
    bad = tmp_path / "c.yml"
    bad.write_text("observable: m\nn_toys: 5\ncolour: red\nsignal: {mass_gev: 125, width_gev: -1}\n")
    with pytest.raises(ConfigError) as exc:
        make_config({}, bad)
    msg = str(exc.value)
    for needle in ("c.yml: invalid config:", "colour: unknown option", "n_toys: Input should be greater than or equal to 10",
                   "signal/width_gev: Input should be greater than 0"):
        assert needle in msg, (needle, msg)
    assert set(FTestConfig.model_fields) >= {"input", "observable", "executor", "signal"}


# ---- ana demo, ana search, ana reweight: one model each, built by the CLI in one place --------------------------

from pathlib import Path  # noqa: E402

from pydantic import ValidationError  # noqa: E402

from analysis.cli import main  # noqa: E402

SEARCH_DOC = {"luminosity_fb": 0.005, "mass_range_gev": [500.0, 1000.0],
              "signal": {"cross_section_pb": 5.4, "filter_efficiency": 0.17, "samples": {500: "s500.csv", "750.5": "s750.csv"}},
              "background": {"cross_section_pb": 12865.0, "filter_efficiency": 0.081, "file": "bkg.csv"},
              "data": "data.csv"}


def _search_files(tmp_path: Path) -> Path:
    """Empty input files next to a config (the model checks existence only)."""
    for name in ("s500.csv", "s750.csv", "bkg.csv", "data.csv"):
        (tmp_path / name).write_text("")
    return tmp_path


def test_demo_options_defaults_unchanged_and_frozen():
    from analysis.agc.demo import DemoOptions

    opts = DemoOptions()
    assert opts.to_dict() == {"out": "demo", "events_per_file": 25_000, "files_per_sample": 2, "seed": 1,
                              "executor": "futures", "workers": None, "ranking": True, "progress": True}
    with pytest.raises(ValidationError):
        opts.seed = 3  # frozen: an option set is read, never patched
    assert DemoOptions.make(seed=None, workers=2).workers == 2  # None = not given


def test_train_options_defaults_unchanged_and_frozen():
    from analysis.ml.options import TrainOptions
    from analysis.ml.train import CLASSIFIERS

    opts = TrainOptions()
    assert opts.to_dict() == {"classifiers": ["gbdt", "knn", "tree"], "test_fraction": 0.25, "score_cut": 0.5, "seed": 1}
    assert opts.classifiers == CLASSIFIERS
    with pytest.raises(ValidationError):
        opts.seed = 3
    assert TrainOptions.make({"seed": 4}, seed=None, classifiers=["tree"]).to_dict() == {
        "classifiers": ["tree"], "test_fraction": 0.25, "score_cut": 0.5, "seed": 4}  # None = not given
    with pytest.raises(AnalysisError) as exc:
        TrainOptions.make(test_fraction=0.0, score_cut=1.0, classifiers=[])
    msg = str(exc.value)
    assert msg.startswith("invalid training options: ") and "\n" not in msg
    for needle in ("test_fraction: Input should be greater than 0", "score_cut: Input should be less than 1",
                   "classifiers: Tuple should have at least 1 item"):
        assert needle in msg, (needle, msg)


def test_train_and_evaluate_checks_options_before_reading(tmp_path):
    """The Python API validates through the same model, before the feature table is read."""
    from analysis.ml import train_and_evaluate

    with pytest.raises(AnalysisError, match="invalid training options: seed: Input should be greater than or equal to 0"):
        train_and_evaluate(tmp_path / "missing.parquet", tmp_path / "out", seed=-1)
    assert not (tmp_path / "out").exists()


def test_search_config_one_definition(tmp_path):
    from analysis.resonance.search_config import SearchConfig, load_config

    import yaml

    _search_files(tmp_path)
    (tmp_path / "search.yml").write_text(yaml.safe_dump(SEARCH_DOC))
    cfg = load_config(tmp_path / "search.yml")
    # defaults of the former schema + dataclass, and the flat views the search reads
    assert (cfg.sqrt_s_tev, cfg.bin_width, cfg.scan_step, cfg.blind_margin_sigma, cfg.global_toys,
            cfg.limit_validation_toys, cfg.seed) == (13.0, 10.0, 10.0, 2.0, 20, 200, 12345)
    assert cfg.fit_range == (300.0, 1500.0) and cfg.lumi_pb == pytest.approx(5.0)
    assert (cfg.model, cfg.function, cfg.families, cfg.selection_method) == ("parametric", None, None, "cuts")
    assert cfg.selection_variables == ("n_jets", "n_leptons", "photon1_isolation", "photon2_isolation")
    assert list(cfg.signal_samples) == [500.0, 750.5] and cfg.signal_samples[750.5] == tmp_path / "s750.csv"
    assert cfg.bkg_file == tmp_path / "bkg.csv" and cfg.data_file == tmp_path / "data.csv"
    assert cfg.source == (tmp_path / "search.yml").resolve()
    bad = dict(SEARCH_DOC, luminosity_fb=float("nan"), global_toys=-1, seed="x", colour="red",
               background=dict(SEARCH_DOC["background"], function="cubic", file="nothere.csv"),
               selection={"method": "bdt"})
    with pytest.raises(ConfigError) as exc:
        SearchConfig.make(bad, source="s.yml", context={"base": tmp_path})
    msg = str(exc.value)
    assert msg.startswith("s.yml: invalid config: ") and "\n" not in msg
    for needle in ("luminosity_fb: Input should be a finite number", "global_toys: Input should be greater than or equal to 0",
                   "seed: Input should be a valid integer", "colour: unknown option", "background/function: unknown function 'cubic'",
                   "background/file: file not found", "selection/method: Input should be 'cuts', 'classifier' or 'none'"):
        assert needle in msg, (needle, msg)
    with pytest.raises(ConfigError, match="fit_range_gev .* must contain mass_range_gev"):
        SearchConfig.make(dict(SEARCH_DOC, fit_range_gev=[600, 2000]), context={"base": tmp_path}, source="s.yml")


def test_reweight_config_defaults_unchanged():
    from analysis.reweighting.config import ReweightConfig, load_config

    assert load_config(None) == ReweightConfig().model_dump() == {
        "basePath": None, "weight": "1", "selection": "nLeptons == 1 and nJets >= 5 and nBTags >= 3",
        "reweightVar": "HT_all", "minBinWidth": 50.0, "minEvents": 200.0, "minMCEntries": 20, "targetRelError": 0.1,
        "method": "polynomial", "maxOrder": 3, "orderSelection": "aic_average", "ftestAlpha": 0.05, "outOfRange": "hold",
        "bounds": [0.05, 5.0], "outputFile": "ht_reweighting.json", "reweightSample": ["ttb", "ttbb"],
        "constSample": ["ttc", "ttlight", "single_top_s_chan", "single_top_t_chan", "single_top_tW", "wjets"],
        "ttbb_selection": "hfClass == 3", "ttb_selection": "hfClass == 2", "ttc_selection": "hfClass == 1",
        "ttlight_selection": "hfClass == 0", "ttbar_Reweight": "1", "NormFactor_ttbb": 1.0, "NormFactor_ttb": 1.0,
        "NormFactor_ttc": 1.0, "NormFactor_ttlight": 1.0, "nJetsBins": [5, 6, 7], "normalisation": "inclusive",
        "alternativeSamples": ["scaleup", "scaledown", "ME_var", "PS_var"], "mcStatError": True, "kdeBandwidth": None,
        "closureBinWidth": 50.0, "jetPt": 25.0, "leptonPt": 25.0, "btagCut": 0.5, "htBinWidth": 10.0, "htMax": 4000.0,
        "dataProcess": "data", "componentProcess": "ttbar"}
    with pytest.raises(ConfigError) as exc:
        load_config(None, {"jetPt": float("nan"), "mcStatError": "yes", "weight": 1, "nJetsBins": [7, 5]})
    msg = str(exc.value)
    for needle in ("jetPt: Input should be a finite number", "mcStatError: Input should be a valid boolean",
                   "weight: Input should be a valid string"):
        assert needle in msg, (needle, msg)


CLI_CASES = [
    # (argv, text that must be in the one error line)
    (["demo", "--out", "{o}", "--events-per-file", "-5"], "--events-per-file: Input should be greater than or equal to 1"),
    (["demo", "--out", "{o}", "--events-per-file", "nan"], "--events-per-file: Input should be a valid integer"),
    (["demo", "--out", "{o}", "--executor", "threads"], "--executor: Input should be 'iterative', 'futures' or 'dask'"),
    (["demo", "--out", "{o}", "--workers", "0"], "--workers: Input should be greater than or equal to 1"),
    (["demo", "--out", "{o}", "--seed", "1.5"], "--seed: Input should be a valid integer"),
    (["search", "--config", "{bad_search}", "--out", "{o}"], "bad_search.yml: invalid config: bin_width_gev: Input should be a finite number"),
    (["search", "--config", "{bad_search}", "--out", "{o}", "--unblind"], "selection/variables: unknown variable(s) photon_pt"),
    (["reweight", "derive", "--out", "{o}", "--workers", "0"], "workers: must be a positive integer, got 0"),
    (["reweight", "derive", "--out", "{o}", "--executor", "threads"], "executor: unknown 'threads'"),
    (["reweight", "derive", "--out", "{o}", "--config", "{bad_reweight}"], "minBinWidth: Input should be greater than 0 (got -50)"),
    (["reweight", "apply", "--fileset", "{f}", "--correction", "{f}", "--out", "{o}", "--chunksize", "-1"],
     "chunksize: must be a positive integer, got -1"),
    (["reweight", "apply", "--fileset", "{f}", "--correction", "{f}", "--out", "{o}", "--workers", "two"],
     "--workers: invalid int value: 'two'"),
    (["ml", "features", "--input", "{f}", "--out", "{o}", "--workers", "0"], "workers: must be a positive integer, got 0"),
    (["ml", "train", "--features", "{f}", "--out", "{o}", "--test-fraction", "1"], "--test-fraction: Input should be less than 1"),
    (["ml", "train", "--features", "{f}", "--out", "{o}", "--score-cut", "-0.1"],
     "--score-cut: Input should be greater than or equal to 0"),
    (["ml", "train", "--features", "{f}", "--out", "{o}", "--seed", "1.5"], "--seed: Input should be a valid integer"),
    (["ml", "train", "--features", "{f}", "--out", "{o}", "--classifiers", "svm", "gbdt"],
     "--classifiers: unknown classifier(s) svm (choose from gbdt, knn, tree)"),
    (["ml", "train", "--features", "{f}", "--out", "{o}", "--classifiers", "gbdt", "gbdt"], "--classifiers: repeated classifier"),
    (["ml", "train", "--features", "{f}", "--out", "{o}", "--test-fraction", "nan", "--seed", "-1"],
     "--test-fraction: Input should be a finite number (got 'nan'); --seed: Input should be greater than or equal to 0"),
    (["ml", "region", "--input", "{f}", "--out", "{o}", "--model", "{f}", "--cut", "0.5", "--executor", "threads"],
     "executor: unknown 'threads'"),
]


@pytest.mark.parametrize("argv,needle", CLI_CASES, ids=[" ".join(c[0][:2]) + " " + c[1][:30] for c in CLI_CASES])
def test_cli_builds_the_model_once_one_line_exit_2(tmp_path, capsys, argv, needle):
    """Invalid option values through ``main()``: one line naming the option, exit 2, nothing written."""
    import yaml

    _search_files(tmp_path)
    (tmp_path / "bad_search.yml").write_text(yaml.safe_dump(dict(SEARCH_DOC, bin_width_gev=float("nan"),
                                                                 selection={"variables": ["photon_pt"]})))
    (tmp_path / "bad_reweight.yml").write_text("minBinWidth: -50\n")
    (tmp_path / "f.json").write_text("{}")
    args = [a.format(o=tmp_path / "out", f=tmp_path / "f.json", bad_search=tmp_path / "bad_search.yml",
                     bad_reweight=tmp_path / "bad_reweight.yml") for a in argv]
    assert main(args) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and lines[0].startswith("ana "), lines
    assert not (tmp_path / "out").exists()
