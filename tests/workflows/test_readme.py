"""The README's workflow commands, run as written and in order in a fresh directory, so the README cannot drift.

Every fenced ``bash`` block of the README's "Workflows" section runs with ``bash -e`` in one temporary directory
that holds links to the repository's own (git-tracked) top-level files and directories, like the root of a fresh
clone (the outputs land next to them; the repository, and any outputs of the user's own README runs in it, stay
untouched). Blocks preceded by ``<!-- readme-test: skip (reason) -->`` (cluster, network) are not
run. The only changes: sample sizes are made small (``--events-per-file``, ``--background-events``, ``--scale``;
``ANA_README_SCALE`` multiplies them) and ``ana fit`` skips the impact ranking. Then the outputs are checked
against what the README promises (events processed = the fileset's, identical histograms on every executor,
blind results kept next to unblinded ones, …).
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from analysis.histio import histogram_digest

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"(?:<!--\s*readme-test:\s*skip(?P<why>[^>]*)-->\s*\n)?```bash\n(?P<body>.*?)```", re.S)
SCALE = float(os.environ.get("ANA_README_SCALE", "1"))


def _n(value: int) -> str:
    return str(max(1, round(value * SCALE)))


# small sizes: (command prefix, option, value); options missing from the command are added
SIZES = [
    ("ana generate agc", "--events-per-file", _n(12000)),  # fewer leave empty template bins (NaN fit)
    ("ana generate agc", "--files-per-sample", "1"),
    ("ana generate diphoton", "--background-events", _n(6000)),
    ("ana generate spectrum", "--scale", str(0.3 * SCALE)),
]
EXTRA = [("ana fit", "--no-ranking")]


def workflow_blocks(readme: str) -> list[tuple[str | None, str]]:
    """(skip reason or None, script) of every fenced bash block between "## Workflows" and "## Layout"."""
    section = readme[readme.index("\n## Workflows"):readme.index("\n## Layout")]
    return [(None if m.group("why") is None else m.group("why").strip(" ()") or "skip", m.group("body"))
            for m in FENCE.finditer(section)]


def _set_option(command: str, option: str, value: str | None) -> str:
    """``command`` with ``option value`` set (replaced if present, else inserted before any trailing comment)."""
    code, hash_, comment = command.partition("  #")
    if value is None:
        if option not in code.split():
            code = code.rstrip() + f" {option}"
    elif re.search(rf"{option}\s+\S+", code):
        code = re.sub(rf"{option}\s+\S+", f"{option} {value}", code)
    else:
        code = code.rstrip() + f" {option} {value}"
    return code + hash_ + comment


def shrink(script: str) -> str:
    """The block with small sample sizes (see SIZES/EXTRA); other lines unchanged."""
    lines = script.replace("\\\n", " ").splitlines()
    out = []
    for line in lines:
        stripped = line.strip()
        for prefix, option, value in SIZES:
            if stripped.startswith(prefix + " "):
                line = _set_option(line, option, value)
        for prefix, option in EXTRA:
            if stripped.startswith(prefix + " "):
                line = _set_option(line, option, None)
        out.append(line)
    return "\n".join(out) + "\n"


# the project's top-level entries when the checkout is not a git repository (e.g. an unpacked archive)
PROJECT_ENTRIES = ("README.md", "pyproject.toml", "cabinetry_config.yml", "analysis", "processors", "schemas",
                   "fileset", "notebooks", "tests", "workflows", "benchmarks")


def repository_entries() -> list[str]:
    """The repository's own top-level files and directories (git's tracked ones): never the outputs a user's own
    README commands left in the checkout (``agc/``, ``out/``, ``fit/``, …), which the blocks would overwrite
    through a link."""
    try:
        tracked = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True, check=True,
                                 timeout=60).stdout.decode().split("\0")
        names = {path.split("/", 1)[0] for path in tracked if path}
    except (OSError, subprocess.SubprocessError):
        names = set(PROJECT_ENTRIES)
    return sorted(n for n in names if not n.startswith(".") and (ROOT / n).exists())


def test_readme_runs_link_only_the_repository_s_own_files() -> None:
    """A user's outputs in the checkout (here ``agc/`` and ``out/`` if present) are not linked into the README run."""
    entries = repository_entries()
    assert {"README.md", "analysis", "processors", "tests"} <= set(entries)
    assert not {"agc", "out", "fit", "demo", "nano", "xgg", "recast"} & set(entries)


@pytest.fixture(scope="module")
def readme_run(tmp_path_factory):
    """Run every non-skipped block in order; return (work dir, [(script, stdout, stderr, seconds)])."""
    work = tmp_path_factory.mktemp("fresh_clone")
    for name in repository_entries():  # as in the root of a fresh clone (the outputs land beside them)
        (work / name).symlink_to(ROOT / name)
    env = dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    log = []
    for why, body in workflow_blocks((ROOT / "README.md").read_text()):
        if why is not None:
            continue
        script = shrink(body)
        t0 = time.perf_counter()
        proc = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=work, env=env,
                              capture_output=True, text=True, timeout=600)
        log.append((script, proc.stdout, proc.stderr, time.perf_counter() - t0))
        assert proc.returncode == 0, f"README block failed (exit {proc.returncode}):\n{script}\n{proc.stderr[-3000:]}"
    return work, log


def test_readme_blocks_are_found_and_shrunk():
    """The extraction sees the skip markers and the size rewrite keeps the command otherwise as written."""
    blocks = workflow_blocks((ROOT / "README.md").read_text())
    assert sum(why is None for why, _ in blocks) >= 8 and sum(why is not None for why, _ in blocks) >= 1
    assert shrink("ana generate agc --out agc --events-per-file 50000 --files-per-sample 2\n") == \
        f"ana generate agc --out agc --events-per-file {_n(12000)} --files-per-sample 1\n"
    assert shrink("ana fit --config c.yml --out fit   # the fit\n") == "ana fit --config c.yml --out fit --no-ranking  # the fit\n"


def test_readme_workflows_run_as_written(readme_run):
    """All blocks ran; outputs are what the README says they are."""
    work, log = readme_run
    stderr = "".join(e for _, _, e, _ in log)
    assert "Traceback" not in stderr and "Merging (local)" not in stderr
    assert "already exists" not in stderr  # coffea's Photon_charge warning

    # AGC: events processed = the fileset's, histograms identical on futures (twice) and Dask
    fileset = json.loads((work / "agc" / "ntuples.json").read_text())
    nevts = sum(f["nevts"] for proc in fileset.values() for var in proc.values() for f in var["files"])
    metrics = json.loads((work / "out" / "metrics.json").read_text())
    assert metrics["events_processed"] == nevts
    digest = histogram_digest(work / "out" / "histograms.root")
    assert histogram_digest(work / "out_local" / "histograms.root") == digest
    assert histogram_digest(work / "out_dask" / "histograms.root") == digest
    fit = json.loads((work / "fit" / "fit_results.json").read_text())
    assert fit, "fit_results.json is empty"

    # offline NanoAOD: every event of the generated index processed
    nano = json.loads((work / "nano" / "nanoaod_inputs.json").read_text())
    n_nano = sum(f["nevts"] for proc in nano.values() for var in proc.values() for f in var["files"])
    assert json.loads((work / "nano_out" / "metrics.json").read_text())["events_processed"] == n_nano

    # your own processor: the example on the same NanoAOD files, every event
    data = json.loads((work / "data" / "nanoaod_inputs.json").read_text())
    n_data = sum(f["nevts"] for proc in data.values() for var in proc.values() for f in var["files"])
    assert json.loads((work / "own" / "metrics.json").read_text())["events_processed"] == n_data
    assert (work / "own_dask" / "histograms.root").is_file()

    # HTCondor job script: the README's example is valid, nothing submitted, no scheduler chatter
    condor = next((o, e) for s, o, e, _ in log if "--print-job-script" in s)
    assert '+JobFlavour = "longlunch"' in condor[0] and "INFO" not in condor[1]

    # diphoton: the synthetic signal is announced; blind results survive the unblinded run next to them
    blind = json.loads((work / "search" / "results.json").read_text())
    unblind = json.loads((work / "search" / "unblinded" / "results.json").read_text())
    assert blind["blinded"] is True and unblind["blinded"] is False
    assert "synthetic" in stderr and (work / "xgg" / "signal" / "signal_750.csv").is_file()
    meas = unblind["measurement"]  # the injected X (680 GeV, 25 pb) recovered from the synthetic signal model
    assert meas is not None, unblind["local_significance"]
    assert abs(meas["mass_gev"] - 680.0) < 3 * meas["mass_err_gev"]
    assert abs(meas["cross_section_pb"] - 25.0) < 3 * meas["cross_section_err_pb"]

    # f-test: three categories, each with an envelope
    summary = json.loads((work / "ftest" / "summary.json").read_text())
    cats = summary["categories"]
    assert len(cats) == 3 and all(c["status"] == "ok" for c in cats), cats

    # reinterpretation: σ limit = μ limit × σ_ref (the --xsec given to both scale and reinterpret)
    res = json.loads((work / "reinterpret" / "results.json").read_text())
    mu = res["mu_upper_limit_observed"]
    assert math.isfinite(mu) and mu > 0
    sel = json.loads((work / "recast" / "signal_selection.json").read_text())
    scale_doc = json.loads((work / "recast" / "signal_scaled.json").read_text())
    assert scale_doc["scale_factor"] == pytest.approx(0.001 * 140 * 1000 / sel["sum_of_weights"], rel=1e-9)

    # HT reweighting and ML produced their files
    assert (work / "rw" / "ht_reweighting.json").is_file() and (work / "applied" / "histograms.root").is_file()
    assert (work / "ml_train" / "model.joblib").is_file()

    total = sum(t for *_, t in log)
    print(f"README blocks: {len(log)} in {total:.0f} s: " + ", ".join(f"{t:.0f}" for *_, t in log))
