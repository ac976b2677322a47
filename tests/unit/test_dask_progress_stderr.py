"""The Dask executor's progress bar goes to stderr like every other bar; stdout stays for results."""

from __future__ import annotations

import pytest


def square(x: int) -> dict[str, int]:
    return {"sum": x * x}


def test_dask_bar_on_stderr(capfd):
    distributed = pytest.importorskip("distributed")
    from analysis.execution.executors import DaskExecutor

    with distributed.Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None) as client:
        capfd.readouterr()
        out, _ = DaskExecutor(client=client, status=True, retries=0, compression=None)(list(range(10)), square, {})
    captured = capfd.readouterr()
    assert out == {"sum": sum(x * x for x in range(10))}
    assert "Processing" not in captured.out and captured.out.strip() == ""
    assert "Processing" in captured.err
