"""The built-in demo corpus: format, determinism, agreement, styles, acoustics."""

from __future__ import annotations

import hashlib
import wave
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import perser
from perser.corpus import synthetic as demo
from perser.corpus.agreement import fleiss_kappa
from perser.corpus.synthetic import CLASSES, DIMENSIONS, STYLES, listeners, make_demo
from perser.errors import ConfigError, CorpusError

STYLE_NAMES = {s.name for s in STYLES}


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    return make_demo(tmp_path_factory.mktemp("demo") / "small", n_clips=120, n_annotators=30, n_new=10, seed=3)


@pytest.fixture(scope="module")
def moderate(tmp_path_factory) -> Path:
    """Default listeners, fewer clips (about 25 ratings per clip)."""
    return make_demo(tmp_path_factory.mktemp("demo") / "moderate", n_clips=300, seed=1)


def _read_wav(path: Path) -> tuple[np.ndarray, int, int, int]:
    with wave.open(str(path), "rb") as f:
        x = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2")
        return x.astype(np.float64) / 32768.0, f.getframerate(), f.getnchannels(), f.getsampwidth()


def _annotators(root: Path) -> pd.DataFrame:
    ann = pd.read_csv(root / "annotators.csv", dtype={"annotator_id": str}).set_index("annotator_id")
    ann["new"] = ann["new"].astype(str).str.lower() == "true"
    return ann


def _counts(ratings: pd.DataFrame) -> pd.DataFrame:
    return pd.crosstab(ratings["clip_id"], ratings["emotion"]).reindex(columns=list(CLASSES), fill_value=0)


def _tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------- format
def test_loads_validates_and_has_both_spaces(small):
    c = perser.load_corpus(small)
    assert c.meta["format"] == "table"
    assert len(c.clips) == 120
    assert c.space("emotion").kind == "categorical" and c.space("emotion").classes == CLASSES
    avd = c.space("avd")
    assert avd.kind == "dimensional" and avd.dimensions == DIMENSIONS and avd.scale == (1.0, 5.0)
    for d in DIMENSIONS:  # integer ratings on 1..5, every value used
        vals = c.ratings[d].to_numpy()
        assert np.all(vals == np.round(vals)) and vals.min() == 1 and vals.max() == 5
    assert set(c.ratings["emotion"]) == set(CLASSES)
    assert 10 <= c.clips["speaker"].nunique() <= 20
    assert c.clips["duration"].between(1.0, 2.0).all()
    assert set(c.annotator_ids) == set(c.annotators.index)


def test_audio_is_16bit_mono_wav_matching_duration(small):
    c = perser.load_corpus(small)
    for cid in c.clips.index[:10]:
        path = Path(c.clips.at[cid, "path"])
        assert path.parent == small.resolve() / "audio"
        x, sr, ch, width = _read_wav(path)
        assert (sr, ch, width) == (16000, 1, 2)
        assert len(x) == round(c.clips.at[cid, "duration"] * sr)
        assert 0.003 < np.sqrt(np.mean(x**2)) < 0.5  # audible, not clipped to a square wave


def test_sample_rate_is_honoured(tmp_path):
    out = make_demo(tmp_path / "d8k", n_clips=6, n_annotators=4, n_new=1, sample_rate=8000)
    c = perser.load_corpus(out)
    x, sr, _, _ = _read_wav(Path(c.clips["path"].iloc[0]))
    assert sr == 8000 and len(x) == round(c.clips["duration"].iloc[0] * 8000)


def test_corpus_yaml_says_synthetic_and_records_parameters(small):
    spec = yaml.safe_load((small / "corpus.yaml").read_text())
    assert "synthetic" in spec["description"].lower()
    gen = spec["meta"]["generator"]
    assert (gen["n_clips"], gen["n_annotators"], gen["n_new"], gen["seed"], gen["sample_rate"]) == (120, 30, 10, 3, 16000)
    assert {s["name"] for s in spec["meta"]["styles"]} == STYLE_NAMES
    latent = pd.read_csv(small / "latent.csv")
    assert len(latent) == 120 and set(latent["emotion"]) <= set(CLASSES)


# --------------------------------------------------------------------- listeners
def test_new_listeners_are_marked_with_their_styles(small):
    ann = _annotators(small)
    assert len(ann) == 40 and ann["new"].sum() == 10
    assert set(ann["style"]) == STYLE_NAMES
    assert set(ann.loc[ann["new"], "style"]) == STYLE_NAMES  # every style among the new listeners
    c = perser.load_corpus(small)
    per = c.ratings["annotator_id"].value_counts()
    assert set(per.index) == set(ann.index)
    assert (per.reindex(ann.index) == ann["n_ratings"]).all()


@pytest.mark.slow
def test_ratings_per_annotator_are_long_tailed(moderate):
    c = perser.load_corpus(moderate)
    per = c.ratings["annotator_id"].value_counts().to_numpy()
    assert per.min() >= demo.MIN_RATINGS_PER_ANNOTATOR
    assert per.max() >= 2.5 * np.median(per)
    assert np.mean(per) > np.median(per)  # right skew
    assert not c.ratings.duplicated(["clip_id", "annotator_id"]).any()


def test_default_size_aims_at_crema_d_ratings_per_clip(tmp_path):
    # no audio needed for the rating plan itself: the assignment is its own step
    lis, clp = listeners._assign(np.random.default_rng(0), 160, 1500)
    per_clip = np.bincount(clp, minlength=1500)
    assert 8.5 <= per_clip.mean() <= 10.0 and per_clip.min() >= 5
    assert len(set(zip(lis.tolist(), clp.tolist()))) == len(lis)


def test_simulated_ratings_are_the_ratings_make_demo_writes(small):
    written = perser.load_corpus(small).ratings
    sim = demo.simulated_ratings(n_clips=120, n_annotators=30, n_new=10, seed=3)
    pd.testing.assert_frame_equal(sim[list(written.columns)], written, check_dtype=False)
    with pytest.raises(ConfigError, match="simulated_ratings: n_new must be an integer >= 0"):
        demo.simulated_ratings(n_new=-1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_default_agreement_is_in_the_crema_d_band(seed):
    # the full default size (1,500 clips, 120 seen + 40 new listeners), ratings only: no audio is synthesised
    from perser.corpus.agreement import agreement
    from perser.corpus.model import LabelSpace

    ratings = demo.simulated_ratings(seed=seed)
    assert ratings["clip_id"].nunique() == 1500 and ratings["annotator_id"].nunique() == 160
    ag = agreement(ratings, LabelSpace("emotion", "categorical", classes=CLASSES))
    # CREMA-D voice-only: about 9.2 ratings per clip, Fleiss' kappa near 0.28, plurality share near 0.64
    assert 8.5 <= ag["n_ratings"] / ag["n_clips"] <= 10.0
    assert 0.15 <= ag["fleiss_kappa"] <= 0.45
    assert abs(ag["plurality_share"] - 0.64) <= 0.05
    counts = _counts(ratings)  # the figures perser reports are the textbook ones
    assert ag["fleiss_kappa"] == pytest.approx(fleiss_kappa(counts.to_numpy()))
    assert ag["plurality_share"] == pytest.approx((counts.max(axis=1) / counts.sum(axis=1)).mean())


@pytest.mark.slow
def test_agreement_near_a_crowd_sourced_corpus(moderate):
    c = perser.load_corpus(moderate)
    counts = _counts(c.ratings)
    kappa = fleiss_kappa(counts.to_numpy())
    assert 0.15 <= kappa <= 0.45
    plurality_share = (counts.max(axis=1) / counts.sum(axis=1)).mean()
    assert 0.5 <= plurality_share <= 0.8


@pytest.mark.slow
def test_listeners_of_one_style_agree_more_with_each_other(moderate):
    c = perser.load_corpus(moderate)
    ann = _annotators(moderate)
    r = c.ratings.join(ann["style"], on="annotator_id")
    pairs = r.merge(r, on="clip_id", suffixes=("_a", "_b"))
    pairs = pairs[pairs["annotator_id_a"] < pairs["annotator_id_b"]]
    same = (pairs["style_a"] == pairs["style_b"]).to_numpy()
    agree = (pairs["emotion_a"] == pairs["emotion_b"]).to_numpy()
    assert agree[same].mean() > agree[~same].mean() + 0.03
    for d in ("arousal", "valence"):
        gap = (pairs[f"{d}_a"] - pairs[f"{d}_b"]).abs().to_numpy()
        assert gap[same].mean() < gap[~same].mean() - 0.05


@pytest.mark.slow
def test_knowing_a_listeners_style_from_few_labels_helps(moderate):
    """Style-specific label tables identify a new listener's style from K=10 labels and
    predict that listener's other labels better than the table pooled over all styles."""
    c = perser.load_corpus(moderate)
    ann = _annotators(moderate)
    r = c.ratings.join(ann, on="annotator_id")
    counts = _counts(c.ratings)
    r["consensus"] = r["clip_id"].map(counts.idxmax(axis=1))

    def table(rows):  # P(label | consensus), Laplace-smoothed
        t = pd.crosstab(rows["consensus"], rows["emotion"]).reindex(index=list(CLASSES), columns=list(CLASSES),
                                                                    fill_value=0) + 1
        return np.log(t.div(t.sum(axis=1), axis=0))

    seen = r[~r["new"]]
    by_style = {s: table(g) for s, g in seen.groupby("style")}
    pooled = table(seen)
    rng = np.random.default_rng(0)
    hits, gain = [], []
    for _, g in r[r["new"]].groupby("annotator_id"):
        g = g.iloc[rng.permutation(len(g))]
        support, test = g.iloc[:10], g.iloc[10:]
        score = {s: sum(t.at[a, b] for a, b in zip(support["consensus"], support["emotion"])) for s, t in by_style.items()}
        best = max(score, key=score.get)
        hits.append(best == g["style"].iloc[0])
        ll = lambda t: np.mean([t.at[a, b] for a, b in zip(test["consensus"], test["emotion"])])  # noqa: E731
        gain.append(ll(by_style[best]) - ll(pooled))
    assert np.mean(hits) > 0.4  # chance: 0.25
    assert np.mean(gain) > 0.02
    assert np.mean(hits) < 1.0  # not trivially easy


# ---------------------------------------------------------------------- acoustics
def _f0_autocorr(x: np.ndarray, sr: int) -> float:
    """Median F0 (Hz) of the loudest 40 ms frames, from the autocorrelation peak."""
    n = int(0.04 * sr)
    frames = np.lib.stride_tricks.sliding_window_view(x, n)[:: n // 2]
    energy = (frames**2).mean(axis=1)
    frames = frames[energy > 0.25 * energy.max()]
    frames = frames - frames.mean(axis=1, keepdims=True)
    spec = np.fft.rfft(frames, 2 * n, axis=1)
    ac = np.fft.irfft(np.abs(spec) ** 2, axis=1)[:, :n]
    lo, hi = sr // 500, sr // 60
    lags = lo + ac[:, lo:hi].argmax(axis=1)
    return float(np.median(sr / lags))


def test_acoustics_carry_latent_arousal(small):
    c = perser.load_corpus(small)
    latent = pd.read_csv(small / "latent.csv", dtype={"clip_id": str}).set_index("clip_id").reindex(c.clips.index)
    rms_db, f0_st = [], []
    for path in c.clips["path"]:
        x, sr, _, _ = _read_wav(Path(path))
        rms_db.append(20 * np.log10(np.sqrt(np.mean(x**2))))
        f0_st.append(12 * np.log2(_f0_autocorr(x, sr)))
    f0_st = np.array(f0_st)
    # pitch relative to the speaker's own median removes the speakers' voices
    f0_rel = f0_st - pd.Series(f0_st, index=c.clips.index).groupby(c.clips["speaker"]).transform("median").to_numpy()
    arousal = latent["arousal"].to_numpy()
    assert np.corrcoef(rms_db, arousal)[0, 1] > 0.5
    assert np.corrcoef(f0_rel, arousal)[0, 1] > 0.4
    # and imperfectly: loudness does not determine arousal
    assert np.corrcoef(rms_db, arousal)[0, 1] < 0.95
    rated = c.ratings.groupby("clip_id")["arousal"].mean().reindex(c.clips.index).to_numpy()
    assert np.corrcoef(rms_db, rated)[0, 1] > 0.4


def test_speakers_differ_in_voice(small):
    c = perser.load_corpus(small)
    f0 = pd.Series([_f0_autocorr(_read_wav(Path(p))[0], 16000) for p in c.clips["path"]], index=c.clips.index)
    by_gender = f0.groupby(c.clips["gender"]).median()
    assert by_gender["female"] > 1.4 * by_gender["male"]


# ------------------------------------------------------------ determinism, safety
@pytest.mark.slow
def test_same_seed_same_bytes_different_seed_differs(tmp_path):
    kw = dict(n_clips=40, n_annotators=10, n_new=4)
    a = _tree_digest(make_demo(tmp_path / "a", seed=7, **kw))
    b = _tree_digest(make_demo(tmp_path / "b", seed=7, **kw))
    c = _tree_digest(make_demo(tmp_path / "c", seed=8, **kw))
    assert a == b
    assert a.keys() == c.keys()
    assert a["ratings.csv"] != c["ratings.csv"]
    assert a["audio/demo00001.wav"] != c["audio/demo00001.wav"]


def test_refuses_to_overwrite_unless_asked(tmp_path):
    out = make_demo(tmp_path / "d", n_clips=8, n_annotators=4, n_new=2)
    (out / "marker").write_text("old")
    with pytest.raises(CorpusError, match="exists"):
        make_demo(out, n_clips=8, n_annotators=4, n_new=2)
    assert (out / "marker").exists()
    make_demo(out, n_clips=10, n_annotators=4, n_new=2, overwrite=True)
    assert not (out / "marker").exists()
    assert len(perser.load_corpus(out).clips) == 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]  # no temporary folders left


def test_a_failed_build_leaves_nothing_behind(tmp_path, monkeypatch):
    calls = []

    def failing(path, samples, sr):
        calls.append(path)
        if len(calls) > 3:
            raise OSError("disk full")
        demo.__dict__["_write_wav_original"](path, samples, sr)

    monkeypatch.setitem(demo.__dict__, "_write_wav_original", demo._write_wav)
    monkeypatch.setattr(demo, "_write_wav", failing)
    with pytest.raises(OSError, match="disk full"):
        make_demo(tmp_path / "d", n_clips=8, n_annotators=4, n_new=2)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "kwargs, culprit",
    [({"n_clips": 0}, "n_clips"), ({"n_annotators": 1.5}, "n_annotators"), ({"n_new": -1}, "n_new"),
     ({"seed": -3}, "seed"), ({"sample_rate": 100}, "sample_rate")],
)
def test_bad_arguments_name_the_culprit(tmp_path, kwargs, culprit):
    with pytest.raises(ConfigError, match=culprit):
        make_demo(tmp_path / "d", **kwargs)
    assert not (tmp_path / "d").exists()
