"""The feature store: atomic entries and the path -> content-hash index."""

from __future__ import annotations

import numpy as np

from perser.features.store import FeatureStore, file_digest


def test_put_get_atomic_and_keys(tmp_path):
    store = FeatureStore(tmp_path)
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    path = store.put("k1", "ab" * 16, a)
    assert path.parent.name == "ab" and path.name == "ab" * 16 + ".npy"
    assert np.array_equal(store.get("k1", "ab" * 16), a)
    assert store.get("k1", "cd" * 16) is None and store.get("k2", "ab" * 16) is None
    assert store.keys("k1") == ["ab" * 16]
    assert not list(tmp_path.rglob(".tmp-*"))
    store.write_meta("k1", {"spec": "x"})
    store.write_meta("k1", {"spec": "changed"})  # written once
    assert store.read_meta("k1") == {"spec": "x"}


def test_writer_killed_mid_put_leaves_no_listed_entry(tmp_path, monkeypatch):
    """A writer killed between writing its temporary file and the rename (SIGKILL: no clean-up
    runs) leaves a file that is neither listed as a key, nor read, nor matched as an entry."""
    import pathlib

    import perser.features.store as store_mod

    store = FeatureStore(tmp_path)
    store.put("k1", "ab" * 16, np.zeros(3, dtype=np.float32))

    def killed(*a, **k):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(store_mod.os, "replace", killed)
        m.setattr(pathlib.Path, "unlink", lambda self, missing_ok=False: None)
        try:
            store.put("k1", "cd" * 16, np.ones(3, dtype=np.float32))
        except KeyboardInterrupt:
            pass
    assert len(list(tmp_path.rglob(".tmp-*"))) == 1  # the leftover is there...
    assert store.keys("k1") == ["ab" * 16]  # ...but it is no entry
    assert store.get("k1", "cd" * 16) is None and not store.has("k1", "cd" * 16)
    assert [p.name for p in (tmp_path / "k1").glob("??/*.npy")] == ["ab" * 16 + ".npy"]


def test_hash_index_shared_and_compacted(tmp_path):
    files = []
    for i in range(40):
        f = tmp_path / "audio" / f"{i}.bin"
        f.parent.mkdir(exist_ok=True)
        f.write_bytes(bytes([i]) * 100)
        files.append(str(f))
    root = tmp_path / "store"
    for f in files:  # 40 writers, one index file each
        assert FeatureStore(root).content_hashes([f]) == {f: file_digest(f)}
    n_files = len(list((root / "hashes").glob("*.tsv")))
    assert n_files == 8  # the 33rd writer merged the 32 files into one; 7 more followed
    store = FeatureStore(root)
    got = store.content_hashes(files, on_error=lambda p, m: None)
    assert got == {f: file_digest(f) for f in files}
    assert store._new_lines == [] and len(list((root / "hashes").glob("*.tsv"))) == n_files
    errors = {}
    FeatureStore(root).content_hashes([str(tmp_path / "gone.wav")], on_error=errors.__setitem__)
    assert "not found" in errors[str(tmp_path / "gone.wav")]
