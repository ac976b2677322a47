"""Numeric and path options are checked at the CLI boundary: one line, exit 2, before any work (R25 kind)."""

from __future__ import annotations

import argparse
import math

import pytest

from analysis.cli import main
from analysis.cli.types import count_or_all, fraction, positive_float, positive_int, probability
from fileset.errors import FilesetError
from fileset.normalisation import mc_normalisation

CASES = [
    # (argv, option named in the error)
    (["run", "ttbar", "--fileset", "{f}", "--out", "{o}", "--max-files", "0"], "--max-files"),
    (["run", "ttbar", "--fileset", "{f}", "--out", "{o}", "--max-files=-2"], "--max-files"),
    # executor options are checked together by RunOptions: still one line, exit 2, nothing written
    (["run", "ttbar", "--fileset", "{f}", "--out", "{o}", "--chunksize", "0", "--workers", "-1", "--retries", "-1"],
     "chunksize: must be a positive integer"),
    (["run", "ttbar", "--fileset", "{missing}", "--out", "{o}"], "missing.json"),
    (["scale", "--input", "{f}", "--hist", "h", "--xsec", "nan", "--sumweights", "1", "--luminosity", "1",
      "--out", "{o}"], "--xsec"),
    (["scale", "--input", "{f}", "--hist", "h", "--xsec", "1", "--sumweights", "0", "--luminosity", "1",
      "--out", "{o}"], "--sumweights"),
    (["scale", "--input", "{f}", "--hist", "h", "--xsec", "1", "--sumweights", "1", "--luminosity", "inf",
      "--out", "{o}"], "--luminosity"),
    (["scale", "--input", "{f}", "--hist", "h", "--xsec", "1", "--sumweights", "1", "--luminosity", "1",
      "--filterfactor", "1.5", "--out", "{o}"], "--filterfactor"),
    (["reinterpret", "--filedata", "{f}", "--poi-max", "-1"], "--poi-max"),
    (["reinterpret", "--filedata", "{f}", "--scan-points", "2"], "--scan-points"),
    (["reinterpret", "--filedata", "{f}", "--bkg-uncertainty", "1.2"], "--bkg-uncertainty"),
    (["reinterpret", "--filedata", "{missing}", "--histdata", "d", "--filebkg", "{f}", "--histbkg", "b",
      "--filesig", "{f}", "--histsig", "s"], "missing.json: ROOT file not found"),
    (["fit", "--histograms", "{f}", "--out", "{o}", "--maxiter", "0"], "--maxiter"),
    (["generate", "agc", "--out", "{o}", "--events-per-file", "0"], "--events-per-file"),
    (["generate", "agc", "--out", "{o}", "--seed", "-3"], "--seed"),
    (["generate", "recast", "--out", "{o}", "--bins", "0"], "--bins"),
    (["generate", "diphoton", "--out", "{o}", "--luminosity-fb", "0"], "--luminosity-fb"),
    (["demo", "--out", "{o}", "--files-per-sample", "0"], "--files-per-sample"),
    (["ftest", "--out", "{o}", "--bins", "-5"], "--bins"),
    (["ftest", "--out", "{o}", "--pvalue-threshold", "0"], "--pvalue-threshold"),
    (["ml", "train", "--features", "{f}", "--out", "{o}", "--test-fraction", "1"], "--test-fraction"),
    (["ml", "features", "--input", "{f}", "--out", "{o}", "--max-files", "0"], "--max-files"),
    (["run", "ttbar", "--fileset", "{f}", "--out", "{f}"], "--out"),  # output directory that is a file
    (["fit", "--histograms", "{f}", "--out", "{f}"], "--out"),
    (["scale", "--input", "{f}", "--hist", "h", "--xsec", "1", "--sumweights", "1", "--luminosity", "1",
      "--out", "{f}/x.root"], "--out"),
    (["reinterpret", "--filedata", "{f}", "--outputfile", "{f}/limit.png"], "--outputfile"),
    (["search", "--config", "{f}", "--out", "{f}"], "--out"),
    (["reweight", "apply", "--fileset", "{f}", "--correction", "{missing}", "--out", "{o}"],
     "missing.json: correction file not found"),
]


@pytest.mark.parametrize("argv,option", CASES, ids=[" ".join(c[0][:2]) + " " + c[1] for c in CASES])
def test_bad_option_is_one_line_exit_2(tmp_path, capsys, argv, option):
    f = tmp_path / "input.json"
    f.write_text("{}")
    args = [a.format(f=f, o=tmp_path / "out", missing=tmp_path / "missing.json") for a in argv]
    assert main(args) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and option in lines[0] and lines[0].startswith("ana "), lines
    assert not (tmp_path / "out").exists()


def test_type_helpers():
    assert count_or_all("-1") == -1 and count_or_all("3") == 3
    for bad in ("0", "-2", "2.5"):
        with pytest.raises(argparse.ArgumentTypeError):
            count_or_all(bad)
    assert positive_int("1") == 1 and positive_float("1e-300") == 1e-300
    for f, bad in ((positive_float, "0"), (positive_float, "-inf"), (fraction, "1"), (probability, "0"),
                   (positive_int, "0")):
        with pytest.raises(argparse.ArgumentTypeError):
            f(bad)


def test_mc_normalisation():
    """σ·L/N; an empty sample (N = 0) contributes zero; bad inputs are one-line FilesetErrors."""
    assert mc_normalisation(831.76, 3378.0, 1000) == pytest.approx(831.76 * 3378.0 / 1000)
    assert mc_normalisation(831.76, 3378.0, 0) == 0.0
    for bad in ((1.0, 1.0, -5), (math.nan, 1.0, 10), (1.0, math.inf, 10)):
        with pytest.raises(FilesetError, match="ttbar__nominal"):
            mc_normalisation(*bad, sample="ttbar__nominal")
