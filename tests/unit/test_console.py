"""What a user sees: progress switches honoured, bars that finish, library warnings summarised, set_logging."""

from __future__ import annotations

import logging
import os
import resource
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from analysis.console import library_noise, progress_bar, progress_setting, set_logging, stage

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def restore_logging():
    """set_logging changes process-wide logging/warnings state on purpose; put it back after the test."""
    names = ("cabinetry", "pyhf", "coffea", "analysis", "processors", "schemas", "fileset")
    levels = {n: logging.getLogger(n).level for n in names}
    filters = list(warnings.filters)
    yield
    for n, lvl in levels.items():
        logging.getLogger(n).setLevel(lvl)
    warnings.filters[:] = filters


def _library_warning(module: str = "coffea.nanoevents.schemas") -> None:
    warnings.warn_explicit("Branch Photon_charge already exists", RuntimeWarning,
                           "/venv/lib/python3.11/site-packages/coffea/nanoevents/schemas/nanoaod.py", 337, module=module)


def test_progress_bar_finishes_and_can_be_switched_off(capsys):
    """The bar ends at total/total on stderr; progress_setting(False) or enabled=False shows nothing."""
    with progress_bar(7, "Processing chunks", "chunk") as advance:
        for _ in range(7):
            advance()
    err = capsys.readouterr().err
    assert "7/7" in err and "Processing chunks" in err
    with progress_setting(False), progress_bar(7, "Hidden", "chunk") as advance, stage("Hidden stage", 0.0):
        advance(7)
    with progress_bar(3, "Hidden too", enabled=False) as advance:
        advance(3)
    assert capsys.readouterr().err == ""


def test_stage_reports_duration_when_long(capsys):
    """A stage prints its message and duration when long enough; nothing when short or when it fails."""
    with stage("Maximum-likelihood fit", min_seconds=0.0):
        pass
    assert capsys.readouterr().err.startswith("✓ Maximum-likelihood fit (")
    with stage("Short step"):  # below 2 s: nothing
        pass
    with pytest.raises(ValueError), stage("Failing step", min_seconds=0.0):
        raise ValueError("bad input")  # the error is the only line the user sees
    assert capsys.readouterr().err == ""


def test_library_noise_counts_and_summarises(capsys):
    """50 cabinetry WARNING records and a coffea RuntimeWarning → one summary line; -v lets them through."""
    with library_noise(verbose=False):
        for i in range(50):
            logging.getLogger("cabinetry.fit").warning("fit %d did not converge, retrying", i)
        _library_warning()
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "51 library warning(s) hidden" in err and "50× cabinetry WARNING" in err and "coffea RuntimeWarning" in err
    assert "-v" in err
    handler_count = len(logging.getLogger("cabinetry").handlers)
    assert logging.getLogger("cabinetry").propagate is True and handler_count == 0  # restored afterwards

    with pytest.raises(RuntimeError), library_noise(verbose=False):  # an error: no summary after it
        logging.getLogger("pyhf").warning("noise")
        raise RuntimeError("user error")
    assert capsys.readouterr().err == ""

    with library_noise(verbose=True), warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        _library_warning()
    assert len(shown) == 1


def test_own_warnings_are_always_shown(capsys):
    """A warning raised in this project's code is not hidden in the summary."""
    with warnings.catch_warnings(record=True) as outer:
        warnings.simplefilter("always")
        with library_noise(verbose=False):
            warnings.warn_explicit("chunk size reduced", UserWarning,
                                   str(ROOT / "analysis" / "execution" / "options.py"), 1)
    assert [str(w.message) for w in outer] == ["chunk size reduced"]
    assert "hidden" not in capsys.readouterr().err


def test_set_logging_quiet_and_verbose(restore_logging):
    """quiet: libraries log errors only and their warnings are ignored; verbose: both come back."""
    set_logging(level="INFO", libraries="quiet")
    assert logging.getLogger("cabinetry").getEffectiveLevel() == logging.ERROR
    assert logging.getLogger("analysis").getEffectiveLevel() == logging.INFO
    with warnings.catch_warnings(record=True) as caught:
        _library_warning()
    assert caught == []
    set_logging(libraries="verbose")
    assert logging.getLogger("cabinetry").level == logging.NOTSET
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _library_warning()
    assert len(caught) == 1
    with pytest.raises(ValueError, match="libraries"):
        set_logging(libraries="loud")


def test_futures_executor_merges_all_and_finishes_its_bar(capsys):
    """The futures executor returns the full sum; status=True ends at N/N, status=False prints nothing."""
    from analysis.execution.executors import FuturesExecutor, IterativeExecutor

    items = list(range(12))
    out, err_code = FuturesExecutor(workers=2, status=True, unit="chunk", desc="Processing chunks")(items, _square, None)
    assert err_code == 0 and out == {"n": 12, "sum": sum(i * i for i in items)}
    err = capsys.readouterr().err
    assert "12/12" in err and "Merging" not in err
    out, _ = FuturesExecutor(workers=2, status=False)(items, _square, None)
    assert out["sum"] == sum(i * i for i in items)
    assert capsys.readouterr().err == ""
    out, _ = IterativeExecutor(status=True, unit="chunk")(items, _square, None)
    assert out == {"n": 12, "sum": sum(i * i for i in items)} and "12/12" in capsys.readouterr().err
    IterativeExecutor(status=False)(items, _square, None)
    assert capsys.readouterr().err == ""


def _square(i: int) -> dict:
    return {"n": 1, "sum": i * i}


def _cpu_seconds(argv: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run([sys.executable, "-m", "analysis", *argv], cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), proc


@pytest.mark.parametrize("argv", [["--help"], ["rn", "ttbar"], ["run", "ttbar", "--chunksize", "x"], ["fit", "--help"]])
def test_help_and_argument_errors_are_fast(argv):
    """`ana --help`, a typo, a bad value and a subcommand's help each cost ≤ 0.5 s CPU (no heavy imports)."""
    cpu, proc = _cpu_seconds(argv)
    assert proc.returncode in (0, 2), proc.stderr
    assert cpu <= 0.5, f"ana {' '.join(argv)}: {cpu:.2f} s CPU"


def test_stats_stage_messages_go_to_stderr(capfd):
    """``ana fit``'s "✓ stage (t s)" lines are progress messages: stderr, like the other commands' (stdout is for
    results)."""
    from analysis.stats import stage as stage_module

    with stage_module.stage("ranking", quiet=False):
        import time

        time.sleep(stage_module.LONG_STAGE_S + 0.05)
    out, err = capfd.readouterr()
    assert "✓ ranking (" in err and "✓" not in out
