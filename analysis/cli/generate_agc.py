"""``ana generate agc``: synthetic AGC ttbar ntuples (or NanoAOD-format files) and their index json."""

from __future__ import annotations

import argparse

from analysis.cli.types import non_negative_float, non_negative_int, output_dir, positive_int

def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``agc`` generator target."""
    parser = sub.add_parser("agc", help="synthetic CMS-open-data-style AGC inputs (all nine sample sets)")
    parser.add_argument("--out", type=output_dir, required=True, help="output directory")
    parser.add_argument("--events-per-file", type=positive_int, default=20_000)
    parser.add_argument("--files-per-sample", type=positive_int, default=2)
    parser.add_argument("--seed", type=non_negative_int, default=1)
    parser.add_argument("--ttbar-scale", type=non_negative_float, default=1.0, help="scale of ttbar in the pseudodata")
    parser.add_argument("--format", choices=["ntuple", "nanoaod"], default="ntuple",
                        help="AGC flat ntuples (tree events) or NanoAOD branch names (tree Events)")
    parser.add_argument("--inject-ht", default=None, metavar="EXPR",
                        help="also write pseudo-data whose tt+>=1b part is reweighted by f(HT, nJets)")
    parser.add_argument("--compression", choices=["zlib", "lz4"], default="zlib",
                        help="basket compression of the ntuples: zlib (as the real AGC files) or lz4 "
                             "(faster to write and read, ~15%% larger files; same events)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Generate files and print where the index is."""
    from analysis.errors import AnalysisError

    if args.events_per_file < 1 or args.files_per_sample < 1:
        raise AnalysisError("--events-per-file and --files-per-sample must be positive")
    if args.ttbar_scale < 0:
        raise AnalysisError("--ttbar-scale must be non-negative")
    kwargs = {}
    if args.inject_ht is not None:
        kwargs["inject_ht"] = args.inject_ht
    if args.compression != "zlib":
        if args.format == "nanoaod":
            raise AnalysisError("--compression lz4 is available for --format ntuple only")
        kwargs["compression"] = args.compression
    if args.format == "nanoaod":
        try:
            from fileset.generate.nanoaod import generate_nanoaod as generate
        except ImportError:
            raise AnalysisError("--format nanoaod is not available in this build") from None
    else:
        from fileset.generate.agc import generate_agc as generate
    try:
        path = generate(args.out, args.events_per_file, args.files_per_sample, args.seed, args.ttbar_scale, **kwargs)
    except TypeError as err:
        if "inject_ht" in str(err):
            raise AnalysisError("--inject-ht is not supported for this format in this build") from None
        raise
    print(f"wrote {path}")
    return 0
