"""openSMILE extraction through the feature store: values, cache behaviour, failures, shards."""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import opensmile
import pandas as pd
import pytest
import soundfile as sf

from perser.corpus.model import Corpus, LabelSpace, make_clips, make_ratings
from perser.errors import FeatureError, PerserWarning
from perser.features import Features, extract

from .conftest import voice, write_voices


def plain_egemaps(paths) -> np.ndarray:
    smile = opensmile.Smile(opensmile.FeatureSet.eGeMAPSv02, opensmile.FeatureLevel.Functionals)
    return smile.process_files([str(p) for p in paths]).to_numpy(dtype=np.float32)


def test_egemaps_equals_plain_opensmile(voices, tmp_path):
    feats = extract(voices, "egemaps", cache_dir=tmp_path / "store", progress=False)
    assert feats.X.shape == (4, 88) and feats.X.dtype == np.float32
    assert feats.clip_ids.tolist() == [str(p) for p in voices]
    np.testing.assert_array_equal(feats.X, plain_egemaps(voices))
    df = feats.frame()
    assert df.index.name == "clip_id" and df.shape == (4, 88)
    assert "F0semitoneFrom27.5Hz_sma3nz_amean" in df.columns
    assert feats.n_computed == 4 and feats.n_reused == 0 and not feats.failures


@pytest.mark.shared_data
def test_egemaps_on_emodb_original(emodb_original, tmp_path):
    feats = extract(emodb_original, "egemaps", cache_dir=tmp_path, progress=False)
    np.testing.assert_array_equal(feats.X, plain_egemaps(emodb_original))
    # the acted anger (W) clip is louder than the neutral (N) clip of the same speaker and sentence
    df = feats.frame()
    loud = "loudness_sma3_amean"
    assert df.loc[str(emodb_original[2]), loud] > df.loc[str(emodb_original[1]), loud]


def test_compare_functionals(tmp_path):
    p = write_voices(tmp_path / "a", 1, seconds=(1.0, 1.0))
    feats = extract(p, "compare", cache_dir=tmp_path / "s", progress=False)
    assert feats.X.shape == (1, 6373) and np.isfinite(feats.X).all()
    assert len(feats.feature_names) == 6373


def test_corpus_order_select_and_save(voices, tmp_path):
    ids = ["c3", "c1", "c2", "c0"]
    clips = make_clips([{"clip_id": c, "path": str(voices[int(c[1])]), "speaker": "s"} for c in ids])
    ratings = make_ratings([{"clip_id": c, "annotator_id": "a", "emo": "N"} for c in ids])
    corpus = Corpus("toy", clips, ratings, {"emo": LabelSpace("emo", "categorical", classes=("N", "A"))})
    feats = extract(corpus, "egemaps", cache_dir=tmp_path / "s", progress=False)
    assert feats.clip_ids.tolist() == ids
    ref = plain_egemaps(voices)
    np.testing.assert_array_equal(feats.select(["c0", "c2"]), ref[[0, 2]])
    with pytest.raises(KeyError, match="nope"):
        feats.select(["c0", "nope"])
    back = Features.load(feats.save(tmp_path / "f.npz"))
    assert back.clip_ids.tolist() == ids and np.array_equal(back.X, feats.X)
    csv = pd.read_csv(feats.save(tmp_path / "f.csv"), index_col="clip_id")
    assert csv.index.tolist() == ids and csv.shape == (4, 88)


def test_cache_hit_miss_rename_and_settings(voices, tmp_path):
    store = tmp_path / "store"
    first = extract(voices, "egemaps", cache_dir=store, progress=False)
    again = extract(voices, "egemaps", cache_dir=store, progress=False)
    assert (again.n_computed, again.n_reused) == (0, 4)
    np.testing.assert_array_equal(first.X, again.X)

    # renamed (and moved) files hit the cache through their content hash
    moved = tmp_path / "moved"
    moved.mkdir()
    renamed = [Path(shutil.move(str(p), moved / f"renamed_{i}.wav")) for i, p in enumerate(voices)]
    hit = extract(renamed, "egemaps", cache_dir=store, progress=False)
    assert (hit.n_computed, hit.n_reused) == (0, 4)
    np.testing.assert_array_equal(hit.X, first.X)

    # changed audio misses, the others hit
    sf.write(renamed[0], voice(1.3, seed=99), 16000, subtype="PCM_16")
    changed = extract(renamed, "egemaps", cache_dir=store, progress=False)
    assert (changed.n_computed, changed.n_reused) == (1, 3)
    assert not np.array_equal(changed.X[0], first.X[0])

    # a setting that changes the numbers misses: a new store key
    resampled = extract(renamed, "egemaps", cache_dir=store, sample_rate=8000, progress=False)
    assert (resampled.n_computed, resampled.n_reused) == (4, 0)
    assert resampled.key != changed.key and not np.array_equal(resampled.X, changed.X)
    assert sorted(p.name for p in store.iterdir()) == sorted(["hashes", changed.key, resampled.key])


def test_warm_run_does_not_rehash(voices, tmp_path, monkeypatch):
    import perser.features.store as store_mod

    extract(voices, "egemaps", cache_dir=tmp_path, progress=False)
    calls = []
    real = store_mod.file_digest
    monkeypatch.setattr(store_mod, "file_digest", lambda p: calls.append(p) or real(p))
    extract(voices, "egemaps", cache_dir=tmp_path, progress=False)
    assert calls == []
    os.utime(voices[1], ns=(1, 1))  # a touched file is hashed again (and still hits)
    again = extract(voices, "egemaps", cache_dir=tmp_path, progress=False)
    assert calls == [str(voices[1])] and again.n_reused == 4


def test_bad_files_fail_with_summary(voices, tmp_path):
    corrupt = tmp_path / "audio" / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage" * 20)
    empty = tmp_path / "audio" / "empty.wav"
    sf.write(empty, np.zeros(0, np.float32), 16000)
    silent = tmp_path / "audio" / "silent.flac"
    sf.write(silent, np.zeros(16000, np.float32), 16000)
    missing = tmp_path / "audio" / "missing.wav"
    paths = [voices[0], corrupt, empty, voices[1], silent, missing]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        feats = extract(paths, "egemaps", cache_dir=tmp_path / "s", progress=False)
    assert feats.clip_ids.tolist() == [str(voices[0]), str(voices[1])]
    assert set(feats.failures) == {str(corrupt), str(empty), str(silent), str(missing)}
    assert "unreadable" in feats.failures[str(corrupt)] and "corrupt.wav" in feats.failures[str(corrupt)]
    assert "empty" in feats.failures[str(empty)]
    assert "silent" in feats.failures[str(silent)]
    assert "not found" in feats.failures[str(missing)]
    msgs = [str(w.message) for w in caught if issubclass(w.category, PerserWarning)]
    assert len(msgs) == 1 and msgs[0].count("4 clip(s) failed")
    with pytest.raises(FeatureError, match="all 2 clips failed"), pytest.warns(PerserWarning):
        extract([corrupt, empty], "egemaps", cache_dir=tmp_path / "s", progress=False)


def test_folder_input_and_bad_spec(voices, tmp_path):
    feats = extract(voices[0].parent, "egemaps", cache_dir=tmp_path / "s", progress=False)
    assert feats.clip_ids.tolist() == [p.stem for p in voices]
    with pytest.raises(Exception, match="unknown feature spec"):
        extract(voices, "mfcc", cache_dir=tmp_path / "s", progress=False)


def test_shard_union_equals_single_run(tmp_path):
    paths = write_voices(tmp_path / "a", 5, seconds=(0.6, 1.0))
    single = extract(paths, "egemaps", cache_dir=tmp_path / "one", progress=False)
    shared = tmp_path / "shared"
    parts = [extract(paths, "egemaps", cache_dir=shared, shard=f"{i}/2", progress=False) for i in range(2)]
    assert set(parts[0].clip_ids) & set(parts[1].clip_ids) == set()
    union = pd.concat([p.frame() for p in parts]).loc[single.clip_ids]
    np.testing.assert_array_equal(union.to_numpy(), single.X)
    after = extract(paths, "egemaps", cache_dir=shared, progress=False)
    assert (after.n_computed, after.n_reused) == (0, 5)


def test_torchrun_rank_takes_its_shard(tmp_path, monkeypatch):
    paths = write_voices(tmp_path / "a", 3, seconds=(0.6, 0.8))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    feats = extract(paths, "egemaps", cache_dir=tmp_path / "s", progress=False)
    assert feats.clip_ids.tolist() == [str(paths[1])]


@pytest.mark.slow
def test_two_workers_equal_one(tmp_path):
    paths = write_voices(tmp_path / "a", 6, seconds=(0.5, 1.0))
    one = extract(paths, "egemaps", cache_dir=tmp_path / "1", workers=1, progress=False)
    with pytest.warns(PerserWarning, match="missing.wav"):
        two = extract(paths + [tmp_path / "a" / "missing.wav"], "egemaps", cache_dir=tmp_path / "2", workers=2, progress=False)
    np.testing.assert_array_equal(one.X, two.X)
    assert two.clip_ids.tolist() == one.clip_ids.tolist() and len(two.failures) == 1


def test_corpus_clip_without_path_is_reported(voices, tmp_path):
    clips = make_clips([{"clip_id": "a", "path": str(voices[0]), "speaker": "s"}, {"clip_id": "b", "path": None, "speaker": "s"}])
    ratings = make_ratings([{"clip_id": c, "annotator_id": "x", "emo": "N"} for c in "ab"])
    corpus = Corpus("toy", clips, ratings, {"emo": LabelSpace("emo", "categorical", classes=("N", "A"))})
    with pytest.warns(PerserWarning, match="1 clip"):
        feats = extract(corpus, "egemaps", cache_dir=tmp_path, progress=False)
    assert feats.clip_ids.tolist() == ["a"] and "no audio path" in feats.failures["b"]


def test_store_key_records_the_opensmile_version(monkeypatch):
    import importlib.metadata
    from importlib.metadata import version

    from perser.features import make_extractor

    real = make_extractor("egemaps").key
    assert make_extractor("egemaps").settings()["opensmile"] == version("opensmile")
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "0.0.1" if name == "opensmile" else version(name))
    upgraded = make_extractor("egemaps")
    assert upgraded.settings()["opensmile"] == "0.0.1" and upgraded.key != real
