"""Option sets are defined once (pydantic models) and validated at the boundary with one-line errors."""

from __future__ import annotations

import pytest

from analysis.errors import AnalysisError, ConfigError
from analysis.execution.options import EXECUTORS, RunOptions
from analysis.resonance.ftest_workflow import FTestConfig, make_config


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
