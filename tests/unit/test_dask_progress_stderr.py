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


def _bar_counts(err: str) -> list[str]:
    """The 'done/total' counts rich printed on stderr."""
    import re

    return re.findall(r"\b(\d+)/(\d+)\b", err)


def square_with_heavy(pair: tuple[int, bytes]) -> dict[str, int]:
    x, heavy = pair
    assert heavy == b"processor"
    return {"sum": x * x}


@pytest.mark.parametrize("heavy", [False, True], ids=["plain", "heavy_input"])
def test_dask_bar_counts_chunks_not_reduction_tasks(capfd, heavy):
    """18 chunks: the bar ends at 18/18 — coffea's counted the tree-reduction task too (19/19) and, as coffea's
    Runner runs it (the processor sent as ``heavy_input``, one more task), 20/20 — for a single reduction level
    and several (treereduction=4: 5 + 2 + 1 reducer tasks)."""
    distributed = pytest.importorskip("distributed")
    from analysis.execution.executors import DaskExecutor

    function, extra = (square_with_heavy, {"heavy_input": b"processor"}) if heavy else (square, {})
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None) as client:
        for tree in (20, 4):
            capfd.readouterr()
            out, _ = DaskExecutor(client=client, status=True, retries=0, treereduction=tree, desc="Processing chunks",
                                  unit="chunk", **extra)(list(range(18)), function, {})
            err = capfd.readouterr().err
            assert out == {"sum": sum(x * x for x in range(18))}  # every chunk merged once
            assert "Processing chunks" in err
            counts = {(int(a), int(b)) for a, b in _bar_counts(err)}
            assert counts and all(total == 18 for _, total in counts), err
            assert (18, 18) in counts, err


def fails_on_seven(x: int) -> dict[str, int]:
    if x == 7:
        raise ValueError("chunk 7 is bad")
    return {"sum": x}


def test_dask_bar_chunk_error_is_raised():
    distributed = pytest.importorskip("distributed")
    from analysis.execution.executors import DaskExecutor

    with distributed.Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None) as client:
        with pytest.raises(ValueError, match="chunk 7 is bad"):
            DaskExecutor(client=client, status=True, retries=0)(list(range(18)), fails_on_seven, {})
