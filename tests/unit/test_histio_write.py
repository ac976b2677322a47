"""``save_histograms`` writes each AGC-keyed histogram from one view of the whole histogram: the ROOT objects must be
byte for byte those uproot writes from the ``hist`` objects of ``to_keyed`` (the previous, slower path)."""

from __future__ import annotations

import hist
import numpy as np
import pytest
import uproot

from analysis.histio import save_histograms, to_keyed


def _run_hist(seed: int) -> hist.Hist:
    """A ``run ttbar``-shaped Weight histogram: observable × region × process × variation (growing categories)."""
    rng = np.random.default_rng(seed)
    h = (hist.Hist.new.Reg(25, 50, 550, name="observable", label="observable [GeV]")
         .StrCat(["4j1b", "4j2b"], name="region", label="Region")
         .StrCat([], name="process", label="Process", growth=True)
         .StrCat([], name="variation", label="Systematic variation", growth=True).Weight())
    for process, variation in [("ttbar", "nominal"), ("ttbar", "ME_var"), ("ttbar", "PS_var"), ("wjets", "nominal"),
                               ("wjets", "scale_var_up"), ("single_top_tW", "pt_res_up")]:
        n = 500
        h.fill(observable=rng.uniform(0, 600, n), region=rng.choice(["4j1b", "4j2b"], n), process=process,
               variation=variation, weight=rng.normal(1.0, 0.3, n))
    return h


def _objects(path) -> dict[str, bytes]:
    """Every key's uncompressed object bytes."""
    with uproot.open(path) as f:
        return {k: f.key(k).get_uncompressed_chunk_cursor()[0].raw_data.tobytes() for k in f.keys(cycle=False)}


@pytest.mark.parametrize("filled", [None, {("ttbar", "nominal"), ("wjets", "scale_var_up")}])
def test_direct_write_is_byte_identical(tmp_path, filled):
    h = _run_hist(3)
    keys = save_histograms(h, tmp_path / "new.root", filled, ttbar_scale=1.3)
    keyed = to_keyed(h, filled, 1.3)
    with uproot.recreate(tmp_path / "old.root") as f:
        for key, hh in keyed.items():
            f[key] = hh
    assert keys == list(keyed) and any(k.endswith("_pseudodata") for k in keys)
    new, old = _objects(tmp_path / "new.root"), _objects(tmp_path / "old.root")
    assert list(new) == list(old) and len(new) == len(keys)
    for key in keys:
        assert new[key] == old[key], key
    with uproot.open(tmp_path / "new.root") as f:  # and the content is the histogram's (flow included)
        region, process = "4j2b", "ttbar"
        np.testing.assert_array_equal(f[f"{region}_{process}"].values(flow=True),
                                      h[hist.loc(110.0)::hist.rebin(2), region, process, "nominal"].values(flow=True))
