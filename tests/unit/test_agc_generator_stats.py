"""Synthetic AGC generator: the key distributions match the generator before the fast layout.

The reference numbers come from ``generate_arrays(process, "nominal", 200_000, seed=5)`` of the generator
at commit 8800847 (slot-based, all draws made for all slots); the current generator draws only the objects
that exist, so its events differ but its distributions must not. Every comparison is a 5σ test with σ
from the statistics of both samples: means with the sample standard deviation, fractions binomially and
quantiles through the empirical CDF at the reference quantile (F(x_q) = q, σ² = 2 q(1 − q)/n, with n the
number of events for jets — conservative for correlated jets of one event — and of objects for leptons).
Also: exactness of the fast samplers (Box–Muller normals, one-uniform b-tag scores, truncated Poisson
counts) against scipy, the object-level invariants, and reproducibility (same seed → same bytes).
"""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
from scipy import stats

from fileset.generate.agc import (
    B_TAG_PROB,
    SAMPLES,
    _btag,
    _discrete,
    _standard_normal,
    _truncated_poisson_cdf,
    generate_arrays,
)

N, SEED, Z = 200_000, 5, 5.0
QUANTILES = [0.1, 0.25, 0.5, 0.75, 0.9]
REFERENCE = {  # generator at commit 8800847, generate_arrays(p, "nominal", 200_000, seed=5)
    "ttbar": {
        "njet_mean": 5.5401, "frac_b": 0.34712, "frac_c": 0.12566,
        "btag_eff": {0: 0.02003, 4: 0.14967, 5: 0.6993},
        "jet_pt_q": [26.397, 35.923, 53.785, 79.21, 112.479], "met_q": [7.921, 13.756, 25.194, 55.547, 92.712],
        "electron_per_event": 0.29769, "electron_pt_q": [8.432, 16.589, 35.624, 62.983, 95.066],
        "muon_per_event": 0.29782, "muon_pt_q": [8.634, 16.995, 36.231, 63.728, 95.687],
        "hf_class": {0: 0.83266, 1: 0.10726, 2: 0.04301, 3: 0.01707},
    },
    "single_top_t_chan": {
        "njet_mean": 4.2189, "frac_b": 0.32025, "frac_c": 0.08353,
        "btag_eff": {0: 0.01981, 4: 0.15107, 5: 0.70068},
        "jet_pt_q": [25.292, 32.568, 48.004, 71.027, 99.54], "met_q": [6.589, 11.146, 18.251, 31.705, 63.214],
        "electron_per_event": 0.1824, "electron_pt_q": [7.104, 11.683, 26.757, 52.878, 80.351],
        "muon_per_event": 0.18266, "muon_pt_q": [7.165, 11.922, 26.936, 53.116, 81.259],
    },
    "wjets": {
        "njet_mean": 0.98035, "frac_b": 0.01713, "frac_c": 0.05256,
        "btag_eff": {0: 0.01983, 4: 0.14682, 5: 0.71033},
        "jet_pt_q": [22.776, 26.727, 36.202, 53.087, 75.939], "met_q": [16.727, 26.505, 39.1, 54.13, 75.0],
        "electron_per_event": 0.35728, "electron_pt_q": [9.466, 19.16, 32.793, 43.584, 62.975],
        "muon_per_event": 0.35942, "muon_pt_q": [9.527, 19.25, 32.974, 43.75, 63.544],
    },
}


def _flat(a: ak.Array) -> np.ndarray:
    return ak.to_numpy(ak.flatten(a))


@pytest.fixture(scope="module")
def generated() -> dict[str, dict]:
    return {p: generate_arrays(p, "nominal", N, SEED) for p in REFERENCE}


def _close_fraction(k: int, n: int, ref: float, what: str) -> None:
    p = k / n
    sigma = np.sqrt(max(ref * (1 - ref), 1e-12) * 2.0 / n)
    assert abs(p - ref) < Z * sigma, f"{what}: {p:.5f} vs reference {ref:.5f} (σ = {sigma:.5f})"


def _close_quantiles(x: np.ndarray, ref_q: list[float], n_eff: int, what: str) -> None:
    for q, xq in zip(QUANTILES, ref_q):
        cdf = float(np.mean(x <= np.float32(xq)))
        sigma = np.sqrt(2.0 * q * (1 - q) / n_eff)
        assert abs(cdf - q) < Z * sigma, f"{what}: F({xq}) = {cdf:.4f}, expected {q} (σ = {sigma:.4f})"


@pytest.mark.parametrize("process", list(REFERENCE))
def test_jet_multiplicity_flavour_and_btag_match_reference(generated, process):
    ref, jet = REFERENCE[process], generated[process]["jet"]
    njet = ak.to_numpy(ak.num(jet["pt"]))
    sigma = np.sqrt(2.0) * njet.std() / np.sqrt(N)
    assert abs(njet.mean() - ref["njet_mean"]) < Z * sigma, (njet.mean(), ref["njet_mean"])
    flav, btag = _flat(jet["hadronFlavour"]), _flat(jet["btag"])
    _close_fraction(int((flav == 5).sum()), flav.size, ref["frac_b"], f"{process} b-jet fraction")
    _close_fraction(int((flav == 4).sum()), flav.size, ref["frac_c"], f"{process} c-jet fraction")
    for f, eff in ref["btag_eff"].items():
        sel = flav == f
        _close_fraction(int((btag[sel] > 0.5).sum()), int(sel.sum()), eff, f"{process} b-tag efficiency, flavour {f}")
        _close_fraction(int((btag[sel] > 0.5).sum()), int(sel.sum()), B_TAG_PROB[f], f"{process} b-tag model {f}")
    _close_quantiles(_flat(jet["pt"]), ref["jet_pt_q"], N, f"{process} jet pT")


@pytest.mark.parametrize("process", list(REFERENCE))
def test_lepton_spectra_and_met_match_reference(generated, process):
    ref, cols = REFERENCE[process], generated[process]
    for lep in ("electron", "muon"):
        counts = ak.to_numpy(ak.num(cols[lep]["pt"]))
        sigma = np.sqrt(2.0) * counts.std() / np.sqrt(N)
        assert abs(counts.mean() - ref[f"{lep}_per_event"]) < Z * sigma, (lep, counts.mean())
        pt = _flat(cols[lep]["pt"])
        _close_quantiles(pt, ref[f"{lep}_pt_q"], pt.size, f"{process} {lep} pT")
    _close_quantiles(np.asarray(cols["met_pt"]), ref["met_q"], N, f"{process} MET")


def test_heavy_flavour_classes_match_reference(generated):
    hf = generated["ttbar"]["hf_class"]
    for k, frac in REFERENCE["ttbar"]["hf_class"].items():
        _close_fraction(int((hf == k).sum()), N, frac, f"hf_class {k}")
    assert np.all(generated["wjets"]["hf_class"] == -1)


@pytest.mark.parametrize("process", list(REFERENCE))
def test_object_invariants(generated, process):
    cols = generated[process]
    jet = cols["jet"]
    pt = jet["pt"]
    assert ak.all(pt[:, 1:] <= pt[:, :-1]), "jets sorted by descending pT"
    assert ak.min(pt) > 20.0 and ak.max(abs(jet["eta"])) < 2.5
    assert 0.0 <= ak.min(jet["btag"]) and ak.max(jet["btag"]) <= 1.0
    ratio = _flat(jet["mass"]) / _flat(pt)
    assert ratio.min() >= 0.04 - 1e-6 and ratio.max() <= 0.14 + 1e-6
    e, eta = _flat(jet["e"]).astype(np.float64), _flat(jet["eta"]).astype(np.float64)
    expected = np.sqrt((_flat(pt) * np.cosh(eta)) ** 2 + _flat(jet["mass"]).astype(np.float64) ** 2)
    np.testing.assert_allclose(e, expected, rtol=1e-5)
    assert set(np.unique(_flat(jet["hadronFlavour"]))) <= {0, 4, 5}
    for lep in ("electron", "muon"):
        lpt = cols[lep]["pt"]
        assert ak.all(lpt[:, 1:] <= lpt[:, :-1]) and ak.min(lpt) > 5.0 and ak.max(abs(cols[lep]["eta"])) < 2.4
    phi = np.concatenate([_flat(jet["phi"]), np.asarray(cols["met_phi"])])
    assert phi.min() >= -np.pi - 1e-6 and phi.max() <= np.pi + 1e-6
    assert np.array_equal(cols["event"], np.arange(1, N + 1, dtype=np.uint64))


def _buffers(cols: dict) -> list[bytes]:
    out = []
    for key in sorted(cols):
        val = cols[key]
        if isinstance(val, dict):
            for name in sorted(val):
                out += [ak.to_numpy(ak.num(val[name])).tobytes(), _flat(val[name]).tobytes()]
        else:
            out.append(np.asarray(val).tobytes())
    return out


@pytest.mark.parametrize("process,variation", SAMPLES)
def test_same_seed_same_bytes_other_seed_or_file_differs(process, variation):
    a = _buffers(generate_arrays(process, variation, 3000, seed=9, index=1))
    assert a == _buffers(generate_arrays(process, variation, 3000, seed=9, index=1))
    assert a != _buffers(generate_arrays(process, variation, 3000, seed=10, index=1))
    assert a != _buffers(generate_arrays(process, variation, 3000, seed=9, index=2))


def test_box_muller_normals_are_standard_normal():
    x = _standard_normal(1_000_001, np.random.default_rng(1))
    assert x.shape == (1_000_001,) and x.dtype == np.float64
    assert stats.kstest(x, "norm").pvalue > 1e-3
    assert abs(x.mean()) < 5e-3 and abs(x.std() - 1) < 5e-3 and abs(stats.kurtosis(x)) < 0.03
    assert np.all(np.isfinite(x))


def test_one_uniform_btag_has_beta_shapes():
    rng = np.random.default_rng(2)
    flav = np.repeat(np.array([0, 4, 5], np.int32), 200_000)
    score = _btag(flav, rng).astype(np.float64)
    for f in (0, 4, 5):
        s = score[flav == f]
        _close_fraction(int((s > 0.5).sum()), s.size, B_TAG_PROB[f], f"tag rate {f}")
        hi, lo = s[s > 0.5], s[s <= 0.5]
        assert stats.kstest((hi - 0.5) / 0.5, stats.beta(2, 1).cdf).pvalue > 1e-3, f
        assert stats.kstest(lo / 0.5, stats.beta(1, 2).cdf).pvalue > 1e-3, f


@pytest.mark.parametrize("mean,k_max", [(1.6, 6), (0.15, 2), (1.95, 6)])
def test_truncated_poisson_counts(mean, k_max):
    n = 400_000
    counts = np.bincount(_discrete(_truncated_poisson_cdf(mean, k_max), n, np.random.default_rng(3)),
                         minlength=k_max + 1)
    expected = np.append(stats.poisson.pmf(np.arange(k_max), mean), stats.poisson.sf(k_max - 1, mean)) * n
    assert counts.size == k_max + 1
    keep = expected > 5
    chi2 = (((counts - expected) ** 2 / expected)[keep]).sum()
    assert stats.chi2.sf(chi2, keep.sum() - 1) > 1e-3, (counts, expected)
