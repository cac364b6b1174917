import warnings

import numpy as np
import pandas as pd
import pytest

from perser.corpus import consensus as C
from perser.corpus.model import Corpus, LabelSpace, make_clips, make_ratings
from perser.errors import CorpusError, PerserWarning

EMO = LabelSpace("emotion", "categorical", ("ang", "hap", "neu", "sad"))
ML = LabelSpace("tags", "multilabel", ("ang", "hap", "neu"))
AV = LabelSpace("av", "dimensional", dimensions=("arousal", "valence"), scale=(1, 5))


def _ratings(rows):
    return make_ratings(pd.DataFrame(rows, columns=["clip_id", "annotator_id", "emotion"]))


def test_plurality_counts_votes_and_reports_ties():
    r = _ratings([
        ("c1", "a", "ang"), ("c1", "b", "ang"), ("c1", "c", "hap"),
        ("c2", "a", "hap"), ("c2", "b", "sad"),
        ("c3", "a", "neu"),
    ])
    with pytest.warns(PerserWarning, match=r"1 of 3 clips have tied .* c2"):
        p = C.plurality(r, EMO)
    assert p.loc["c1", "label"] == "ang"
    assert p.loc["c1", "votes"] == 2 and p.loc["c1", "share"] == pytest.approx(2 / 3)
    assert not p.loc["c1", "tie"] and p.loc["c1", "tied"] == ""
    assert p.loc["c2", "tie"] and pd.isna(p.loc["c2", "label"])
    assert set(p.loc["c2", "tied"].split(";")) == {"hap", "sad"}
    assert p.loc["c3", "label"] == "neu" and p.loc["c3", "n_ratings"] == 1


def test_plurality_random_tie_break_is_seeded_and_picks_a_tied_class():
    rows = []
    for i in range(200):
        rows += [(f"c{i}", "a", "hap"), (f"c{i}", "b", "sad"), (f"c{i}", "c", "ang"), (f"c{i}", "d", "sad"), (f"c{i}", "e", "hap")]
    r = _ratings(rows)
    with pytest.warns(PerserWarning, match="broken at random"):
        p1 = C.plurality(r, EMO, tie_break="random", seed=3)
    p2 = C.plurality(r, EMO, tie_break="random", seed=3, warn=False)
    p3 = C.plurality(r, EMO, tie_break="random", seed=4, warn=False)
    assert p1["tie"].all()
    assert set(p1["label"]) == {"hap", "sad"}  # never the non-tied class
    pd.testing.assert_series_equal(p1["label"], p2["label"])
    assert (p1["label"] != p3["label"]).any()
    # both tied classes are picked about equally often
    assert 60 < (p1["label"] == "hap").sum() < 140


def test_plurality_rejects_unknown_label_naming_it():
    r = _ratings([("c1", "a", "ang"), ("c1", "b", "joy")])
    with pytest.raises(CorpusError, match=r"'joy'.*clip 'c1'.*annotator 'b'"):
        C.plurality(r, EMO)


def test_soft_categorical_rows_sum_to_one():
    r = _ratings([("c1", "a", "ang"), ("c1", "b", "ang"), ("c1", "c", "hap"), ("c2", "a", "sad")])
    s = C.soft(r, EMO)
    assert list(s.columns) == list(EMO.classes)
    np.testing.assert_allclose(s.loc["c1"].to_numpy(), [2 / 3, 1 / 3, 0, 0])
    np.testing.assert_allclose(s.sum(axis=1), 1.0)


def test_multilabel_soft_is_fraction_of_annotators_and_plurality_counts_ticks():
    r = make_ratings(pd.DataFrame(
        [("c1", "a", "ang;hap"), ("c1", "b", "hap"), ("c1", "c", " hap ; neu"), ("c2", "a", "neu")],
        columns=["clip_id", "annotator_id", "tags"],
    ))
    s = C.soft(r, ML)
    np.testing.assert_allclose(s.loc["c1"].to_numpy(), [1 / 3, 1.0, 1 / 3])
    p = C.plurality(r, ML)
    assert p.loc["c1", "label"] == "hap" and p.loc["c1", "votes"] == 3 and p.loc["c1", "share"] == 1.0
    bad = make_ratings(pd.DataFrame([("c1", "a", "ang;joy")], columns=["clip_id", "annotator_id", "tags"]))
    with pytest.raises(CorpusError, match="'joy'"):
        C.soft(bad, ML)


def _dim_ratings(seed=0, n_clips=80, n_ann=12, noisy=(0, 1)):
    rng = np.random.default_rng(seed)
    truth = rng.uniform(1.5, 4.5, size=(n_clips, 2))
    rows = []
    for a in range(n_ann):
        sd = 2.0 if a in noisy else 0.2
        for c in rng.choice(n_clips, size=40, replace=False):
            if a in noisy:  # unrelated to the truth
                x = rng.uniform(1, 5, size=2)
            else:
                x = np.clip(truth[c] + rng.normal(0, sd, 2), 1, 5)
            rows.append({"clip_id": f"c{c:03d}", "annotator_id": f"a{a:02d}", "arousal": x[0], "valence": x[1]})
    return make_ratings(rows), truth


def test_mean_matches_groupby():
    r, _ = _dim_ratings()
    m = C.mean(r, AV)
    g = r.groupby("clip_id")[["arousal", "valence"]]
    pd.testing.assert_frame_equal(m[["arousal", "valence"]], g.mean(), check_names=False)
    np.testing.assert_allclose(m["arousal_std"], r.groupby("clip_id")["arousal"].std(ddof=0).to_numpy(), atol=1e-9)
    assert (m["n_ratings"] == g.size()).all()


@pytest.mark.parametrize("reference", ["mean", "others"])
def test_ewe_weights_are_correlations_and_downweight_unreliable_annotators(reference):
    r, truth = _dim_ratings()
    w = C.ewe_weights(r, AV, reference=reference)
    # weight of one annotator equals the Pearson correlation with the clip reference
    a = "a05"
    mine = r[r.annotator_id == a].set_index("clip_id")["arousal"]
    if reference == "mean":
        ref = r.groupby("clip_id")["arousal"].mean().loc[mine.index]
    else:
        others = r[r.annotator_id != a]
        ref = others.groupby("clip_id")["arousal"].mean().reindex(mine.index)
        mine, ref = mine[ref.notna()], ref.dropna()
    assert w.loc[a, "arousal"] == pytest.approx(np.corrcoef(mine, ref)[0, 1], abs=1e-9)
    assert w.loc[["a00", "a01"], "arousal"].max() < w.drop(index=["a00", "a01"])["arousal"].min()
    assert ((w[["arousal", "valence"]] >= 0) & (w[["arousal", "valence"]] <= 1)).all().all()

    e = C.ewe(r, AV, reference=reference)
    pd.testing.assert_frame_equal(e, C.ewe(r, AV, weights=w))  # same as with the weights given
    m = C.mean(r, AV)
    t = pd.DataFrame(truth, columns=["arousal", "valence"], index=[f"c{i:03d}" for i in range(len(truth))]).loc[e.index]
    # EWE is closer to the truth than the plain mean when two annotators are noise
    assert ((e["arousal"] - t["arousal"]) ** 2).mean() < ((m["arousal"] - t["arousal"]) ** 2).mean()


def test_ewe_is_weighted_mean_by_hand_and_falls_back_with_warning():
    r = make_ratings([
        {"clip_id": "c1", "annotator_id": "a", "arousal": 1.0, "valence": 2.0},
        {"clip_id": "c1", "annotator_id": "b", "arousal": 5.0, "valence": 4.0},
        {"clip_id": "c2", "annotator_id": "c", "arousal": 3.0, "valence": 3.0},
    ])
    w = pd.DataFrame({"arousal": [0.25, 0.75, 0.0], "valence": [1.0, 1.0, 0.0]}, index=["a", "b", "c"])
    with pytest.warns(PerserWarning, match=r"1 of 2 clips have only zero-weight .* c2"):
        e = C.ewe(r, AV, weights=w)
    assert e.loc["c1", "arousal"] == pytest.approx(0.25 * 1 + 0.75 * 5)
    assert e.loc["c1", "valence"] == pytest.approx(3.0)
    assert e.loc["c2", "arousal"] == 3.0 and e.loc["c2", "fallback"] and not e.loc["c1", "fallback"]


def test_corpus_consensus_picks_method_excludes_self_and_checks_kind():
    clips = make_clips([{"clip_id": c, "path": f"/a/{c}.wav", "speaker": "s"} for c in ("c1", "c2")])
    r = make_ratings([
        {"clip_id": "c1", "annotator_id": "a", "emotion": "ang", "arousal": 2.0, "valence": 2.0, "is_self": False},
        {"clip_id": "c1", "annotator_id": "b", "emotion": "ang", "arousal": 4.0, "valence": 2.0, "is_self": False},
        {"clip_id": "c1", "annotator_id": "F1", "emotion": "sad", "arousal": 5.0, "valence": 5.0, "is_self": True},
        {"clip_id": "c1", "annotator_id": "F2", "emotion": "sad", "arousal": 5.0, "valence": 5.0, "is_self": True},
        {"clip_id": "c2", "annotator_id": "a", "emotion": None, "arousal": 3.0, "valence": 3.0, "is_self": False},
    ])
    corpus = Corpus("t", clips, r, {"emotion": EMO, "av": AV}).validate()
    p = C.consensus(corpus, "emotion")
    assert list(p.index) == ["c1"] and p.loc["c1", "label"] == "ang" and p.loc["c1", "n_ratings"] == 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PerserWarning)
        assert C.consensus(corpus, "emotion", include_self=True).loc["c1", "tie"]
    m = C.consensus(corpus, "av")
    assert m.loc["c1", "arousal"] == 3.0 and m.loc["c2", "arousal"] == 3.0
    with pytest.raises(CorpusError, match="does not apply"):
        C.consensus(corpus, "av", method="plurality")
    with pytest.raises(CorpusError, match="unknown consensus method"):
        C.consensus(corpus, "emotion", method="median")
