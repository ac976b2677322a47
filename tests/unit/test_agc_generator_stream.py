"""Synthetic AGC generator: the event stream is pinned bit for bit.

Tests, demos and validation numbers (the demo's fitted ttbar_norm, seeds chosen for non-empty templates)
depend on the exact events ``fileset.generate.agc`` writes. A speed-up must keep them: these tests pin a
SHA-256 digest of every generated column and of every branch read back from written files (ntuple with
two 50k-entry baskets, NanoAOD), and the file's basket boundaries. The reference digests were computed
with the generator at commit 60fc896 (before the blockwise kinematics); see benchmarks/generator_speed.py.

The values pass through numpy's float32 sin/cos and float64 transcendental functions (SIMD kernels): a
numpy upgrade or another CPU family may change a last bit. If the physics did not change on purpose,
a mismatch here means the stream did; update the digests only together with the pinned physics numbers.
"""

from __future__ import annotations

import hashlib

import awkward as ak
import numpy as np
import pytest
import uproot

from fileset.errors import FilesetError
from fileset.generate.agc import (
    BASKET_ENTRIES,
    generate_agc,
    generate_arrays,
    write_file,
)
from fileset.generate.nanoaod import generate_nanoaod


def _digest(values) -> str:
    """First 16 hex digits of SHA-256 over the type, the counts (jagged) and the little-endian values."""
    array = ak.Array(values) if not isinstance(values, np.ndarray) else values
    h = hashlib.sha256()
    if isinstance(array, ak.Array) and array.ndim > 1:
        h.update(str(array.type.content).encode())
        h.update(np.asarray(ak.num(array), dtype="<i8").tobytes())
        array = ak.to_numpy(ak.flatten(array))
    else:
        array = np.asarray(array)
        h.update(str(array.dtype).encode())
    h.update(array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes())
    return h.hexdigest()[:16]


def _column_digests(cols: dict) -> dict[str, str]:
    out = {}
    for key, val in cols.items():
        if isinstance(val, dict):
            out.update({f"{key}.{k}": _digest(v) for k, v in val.items()})
        else:
            out[key] = _digest(val)
    return out


def _branch_digests(path, tree: str) -> dict[str, str]:
    with uproot.open(path) as f:
        return {branch.name: _digest(branch.array()) for branch in f[tree].values()}


def _mismatch(got: dict[str, str], want: dict[str, str]) -> list[str]:
    return sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))


# (process, variation, n, seed, index) → column digests; 20k events: several blocks of the kinematics
COLUMN_CASES = [("ttbar", "nominal", 20_000, 1, 0), ("ttbar", "PS_var", 3_000, 5, 1),
                ("single_top_s_chan", "nominal", 20_000, 3, 0), ("single_top_t_chan", "nominal", 20_000, 3, 1),
                ("single_top_tW", "nominal", 20_000, 3, 0), ("wjets", "nominal", 20_000, 2, 0)]
NTUPLE_CASE = ("ttbar", "nominal", 60_000, 7, 0)  # two baskets: 50k + 10k entries
NANOAOD_CASE = {"events_per_file": 3_000, "files_per_sample": 1, "seed": 4, "samples": [("ttbar", "scaleup")]}

COLUMNS: dict[tuple, dict[str, str]] = {
    ("ttbar", "nominal", 20000, 1, 0): {
        "electron.e": "4f65c44288e12a3a", "electron.eta": "d9cf3408e645e8c9", "electron.phi": "199ee72685b7ac8b",
        "electron.pt": "ec02c763ae1a2704", "event": "73b859f962b0ead2", "hf_class": "49eebbda182c3ee4",
        "jet.btag": "275c3904e6a0c6e0", "jet.e": "8b7b674f2364173d", "jet.eta": "d9e2141c54a3c6f6",
        "jet.hadronFlavour": "4d8d27462727a530", "jet.mass": "7423df89a6efccb8", "jet.phi": "dd48c0abcfd4838e",
        "jet.pt": "b058a2999e6c89b6", "met_phi": "d3bb407aedb0471b", "met_pt": "2f680c72e3844eae",
        "muon.e": "93e17b5ba502c147", "muon.eta": "82067271675ab1fa", "muon.phi": "a34971168f1b666f",
        "muon.pt": "ceab869535065696", "njet_counts": "564aeffed15c9696",
    },
    ("ttbar", "PS_var", 3000, 5, 1): {
        "electron.e": "784d06b70125c832", "electron.eta": "6cb6f14801e541c0", "electron.phi": "144988f08d549da0",
        "electron.pt": "0ac1d40555b0e000", "event": "74eca3cb16240647", "hf_class": "111ed8134d4a9648",
        "jet.btag": "6fb3a1129a2d83bc", "jet.e": "ed76db9e2b4ff8bc", "jet.eta": "03c4b1c0f8bcfe6f",
        "jet.hadronFlavour": "1cd4990be48264c0", "jet.mass": "464e3dc884f0ef3a", "jet.phi": "8403b645076d1914",
        "jet.pt": "9cfbb85009b6c21b", "met_phi": "35e2b6d414fa8d56", "met_pt": "94e99dd879e04f9a",
        "muon.e": "663e09eb3c8dadb5", "muon.eta": "b0b81830090db45b", "muon.phi": "632f9e5855cd8d4f",
        "muon.pt": "11eca400ecfb255a", "njet_counts": "a7c66bab8b31382d",
    },
    ("single_top_s_chan", "nominal", 20000, 3, 0): {
        "electron.e": "ebff3d349993cb87", "electron.eta": "26500786c640eccf", "electron.phi": "cabe9e01b9b7d79c",
        "electron.pt": "26502c7c6075a324", "event": "73b859f962b0ead2", "hf_class": "996b6fcf29d813b5",
        "jet.btag": "24b5fe3211f4aa90", "jet.e": "112f87fbd935c602", "jet.eta": "019be0951b42ee35",
        "jet.hadronFlavour": "609ecfd74d5b483f", "jet.mass": "25652c41acae0ddf", "jet.phi": "deb69cc8cca13e7d",
        "jet.pt": "837fbfd3fece889e", "met_phi": "5f0a9cf91537da39", "met_pt": "533b8fa3f8f8c373",
        "muon.e": "4704a477016158e0", "muon.eta": "80b78204498ad094", "muon.phi": "1fe336e1734a4856",
        "muon.pt": "0e72183518100fd8", "njet_counts": "52532f92355615a8",
    },
    ("single_top_t_chan", "nominal", 20000, 3, 1): {
        "electron.e": "ca785c96be6f9441", "electron.eta": "ad0a9af276a78e61", "electron.phi": "134c8344a9f9fc21",
        "electron.pt": "2d48d2aee4266689", "event": "68a7ec96688d1bb8", "hf_class": "996b6fcf29d813b5",
        "jet.btag": "fbdfb1ab3b062c6d", "jet.e": "1fc46a062215d1ae", "jet.eta": "f65bcde92000741f",
        "jet.hadronFlavour": "f2ecfecab6fd041b", "jet.mass": "4fdc3c4f988dd002", "jet.phi": "2d513ded955ac04a",
        "jet.pt": "b3e0b26534b9c10d", "met_phi": "578814805b9ca93f", "met_pt": "ff1ccd893e723801",
        "muon.e": "3fde72384630695f", "muon.eta": "c7fcba5f9e68f9db", "muon.phi": "8c8ed8f8148f1dc9",
        "muon.pt": "952ea57226479be7", "njet_counts": "1250baf89fe4c69e",
    },
    ("single_top_tW", "nominal", 20000, 3, 0): {
        "electron.e": "02787e59c3d36810", "electron.eta": "72ffbf40dae41887", "electron.phi": "c7ce1e87c619f317",
        "electron.pt": "219d4af0bdb0c804", "event": "73b859f962b0ead2", "hf_class": "996b6fcf29d813b5",
        "jet.btag": "5788717999242a06", "jet.e": "6d861dcc4202953a", "jet.eta": "17bd5df07b10e06c",
        "jet.hadronFlavour": "103816dad66d5f43", "jet.mass": "98bb78f4ae9a2d69", "jet.phi": "cc1087d409817cd0",
        "jet.pt": "69fb7e04b8432bf9", "met_phi": "ce07b355f4d87fdb", "met_pt": "08d594804f43e8e7",
        "muon.e": "ebd3d0cc62a85a3d", "muon.eta": "3de40dcd2bfcdb54", "muon.phi": "5bf823147fab645d",
        "muon.pt": "ba17b2b15a9f5334", "njet_counts": "633cfbcaef956b45",
    },
    ("wjets", "nominal", 20000, 2, 0): {
        "electron.e": "6cc0c8acc048da71", "electron.eta": "be469f1e094c31d4", "electron.phi": "9e1b8ac1b5b37f2b",
        "electron.pt": "d932f7fb71b71f5c", "event": "73b859f962b0ead2", "hf_class": "996b6fcf29d813b5",
        "jet.btag": "04ca22760890e013", "jet.e": "3e1d54756cf10597", "jet.eta": "f1f6ca1cd5e36d22",
        "jet.hadronFlavour": "d2721131da5f15a1", "jet.mass": "0a83b454f211ccd6", "jet.phi": "825ac7b1c0a33acc",
        "jet.pt": "5df1cb6ecfb3c970", "met_phi": "8c42477bd37768fa", "met_pt": "f8867fe68acaab5b",
        "muon.e": "c387995a9854dc2a", "muon.eta": "504128b639f2273c", "muon.phi": "ce8433c3d0b7f3d4",
        "muon.pt": "e7795455f071d8f6", "njet_counts": "e9b81ff78db26477",
    },
}
NTUPLE: dict[str, str] = {
    "electron_e": "0a6df544530a13ed", "electron_eta": "bc6d801c35bd173f", "electron_phi": "da9a568e38034c9e",
    "electron_pt": "0f2488a369162e48", "event": "e8265b2cb95d5826", "hf_class": "62a389f5d51bc3c1",
    "jet_btag": "794330934aadf8c2", "jet_e": "ff683949ef9aa174", "jet_eta": "e39e61cd2773b788",
    "jet_hadronFlavour": "45378e869cf753a2", "jet_mass": "e47d1fcc5851dd6f", "jet_phi": "9ddc69f0c83e64f4",
    "jet_pt": "b32d1fb656955d6b", "met_phi": "7bc03c920c85d934", "met_pt": "488efa0f169e8e3e",
    "muon_e": "6401edf3938f0ed0", "muon_eta": "6726eaf528e381f4", "muon_phi": "eb657c6a5e1f65d8",
    "muon_pt": "35d3758640117f93", "numberelectron": "6bf3cd67574c47ba", "numberjet": "d2a5ccbe8cc95aa9",
    "numbermuon": "bdd62fb199cb727a",
}
NANOAOD: dict[str, str] = {
    "Electron_charge": "415c8a5e02bdc97b", "Electron_cutBased": "597544ec328f316a",
    "Electron_eta": "c8b4468ca7fbc1ce", "Electron_mass": "2fa37e8041c82d31", "Electron_pdgId": "4a394fa26ed12351",
    "Electron_pfRelIso03_all": "7eeaf9a0f7ee3297", "Electron_phi": "971e49c20ebffe1e",
    "Electron_pt": "ca18203df8fee84f", "Electron_sip3d": "4e112037e123e7bf", "Jet_btagCSVV2": "f45a10acac666cde",
    "Jet_eta": "bcfe38eb4111b956", "Jet_hadronFlavour": "e91bd5b0caee6f38", "Jet_jetId": "0cf6ea2045bea950",
    "Jet_mass": "cf5e73d69779d88a", "Jet_phi": "be98a6fb81dd3294", "Jet_pt": "c80ac648fcb0e1cf",
    "MET_phi": "414e9ccbf1a676b6", "MET_pt": "5ef68ad4755197d0", "Muon_charge": "b40d9000b7d29326",
    "Muon_eta": "a9155df98e0821b2", "Muon_mass": "c460dd9db6d5175b", "Muon_pdgId": "a1dcc66f08bf1a82",
    "Muon_pfRelIso04_all": "c015d05eae389dc4", "Muon_phi": "202fa7761f15f896", "Muon_pt": "3737e9dac3228fd8",
    "Muon_sip3d": "4e0f3c1bd348ac47", "Muon_tightId": "b89ee8b862f4fae8", "event": "fb7e7b9c1fe7c3c6",
    "genWeight": "abfc7026364b0775", "luminosityBlock": "40470ceed8b8ae71", "nElectron": "12916eddace5e310",
    "nJet": "b7c2a92548f56ddd", "nMuon": "dfe836a2b097cdf1", "run": "40470ceed8b8ae71",
}


@pytest.mark.parametrize("key", COLUMN_CASES, ids=lambda k: "-".join(map(str, k)))
def test_generated_columns_are_pinned(key):
    got = _column_digests(generate_arrays(*key))
    assert not _mismatch(got, COLUMNS[key]), f"{key}: generated columns changed: {_mismatch(got, COLUMNS[key])}"


def test_written_ntuple_is_pinned(tmp_path):
    path = tmp_path / "ttbar.root"
    assert write_file(path, generate_arrays(*NTUPLE_CASE)) == NTUPLE_CASE[2]
    got = _branch_digests(path, "events")
    assert not _mismatch(got, NTUPLE), f"ntuple branches changed: {_mismatch(got, NTUPLE)}"
    with uproot.open(path) as f:
        for branch in f["events"].values():
            assert list(branch.entry_offsets) == [0, BASKET_ENTRIES, NTUPLE_CASE[2]], branch.name


def test_written_nanoaod_is_pinned(tmp_path):
    generate_nanoaod(tmp_path, **NANOAOD_CASE)
    (path,) = tmp_path.glob("*.root")
    got = _branch_digests(path, "Events")
    assert not _mismatch(got, NANOAOD), f"NanoAOD branches changed: {_mismatch(got, NANOAOD)}"


def _first_basket_algorithm(path, branch: str) -> bytes:
    """The two-byte ROOT compression tag (b"ZL", b"L4", ...) of the branch's first basket."""
    with uproot.open(path) as f:
        start = f["events"][branch].basket_key(0).data_cursor.index  # the payload after the TKey
    with open(path, "rb") as raw:
        raw.seek(start)
        return raw.read(2)


def test_lz4_baskets_hold_the_same_arrays(tmp_path):
    cols = generate_arrays(*NTUPLE_CASE)
    write_file(tmp_path / "zlib.root", cols)
    write_file(tmp_path / "lz4.root", cols, compression="lz4")
    assert _first_basket_algorithm(tmp_path / "zlib.root", "jet_hadronFlavour") == b"ZL"
    assert _first_basket_algorithm(tmp_path / "lz4.root", "jet_hadronFlavour") == b"L4"
    with uproot.open(tmp_path / "lz4.root") as f:  # LZ4 cannot shrink random float32: stored as they are
        assert f["events"]["jet_pt"].compressed_bytes == f["events"]["jet_pt"].uncompressed_bytes
    got = _branch_digests(tmp_path / "lz4.root", "events")
    assert not _mismatch(got, NTUPLE), f"LZ4 ntuple branches differ: {_mismatch(got, NTUPLE)}"


def test_unknown_compression_fails_before_writing(tmp_path, capsys):
    from analysis.cli import main

    with pytest.raises(FilesetError, match="unknown basket compression 'gzip' .*zlib, lz4"):
        generate_agc(tmp_path / "a", events_per_file=100, files_per_sample=1, compression="gzip")
    assert not any((tmp_path / "a").glob("*.root"))
    rc = main(["generate", "agc", "--out", str(tmp_path / "b"), "--events-per-file", "100", "--format", "nanoaod",
               "--compression", "lz4"])
    assert rc == 2 and "--compression lz4 is available for --format ntuple only" in capsys.readouterr().err
