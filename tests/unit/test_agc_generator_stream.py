"""Synthetic AGC generator: the event stream is pinned bit for bit.

Tests, demos and validation numbers (the demo's fitted ttbar_norm, seeds chosen for non-empty templates)
depend on the exact events ``fileset.generate.agc`` writes. A speed-up must keep them: these tests pin a
summary of every generated column and of every branch read back from written files (ntuple with two
50k-entry baskets, NanoAOD), and the file's basket boundaries: integer values and jagged counts bit for bit
(SHA-256), floating-point values through Σx and Σx² at 10⁻⁶ (see :func:`_summary`: their last bit depends on
numpy's SIMD transcendental functions, i.e. on the CPU family and numpy version, not on our code). The
integer digests are those of the generator at commit 60fc896 (before the blockwise kinematics), whose float
columns were bit-identical to today's. If the physics did not change on purpose, a mismatch here means the
stream did; update the references only together with the pinned physics numbers.
"""

from __future__ import annotations

import hashlib
import math

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


def _summary(values) -> dict:
    """What pins a column: SHA-256 (first 16 hex digits) of the type, the counts (jagged) and — for integer and
    boolean values — the values themselves; for floating-point values also their count, Σx and Σx² (math.fsum).

    Floating-point values are compared through their sums at 10⁻⁶ relative, not bit for bit: they pass through
    numpy's SIMD sin/cos/exp/log, whose last bit may differ on another CPU family or numpy version, while a change of
    the event stream (other draws, other order) moves the sums by ~1/√N ≈ 10⁻², ten thousand times the tolerance.
    """
    array = ak.Array(values) if not isinstance(values, np.ndarray) else values
    h = hashlib.sha256()
    if isinstance(array, ak.Array) and array.ndim > 1:
        h.update(str(array.type.content).encode())
        h.update(np.asarray(ak.num(array), dtype="<i8").tobytes())
        array = ak.to_numpy(ak.flatten(array))
    else:
        array = np.asarray(array)
        h.update(str(array.dtype).encode())
    if array.dtype.kind in "fc":
        x = array.astype(np.float64).ravel()
        return {"digest": h.hexdigest()[:16], "n": int(x.size), "sum": math.fsum(x), "sum2": math.fsum(x * x)}
    h.update(array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes())
    return {"digest": h.hexdigest()[:16]}


def _column_summaries(cols: dict) -> dict[str, dict]:
    out = {}
    for key, val in cols.items():
        if isinstance(val, dict):
            out.update({f"{key}.{k}": _summary(v) for k, v in val.items()})
        else:
            out[key] = _summary(val)
    return out


def _branch_summaries(path, tree: str) -> dict[str, dict]:
    with uproot.open(path) as f:
        return {branch.name: _summary(branch.array()) for branch in f[tree].values()}


def _same(got: dict, want: dict) -> bool:
    if got.keys() != want.keys() or got["digest"] != want["digest"]:
        return False
    if "sum" not in want:
        return True
    scale = 1e-6 * math.sqrt(want["sum2"])
    return (got["n"] == want["n"] and got["sum"] == pytest.approx(want["sum"], rel=1e-6, abs=scale)
            and got["sum2"] == pytest.approx(want["sum2"], rel=1e-6))


def _mismatch(got: dict[str, dict], want: dict[str, dict]) -> list[str]:
    return sorted(k for k in set(got) | set(want) if k not in got or k not in want or not _same(got[k], want[k]))


# (process, variation, n, seed, index) → column digests; 20k events: several blocks of the kinematics
COLUMN_CASES = [("ttbar", "nominal", 20_000, 1, 0), ("ttbar", "PS_var", 3_000, 5, 1),
                ("single_top_s_chan", "nominal", 20_000, 3, 0), ("single_top_t_chan", "nominal", 20_000, 3, 1),
                ("single_top_tW", "nominal", 20_000, 3, 0), ("wjets", "nominal", 20_000, 2, 0)]
NTUPLE_CASE = ("ttbar", "nominal", 60_000, 7, 0)  # two baskets: 50k + 10k entries
NANOAOD_CASE = {"events_per_file": 3_000, "files_per_sample": 1, "seed": 4, "samples": [("ttbar", "scaleup")]}

COLUMNS: dict[tuple, dict[str, dict]] = {
    ('ttbar', 'nominal', 20000, 1, 0): {
        "electron.e": {"digest": "5d34cad306e84969", "n": 5903, "sum": 422394.59037828445, "sum2": 70553242.77049482},
        "electron.eta": {"digest": "5d34cad306e84969", "n": 5903, "sum": 87.09147423438299, "sum2": 6024.272272115508},
        "electron.phi": {"digest": "5d34cad306e84969", "n": 5903, "sum": -288.9734282915015, "sum2": 19063.283545828086},
        "electron.pt": {"digest": "5d34cad306e84969", "n": 5903, "sum": 271547.3382744789, "sum2": 21893889.652968377},
        "event": {"digest": "73b859f962b0ead2"},
        "hf_class": {"digest": "49eebbda182c3ee4"},
        "jet.btag": {"digest": "347eec4d075a6362", "n": 111049, "sum": 38675.29147483128, "sum2": 24798.09093911741},
        "jet.e": {"digest": "347eec4d075a6362", "n": 111049, "sum": 11573241.119878769, "sum2": 2224623038.908429},
        "jet.eta": {"digest": "347eec4d075a6362", "n": 111049, "sum": 406.62956387366285, "sum2": 118094.08446214019},
        "jet.hadronFlavour": {"digest": "4d8d27462727a530"},
        "jet.mass": {"digest": "347eec4d075a6362", "n": 111049, "sum": 635496.8394162059, "sum2": 5530398.529656803},
        "jet.phi": {"digest": "347eec4d075a6362", "n": 111049, "sum": 260.76971784210764, "sum2": 363802.42626131733},
        "jet.pt": {"digest": "347eec4d075a6362", "n": 111049, "sum": 7056407.408924103, "sum2": 617343519.2541957},
        "met_phi": {"digest": "6a937d727b77c219", "n": 20000, "sum": 115.9658072794773, "sum2": 65458.35781273327},
        "met_pt": {"digest": "6a937d727b77c219", "n": 20000, "sum": 805899.0050317347, "sum2": 64810616.89443574},
        "muon.e": {"digest": "7c93504110a9732b", "n": 6022, "sum": 429645.45212078094, "sum2": 68253321.35014953},
        "muon.eta": {"digest": "7c93504110a9732b", "n": 6022, "sum": -19.539459372739657, "sum2": 6115.413190775885},
        "muon.phi": {"digest": "7c93504110a9732b", "n": 6022, "sum": 98.92215765368746, "sum2": 19588.574196475325},
        "muon.pt": {"digest": "7c93504110a9732b", "n": 6022, "sum": 279164.15236234665, "sum2": 22764252.004986417},
        "njet_counts": {"digest": "564aeffed15c9696"},
    },
    ('ttbar', 'PS_var', 3000, 5, 1): {
        "electron.e": {"digest": "7eab5bd7fc9cec00", "n": 848, "sum": 63332.226828575134, "sum2": 12374969.157175662},
        "electron.eta": {"digest": "7eab5bd7fc9cec00", "n": 848, "sum": 15.161106823245063, "sum2": 932.1216495926234},
        "electron.phi": {"digest": "7eab5bd7fc9cec00", "n": 848, "sum": -47.22218777250964, "sum2": 2789.095765088771},
        "electron.pt": {"digest": "7eab5bd7fc9cec00", "n": 848, "sum": 39748.078753471375, "sum2": 3332624.0919009736},
        "event": {"digest": "74eca3cb16240647"},
        "hf_class": {"digest": "111ed8134d4a9648"},
        "jet.btag": {"digest": "c9ad391bc6b55f68", "n": 16940, "sum": 5852.720497163879, "sum2": 3746.9643725131723},
        "jet.e": {"digest": "c9ad391bc6b55f68", "n": 16940, "sum": 1726126.3769626617, "sum2": 328810670.440047},
        "jet.eta": {"digest": "c9ad391bc6b55f68", "n": 16940, "sum": -33.31176159068127, "sum2": 18047.842906129117},
        "jet.hadronFlavour": {"digest": "1cd4990be48264c0"},
        "jet.mass": {"digest": "c9ad391bc6b55f68", "n": 16940, "sum": 94617.37115114927, "sum2": 805319.9640143773},
        "jet.phi": {"digest": "c9ad391bc6b55f68", "n": 16940, "sum": -10.808961690048818, "sum2": 55706.507413673986},
        "jet.pt": {"digest": "c9ad391bc6b55f68", "n": 16940, "sum": 1050111.4126739502, "sum2": 89663265.84517904},
        "met_phi": {"digest": "6a937d727b77c219", "n": 3000, "sum": 248.56100947591767, "sum2": 9719.210054252419},
        "met_pt": {"digest": "6a937d727b77c219", "n": 3000, "sum": 121638.3955770731, "sum2": 9589000.669628024},
        "muon.e": {"digest": "16cd9898fc337d54", "n": 934, "sum": 62349.65556907654, "sum2": 8003998.857896477},
        "muon.eta": {"digest": "16cd9898fc337d54", "n": 934, "sum": 4.973375543893781, "sum2": 956.4633729093943},
        "muon.phi": {"digest": "16cd9898fc337d54", "n": 934, "sum": -1.728741219267249, "sum2": 3043.249686301361},
        "muon.pt": {"digest": "16cd9898fc337d54", "n": 934, "sum": 41192.72161579132, "sum2": 3033760.595010063},
        "njet_counts": {"digest": "a7c66bab8b31382d"},
    },
    ('single_top_s_chan', 'nominal', 20000, 3, 0): {
        "electron.e": {"digest": "84c208ec5773ca1d", "n": 3701, "sum": 210622.43618631363, "sum2": 23414901.315428108},
        "electron.eta": {"digest": "84c208ec5773ca1d", "n": 3701, "sum": -22.20286367106928, "sum2": 4003.413867256948},
        "electron.phi": {"digest": "84c208ec5773ca1d", "n": 3701, "sum": -37.152414764044806, "sum2": 12021.44455411052},
        "electron.pt": {"digest": "84c208ec5773ca1d", "n": 3701, "sum": 138998.96245861053, "sum2": 9292910.251694031},
        "event": {"digest": "73b859f962b0ead2"},
        "hf_class": {"digest": "996b6fcf29d813b5"},
        "jet.btag": {"digest": "6d187109400088ab", "n": 81682, "sum": 32692.74888067407, "sum2": 22447.371010606294},
        "jet.e": {"digest": "6d187109400088ab", "n": 81682, "sum": 8515428.725942612, "sum2": 1613320333.590986},
        "jet.eta": {"digest": "6d187109400088ab", "n": 81682, "sum": 149.83491839907936, "sum2": 91560.43447826833},
        "jet.hadronFlavour": {"digest": "609ecfd74d5b483f"},
        "jet.mass": {"digest": "6d187109400088ab", "n": 81682, "sum": 453307.92007672787, "sum2": 3725254.194216902},
        "jet.phi": {"digest": "6d187109400088ab", "n": 81682, "sum": 413.2975823447123, "sum2": 268473.67879878124},
        "jet.pt": {"digest": "6d187109400088ab", "n": 81682, "sum": 5039954.819215775, "sum2": 416688820.27269584},
        "met_phi": {"digest": "6a937d727b77c219", "n": 20000, "sum": -26.096572574340826, "sum2": 65682.68064827869},
        "met_pt": {"digest": "6a937d727b77c219", "n": 20000, "sum": 541678.4294607267, "sum2": 29170550.94510244},
        "muon.e": {"digest": "8c9022928c2d4a13", "n": 3621, "sum": 207621.45022773743, "sum2": 25725670.65924375},
        "muon.eta": {"digest": "8c9022928c2d4a13", "n": 3621, "sum": -41.43993496411713, "sum2": 3811.3887803000853},
        "muon.phi": {"digest": "8c9022928c2d4a13", "n": 3621, "sum": -101.82485353542143, "sum2": 11885.743538153172},
        "muon.pt": {"digest": "8c9022928c2d4a13", "n": 3621, "sum": 136253.71189928055, "sum2": 9278454.4614289},
        "njet_counts": {"digest": "52532f92355615a8"},
    },
    ('single_top_t_chan', 'nominal', 20000, 3, 1): {
        "electron.e": {"digest": "65604e97bc45fe8d", "n": 3705, "sum": 209004.8335595131, "sum2": 25095515.40994764},
        "electron.eta": {"digest": "65604e97bc45fe8d", "n": 3705, "sum": 70.1295173872495, "sum2": 3994.5486289618507},
        "electron.phi": {"digest": "65604e97bc45fe8d", "n": 3705, "sum": 13.01351172477007, "sum2": 12167.58326659525},
        "electron.pt": {"digest": "65604e97bc45fe8d", "n": 3705, "sum": 137058.05098724365, "sum2": 9188142.494875949},
        "event": {"digest": "68a7ec96688d1bb8"},
        "hf_class": {"digest": "996b6fcf29d813b5"},
        "jet.btag": {"digest": "357760bf61e0d7b9", "n": 84147, "sum": 28077.084547558254, "sum2": 17582.734148762258},
        "jet.e": {"digest": "357760bf61e0d7b9", "n": 84147, "sum": 9100201.747823715, "sum2": 1833565907.6074653},
        "jet.eta": {"digest": "357760bf61e0d7b9", "n": 84147, "sum": 145.77224682840642, "sum2": 120026.20203457991},
        "jet.hadronFlavour": {"digest": "f2ecfecab6fd041b"},
        "jet.mass": {"digest": "357760bf61e0d7b9", "n": 84147, "sum": 429874.00448173285, "sum2": 3252168.801813492},
        "jet.phi": {"digest": "357760bf61e0d7b9", "n": 84147, "sum": -923.699221267263, "sum2": 278021.5146095065},
        "jet.pt": {"digest": "357760bf61e0d7b9", "n": 84147, "sum": 4781473.66157341, "sum2": 365940160.872584},
        "met_phi": {"digest": "6a937d727b77c219", "n": 20000, "sum": -629.6373661297548, "sum2": 65714.49990190592},
        "met_pt": {"digest": "6a937d727b77c219", "n": 20000, "sum": 557449.2969354689, "sum2": 31151234.35208812},
        "muon.e": {"digest": "4cfddb68a0883f28", "n": 3619, "sum": 203836.5514678955, "sum2": 25284287.705773626},
        "muon.eta": {"digest": "4cfddb68a0883f28", "n": 3619, "sum": -29.81264736130106, "sum2": 3907.9061124346445},
        "muon.phi": {"digest": "4cfddb68a0883f28", "n": 3619, "sum": -142.61378455359954, "sum2": 12048.650399961072},
        "muon.pt": {"digest": "4cfddb68a0883f28", "n": 3619, "sum": 131687.71639299393, "sum2": 8755864.339307887},
        "njet_counts": {"digest": "1250baf89fe4c69e"},
    },
    ('single_top_tW', 'nominal', 20000, 3, 0): {
        "electron.e": {"digest": "4937a14de2d6a677", "n": 5845, "sum": 415420.76861810684, "sum2": 66044065.044877715},
        "electron.eta": {"digest": "4937a14de2d6a677", "n": 5845, "sum": 75.96328272051323, "sum2": 6481.9058616595075},
        "electron.phi": {"digest": "4937a14de2d6a677", "n": 5845, "sum": -231.53035291773267, "sum2": 18942.76789783781},
        "electron.pt": {"digest": "4937a14de2d6a677", "n": 5845, "sum": 256462.89963388443, "sum2": 19057432.800183706},
        "event": {"digest": "73b859f962b0ead2"},
        "hf_class": {"digest": "996b6fcf29d813b5"},
        "jet.btag": {"digest": "aa065a3ce9e0c70c", "n": 85436, "sum": 25302.698359031747, "sum2": 14608.510760209603},
        "jet.e": {"digest": "aa065a3ce9e0c70c", "n": 85436, "sum": 8318324.311733246, "sum2": 1483117275.4985406},
        "jet.eta": {"digest": "aa065a3ce9e0c70c", "n": 85436, "sum": 169.1959882264382, "sum2": 89449.16062361978},
        "jet.hadronFlavour": {"digest": "103816dad66d5f43"},
        "jet.mass": {"digest": "aa065a3ce9e0c70c", "n": 85436, "sum": 455384.5365524888, "sum2": 3595360.2302035177},
        "jet.phi": {"digest": "aa065a3ce9e0c70c", "n": 85436, "sum": 152.24382491190408, "sum2": 280898.3101299603},
        "jet.pt": {"digest": "aa065a3ce9e0c70c", "n": 85436, "sum": 5058708.203914642, "sum2": 402870903.5219176},
        "met_phi": {"digest": "6a937d727b77c219", "n": 20000, "sum": 127.04347542996766, "sum2": 65243.490883811784},
        "met_pt": {"digest": "6a937d727b77c219", "n": 20000, "sum": 768683.0702772364, "sum2": 56592080.509306036},
        "muon.e": {"digest": "75244692ef1bc569", "n": 5874, "sum": 399722.4712305069, "sum2": 58141369.39405899},
        "muon.eta": {"digest": "75244692ef1bc569", "n": 5874, "sum": 63.83329814274475, "sum2": 6190.730548411468},
        "muon.phi": {"digest": "75244692ef1bc569", "n": 5874, "sum": 19.420121055678464, "sum2": 19493.014378761458},
        "muon.pt": {"digest": "75244692ef1bc569", "n": 5874, "sum": 255809.21846342087, "sum2": 18857169.192470323},
        "njet_counts": {"digest": "633cfbcaef956b45"},
    },
    ('wjets', 'nominal', 20000, 2, 0): {
        "electron.e": {"digest": "a4ac07b9fa7c411e", "n": 7212, "sum": 441001.04889678955, "sum2": 56088273.80968101},
        "electron.eta": {"digest": "a4ac07b9fa7c411e", "n": 7212, "sum": -7.114193202287424, "sum2": 8505.599329399507},
        "electron.phi": {"digest": "a4ac07b9fa7c411e", "n": 7212, "sum": 131.07640022116902, "sum2": 24021.27293890841},
        "electron.pt": {"digest": "a4ac07b9fa7c411e", "n": 7212, "sum": 258798.9239668846, "sum2": 13801326.1554032},
        "event": {"digest": "73b859f962b0ead2"},
        "hf_class": {"digest": "996b6fcf29d813b5"},
        "jet.btag": {"digest": "5b1014e8f83eac47", "n": 19568, "sum": 3751.6223871769125, "sum2": 1303.9666501031313},
        "jet.e": {"digest": "5b1014e8f83eac47", "n": 19568, "sum": 1682735.2658939362, "sum2": 262103977.02959347},
        "jet.eta": {"digest": "5b1014e8f83eac47", "n": 19568, "sum": -102.84023133058508, "sum2": 27802.063588724523},
        "jet.hadronFlavour": {"digest": "d2721131da5f15a1"},
        "jet.mass": {"digest": "5b1014e8f83eac47", "n": 19568, "sum": 77739.670409441, "sum2": 450907.07083900546},
        "jet.phi": {"digest": "5b1014e8f83eac47", "n": 19568, "sum": 171.48983288300224, "sum2": 64701.98875209065},
        "jet.pt": {"digest": "5b1014e8f83eac47", "n": 19568, "sum": 864851.6577205658, "sum2": 50516254.71943083},
        "met_phi": {"digest": "6a937d727b77c219", "n": 20000, "sum": -349.42189578406396, "sum2": 65116.62559006908},
        "met_pt": {"digest": "6a937d727b77c219", "n": 20000, "sum": 875800.7507355213, "sum2": 53126076.43603686},
        "muon.e": {"digest": "2486a97d083be96d", "n": 7050, "sum": 423798.23865413666, "sum2": 52484741.079554886},
        "muon.eta": {"digest": "2486a97d083be96d", "n": 7050, "sum": 38.245079351603636, "sum2": 8066.261281642611},
        "muon.phi": {"digest": "2486a97d083be96d", "n": 7050, "sum": 204.22199024377005, "sum2": 23367.15635870298},
        "muon.pt": {"digest": "2486a97d083be96d", "n": 7050, "sum": 251648.25698900223, "sum2": 13393537.734660147},
        "njet_counts": {"digest": "e9b81ff78db26477"},
    },
}
NTUPLE: dict[str, dict] = {
    "electron_e": {"digest": "ff7558c4b9599f85", "n": 17898, "sum": 1278041.324915886, "sum2": 200625178.23996454},
    "electron_eta": {"digest": "ff7558c4b9599f85", "n": 17898, "sum": -161.80018684621245, "sum2": 18844.857666685708},
    "electron_phi": {"digest": "ff7558c4b9599f85", "n": 17898, "sum": -106.68688358546933, "sum2": 58496.84458259088},
    "electron_pt": {"digest": "ff7558c4b9599f85", "n": 17898, "sum": 822550.0238018036, "sum2": 64974895.72357168},
    "event": {"digest": "e8265b2cb95d5826"},
    "hf_class": {"digest": "62a389f5d51bc3c1"},
    "jet_btag": {"digest": "14f279970f22aaa4", "n": 332397, "sum": 115516.85109857017, "sum2": 74034.43083879769},
    "jet_e": {"digest": "14f279970f22aaa4", "n": 332397, "sum": 34777811.468896866, "sum2": 6689872898.2038145},
    "jet_eta": {"digest": "14f279970f22aaa4", "n": 332397, "sum": 660.7211082969777, "sum2": 354452.65710639674},
    "jet_hadronFlavour": {"digest": "45378e869cf753a2"},
    "jet_mass": {"digest": "14f279970f22aaa4", "n": 332397, "sum": 1905806.555674255, "sum2": 16573690.333666582},
    "jet_phi": {"digest": "14f279970f22aaa4", "n": 332397, "sum": 965.4497043160832, "sum2": 1093747.1334003538},
    "jet_pt": {"digest": "14f279970f22aaa4", "n": 332397, "sum": 21175483.124713898, "sum2": 1857015435.370797},
    "met_phi": {"digest": "6a937d727b77c219", "n": 60000, "sum": -196.43311371070104, "sum2": 196953.6756640286},
    "met_pt": {"digest": "6a937d727b77c219", "n": 60000, "sum": 2420738.0142464787, "sum2": 195021310.69084612},
    "muon_e": {"digest": "5693f8feb4facbd5", "n": 17839, "sum": 1285108.832086563, "sum2": 209691422.9537849},
    "muon_eta": {"digest": "5693f8feb4facbd5", "n": 17839, "sum": -106.55835930620196, "sum2": 18729.853626957007},
    "muon_phi": {"digest": "5693f8feb4facbd5", "n": 17839, "sum": -162.36903540376625, "sum2": 58660.87110909892},
    "muon_pt": {"digest": "5693f8feb4facbd5", "n": 17839, "sum": 821851.7945976257, "sum2": 65472594.14518805},
    "numberelectron": {"digest": "6bf3cd67574c47ba"},
    "numberjet": {"digest": "d2a5ccbe8cc95aa9"},
    "numbermuon": {"digest": "bdd62fb199cb727a"},
}
NANOAOD: dict[str, dict] = {
    "Electron_charge": {"digest": "415c8a5e02bdc97b"},
    "Electron_cutBased": {"digest": "597544ec328f316a"},
    "Electron_eta": {"digest": "62ba980aa852b2f9", "n": 855, "sum": 83.38260569021804, "sum2": 883.1014136818864},
    "Electron_mass": {"digest": "62ba980aa852b2f9", "n": 855, "sum": 0.4369049923843704, "sum2": 0.00022325844721682664},
    "Electron_pdgId": {"digest": "4a394fa26ed12351"},
    "Electron_pfRelIso03_all": {"digest": "62ba980aa852b2f9", "n": 855, "sum": 105.66720707966306, "sum2": 56.62354035726241},
    "Electron_phi": {"digest": "62ba980aa852b2f9", "n": 855, "sum": 27.949398899334483, "sum2": 2735.6021280858363},
    "Electron_pt": {"digest": "62ba980aa852b2f9", "n": 855, "sum": 37440.07417678833, "sum2": 2862634.643087319},
    "Electron_sip3d": {"digest": "62ba980aa852b2f9", "n": 855, "sum": 1822.9303204356693, "sum2": 9858.184076381573},
    "Jet_btagCSVV2": {"digest": "b3095255f8ddd52d", "n": 17590, "sum": 5986.7716982975035, "sum2": 3796.343974828181},
    "Jet_eta": {"digest": "b3095255f8ddd52d", "n": 17590, "sum": -111.36521271225865, "sum2": 18698.962075669573},
    "Jet_hadronFlavour": {"digest": "e91bd5b0caee6f38"},
    "Jet_jetId": {"digest": "0cf6ea2045bea950"},
    "Jet_mass": {"digest": "b3095255f8ddd52d", "n": 17590, "sum": 97944.03997260332, "sum2": 821570.166478544},
    "Jet_phi": {"digest": "b3095255f8ddd52d", "n": 17590, "sum": 365.7795527870185, "sum2": 57904.59630114869},
    "Jet_pt": {"digest": "b3095255f8ddd52d", "n": 17590, "sum": 1088419.290046692, "sum2": 91599174.74856478},
    "MET_phi": {"digest": "6a937d727b77c219", "n": 3000, "sum": 75.66521362803178, "sum2": 9989.71896865079},
    "MET_pt": {"digest": "6a937d727b77c219", "n": 3000, "sum": 118284.00749132037, "sum2": 8969864.512764739},
    "Muon_charge": {"digest": "b40d9000b7d29326"},
    "Muon_eta": {"digest": "3a00dd23a9be01a5", "n": 864, "sum": 36.22665918665007, "sum2": 856.3222883845474},
    "Muon_mass": {"digest": "3a00dd23a9be01a5", "n": 864, "sum": 91.29023909568787, "sum2": 9.64572656730076},
    "Muon_pdgId": {"digest": "a1dcc66f08bf1a82"},
    "Muon_pfRelIso04_all": {"digest": "3a00dd23a9be01a5", "n": 864, "sum": 101.3149455671919, "sum2": 44.52885581107475},
    "Muon_phi": {"digest": "3a00dd23a9be01a5", "n": 864, "sum": 46.28587332041934, "sum2": 2774.592695596356},
    "Muon_pt": {"digest": "3a00dd23a9be01a5", "n": 864, "sum": 37802.66273403168, "sum2": 2850434.6617554855},
    "Muon_sip3d": {"digest": "3a00dd23a9be01a5", "n": 864, "sum": 1876.5470121819526, "sum2": 11262.518755418443},
    "Muon_tightId": {"digest": "b89ee8b862f4fae8"},
    "event": {"digest": "fb7e7b9c1fe7c3c6"},
    "genWeight": {"digest": "6a937d727b77c219", "n": 3000, "sum": 3000.0, "sum2": 3000.0},
    "luminosityBlock": {"digest": "40470ceed8b8ae71"},
    "nElectron": {"digest": "12916eddace5e310"},
    "nJet": {"digest": "b7c2a92548f56ddd"},
    "nMuon": {"digest": "dfe836a2b097cdf1"},
    "run": {"digest": "40470ceed8b8ae71"},
}


@pytest.mark.parametrize("key", COLUMN_CASES, ids=lambda k: "-".join(map(str, k)))
def test_generated_columns_are_pinned(key):
    got = _column_summaries(generate_arrays(*key))
    assert not _mismatch(got, COLUMNS[key]), f"{key}: generated columns changed: {_mismatch(got, COLUMNS[key])}"


def test_written_ntuple_is_pinned(tmp_path):
    path = tmp_path / "ttbar.root"
    assert write_file(path, generate_arrays(*NTUPLE_CASE)) == NTUPLE_CASE[2]
    got = _branch_summaries(path, "events")
    assert not _mismatch(got, NTUPLE), f"ntuple branches changed: {_mismatch(got, NTUPLE)}"
    with uproot.open(path) as f:
        for branch in f["events"].values():
            assert list(branch.entry_offsets) == [0, BASKET_ENTRIES, NTUPLE_CASE[2]], branch.name


def test_written_nanoaod_is_pinned(tmp_path):
    generate_nanoaod(tmp_path, **NANOAOD_CASE)
    (path,) = tmp_path.glob("*.root")
    got = _branch_summaries(path, "Events")
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
    got = _branch_summaries(tmp_path / "lz4.root", "events")
    assert not _mismatch(got, NTUPLE), f"LZ4 ntuple branches differ: {_mismatch(got, NTUPLE)}"


def test_unknown_compression_fails_before_writing(tmp_path, capsys):
    from analysis.cli import main

    with pytest.raises(FilesetError, match="unknown basket compression 'gzip' .*zlib, lz4"):
        generate_agc(tmp_path / "a", events_per_file=100, files_per_sample=1, compression="gzip")
    assert not any((tmp_path / "a").glob("*.root"))
    rc = main(["generate", "agc", "--out", str(tmp_path / "b"), "--events-per-file", "100", "--format", "nanoaod",
               "--compression", "lz4"])
    assert rc == 2 and "--compression lz4 is available for --format ntuple only" in capsys.readouterr().err
