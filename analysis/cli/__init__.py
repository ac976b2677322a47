"""The ``ana`` console script: one subcommand per workflow step, each a thin shell over the Python API."""

from __future__ import annotations

import argparse
import gc
import importlib
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from analysis.errors import UserError

# Each module in analysis/cli registers its own subcommand and imports its workflow only when it runs,
# so `ana --help` and argument errors never import coffea, dask, pyhf or matplotlib.
COMMAND_MODULES = (
    "generate",
    "run",
    "fit",
    "demo",
    "search",
    "ftest",
    "reinterpret",
    "scale",
    "reweight",
    "ml",
)


@contextmanager
def workflow_imports() -> Iterator[None]:
    """Import a command's modules with the cyclic garbage collector paused, then freeze what they created.

    Importing numpy/awkward/uproot/hist/pydantic creates ~10⁶ long-lived objects (modules, classes, functions);
    the collector traverses them again and again while they are created and then in every full collection of
    the run (≈ 0.17 s CPU of a 1.7 s ``ana run``). Imported modules are never freed, so nothing is lost by
    pausing collection while they load and moving them to the permanent generation (``gc.freeze``) afterwards;
    collection is re-enabled as it was (objects the run creates are collected as usual). Used by the CLI only
    (the process is ``ana``'s), never at import time. The freeze happens only when the block imported modules:
    a long-lived process calling :func:`main` again (tests, a notebook) imports nothing new and must not move
    its own objects — or its pending cyclic garbage — into the permanent generation on every call.
    """
    enabled = gc.isenabled()
    n_modules = len(sys.modules)
    gc.disable()
    try:
        yield
    finally:
        if len(sys.modules) > n_modules:
            gc.freeze()
        if enabled:
            gc.enable()


class _OneLineParser(argparse.ArgumentParser):
    """An argument error is one line ``ana CMD: error: ...`` and exit code 2 (no usage block)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every available subcommand."""
    parser = _OneLineParser(prog="ana", description="Columnar HEP analysis framework.")
    parser.add_argument("-v", "--verbose", action="store_true", help="verbose logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"analysis.cli.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"analysis.cli.{name}":
                continue  # subcommand not part of this build
            raise
        module.register(sub)
    _add_common_flags(sub)
    return parser


def _add_common_flags(sub: argparse._SubParsersAction) -> None:
    """Every leaf subcommand accepts ``-v`` and ``--no-progress`` (also after the subcommand's name)."""
    for parser in set(sub.choices.values()):
        nested = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if nested:
            for action in nested:
                _add_common_flags(action)
            continue
        options = set(parser._option_string_actions)
        if "--no-progress" not in options:
            parser.add_argument("--no-progress", action="store_true", default=argparse.SUPPRESS,
                                help="no progress bars or stage messages")
        if "--verbose" not in options and "-v" not in options:
            parser.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                                help="show the libraries' warnings and INFO messages in full")


def _how_to_go_on(err: UserError, args: argparse.Namespace) -> str:
    """For unreadable inputs: the flag that skips them, only if the running command has it."""
    from analysis.errors import UnreadableInputError

    if not isinstance(err, UnreadableInputError):
        return ""
    if hasattr(args, "skip_bad_files"):
        return "; rerun with --skip-bad-files to skip unreadable files and chunks (their events are reported lost)"
    return "; repair the file(s) or remove them from the fileset"


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``ana``; user errors print one line and return 2, bugs raise."""
    with workflow_imports():
        parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or an argument error (2, already printed as one line)
        return exc.code if isinstance(exc.code, int) else 2
    os.environ.setdefault("MPLBACKEND", "Agg")  # the CLI draws into files; notebooks keep their backend
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    from analysis.console import library_noise, progress_setting

    try:
        # libraries' warnings (cabinetry fit retries, coffea, dask, …) are counted and summarised unless -v
        with progress_setting(not getattr(args, "no_progress", False)), library_noise(verbose=args.verbose):
            result = args.func(args)
    except UserError as err:  # every layer's user error: one line, exit 2
        print(f"ana {args.command}: error: {err}{_how_to_go_on(err, args)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ana {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
