"""``ana reinterpret``: CLs μ-scan and 95 % CL limit for a new signal against preserved data and background."""

from __future__ import annotations

import argparse
import time

from analysis.cli.types import fraction, int_at_least, output_file, positive_float
from analysis.console import stage
from analysis.errors import AnalysisError

HIST_FLAGS = ("filedata", "histdata", "filebkg", "histbkg", "filesig", "histsig")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``reinterpret`` subcommand."""
    p = sub.add_parser(
        "reinterpret",
        help="CLs mu-scan and 95%% CL upper limit for a new signal (RECAST fitting step)",
        description="Either the six histogram flags (data, background, signal: ROOT file + key each) or "
        "--workspace ws.json [--patch patch.json]. Writes the Brazil-band plot (--outputfile), the spectrum "
        "plot (--plotfile; PNG and PDF with the same stem) and results.json (--json, default next to "
        "--outputfile).",
    )
    h = p.add_argument_group("histogram inputs")
    h.add_argument("--filedata", metavar="FILE", help="ROOT file with the observed data histogram")
    h.add_argument("--histdata", metavar="KEY", help="data histogram key")
    h.add_argument("--filebkg", metavar="FILE", help="ROOT file with the background histogram")
    h.add_argument("--histbkg", metavar="KEY", help="background histogram key")
    h.add_argument("--filesig", metavar="FILE", help="ROOT file with the (scaled) signal histogram")
    h.add_argument("--histsig", metavar="KEY", help="signal histogram key")
    h.add_argument("--bkg-uncertainty", type=fraction, default=0.1, metavar="FRAC",
                   help="relative background normalisation uncertainty (normsys; default 0.1, 0 = none)")
    h.add_argument("--bkg-mc-stat", choices=("staterror", "shapesys", "none"), default="staterror",
                   help="per-bin background MC-stat modifier from the histogram variances (default staterror)")
    w = p.add_argument_group("workspace inputs")
    w.add_argument("--workspace", metavar="WS_JSON", help="pyhf JSON workspace (e.g. from HEPData)")
    w.add_argument("--patch", metavar="PATCH_JSON", help="JSON patch or pyhf patchset with the new signal")
    w.add_argument("--patch-name", metavar="NAME", help="patch to apply when --patch is a patchset of several")
    w.add_argument("--measurement", metavar="NAME", help="workspace measurement (default: the first)")
    p.add_argument("--outputfile", type=output_file, default="limit.png", help="Brazil-band CLs scan plot (default limit.png)")
    p.add_argument("--plotfile", type=output_file, default="spectrum.png", help="data/background/signal spectrum plot")
    p.add_argument("--json", dest="json_path", type=output_file, metavar="RESULTS_JSON",
                   help="results file (default: results.json next to --outputfile)")
    p.add_argument("--poi-max", type=positive_float, metavar="X", help="upper end of the mu scan (default: automatic)")
    p.add_argument("--scan-points", type=int_at_least(3), default=15, metavar="N",
                   help="mu grid points of the CLs plot (default 15; the limits are root-found, not read off the grid)")
    p.add_argument("--xsec", type=positive_float, metavar="PB",
                   help="signal cross-section in pb the signal histogram corresponds to: also report sigma limits")
    p.add_argument("--fix", action="append", default=[], metavar="NAME=VALUE",
                   help="hold a parameter fixed at VALUE (repeatable)")
    p.add_argument("--prune", action="append", default=[], metavar="NAME",
                   help="remove a modifier (or one shapesys/staterror bin NAME[i]) before fitting (repeatable)")
    p.add_argument("--optimizer", choices=("scipy", "minuit"), default="scipy",
                   help="first optimiser of every fit (default scipy, pyhf's validated default); the other is "
                   "the fallback")
    p.add_argument("--keep-degenerate", action="store_true",
                   help="keep shapesys/staterror bins with relative uncertainty < 1e-5 (pruned by default)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Dispatch to the histogram or workspace API, print the limits and write report.html next to results.json."""
    t0 = time.perf_counter()
    from analysis.recast.reinterpret import reinterpret_histograms, reinterpret_workspace
    from analysis.stats.likelihood import enable_compilation_cache

    enable_compilation_cache()  # compiled likelihoods kept on disk, as numba kernels are

    given = [f for f in HIST_FLAGS if getattr(args, f) is not None]
    common = dict(poi_max=args.poi_max, xsec_pb=args.xsec, scan_points=args.scan_points,
                  outputfile=args.outputfile, plotfile=args.plotfile, json_path=args.json_path,
                  fix=args.fix, prune=args.prune, optimizer=args.optimizer,
                  degenerate_threshold=None if args.keep_degenerate else 1e-5)
    if args.workspace is not None:
        if given:
            raise AnalysisError(f"--workspace cannot be combined with histogram inputs (--{given[0]})")
        with stage("CLs limit from the workspace"):
            result = reinterpret_workspace(args.workspace, patch=args.patch, patch_name=args.patch_name,
                                           measurement=args.measurement, **common)
    else:
        if args.patch is not None:
            raise AnalysisError("--patch needs --workspace")
        missing = [f"--{f}" for f in HIST_FLAGS if getattr(args, f) is None]
        if missing:
            raise AnalysisError(f"missing {', '.join(missing)} (or use --workspace ws.json)")
        with stage("CLs limit scan"):
            result = reinterpret_histograms(
                args.filedata, args.histdata, args.filebkg, args.histbkg, args.filesig, args.histsig,
                bkg_uncertainty=args.bkg_uncertainty, mc_stat=args.bkg_mc_stat, **common,
            )
    import sys

    for line in result.warnings:
        print(line, file=sys.stderr)
    exp = result.mu_upper_limit_expected
    print(f"95% CL upper limit on {result.scan.poi_name}: observed {result.mu_upper_limit_observed:.4g}, "
          f"expected {exp[2]:.4g} [-1sigma {exp[1]:.4g}, +1sigma {exp[3]:.4g}; -2sigma {exp[0]:.4g}, "
          f"+2sigma {exp[4]:.4g}]")
    if result.signal_cross_section_pb is not None:
        print(f"cross-section limit: observed {result.signal_cross_section_pb * result.mu_upper_limit_observed:.4g} pb")
    for kind, paths in result.outputs.items():
        print(f"wrote {kind}: {', '.join(paths)}")
    if result.outputs.get("results"):
        from analysis.recast.report import write_reinterpret_report

        print(f"wrote report: {write_reinterpret_report(result.outputs['results'][0], time.perf_counter() - t0)}")
    return 0
