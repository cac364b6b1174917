import numpy as np
import pandas as pd
import pytest

from perser.corpus import splits as S
from perser.corpus.model import make_clips, make_ratings
from perser.errors import CorpusError, PerserWarning


def _clips(n=300, n_speakers=23, seed=0, **extra):
    rng = np.random.default_rng(seed)
    # long-tailed speaker sizes, like podcast corpora
    spk = rng.zipf(1.6, size=n) % n_speakers
    rows = [{"clip_id": f"c{i:04d}", "path": f"/a/{i}.wav", "speaker": f"spk{s:02d}"} for i, s in enumerate(spk)]
    for col, values in extra.items():
        for row, v in zip(rows, values):
            row[col] = v
    return make_clips(rows)


@pytest.mark.parametrize("seed", [0, 1, 7])
@pytest.mark.parametrize("n_folds", [2, 5])
def test_speaker_folds_never_split_a_speaker_and_cover_every_clip(seed, n_folds):
    clips = _clips(seed=seed)
    folds = S.speaker_folds(clips, n_folds=n_folds, seed=seed, by="speaker")
    assert folds.attrs["by"] == "speaker"
    assert folds.index.equals(clips.index) and folds.notna().all()
    assert sorted(folds.unique()) == list(range(n_folds))
    assert (clips.groupby("speaker")["path"].size() > 0).all()
    per_speaker = pd.DataFrame({"spk": clips["speaker"], "fold": folds}).groupby("spk")["fold"].nunique()
    assert (per_speaker == 1).all()
    for fold in S.iter_folds(folds):
        train_spk = set(clips.loc[fold.train, "speaker"])
        test_spk = set(clips.loc[fold.test, "speaker"])
        assert not train_spk & test_spk
        assert len(fold.train) + len(fold.test) == len(clips) and len(fold.dev) == 0


def test_speaker_folds_are_reproducible_order_independent_and_seed_dependent():
    clips = _clips(n=400, n_speakers=60)
    a = S.speaker_folds(clips, 5, seed=3, by="speaker")
    b = S.speaker_folds(clips.sample(frac=1.0, random_state=1), 5, seed=3, by="speaker").loc[clips.index]
    pd.testing.assert_series_equal(a, b)
    c = S.speaker_folds(clips, 5, seed=4, by="speaker")
    assert not a.equals(c)


def test_speaker_folds_are_balanced_for_many_small_speakers():
    clips = make_clips([{"clip_id": f"c{i}", "path": "/x.wav", "speaker": f"s{i % 50}"} for i in range(1000)])
    sizes = S.speaker_folds(clips, 5, seed=0, by="speaker").value_counts()
    assert sizes.max() - sizes.min() <= 20


def test_too_few_speakers_is_an_error():
    clips = make_clips([{"clip_id": f"c{i}", "path": "/x.wav", "speaker": f"s{i % 3}"} for i in range(9)])
    with pytest.raises(CorpusError, match="cannot make 5 folds from 3 speaker"):
        S.speaker_folds(clips, 5, by="speaker")


def test_session_folds_leave_one_session_out():
    sessions = [f"Ses0{1 + i % 5}" for i in range(100)]
    speakers = [f"{s[-2:]}{'FM'[i % 2]}" for i, s in enumerate(sessions)]
    clips = make_clips([{"clip_id": f"c{i}", "path": "/x.wav", "speaker": sp, "session": se}
                        for i, (sp, se) in enumerate(zip(speakers, sessions))])
    folds = S.speaker_folds(clips, n_folds=5)  # auto: sessions
    assert folds.attrs["by"] == "session"
    assert (pd.DataFrame({"s": sessions, "f": folds.to_numpy()}).groupby("s")["f"].nunique() == 1).all()
    assert folds.nunique() == 5


def test_official_split_is_followed_and_straddling_speakers_are_warned():
    split = ["Train", "Development", "Test1", "Test2"] * 25
    clips = make_clips([{"clip_id": f"c{i}", "path": "/x.wav", "speaker": f"s{i % 25}" if i % 4 else "Unknown",
                         "split": sp} for i, sp in enumerate(split)])
    # speakers s1.. appear in several split sets: the corpus's split is followed but the user is told
    with pytest.warns(PerserWarning, match=r"speaker\(s\) appear in more than one split"):
        folds = S.speaker_folds(clips)
    assert folds.attrs["by"] == "split"
    assert set(folds) == {"train", "dev", "test1", "test2"}
    out = list(S.iter_folds(folds))
    assert [f.name for f in out] == ["test1", "test2"]
    assert len(out[0].train) == 25 and len(out[0].dev) == 25 and len(out[0].test) == 25


def test_own_fold_column_and_k_fold_dev_sets():
    clips = _clips(n=60, fold=[i % 3 for i in range(60)], speaker=[f"s{i % 3}" for i in range(60)])
    folds = S.speaker_folds(clips, by="fold")
    assert folds.attrs["by"] == "fold"
    assert (folds.to_numpy() == np.arange(60) % 3).all()
    out = list(S.iter_folds(folds, dev_fold=True))
    assert len(out) == 3
    for f in out:
        assert not set(f.train) & set(f.test) and not set(f.dev) & set(f.test) and not set(f.dev) & set(f.train)
        assert len(f.train) + len(f.dev) + len(f.test) == 60
    with pytest.raises(CorpusError, match="no complete 'session'"):
        S.speaker_folds(clips, by="session")


def _ratings(n_ann=30, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for a in range(n_ann):
        n = int(rng.integers(1, 60))
        for c in rng.choice(200, size=n, replace=False):
            rows.append({"clip_id": f"c{c:04d}", "annotator_id": f"w{a:02d}", "emotion": "x"})
    return make_ratings(rows)


def test_filter_annotators_reports_what_it_excluded():
    r = _ratings()
    counts = r.groupby("annotator_id").size()
    with pytest.warns(PerserWarning, match=r"annotator\(s\) with fewer than 20 ratings excluded"):
        kept, excluded = S.filter_annotators(r, 20)
    low = counts[counts < 20]
    assert excluded["n_annotators"] == len(low) > 0
    assert excluded["n_ratings"] == int(low.sum()) == len(r) - len(kept)
    assert excluded["annotators"] == {a: int(n) for a, n in low.items()}
    assert (kept.groupby("annotator_id").size() >= 20).all()


def test_annotator_split_draws_only_eligible_unseen_and_is_seeded():
    r = _ratings()
    counts = r.groupby("annotator_id").size()
    seen, unseen = S.annotator_split(r, n_unseen=5, seed=0, min_ratings=25)
    assert len(unseen) == 5 and not set(seen) & set(unseen)
    assert sorted(seen + unseen) == sorted(counts.index)
    assert (counts.loc[unseen] >= 25).all()
    assert S.annotator_split(r.sample(frac=1.0, random_state=0), n_unseen=5, seed=0, min_ratings=25) == (seen, unseen)
    draws = {tuple(S.annotator_split(r, n_unseen=5, seed=s, min_ratings=25)[1]) for s in range(6)}
    assert len(draws) > 1
    eligible = int((counts >= 25).sum())
    _, unseen_frac = S.annotator_split(r, frac_unseen=0.5, seed=0, min_ratings=25)
    assert len(unseen_frac) == round(0.5 * eligible)
    with pytest.raises(CorpusError, match="only .* have at least 25 ratings"):
        S.annotator_split(r, n_unseen=eligible + 1, min_ratings=25)
    with pytest.raises(CorpusError, match="exactly one"):
        S.annotator_split(r, n_unseen=2, frac_unseen=0.1)


def test_enrollment_split_is_disjoint_seeded_nested_and_checked():
    r = _ratings()
    a = r.groupby("annotator_id").size().idxmax()
    mine = r[r.annotator_id == a]
    support, test = S.enrollment_split(mine, k=5, seed=0)
    assert len(support) == 5 and not set(support) & set(test)
    assert set(support) | set(test) == set(mine["clip_id"])
    assert S.enrollment_split(mine.iloc[::-1], k=5, seed=0) == (support, test)
    assert S.enrollment_split(mine, k=5, seed=1)[0] != support
    # with max_k the test set is fixed across k and the support sets are nested
    s1, t1 = S.enrollment_split(mine, k=1, seed=0, max_k=10)
    s10, t10 = S.enrollment_split(mine, k=10, seed=0, max_k=10)
    assert t1 == t10 and set(s1) <= set(s10) and len(t10) == len(mine) - 10
    # annotators with the same clips get different draws (seeded by their id)
    other = mine.assign(annotator_id="someone-else")
    assert S.enrollment_split(other, k=5, seed=0)[0] != support
    with pytest.raises(CorpusError, match=rf"annotator '{a}' rated {len(mine)} clips: too few"):
        S.enrollment_split(mine, k=len(mine), seed=0, min_test=1)
    with pytest.raises(CorpusError, match="one annotator"):
        S.enrollment_split(r, k=2)
