"""A damaged feature-store entry is computed again with a counted warning, not a crash."""

from __future__ import annotations

import numpy as np
import pytest

from perser.errors import PerserWarning
from perser.features import extract

from .conftest import write_voices


def test_damaged_entry_is_recomputed_and_reported(tmp_path):
    clips = write_voices(tmp_path / "audio", 3)
    first = extract(clips, "egemaps", cache_dir=tmp_path / "store", progress=False)
    entries = sorted((tmp_path / "store").glob("egemaps-*/??/*.npy"))
    assert len(entries) == 3
    entries[0].write_bytes(b"\x93NUMPY not an array")  # e.g. a disk error or a foreign file
    with pytest.warns(PerserWarning, match=r"1 unreadable feature store entr.*" + entries[0].name):
        again = extract(clips, "egemaps", cache_dir=tmp_path / "store", progress=False)
    assert again.n_computed == 1 and again.n_reused == 2 and not again.failures
    assert np.array_equal(again.X, first.X)
    third = extract(clips, "egemaps", cache_dir=tmp_path / "store", progress=False)  # replaced in the store
    assert third.n_reused == 3 and np.array_equal(third.X, first.X)
