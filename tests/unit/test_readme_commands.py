"""The README's commands parse with the real `ana` parser, every command sits in a fenced block, and the
quick start installs the runtime only while the test command installs the test extras (as .ci/run does).

The end-to-end run of the same commands is tests/workflows/test_readme.py.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from analysis.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
FENCE = re.compile(r"(?:<!--\s*readme-test:\s*skip(?P<why>[^>]*)-->\s*\n)?```bash\n(?P<body>.*?)```", re.S)


def _section(title: str, next_title: str) -> str:
    return README[README.index(f"\n## {title}"):README.index(f"\n## {next_title}")]


def _commands(body: str) -> list[str]:
    """Shell commands of a block: continuation lines joined, heredoc bodies left out."""
    lines, out, heredoc = body.replace("\\\n", " ").splitlines(), [], None
    for line in lines:
        if heredoc is not None:
            heredoc = None if line.strip() == heredoc else heredoc
            continue
        m = re.search(r"<<-?\s*'?(\w+)'?", line)
        if m:
            heredoc = m.group(1)
        if line.strip() and not line.lstrip().startswith("#"):
            out.append(line.strip())
    return out


def _ana_commands() -> list[str]:
    cmds = []
    for m in FENCE.finditer(_section("Workflows", "Layout")):
        for cmd in _commands(m.group("body")):
            for part in re.split(r"\s&&\s", cmd):
                if part.startswith("ana "):
                    cmds.append(part)
    return cmds


def test_workflow_commands_are_fenced():
    """No runnable `ana …` command hides in an indented block (the README test runs fenced bash blocks only)."""
    indented = [ln for ln in _section("Workflows", "Layout").splitlines() if re.match(r"^ {4}ana ", ln)]
    assert not indented, indented
    assert len(_ana_commands()) >= 20


@pytest.mark.parametrize("command", _ana_commands())
def test_readme_command_parses(command):
    """Every `ana` command of the README is accepted by the parser as written (options, choices, types)."""
    argv = shlex.split(command, comments=True)[1:]
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as err:  # argparse reports on stderr and exits 2
        pytest.fail(f"README command rejected by `ana` (exit {err.code}): {command}")
    assert callable(args.func)


def test_skipped_blocks_say_why_and_stay_few():
    """Only cluster/network blocks are skipped by the README test, each with its reason."""
    skipped = [m for m in FENCE.finditer(_section("Workflows", "Layout")) if m.group("why") is not None]
    assert 1 <= len(skipped) <= 3, [m.group("body") for m in skipped]
    for m in skipped:
        assert re.search(r"network|cluster|scheduler|slurm|yadage", m.group("why"), re.I), m.group("why")


def test_quick_start_installs_runtime_and_tests_install_extras():
    """Quick start: `pip install -e .` (no test extras) then `ana demo`; tests: `.[test]` then pytest; CI runs it."""
    blocks = [m.group("body") for m in FENCE.finditer(_section("Quick start", "Workflows"))]
    assert len(blocks) == 2, blocks
    install, tests = blocks
    assert re.search(r"pip install -e \.(\s|$)", install) and "[test]" not in install and "ana demo" in install
    assert 'pip install -e ".[test]"' in tests and "python -m pytest -q tests" in tests
    ci = (ROOT / ".ci" / "run").read_text()
    assert tests.strip() in [line.strip() for line in ci.splitlines()]  # CI runs the README's command verbatim
