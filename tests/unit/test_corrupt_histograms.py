"""Damaged histogram files (truncated, compression header overwritten, compressed bytes overwritten) are user
errors naming the file and the histogram, for every histogram reader: read_th1 (ana scale / reinterpret),
read_histograms, histogram_digest and cabinetry's template collection (ana fit)."""

from __future__ import annotations

from pathlib import Path

import hist
import numpy as np
import pytest
import uproot

from analysis.errors import AnalysisError

NAMES = ("SR_data", "SR_sig", "SR_bkg")


def write_hists(path: Path) -> Path:
    """Three 200-bin weighted histograms (big enough that uproot stores them ZLIB-compressed)."""
    rng = np.random.default_rng(1)
    with uproot.recreate(path) as f:
        for i, name in enumerate(NAMES):
            h = hist.Hist(hist.axis.Regular(200, 0.0, 1.0), storage=hist.storage.Weight())
            h.fill(rng.random(5000), weight=1.0 + i + rng.random(5000))
            f[name] = h
    return path


def damage(path: Path, kind: str, key: str = "SR_sig") -> Path:
    """Damage the compressed record of ``key``: truncate inside it, overwrite its compression header, or garble it."""
    with uproot.open(path) as f:
        k = f.key(key)
        start, nbytes = k.data_cursor.index, k.data_compressed_bytes
        assert k.is_compressed
    data = bytearray(path.read_bytes())
    if kind == "truncated":
        data = data[: start + nbytes // 2]
    elif kind == "header":
        data[start:start + 2] = b"ZZ"
    else:
        data[start + 40:start + 240] = np.random.default_rng(3).integers(0, 256, 200, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path


KINDS = ("truncated", "header", "garbled")


@pytest.mark.parametrize("kind", KINDS)
def test_read_th1_names_file_and_histogram(tmp_path, kind):
    from analysis.histio import read_th1

    p = damage(write_hists(tmp_path / "h.root"), kind)
    assert read_th1(p, "SR_data").n_bins == 200  # undamaged histogram before the damage still reads
    with pytest.raises(AnalysisError, match=r"h\.root: cannot read histogram 'SR_sig': file is corrupt or truncated"):
        read_th1(p, "SR_sig")


@pytest.mark.parametrize("kind", KINDS)
def test_damage_is_named_whichever_inflater_a_run_selected(tmp_path, kind):
    """After a run in the same process (notebook) selected ISA-L for ZLIB baskets, a garbled basket raises ISA-L's
    error, which is not a ``zlib.error``: still one message naming file and histogram."""
    from analysis.histio import read_th1
    from schemas.reading import fast_inflate_available, use_inflate

    if not fast_inflate_available():
        pytest.skip("isal not installed: only zlib inflates")
    import uproot.compression

    before = uproot.compression._DecompressZLIB.library
    p = damage(write_hists(tmp_path / "h.root"), kind)
    try:
        use_inflate("isal")
        with pytest.raises(AnalysisError, match=r"h\.root: cannot read histogram 'SR_sig': file is corrupt or truncated"):
            read_th1(p, "SR_sig")
    finally:
        uproot.compression._DecompressZLIB.library = before


@pytest.mark.parametrize("kind", KINDS)
def test_read_histograms_and_digest(tmp_path, kind):
    from analysis.histio import histogram_digest, read_histograms

    p = damage(write_hists(tmp_path / "h.root"), kind)
    for reader in (read_histograms, histogram_digest):
        # truncation also loses SR_bkg (written after SR_sig; the digest reads in name order)
        with pytest.raises(AnalysisError, match=r"h\.root: cannot read histogram 'SR_(sig|bkg)': file is corrupt"):
            reader(p)


@pytest.mark.parametrize("kind", KINDS)
def test_cabinetry_collect_names_file_and_histogram(tmp_path, kind):
    """`ana fit`'s template collection (cabinetry.templates.collect) on a damaged file."""
    from analysis.agc.inference import build_workspace

    p = damage(write_hists(tmp_path / "h.root"), kind)
    config = {
        "General": {"Measurement": "m", "POI": "mu", "HistogramFolder": str(tmp_path / "templates"),
                    "InputPath": f"{p}:{{RegionPath}}_{{SamplePath}}"},
        "Regions": [{"Name": "SR", "RegionPath": "SR", "Variable": "x", "Binning": list(np.linspace(0, 1, 201))}],
        "Samples": [{"Name": "data", "SamplePath": "data", "Data": True}, {"Name": "sig", "SamplePath": "sig"},
                    {"Name": "bkg", "SamplePath": "bkg"}],
        "NormFactors": [{"Name": "mu", "Samples": "sig", "Nominal": 1, "Bounds": [0, 10]}],
    }
    with pytest.raises(AnalysisError, match=r"h\.root: cannot read histogram 'SR_sig': file is corrupt or truncated"):
        build_workspace(config)


@pytest.mark.parametrize("kind", KINDS)
def test_ana_scale_exit_2_one_line(tmp_path, capsys, kind):
    from analysis.cli import main

    p = damage(write_hists(tmp_path / "h.root"), kind)
    rc = main(["scale", "--input", str(p), "--hist", "SR_sig", "--xsec", "1", "--sumweights", "1",
               "--luminosity", "1", "--out", str(tmp_path / "out" / "s.root")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and "h.root: cannot read histogram 'SR_sig': file is corrupt or truncated" in err[0]
    assert not (tmp_path / "out" / "s.root").exists()


def test_truncated_directory_named(tmp_path):
    """Cut so short that the key list is gone: the file is named, no histogram claimed."""
    from analysis.histio import read_histograms

    p = write_hists(tmp_path / "h.root")
    p.write_bytes(p.read_bytes()[:300])
    with pytest.raises(AnalysisError, match=r"h\.root: .*(corrupt or truncated|cannot open)"):
        read_histograms(p)


@pytest.mark.parametrize("kind", KINDS)
def test_ftest_table_reader_names_file_and_histogram(tmp_path, kind):
    """`ana ftest` reading binned input from a ROOT file of histograms."""
    from analysis.resonance.ftest_inputs import _read_table

    p = damage(write_hists(tmp_path / "h.root"), kind)
    with pytest.raises(AnalysisError, match=r"h\.root: cannot read histogram 'SR_sig': file is corrupt or truncated"):
        _read_table(p, ["mgg"], None)
