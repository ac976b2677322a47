"""One histogram semantics (ROOT's TH1) for every command: flow bins, Sumw2 or √N (R23 kind)."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import uproot

from analysis.cli import main
from analysis.histio import read_th1, write_th1

EDGES = np.array([1000.0, 1500.0, 2000.0, 2500.0, 3000.0])
FACTOR = 0.5 * 140 * 1000 * 1.2 * 0.8 / 20000  # = 3.36


def th1(values, variances=None, under=0.0, over=0.0):
    """A TH1D as ROOT writes it; variances None = no Sumw2 stored (fSumw2 empty, unit-weight fills)."""
    v = np.concatenate([[under], np.asarray(values, float), [over]])
    sumw2 = np.array([]) if variances is None else np.concatenate([[under], np.asarray(variances, float), [over]])
    return uproot.writing.identify.to_TH1x(
        fName=None, fTitle="", data=v, fEntries=float(v.sum()), fTsumw=float(np.sum(values)),
        fTsumw2=float(np.sum(values if variances is None else variances)), fTsumwx=0.0, fTsumwx2=0.0, fSumw2=sumw2,
        fXaxis=uproot.writing.identify.to_TAxis(fName="xaxis", fTitle="m_{jj} [GeV]", fNbins=len(values),
                                                 fXmin=float(EDGES[0]), fXmax=float(EDGES[-1]), fXbins=EDGES))


@pytest.fixture()
def raw(tmp_path):
    path = tmp_path / "raw_signal.root"
    with uproot.recreate(path) as f:
        f["h_weighted"] = th1([10.5, 20.25, 5.0, 0.5], [3.1, 6.2, 1.9, 0.4], under=0.75, over=3.0)
        f["h_counts"] = th1([10.0, 20.0, 5.0, 1.0])
        f["h_negative_bin"] = th1([12.0, 7.5, -0.8, 2.0], [4.0, 3.0, 1.5, 0.9])
    return path


def _scale(raw, name, out):
    return main(["scale", "--input", str(raw), "--hist", name, "--xsec", "0.5", "--sumweights", "20000",
                 "--kfactor", "1.2", "--filterfactor", "0.8", "--luminosity", "140", "--out", str(out)])


@pytest.mark.parametrize("name", ["h_weighted", "h_counts", "h_negative_bin"])
def test_scale_is_root_th1_scale(raw, tmp_path, name):
    """R23: values ×3.36 and variances ×3.36² including under/overflow; no Sumw2 → Poisson 11.2896·N."""
    out = tmp_path / f"scaled_{name}.root"
    assert _scale(raw, name, out) == 0
    r, s = uproot.open(raw)[name], uproot.open(out)[name]
    np.testing.assert_allclose(s.values(flow=True), FACTOR * r.values(flow=True), rtol=1e-14)
    np.testing.assert_allclose(s.variances(flow=True), FACTOR**2 * r.variances(flow=True), rtol=1e-14)
    if name == "h_weighted":
        np.testing.assert_allclose(s.values(flow=True)[[0, -1]], [2.52, 10.08], rtol=1e-14)
    if name == "h_counts":
        np.testing.assert_allclose(s.variances(), 11.2896 * np.array([10.0, 20.0, 5.0, 1.0]), rtol=1e-12)
        assert json.loads(out.with_suffix(".json").read_text())["sumw2_stored"] is False
    if name == "h_negative_bin":
        assert s.values()[2] == pytest.approx(-2.688)


def test_no_sumw2_is_said(raw, caplog):
    with caplog.at_level(logging.WARNING):
        h = read_th1(raw, "h_counts")
    assert not h.sumw2_stored and "no Sumw2" in h.assumption
    np.testing.assert_array_equal(h.variances, [10.0, 20.0, 5.0, 1.0])
    assert read_th1(raw, "h_weighted").assumption is None


def test_round_trip_keeps_flow_and_sumw2(raw, tmp_path):
    """Another reader/writer pair with the same fault class: write_th1 ∘ read_th1 is the identity, flow included."""
    h = read_th1(raw, "h_weighted")
    write_th1(tmp_path / "copy.root", "h", h)
    back = read_th1(tmp_path / "copy.root", "h")
    np.testing.assert_array_equal(back.values_flow(), h.values_flow())
    np.testing.assert_array_equal(back.variances_flow(), h.variances_flow())
    np.testing.assert_array_equal(back.edges, EDGES)


def test_negative_bins_refused_where_they_cannot_be_used(raw):
    from analysis.errors import AnalysisError

    with pytest.raises(AnalysisError, match=r"h_negative_bin: bin 2 \[2000, 2500\) has negative content -0.8"):
        read_th1(raw, "h_negative_bin")
    assert read_th1(raw, "h_negative_bin", allow_negative=True).values[2] == -0.8
