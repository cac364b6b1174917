import numpy as np
import pandas as pd
import pytest

from perser.corpus.model import Corpus, LabelSpace, make_clips, make_ratings, split_multilabel
from perser.errors import CorpusError, PerserWarning

EMO = LabelSpace("emotion", "categorical", ("ang", "hap", "neu"))
TAGS = LabelSpace("tags", "multilabel", ("ang", "hap", "neu"))
AV = LabelSpace("av", "dimensional", dimensions=("arousal", "valence"), scale=(1, 7))


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        (dict(name="e", kind="ordinal", classes=("a", "b")), "unknown kind 'ordinal'"),
        (dict(name="", kind="categorical", classes=("a", "b")), "non-empty name"),
        (dict(name="e", kind="categorical", classes=("a",)), "at least 2 classes"),
        (dict(name="e", kind="categorical", classes=("a", "a")), "duplicate classes"),
        (dict(name="e", kind="multilabel", classes=("a;b", "c")), "may not contain ';'"),
        (dict(name="d", kind="dimensional", dimensions=("x",)), "needs a scale"),
        (dict(name="d", kind="dimensional", dimensions=("x",), scale=(5, 1)), "needs a scale"),
        (dict(name="d", kind="dimensional", dimensions=("x",), scale=(1, 5, 7)), "scale must be two numbers"),
        (dict(name="d", kind="dimensional", dimensions=("x",), scale=("low", "high")), "scale must be two numbers"),
        (dict(name="d", kind="dimensional", scale=(1, 5)), "needs dimensions"),
    ],
)
def test_label_space_rejects_bad_definitions(kwargs, pattern):
    with pytest.raises(CorpusError, match=pattern):
        LabelSpace(**kwargs)


def test_label_space_dict_round_trip_and_unknown_keys():
    for sp in (EMO, TAGS, AV):
        assert LabelSpace.from_dict(sp.to_dict()) == sp
    with pytest.raises(CorpusError, match=r"unknown keys \['colour'\]"):
        LabelSpace.from_dict({**EMO.to_dict(), "colour": "red"})


def test_encode_decode():
    r = pd.DataFrame({"emotion": ["hap", "ang"], "tags": ["hap; neu", "ang"], "arousal": [1.0, 7.0], "valence": [2.0, 3.0]},
                     index=[10, 11])
    assert EMO.encode(r).tolist() == [1, 0]
    assert EMO.decode(np.array([2, 0])) == ["neu", "ang"]
    y = TAGS.encode(r)
    assert y.dtype == np.float32 and y.tolist() == [[0, 1, 1], [1, 0, 0]]
    assert TAGS.decode(y) == ["hap;neu", "ang"]
    assert AV.encode(r).tolist() == [[1, 2], [7, 3]]
    with pytest.raises(CorpusError, match=r"label 'joy' \(rating row 11\)"):
        TAGS.encode(r.assign(tags=["hap", "ang;joy"]))
    with pytest.raises(CorpusError, match=r"label 'joy' \(rating row 10\)"):
        EMO.encode(r.assign(emotion=["joy", "ang"]))
    with pytest.raises(CorpusError, match="missing dimensional value in rating row 11"):
        AV.encode(r.assign(valence=[2.0, np.nan]))


def test_split_multilabel():
    assert split_multilabel(" a ; b;;") == ["a", "b"]
    assert split_multilabel(np.nan) == [] and split_multilabel(None) == []


def test_make_clips_types_and_missing_values():
    c = make_clips(pd.DataFrame({"clip_id": [1, 2], "path": ["/a.wav", "/b.wav"], "speaker": [3, 4],
                                 "split": ["train", np.nan], "gender": ["F", None], "duration": [1.5, 2.0]}))
    assert c.index.tolist() == ["1", "2"] and c.index.name == "clip_id"
    assert c.loc["1", "speaker"] == "3" and c.loc["2", "gender"] is None and c.loc["2", "split"] is None
    assert c["duration"].dtype.kind == "f"


def _corpus():
    clips = make_clips([{"clip_id": f"c{i}", "path": f"/a/c{i}.wav", "speaker": f"s{i % 2}"} for i in range(4)])
    r = make_ratings([
        {"clip_id": "c0", "annotator_id": "w1", "emotion": "ang", "arousal": 2.0, "valence": 3.0, "is_self": False},
        {"clip_id": "c0", "annotator_id": "F1", "emotion": "hap", "arousal": 5.0, "valence": 5.0, "is_self": True},
        {"clip_id": "c1", "annotator_id": "w1", "emotion": None, "arousal": 4.0, "valence": 4.0, "is_self": False},
        {"clip_id": "c2", "annotator_id": "w2", "emotion": "neu", "arousal": np.nan, "valence": np.nan, "is_self": False},
    ])
    return Corpus("mini", clips, r, {"emotion": EMO, "av": AV})


def test_corpus_accessors():
    c = _corpus().validate()
    assert c.space("av") is AV and c.space(kind="categorical") is EMO
    with pytest.raises(CorpusError, match=r"has no label space 'x'; it has \['av', 'emotion'\]"):
        c.space("x")
    with pytest.raises(CorpusError, match="name one label space"):
        c.space()
    assert c.ratings_in("emotion")["clip_id"].tolist() == ["c0", "c2"]
    assert len(c.ratings_in("emotion", include_self=True)) == 3
    assert c.ratings_in(AV)["clip_id"].tolist() == ["c0", "c1"]
    assert c.annotator_ids == ["F1", "w1", "w2"]
    s = c.subset(clips=["c0", "c1"], annotators=["w1"])
    assert s.clips.index.tolist() == ["c0", "c1"] and set(s.ratings["annotator_id"]) == {"w1"}
    assert len(c.ratings) == 4  # the original is untouched
    assert "clips=4" in repr(c) and "annotators=3" in repr(c)


@pytest.mark.parametrize(
    "edit, pattern",
    [
        (lambda c: c.ratings.loc[0, "emotion"] == 0 or c.ratings.__setitem__("emotion", ["joy", "hap", None, "neu"]),
         r"mini: label 'joy' of clip 'c0' by annotator 'w1' is not one of"),
        (lambda c: c.ratings.__setitem__("arousal", [2.0, 5.0, 9.0, np.nan]),
         r"mini: arousal value 9 of clip 'c1' by annotator 'w1' is off the scale 1–7"),
        (lambda c: c.ratings.__setitem__("valence", [3.0, 5.0, np.nan, np.nan]),
         r"mini: the rating of clip 'c1' by annotator 'w1' has arousal but lacks valence"),
        (lambda c: c.ratings.__setitem__("annotator_id", ["w1", "F1", " ", "w2"]),
         r"mini: empty annotator id in the rating of clip 'c1'"),
        (lambda c: c.ratings.__setitem__("clip_id", ["c0", "c0", "c1", "zz"]),
         r"mini: 1 rating\(s\) for clip\(s\) not in the clips table, e\.g\. clip 'zz' by annotator 'w2'"),
        (lambda c: c.ratings.__setitem__("annotator_id", ["w1", "w1", "w1", "w2"]),
         r"mini: annotator 'w1' rated clip 'c0' more than once in space 'emotion' \(first at row 0\)"),
        (lambda c: c.clips.__setitem__("speaker", ["s0", None, "s0", "s1"]), r"mini: clip 'c1' has no speaker"),
    ],
)
def test_in_memory_validation_names_the_culprit(edit, pattern):
    c = _corpus()
    edit(c)
    with pytest.raises(CorpusError, match=pattern):
        c.validate()


def test_duplicate_clip_ids_and_annotator_table():
    c = _corpus()
    c.clips = pd.concat([c.clips, c.clips.iloc[[1]]])
    with pytest.raises(CorpusError, match=r"duplicate clip id 'c1' \(first at row 1\)"):
        c.validate()
    c = _corpus()
    c.annotators = pd.DataFrame({"style": ["a", "b"]}, index=pd.Index(["w1", "w1"], name="annotator_id"))
    with pytest.raises(CorpusError, match=r"duplicate annotator id 'w1'"):
        c.validate()
    c.annotators = pd.DataFrame({"style": ["a"]}, index=pd.Index(["w1"], name="annotator_id"))
    with pytest.warns(PerserWarning, match=r"2 annotator\(s\) rate clips but are not in the annotator table \(e\.g\. F1, w2\)"):
        c.validate()


def test_missing_audio_check(tmp_path):
    c = _corpus()
    (tmp_path / "c0.wav").write_bytes(b"RIFF")
    c.clips["path"] = [str(tmp_path / f"c{i}.wav") for i in range(4)]
    c.validate()  # audio not checked by default
    with pytest.raises(CorpusError, match=r"3 clip\(s\) have no audio file, e\.g\. 'c1' \(.*c1\.wav\)"):
        c.validate(check_audio=True)


def test_threaded_audio_check_keeps_order(tmp_path):
    from perser.corpus.validate import _isfiles

    paths = []
    for i in range(50):
        p = tmp_path / f"{i}.wav"
        if i % 7:
            p.write_bytes(b"RIFF")
        paths.append(str(p))
    expect = [i % 7 != 0 for i in range(50)]
    assert _isfiles(np.array(paths, dtype=object), threads_from=0) == expect
    assert _isfiles(np.array(paths, dtype=object)) == expect
