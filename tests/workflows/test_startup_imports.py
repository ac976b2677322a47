"""Start-up: ``ana run ttbar`` and the code a worker runs import only what processing needs.

A fresh interpreter runs the real CLI (iterative executor) on a small generated sample and lists the
top-level modules loaded by the end of the run; a second one imports what a Dask/futures worker
unpickles (the processor, the schema, the execution layer). Neither may load the statistics, fitting,
plotting or ML libraries, nor compile any numba function. No timing here
(``benchmarks/side_by_side.py`` measures start-up as part of the whole-process CPU).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fileset.generate.agc import generate_agc

ROOT = Path(__file__).resolve().parents[2]
NOT_ON_THE_PROCESSING_PATH = {"pyhf", "cabinetry", "matplotlib", "mplhep", "sklearn", "iminuit", "dask", "distributed"}

REPORT = """
import sys
mods = sorted({m.split('.')[0] for m in sys.modules})
compiled = []
if 'numba' in sys.modules:
    import gc
    from numba.core.dispatcher import Dispatcher
    compiled = [d.py_func.__qualname__ for d in gc.get_objects() if isinstance(d, Dispatcher) and d.overloads]
print('MODULES=' + ','.join(mods))
print('NUMBA=' + ','.join(compiled))
"""


def _probe(code: str) -> tuple[set[str], list[str]]:
    """(top-level modules, compiled numba functions) after a fresh interpreter runs ``code``."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code + REPORT], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = dict(line.split("=", 1) for line in out.stdout.splitlines() if line.startswith(("MODULES=", "NUMBA=")))
    return set(lines["MODULES"].split(",")), [x for x in lines["NUMBA"].split(",") if x]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two small AGC samples."""
    return generate_agc(tmp_path_factory.mktemp("startup"), 2000, 1, 3, samples=[("ttbar", "nominal"), ("wjets", "nominal")])


def test_ana_run_imports_only_what_processing_needs(tiny: Path, tmp_path: Path) -> None:
    """The whole ``ana run ttbar`` process: histograms written, no stats/plotting/ML/Dask library, no JIT; the local
    iterative run takes the fast path, which does not import coffea (nor numba, which coffea's NanoEvents import)."""
    argv = ["ana", "run", "ttbar", "--fileset", str(tiny), "--out", str(tmp_path / "out"), "--executor", "iterative",
            "--no-progress"]
    code = (f"import runpy, sys\nsys.argv = {argv!r}\ntry:\n    runpy.run_module('analysis', run_name='__main__')\n"
            "except SystemExit as e:\n    assert not e.code, e.code\n")
    mods, compiled = _probe(code)
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["events_processed"] == 4000
    assert {"uproot", "awkward", "processors"} <= mods  # the probe saw the processing process
    assert not mods & (NOT_ON_THE_PROCESSING_PATH | {"coffea", "numba"}), sorted(mods & (NOT_ON_THE_PROCESSING_PATH | {"coffea", "numba"}))
    assert compiled == []


def test_worker_side_imports_stay_light() -> None:
    """What a worker unpickles for a chunk (processor, schemas, execution layer) loads none of them either."""
    mods, compiled = _probe("import processors.ttbar, schemas.agc, schemas.nanoaod, analysis.execution.runner, "
                            "analysis.execution.coffea_path\n")
    assert not mods & NOT_ON_THE_PROCESSING_PATH, sorted(mods & NOT_ON_THE_PROCESSING_PATH)
    assert compiled == []


def test_dask_run_imports_no_coffea_on_client_or_workers(tiny: Path) -> None:
    """A Dask run of a processor with ``process_columns`` takes the fast path: neither the client process nor the
    worker processes import coffea or numba (nor the statistics/plotting/ML libraries)."""
    heavy = sorted((NOT_ON_THE_PROCESSING_PATH - {"dask", "distributed"}) | {"coffea", "numba"})
    code = (
        "import logging\n"
        "from distributed import Client, LocalCluster\n"
        "from analysis.agc.run import run_ttbar\n"
        "with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None, silence_logs=logging.CRITICAL) "
        "as cluster, Client(cluster) as client:\n"
        f"    res = run_ttbar({str(tiny)!r}, None, executor='dask', scheduler=cluster.scheduler_address, progress=False)\n"
        "    assert res.metrics['fast_path'] and res.metrics['events_processed'] == 4000\n"
        f"    on_workers = client.run(lambda: sorted(m for m in {heavy!r} if m in __import__('sys').modules))\n"
        "    print('WORKERS=' + repr(sorted(set(sum(on_workers.values(), [])))))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code + REPORT], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    assert lines["WORKERS"] == "[]"
    client_mods = set(lines["MODULES"].split(","))
    assert "processors" in client_mods and not client_mods & set(heavy), sorted(client_mods & set(heavy))
