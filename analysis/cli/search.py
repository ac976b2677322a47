"""``ana search``: the automated X→γγ resonance search (blind unless --unblind)."""

from __future__ import annotations

import argparse
import pathlib

from analysis.cli.types import output_dir



def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``search`` subcommand."""
    parser = sub.add_parser("search", help="diphoton resonance search: selection, fits, significance, CLs limits")
    parser.add_argument("--config", required=True, help="search YAML config (paths relative to it)")
    parser.add_argument("--out", type=output_dir, required=True, help="output directory for results.json, details.json and plots "
                        "(with --unblind: OUT/unblinded, so the blind results stay next to them)")
    parser.add_argument("--unblind", action="store_true", help="read data inside the search window (default: blind)")
    parser.add_argument("--no-plots", action="store_true", help="skip the plots")
    parser.set_defaults(func=run)


def unblinded_dir(out: str) -> "pathlib.Path":
    """Where ``--unblind`` writes: ``OUT/unblinded`` (never over the blind results in ``OUT``)."""
    from pathlib import Path

    return Path(out) / "unblinded"


def run(args: argparse.Namespace) -> int:
    """Run the search and print a one-paragraph summary."""
    from pathlib import Path

    from analysis.resonance.search import run_search

    out = unblinded_dir(args.out) if args.unblind else Path(args.out)
    res = run_search(args.config, out, unblind=args.unblind, make_plots=not args.no_plots)
    if res["blinded"]:
        print(f"blinded search done; expected limits in {out}/results.json (rerun with --unblind to look at data)")
    else:
        z = res["local_significance"]
        print(f"best mass {res['best_mass_gev']:g} GeV: local Z = {z:.2f}, global Z = {res['global_significance']:.2f}"
              + (f"; measured m = {res['measurement']['mass_gev']:.1f} ± {res['measurement']['mass_err_gev']:.1f} GeV,"
                 f" σ = {res['measurement']['cross_section_pb']:.3g} ± {res['measurement']['cross_section_err_pb']:.2g} pb"
                 if res["measurement"] else ""))
    print(f"wrote {out}/results.json; report: {out}/report.html")
    return 0
