"""The pieces that keep training at corpus scale bounded: chunked standardisation of
memory-mapped features, loop-free rating → head and annotator → rows maps, bf16
autocast, per-epoch timings and throughput."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from perser.errors import ConfigError, FeatureError
from perser.methods import nets
from perser.methods.base import make_method
from perser.methods.meta import _rows_by_annotator
from perser.methods.multi import _head_ids
from perser.methods.training import TrainConfig, autocast_dtype

from .test_meta import crowd


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_chunked_standardizer_equals_the_whole_array_one_and_reads_a_memmap(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((101, 7)) * [1, 2, 3, 4, 5, 6, 0] + 3).astype(np.float16)
    np.save(tmp_path / "X.npy", X)
    mm = np.load(tmp_path / "X.npy", mmap_mode="r")
    rows = np.array([0, 5, 9, 50, 77, 100])
    whole = nets.Standardizer().fit(X.astype(np.float64)[rows])
    monkeypatch.setattr(nets, "CHUNK", 4)
    part = nets.Standardizer().fit(mm, rows=rows)
    np.testing.assert_allclose(part.mean, whole.mean, rtol=1e-6)
    np.testing.assert_allclose(part.std, whole.std, rtol=1e-6)
    assert part.std[-1] == 1.0  # a constant feature
    Z = part.transform(mm)
    assert Z.dtype == np.float32 and isinstance(Z, np.ndarray) and not isinstance(Z, np.memmap)
    ref = np.clip((X.astype(np.float32) - part.mean) / part.std, -5, 5)
    np.testing.assert_allclose(Z, ref, rtol=1e-6, atol=1e-6)
    bad = X.astype(np.float32)
    bad[60, 2] = np.nan
    with pytest.raises(FeatureError, match="row 60"):
        nets.Standardizer().fit(bad)
    with pytest.raises(FeatureError, match="shape"):
        part.transform(np.zeros((3, 6), dtype=np.float32))


def test_rating_to_head_and_annotator_to_rows_maps_match_a_loop():
    rng = np.random.default_rng(1)
    ids = np.array([f"a{i}" for i in rng.integers(0, 30, size=500)], dtype=object)
    heads = sorted({str(a) for a in ids if int(a[1:]) % 3})
    expect = np.array([heads.index(a) if a in heads else -1 for a in ids])
    assert np.array_equal(_head_ids(ids, heads), expect)
    assert (_head_ids(ids, []) == -1).all()
    groups = _rows_by_annotator(ids)
    assert list(groups) == sorted(set(ids.tolist()))
    for a, rows in groups.items():
        assert np.array_equal(rows, np.flatnonzero(ids == a))


def test_bf16_autocast_trains_close_to_fp32_and_bad_precision_is_named():
    assert autocast_dtype("auto", torch.device("cpu")) is None and autocast_dtype("bf16", torch.device("cpu")) is torch.bfloat16
    with pytest.raises(ConfigError, match="precision"):
        TrainConfig(precision="fp8")
    rs, _ = crowd("categorical", n_clips=60, n_ann=6)
    common = dict(hidden=(16,), dropout=0.0, epochs=4, batch_size=32, lr=1e-2, patience=0, valid_fraction=0,
                  progress=False, min_ratings=10)
    a = make_method("similar", precision="fp32", **common).fit(rs)
    b = make_method("similar", precision="bf16", **common).fit(rs)
    X = rs.X[:40]
    pa, pb = a.predict(None, X).proba, b.predict(None, X).proba
    assert not np.array_equal(pa, pb)  # bf16 did run: the numbers differ in the last bits
    np.testing.assert_allclose(pb, pa, atol=0.05)  # ... and agree to a few hundredths of probability
    assert (pa.argmax(1) == pb.argmax(1)).mean() >= 0.9


def test_every_epoch_is_timed():
    rs, _ = crowd("dimensional", n_clips=30, n_ann=3)
    m = make_method("similar", hidden=(8,), epochs=2, patience=0, progress=False, min_ratings=5).fit(rs)
    h = m.history_
    assert len(h.epoch_seconds) == len(h.epoch_cpu_seconds) == 2 and min(h.epoch_seconds) > 0
