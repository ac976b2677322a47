"""``ana generate TARGET``: synthetic inputs in real formats; each target lives in generate_<target>.py."""

from __future__ import annotations

import argparse
import importlib

TARGETS = ("agc", "diphoton", "recast", "spectrum")


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``generate`` and one sub-subcommand per available target."""
    parser = sub.add_parser("generate", help="write synthetic input files (ROOT/CSV) in the real formats")
    targets = parser.add_subparsers(dest="target", metavar="TARGET")
    targets.required = True
    for name in TARGETS:
        try:
            module = importlib.import_module(f"analysis.cli.generate_{name}")
        except ModuleNotFoundError as err:
            if err.name == f"analysis.cli.generate_{name}":
                continue
            raise
        module.register(targets)
