"""Scale-out: identical histograms from every executor (iterative, futures, LocalCluster, a remote scheduler
with separately started worker processes, one of them SIGKILLed mid-run), code shipping to workers that do
not have the project installed, dask-jobqueue job scripts, chunk-size clamping, option validation."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from analysis.cli import main as cli_main
from analysis.errors import UserError
from analysis.histio import histogram_digest
from analysis.agc.run import run_ttbar
from analysis.execution.options import clamp_chunksize
from fileset.generate.agc import generate_agc

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable




@pytest.fixture(scope="module")
def agc(tmp_path_factory) -> Path:
    """Nine small synthetic AGC samples (2000 events each)."""
    return generate_agc(tmp_path_factory.mktemp("agc"), events_per_file=2000, files_per_sample=1, seed=11)


@pytest.fixture(scope="module")
def reference(agc, tmp_path_factory) -> tuple[str, dict]:
    """Iterative run, one chunk per file: the digest every other configuration must reproduce."""
    out = tmp_path_factory.mktemp("ref")
    res = run_ttbar(agc, out, executor="iterative", chunksize=2000, progress=False)
    return histogram_digest(out / "histograms.root"), res.metrics


def test_reference_counts(reference):
    """The reference run processed every event and lost none."""
    _, m = reference
    assert m["events_processed"] == m["events_expected"] == 18000
    assert m["events_lost"] == 0 and m["bad_files"] == [] and m["lost_chunks"] == []
    assert m["chunks"] == 9


@pytest.mark.parametrize("executor,workers,chunksize", [("iterative", None, 333), ("futures", 2, 500), ("dask", 2, 701),
                                                        ("dask", 1, 1999)])
def test_bit_identical_across_executors_chunks_workers(agc, reference, tmp_path, executor, workers, chunksize):
    """Same histogram bits for any executor (incl. a LocalCluster), chunk size and worker count."""
    res = run_ttbar(agc, tmp_path, executor=executor, workers=workers, chunksize=chunksize, progress=False)
    assert histogram_digest(tmp_path / "histograms.root") == reference[0]
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["executor"] == executor and m["chunksize"] == chunksize
    n = max(round(2000 / chunksize), 1)  # coffea balances the chunks of a file
    assert m["chunks"] == 9 * -(-2000 // -(-2000 // n))
    assert m["events_processed"] == 18000
    if executor == "dask":
        assert m["cluster"]["kind"] == "local" and m["cluster"]["workers"] == workers
    assert res.nevents == reference[1]["events_per_dataset"]


# ---- a real remote cluster: `dask scheduler` + `dask worker` processes on loopback ---------------------

WORKER_LAUNCHER = f"""
import sys
# hide the editable install of this project: the worker must get the code from the client
sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in getattr(f, '__module__', '')]
sys.path[:] = [p for p in sys.path if p not in ('', {str(REPO)!r})]
from distributed.cli.dask_worker import main
sys.argv = ['dask-worker'] + sys.argv[1:]
main()
"""


@pytest.fixture()
def remote_cluster(tmp_path):
    """A scheduler and two single-threaded, nanny-less worker processes that cannot import the project."""
    sched_file = tmp_path / "scheduler.json"
    procs = [subprocess.Popen([PY, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
                               "--no-dashboard", "--scheduler-file", str(sched_file)],
                              cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        deadline = time.time() + 60
        while not sched_file.exists() or not sched_file.read_text().strip():
            assert time.time() < deadline, "dask scheduler did not start"
            time.sleep(0.1)
        address = json.loads(sched_file.read_text())["address"]
        for i in range(2):
            procs.append(subprocess.Popen([PY, "-c", WORKER_LAUNCHER, address, "--nthreads", "1", "--no-nanny",
                                           "--name", f"w{i}", "--local-directory", str(tmp_path / f"w{i}")],
                                          cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
            yield address, client
    finally:
        for p in procs[::-1]:
            p.kill()
            p.wait(timeout=30)


def test_remote_scheduler_ships_code_and_survives_sigkilled_worker(agc, reference, remote_cluster, tmp_path):
    """Workers without the project get it from the client; SIGKILL of a busy worker leaves the result unchanged."""
    address, client = remote_cluster
    can_import = lambda: __import__("importlib.util").util.find_spec("processors") is not None  # noqa: E731 (by value)
    assert set(client.run(can_import).values()) == {False}
    pids = client.run(os.getpid)
    out = tmp_path / "out"
    box: dict = {}

    def work():
        try:
            box["result"] = run_ttbar(agc, out, scheduler=address, executor=None, chunksize=150, progress=False)
        except BaseException as err:  # pragma: no cover - reported below
            box["error"] = err

    thread = threading.Thread(target=work)
    thread.start()
    killed = None
    deadline = time.time() + 120
    while thread.is_alive() and killed is None and time.time() < deadline:
        # chunk tasks: the fast path's dask_chunks (coffea's path: the _Chunked processor's)
        done = client.run_on_scheduler(lambda dask_scheduler: sum(
            1 for ts in dask_scheduler.tasks.values()
            if ts.state == "memory" and str(ts.key).startswith(("dask_chunk", "_Chunked"))))
        busy = [a for a, keys in client.processing().items()
                if any(str(k).startswith(("dask_chunk", "_Chunked")) for k in keys)]
        if done >= 3 and busy:  # some tasks done, one running (the fast path: 9 tasks, one per file)
            killed = busy[0]
            os.kill(pids[killed], signal.SIGKILL)
            still_running = thread.is_alive()
        time.sleep(0.05)
    thread.join(timeout=300)
    assert killed is not None and still_running, "the worker was not killed while the run was in progress"
    assert "error" not in box, box.get("error")
    assert killed not in client.scheduler_info()["workers"]  # it really died
    m = box["result"].metrics
    assert m["cluster"]["kind"] == "scheduler" and m["cluster"]["code_shipped"].endswith(".zip")
    assert m["events_processed"] == 18000 and m["events_lost"] == 0
    assert histogram_digest(out / "histograms.root") == reference[0]


# ---- batch systems via dask-jobqueue (no batch system here: check the generated job scripts) -----------

CLUSTER_YAML = """
cluster:
  cores: 4
  memory: 16GB
  walltime: "02:30:00"
  queue: {queue}
  adaptive: {{minimum: 1, maximum: 25}}
  python: /opt/venv/bin/python
  job_script_prologue: ["source /opt/setup.sh"]
  log_directory: {logs}
"""


def test_slurm_job_script(tmp_path, capsys):
    """--print-job-script renders the SLURM script: partition, walltime, cores, memory, 4 single-thread workers."""
    pytest.importorskip("dask_jobqueue")
    cfg = tmp_path / "cluster.yml"
    cfg.write_text(CLUSTER_YAML.format(queue="short", logs=tmp_path / "logs"))
    assert cli_main(["run", "ttbar", "--cluster", "slurm", "--cluster-config", str(cfg), "--print-job-script"]) == 0
    script = capsys.readouterr().out
    assert "#SBATCH -p short" in script
    assert "#SBATCH -t 02:30:00" in script
    assert "#SBATCH --cpus-per-task=4" in script
    assert "#SBATCH --mem=15G" in script  # dask-jobqueue writes 16GB as 15G (GiB, rounded down)
    assert "source /opt/setup.sh" in script
    assert "/opt/venv/bin/python -m distributed.cli.dask_worker tcp://" in script
    assert "--nworkers 4" in script and "--nthreads 1" in script


@pytest.mark.parametrize("kind, command, queue", [("slurm", "sbatch", "short"), ("htcondor", "condor_submit", "workday")])
def test_batch_cluster_without_its_submit_command_is_one_line(agc, tmp_path, capsys, monkeypatch, kind, command, queue):
    """On a machine without the batch system (no sbatch / condor_submit on PATH): one line, exit 2, at once — it
    hung with dask-jobqueue's FileNotFoundError traceback."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # the test machine may have neither; make sure
    cfg = tmp_path / "cluster.yml"
    cfg.write_text(CLUSTER_YAML.format(queue=queue, logs=tmp_path / "logs"))
    t0 = time.time()
    rc = cli_main(["run", "ttbar", "--fileset", str(agc), "--out", str(tmp_path / "o"), "--cluster", kind,
                   "--cluster-config", str(cfg), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and time.time() - t0 < 30
    assert len(err.strip().splitlines()) == 1 and f"{command} not found on this machine" in err, err
    assert not (tmp_path / "o").exists()


def test_htcondor_job_script(tmp_path):
    """HTCondor submit description: cores, memory, disk, MaxRuntime from walltime, JobFlavour from queue."""
    pytest.importorskip("dask_jobqueue")
    from analysis.execution.cluster import job_script, load_cluster_config

    cfg = tmp_path / "cluster.yml"
    cfg.write_text(CLUSTER_YAML.format(queue="workday", logs=tmp_path / "logs") + "  disk: 20GB\n")
    script = job_script("htcondor", load_cluster_config(cfg, "htcondor"))
    assert "RequestCpus = MY.DaskWorkerCores" in script and "MY.DaskWorkerCores = 4" in script
    assert "MY.DaskWorkerMemory = 16000000000" in script and "MY.DaskWorkerDisk = 20000000000" in script
    assert "+MaxRuntime = 9000" in script and '+JobFlavour = "workday"' in script
    assert "source /opt/setup.sh" in script and "distributed.cli.dask_worker" in script


def test_cluster_config_problems_reported_together(tmp_path):
    """Unknown keys, wrong types and bad values are all listed, each with its path in the document."""
    cfg = tmp_path / "cluster.yml"
    cfg.write_text("cluster:\n  cores: four\n  memory: 16GB\n  walltime: 2h\n  adaptive: {minimum: 1, maximum: 0}\n"
                   "  qeueu: short\nextra: 1\n")
    with pytest.raises(UserError) as exc:
        run_ttbar(tmp_path / "missing.json", tmp_path / "out", cluster="slurm", cluster_config=cfg)
    msg = str(exc.value)
    for needle in ("cluster/cores", "'four' is not of type 'integer'", "cluster/walltime", "cluster/adaptive/maximum",
                   "'qeueu' was unexpected", "'extra' was unexpected", "missing.json: fileset json not found"):
        assert needle in msg, (needle, msg)
    assert not (tmp_path / "out").exists()


def test_cli_option_problems_reported_together(agc, tmp_path, capsys):
    """Conflicting and invalid options → one error line listing all of them, exit 2, nothing written."""
    rc = cli_main(["run", "ttbar", "--fileset", str(agc), "--out", str(tmp_path / "o"), "--chunksize", "0",
                   "--retries", "-1", "--executor", "futures", "--scheduler", "tcp://127.0.0.1:1", "--workers", "0"])
    err = capsys.readouterr().err
    assert rc == 2
    for needle in ("chunksize: must be a positive integer", "retries: must be a non-negative integer",
                   "workers: must be a positive integer", "need the dask executor"):
        assert needle in err, (needle, err)
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_unreachable_scheduler_is_a_user_error(agc, tmp_path):
    """A scheduler address nobody listens on → one-line UserError naming it."""
    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}), pytest.raises(UserError, match="cannot connect to Dask scheduler tcp://127.0.0.1:9"):
        run_ttbar(agc, tmp_path, scheduler="tcp://127.0.0.1:9", executor="dask", progress=False)


# ---- memory ------------------------------------------------------------------------------------------

def test_clamp_chunksize_arithmetic():
    """Chunks are limited to MEMORY_FRACTION of a worker's memory at MEMORY_FACTOR × input bytes per event."""
    from analysis.execution.options import MEMORY_FACTOR, MEMORY_FRACTION

    mem, bpe = 2 * 2**30, 250.0
    limit = int(MEMORY_FRACTION * mem / (MEMORY_FACTOR * bpe))
    assert clamp_chunksize(limit, bpe, mem) == (limit, None)
    size, warning = clamp_chunksize(100 * limit, bpe, mem)
    assert size == limit and "clamped to" in warning and str(100 * limit) in warning
    assert clamp_chunksize(10**9, None, mem) == (10**9, None)


def test_oversize_chunk_clamped_with_warning(agc, reference, tmp_path, monkeypatch, caplog):
    """On a (pretend) 4 MiB machine a 10⁹-event chunk request is clamped, warned about, and changes nothing."""
    import analysis.execution.runner as run_mod

    monkeypatch.setattr(run_mod, "machine_memory_bytes", lambda: 4 * 2**20)
    with caplog.at_level("WARNING", logger="analysis.execution.runner"):
        res = run_ttbar(agc, tmp_path, executor="iterative", chunksize=10**9, progress=False)
    m = res.metrics
    assert m["chunksize_requested"] == 10**9 and m["chunksize"] < 2000  # smaller than a file: several chunks
    assert m["chunks"] > 9 and m["warnings"] and "clamped to" in caplog.text
    assert histogram_digest(tmp_path / "histograms.root") == reference[0]


def test_scheduler_in_this_process_gets_no_code_upload(agc, reference, tmp_path):
    """A LocalCluster started in the same process (a notebook) is used through its address: the project code is
    not uploaded (the scheduler would put the zip from its scratch directory on this process's sys.path, and every
    import after the cluster closed failed with FileNotFoundError); the histograms are the reference's."""
    import logging
    import sys

    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.CRITICAL) as cluster, Client(cluster):
        res = run_ttbar(agc, tmp_path / "out", scheduler=cluster.scheduler_address, executor=None, chunksize=2000,
                        progress=False)
    assert res.metrics["cluster"]["code_shipped"] is None
    assert not [p for p in sys.path if "dask-scratch-space" in p]
    assert histogram_digest(tmp_path / "out" / "histograms.root") == reference[0]
    run_ttbar(agc, tmp_path / "again", executor="iterative", progress=False)  # imports still work afterwards


def test_workers_warmed_without_waiting(caplog):
    """After the pre-flight the workers import the chunk reader and the processor without the client waiting
    (``client.run(..., wait=False)`` takes coroutine functions only: a plain one was refused on every worker with
    a logged "Combination not supported" and nothing imported)."""
    import logging
    import sys

    from distributed import Client, LocalCluster

    from analysis.execution.runner import _warm_workers

    modules = ("analysis.execution.chunkread", "processors.ttbar")
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.CRITICAL) as cluster, Client(cluster) as client:
        assert not any(client.run(lambda: "processors.ttbar" in sys.modules).values())
        with caplog.at_level(logging.ERROR, logger="distributed"):
            _warm_workers(client, modules)
            deadline = time.time() + 60
            while not all(client.run(lambda: all(m in sys.modules for m in modules)).values()):
                assert time.time() < deadline, "the workers did not import the modules"
                time.sleep(0.1)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
