"""The one-way layers (fileset → schemas → processors → analysis) and the light CLI hold."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_import_linter_contracts_kept():
    """`lint-imports` (contracts in pyproject.toml): layers import only downwards; workers import no plotting/stats."""
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    if not Path(exe).exists():
        pytest.skip("import-linter not installed (pip install -e '.[test]')")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([exe, "--config", str(ROOT / "pyproject.toml")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


def _imported_after(code: str) -> set[str]:
    """Top-level modules imported by a fresh interpreter running ``code``."""
    probe = code + "\nimport sys; print(','.join(sorted({m.split('.')[0] for m in sys.modules})))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                         capture_output=True, text=True, timeout=120, check=True).stdout
    return set(out.strip().splitlines()[-1].split(","))


HEAVY = {"coffea", "dask", "distributed", "pyhf", "cabinetry", "matplotlib", "scipy", "sklearn", "uproot", "numba"}


def test_cli_parser_imports_no_heavy_library():
    """`import analysis.cli` and building the whole parser pull in none of coffea, dask, pyhf, matplotlib, …"""
    mods = _imported_after("import analysis.cli; analysis.cli.build_parser()")
    assert not (mods & HEAVY), sorted(mods & HEAVY)


def test_plotting_import_changes_no_backend():
    """Importing the plotting module leaves matplotlib's backend choice to the user (no Agg switch at import)."""
    code = ("import matplotlib; before = matplotlib.rcParams._get_backend_or_none(); import analysis.plotting; "
            "after = matplotlib.rcParams._get_backend_or_none(); assert before == after, (before, after)")
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    env["PYTHONPATH"] = str(ROOT)
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, timeout=120)


def test_packaged_cabinetry_config_equals_repository_copy():
    """`ana demo` after a non-editable install uses the packaged model; it must equal the top-level one."""
    assert (ROOT / "analysis" / "agc" / "cabinetry_config.yml").read_bytes() == (ROOT / "cabinetry_config.yml").read_bytes()


def test_every_layer_error_is_a_user_error():
    """Each layer has its own user-error class; all derive from the one base the CLI catches."""
    from analysis.errors import AnalysisError, ConfigError, UserError
    from fileset.errors import FilesetError
    from processors.errors import ProcessorError
    from schemas.errors import SchemaError

    for cls in (AnalysisError, ConfigError, FilesetError, ProcessorError, SchemaError):
        assert issubclass(cls, UserError)
    assert len({AnalysisError, FilesetError, ProcessorError, SchemaError}) == 4


@pytest.mark.parametrize("argv", [
    ["generate", "spectrum", "--out", "{tmp}/events.parquet", "--scale", "0.01"],
    ["generate", "recast", "--out", "{tmp}/recast", "--mc-events", "200", "--signal-events", "200"],
    ["generate", "agc", "--out", "{tmp}/agc", "--events-per-file", "50", "--files-per-sample", "1"],
])
def test_light_subcommands_import_only_what_they_use(argv, tmp_path):
    """Generators write files with numpy/uproot/pandas: no coffea, dask, pyhf or matplotlib is imported."""
    args = [a.format(tmp=tmp_path) for a in argv]
    mods = _imported_after(f"import analysis.cli; assert analysis.cli.main({args!r}) == 0")
    assert not (mods & {"coffea", "dask", "distributed", "pyhf", "cabinetry", "matplotlib", "sklearn"}), \
        sorted(mods & HEAVY)
