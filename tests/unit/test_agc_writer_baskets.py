"""The basket slices the AGC writer hands to uproot (fileset.generate.agc._entries): the same entries as slicing."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from fileset.generate.agc import _entries, _jagged_records, generate_arrays


@pytest.mark.parametrize(("start", "stop"), [(0, 300), (300, 700), (650, 700), (10, 10)])
def test_basket_entries_equal_slices(start, stop):
    cols = generate_arrays("ttbar", "nominal", 700, seed=2)
    for array in (_jagged_records(cols["jet"], {"hadronFlavour": np.int32}), cols["muon"]["pt"],
                  ak.Array([[1.0], [], [2.0, 3.0]] * 300), cols["met_pt"]):
        got, want = _entries(array, start, stop), array[start:stop]
        assert ak.to_list(got) == ak.to_list(want)
        if isinstance(got, ak.Array):
            assert got.type == want.type and np.asarray(got.layout.offsets)[0] == 0


def test_record_basket_split_into_counter_and_fields():
    cols = generate_arrays("ttbar", "nominal", 700, seed=2)
    jets = _jagged_records(cols["jet"], {"hadronFlavour": np.int32})
    counts, fields = _entries(jets, 300, 700, split_records=True)
    want = jets[300:700]
    assert counts.dtype == np.int32 and counts.tolist() == ak.num(want).tolist()
    assert list(fields) == want.fields
    for name, values in fields.items():
        assert values.type == want[name].type and ak.to_list(values) == ak.to_list(want[name])
