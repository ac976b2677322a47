"""``ana generate diphoton``: synthetic diphoton background simulation and data next to the real X→γγ signal."""

from __future__ import annotations

import argparse
import sys

from analysis.cli.types import (
    finite_float, non_negative_float, non_negative_int, output_dir, positive_float, positive_int,
)



def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``diphoton`` generator target."""
    parser = sub.add_parser("diphoton", help="tutorial-format background.csv, data.csv and search.yml (real or synthetic signal samples)",
                               description="Write synthetic background simulation and data in the X→γγ tutorial CSV format, "
                               "and search.yml for `ana search`. Signal simulation: the real tutorial samples with "
                               "--signal-dir (e.g. ../shared/data/xboson), otherwise a synthetic X→γγ signal at 500, 750 "
                               "and 1000 GeV written to OUT/signal/.")
    parser.add_argument("--out", type=output_dir, required=True, help="output directory")
    parser.add_argument("--seed", type=non_negative_int, default=1)
    parser.add_argument("--signal-mass", type=positive_float, default=None, help="injected X mass in GeV (with --signal-xsec)")
    parser.add_argument("--signal-xsec", type=non_negative_float, default=None, help="injected cross-section in pb (before filter efficiency)")
    parser.add_argument("--luminosity-fb", type=positive_float, default=0.05, help="integrated luminosity of the data in fb⁻¹")
    parser.add_argument("--background-events", type=positive_int, default=40000, help="rows of the background simulation")
    parser.add_argument("--tilt", type=finite_float, default=0.3, help="smooth data/simulation slope difference in m_γγ")
    parser.add_argument("--signal-dir", default=None, help="directory of the real signal_<mass>.csv files (default: write a synthetic signal to OUT/signal)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Generate the files and say where the config is."""
    from fileset.generate.diphoton import generate_diphoton

    res = generate_diphoton(args.out, seed=args.seed, signal_mass=args.signal_mass, signal_xsec_pb=args.signal_xsec,
                            luminosity_fb=args.luminosity_fb, n_background_sim=args.background_events,
                            tilt=args.tilt, signal_dir=args.signal_dir)
    if res["signal"] == "synthetic":
        print(f"no --signal-dir: using a synthetic X→γγ signal simulation (500/750/1000 GeV) written to {res['signal_dir']}; "
              "pass --signal-dir DIR for the real tutorial samples", file=sys.stderr)
    print(f"wrote {res['background']}, {res['data']} and {res['config']}")
    return 0
