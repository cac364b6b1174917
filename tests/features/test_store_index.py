"""The store's path -> content-hash index after an audio file is replaced."""

from __future__ import annotations

import os

import perser.features.store as store_mod
from perser.features.store import FeatureStore, file_digest


def test_the_newest_index_line_of_a_replaced_file_is_used(tmp_path, monkeypatch):
    audio = tmp_path / "clip.wav"
    audio.write_bytes(b"old audio bytes")
    root = tmp_path / "store"
    old = FeatureStore(root).content_hashes([str(audio)])[str(audio)]
    audio.write_bytes(b"new audio bytes")  # same size, new content
    os.utime(audio, ns=(10**18, 10**18))
    new = FeatureStore(root).content_hashes([str(audio)])[str(audio)]
    assert new != old and new == file_digest(audio)
    stale, fresh = sorted((root / "hashes").glob("*.tsv"), key=lambda f: f.stat().st_mtime_ns)
    assert str(audio) in stale.read_text() and new in fresh.read_text()
    # whatever names the writers drew, the stale line's file sorts after the fresh one's by name
    stale = stale.rename(stale.with_name("f" * 32 + ".tsv"))
    fresh = fresh.rename(fresh.with_name("0" * 32 + ".tsv"))
    os.utime(stale, ns=(10**9, 10**9))
    os.utime(fresh, ns=(2 * 10**9, 2 * 10**9))

    calls = []
    monkeypatch.setattr(store_mod, "file_digest", lambda p: calls.append(p) or file_digest(p))
    for _ in range(2):  # the newer line matches the file: no run hashes it again
        assert FeatureStore(root).content_hashes([str(audio)]) == {str(audio): new}
    assert calls == []
    assert len(list((root / "hashes").glob("*.tsv"))) == 2  # and nothing new is appended
