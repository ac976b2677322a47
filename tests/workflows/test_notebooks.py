"""Every notebook (jupytext Markdown in notebooks/) runs top to bottom in a real IPython kernel.

Each notebook is converted with jupytext and executed with nbclient in a fresh temporary working
directory, on a kernel started with this interpreter (a private kernelspec, nothing installed for the
user). Any cell error, or a cell running longer than the timeout, fails the test. Each notebook must
also show at least one plot inline and say in its introduction how to scale it up with Dask.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

from jupyter_client.kernelspec import KernelSpecManager  # noqa: E402
from jupyter_client.manager import KernelManager  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.md"))
CELL_TIMEOUT_S = 240
KERNEL = "hep-columnar-test"


@pytest.fixture(scope="module")
def kernel_specs(tmp_path_factory) -> KernelSpecManager:
    """A kernelspec that starts ipykernel with the running interpreter (no user-level install)."""
    root = tmp_path_factory.mktemp("kernels")
    spec_dir = root / KERNEL
    spec_dir.mkdir()
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "test kernel", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    return KernelSpecManager(kernel_dirs=[str(root)])


def test_notebooks_found():
    """The workflow notebooks are there (the list grows; these must exist)."""
    names = {p.stem for p in NOTEBOOKS}
    assert {"ttbar_analysis", "ttbar_ml", "diphoton_search", "background_ftest", "reinterpretation",
            "ht_reweighting", "own_analysis"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path, tmp_path: Path, kernel_specs: KernelSpecManager):
    """Execute all cells; fail on the first error; require inline plots and a Dask note in the intro."""
    nb = jupytext.read(path)
    intro = next(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "Dask" in intro, f"{path.name}: the introduction should say how to scale the workflow with Dask"
    km = KernelManager(kernel_name=KERNEL, kernel_spec_manager=kernel_specs)
    client = nbclient.NotebookClient(nb, km=km, timeout=CELL_TIMEOUT_S, allow_errors=False,
                                     resources={"metadata": {"path": str(tmp_path)}})
    t0 = time.perf_counter()
    client.execute()
    elapsed = time.perf_counter() - t0
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") in ("display_data", "execute_result") and "image/png" in o.get("data", {})]
    assert images, f"{path.name}: no plot shown inline"
    print(f"{path.name}: {elapsed:.1f} s, {len(images)} inline images")
