"""``ana scale``: scale a raw MC histogram to expected events, scale = σ[pb]·L[fb⁻¹]·1000·k·ε / Σw."""

from __future__ import annotations

import argparse

from analysis.cli.types import output_file, positive_float, probability
def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``scale`` subcommand."""
    p = sub.add_parser(
        "scale",
        help="scale a histogram by sigma*L*k*eps/sum(w) (RECAST scaling step)",
        description="Write HIST scaled by xsec[pb] * lumi[fb^-1] * 1000 * kfactor * filterfactor / sumweights "
        "to OUT_FILE under the same name (plus OUT_FILE with .json suffix holding the factor).",
    )
    p.add_argument("--input", required=True, metavar="HIST_FILE", help="ROOT file with the raw histogram")
    p.add_argument("--hist", required=True, metavar="NAME", help="histogram key, e.g. h_mjj")
    p.add_argument("--xsec", required=True, type=positive_float, metavar="PB", help="cross-section in pb")
    p.add_argument("--sumweights", required=True, metavar="W|FILE.json",
                   help="sum of generator weights of the sample, or a selection json holding it as sum_of_weights "
                   "(e.g. signal_selection.json from `ana generate recast`)")
    p.add_argument("--kfactor", type=positive_float, default=1.0, metavar="K", help="higher-order k-factor (default 1)")
    p.add_argument("--filterfactor", type=probability, default=1.0, metavar="F", help="generator filter efficiency (default 1)")
    p.add_argument("--luminosity", required=True, type=positive_float, metavar="FB_INV", help="integrated luminosity in fb^-1")
    p.add_argument("--out", required=True, type=output_file, metavar="OUT_FILE", help="output ROOT file")
    p.set_defaults(func=run)


def sum_of_weights(text: str) -> float:
    """``--sumweights``: a number, or a json file with a numeric ``sum_of_weights``; else AnalysisError."""
    from analysis.errors import AnalysisError

    try:
        return float(text)
    except ValueError:
        pass
    from pathlib import Path

    path = Path(text)
    if path.suffix != ".json":
        raise AnalysisError(f"--sumweights {text!r}: neither a number nor a .json file")
    from fileset.loaders import load_json

    doc = load_json(path)
    value = doc.get("sum_of_weights") if isinstance(doc, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise AnalysisError(f"{path}: no numeric 'sum_of_weights' (needed by --sumweights)")
    return float(value)


def run(args: argparse.Namespace) -> int:
    """Run the scaling and print the factor."""
    from analysis.recast.scale import scale_histogram

    result = scale_histogram(
        args.input,
        args.hist,
        args.out,
        xsec_pb=args.xsec,
        sumweights=sum_of_weights(args.sumweights),
        kfactor=args.kfactor,
        filterfactor=args.filterfactor,
        luminosity_fb_inv=args.luminosity,
    )
    print(
        f"scaled {result.histogram} by {result.scale_factor:.8g} "
        f"({result.raw_integral:.6g} -> {result.scaled_integral:.6g} events) -> {result.output_file}"
    )
    return 0
