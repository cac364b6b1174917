"""The plain table format: round trip and every kind of bad input (each error names its culprit)."""

import os
import warnings

import pandas as pd
import pytest
import yaml

from perser import load_corpus
from perser.corpus import table
from perser.corpus.formats import detect_format
from perser.errors import CorpusError, PerserWarning

SPEC = {
    "name": "mini",
    "license": "CC-BY-4.0",
    "label_spaces": [
        {"name": "emotion", "kind": "categorical", "classes": ["ang", "hap", "neu"]},
        {"name": "tags", "kind": "multilabel", "classes": ["ang", "hap", "neu"]},
        {"name": "avd", "kind": "dimensional", "dimensions": ["arousal", "valence"], "scale": [1, 5]},
    ],
}
CLIPS = "clip_id,path,speaker,split\nc1,audio/c1.wav,s1,train\nc2,audio/c2.wav,s2,test\nc3,/abs/c3.wav,s1,train\n"
RATINGS = (
    "clip_id,annotator_id,emotion,tags,arousal,valence\n"
    "c1,w1,ang,ang;hap,4,2\n"
    "c1,w2,hap,hap,3,3\n"
    "c2,w1,neu,neu,2,3\n"
    "c3,w2,,,1.5,4\n"
)


def write_corpus(root, spec=SPEC, clips=CLIPS, ratings=RATINGS, annotators=None, audio=True):
    root.mkdir(parents=True, exist_ok=True)
    (root / "corpus.yaml").write_text(spec if isinstance(spec, str) else yaml.safe_dump(spec), encoding="utf-8")
    for name, text in (("clips.csv", clips), ("ratings.csv", ratings), ("annotators.csv", annotators)):
        if text is None:
            continue
        if isinstance(text, bytes):
            (root / name).write_bytes(text)
        else:
            (root / name).write_text(text, encoding="utf-8")
    if audio:
        (root / "audio").mkdir(exist_ok=True)
        for c in ("c1", "c2"):
            (root / "audio" / f"{c}.wav").write_bytes(b"RIFF")
    return root


def load(root, **kw):
    return table.load(root, check_audio=kw.pop("check_audio", False), **kw)


def test_load_reads_every_part(tmp_path):
    root = write_corpus(tmp_path / "c")
    assert detect_format(root) == "table"
    c = load(root)
    assert c.name == "mini" and c.meta["license"] == "CC-BY-4.0"
    assert c.clips.loc["c1", "path"] == str((root / "audio" / "c1.wav").resolve())
    assert c.clips.loc["c3", "path"] == "/abs/c3.wav"
    assert list(c.ratings_in("emotion")["emotion"]) == ["ang", "hap", "neu"]
    assert c.ratings["arousal"].dtype.kind == "f" and c.ratings.loc[3, "arousal"] == 1.5
    assert c.space("tags").kind == "multilabel"


def test_write_then_load_round_trips(tmp_path):
    c = load(write_corpus(tmp_path / "c", annotators="annotator_id,style\nw1,calm\nw2,loud\n"))
    out = table.write(c, tmp_path / "out")
    back = load(out)
    pd.testing.assert_frame_equal(back.clips, c.clips)
    pd.testing.assert_frame_equal(back.ratings, c.ratings)
    pd.testing.assert_frame_equal(back.annotators, c.annotators)
    assert back.label_spaces == c.label_spaces and back.meta["license"] == "CC-BY-4.0"
    with pytest.raises(CorpusError, match="exists"):
        table.write(c, out)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind


def test_missing_audio_names_the_clip_and_file(tmp_path):
    root = write_corpus(tmp_path / "c")
    with pytest.raises(CorpusError, match=r"1 clip\(s\) have no audio file, e\.g\. 'c3' \(/abs/c3\.wav\)"):
        load(root, check_audio=True)
    os.remove(root / "audio" / "c2.wav")
    with pytest.raises(CorpusError, match=r"2 clip\(s\) have no audio file, e\.g\. 'c2'.*c2\.wav"):
        load_corpus(root)  # checks audio by default


@pytest.mark.parametrize(
    "ratings, pattern",
    [
        # ratings for unknown clips
        (RATINGS + "c9,w1,ang,ang,3,3\n", r"ratings\.csv:6: 1 rating\(s\) for clip\(s\) not in the clips table, e\.g\. clip 'c9' by annotator 'w1'"),
        # labels outside the label space
        (RATINGS + "c2,w2,joy,hap,3,3\n", r"ratings\.csv:6: label 'joy' of clip 'c2' by annotator 'w2' is not one of"),
        (RATINGS + "c2,w2,hap,hap;joy,3,3\n", r"ratings\.csv:6: label 'joy' of clip 'c2' by annotator 'w2'.*space 'tags'"),
        (RATINGS + "c2,w3,hap, ; ,3,3\n", r"ratings\.csv:6: tags value ' ; ' of clip 'c2' by annotator 'w3' names no class"),
        # values off the scale, or not numbers
        (RATINGS + "c2,w2,hap,hap,3,7\n", r"ratings\.csv:6: valence value 7(\.0)? of clip 'c2' by annotator 'w2' is off the scale 1–5"),
        (RATINGS + "c2,w2,hap,hap,3,high\n", r"ratings\.csv:6: non-numeric valence value 'high' for clip 'c2' by annotator 'w2'"),
        # empty or duplicate annotator ids, duplicate ratings
        (RATINGS + "c2,,hap,hap,3,3\n", r"ratings\.csv:6: empty annotator id in the rating of clip 'c2'"),
        (RATINGS + "c2,  ,hap,hap,3,3\n", r"ratings\.csv:6: empty annotator id in the rating of clip 'c2'"),
        (RATINGS + "c1,w1,neu,neu,3,3\n", r"ratings\.csv:6: annotator 'w1' rated clip 'c1' more than once in space 'emotion' \(first at line 2\)"),
        # a line with no value, or only part of a dimensional rating
        (RATINGS + "c2,w3,,,,\n", r"ratings\.csv:6: the rating of clip 'c2' by annotator 'w3' has no value in any label space"),
        (RATINGS + "c2,w3,hap,,3,\n", r"ratings\.csv:6: the rating of clip 'c2' by annotator 'w3' has arousal but lacks valence"),
        # malformed lines
        (RATINGS + "c2,w3,hap,hap,3,3,9,9\n", r"ratings\.csv:6: malformed CSV line: expected 6 fields, saw 8"),
        (RATINGS + 'c2,w1,"neu,neu,2,3\nc3,w1,neu,neu,2,3\n', r"ratings\.csv:6: malformed CSV: a quoted field .* never closed"),
        # a truncated line (pandas would read the missing fields as empty cells: no dimensions)
        (RATINGS + "c2,w3,hap,hap\n", r"ratings\.csv:6: malformed CSV line: expected 6 fields, saw 4"),
        (RATINGS + "\nc2,w3,hap\nc3,w1,neu,neu,2,3\n", r"ratings\.csv:7: malformed CSV line: expected 6 fields, saw 3"),
        # missing columns
        ("clip_id,annotator_id,emotion,tags,arousal\nc1,w1,ang,ang,3\n", r"ratings\.csv: label space 'avd' needs column 'valence'"),
        ("clip_id,rater,emotion,tags,arousal,valence\nc1,w1,ang,ang,3,3\n", r"ratings\.csv: missing column 'annotator_id'"),
    ],
)
def test_bad_ratings_name_the_culprit(tmp_path, ratings, pattern):
    root = write_corpus(tmp_path / "c", ratings=ratings)
    with pytest.raises(CorpusError, match=pattern):
        load(root)


@pytest.mark.parametrize(
    "clips, pattern",
    [
        (CLIPS + "c1,audio/c1b.wav,s3,train\n", r"clips\.csv:5: duplicate clip id 'c1' \(first at line 2\)"),
        (CLIPS + "c4,audio/c4.wav,,train\n", r"clips\.csv:5: clip 'c4' has no speaker"),
        (CLIPS + "c4,,s1,train\n", r"clips\.csv:5: clip 'c4' has no path"),
        (CLIPS + ",audio/x.wav,s1,train\n", r"clips\.csv:5: empty clip id"),
        (CLIPS + "c4,audio/c4.wav,s1,train,extra,more\n", r"clips\.csv:5: malformed CSV line: expected 4 fields, saw 6"),
        (CLIPS + "c4,audio/c4.wav\n", r"clips\.csv:5: malformed CSV line: expected 4 fields, saw 2"),
        ("clip_id,path\nc1,a.wav\n", r"clips\.csv: missing column 'speaker'"),
        ("", r"clips\.csv: the file is empty"),
    ],
)
def test_bad_clips_name_the_culprit(tmp_path, clips, pattern):
    root = write_corpus(tmp_path / "c", clips=clips)
    with pytest.raises(CorpusError, match=pattern):
        load(root)


def test_non_utf8_files_are_named(tmp_path):
    latin1 = CLIPS.replace("s2", "Jürgen").encode("latin-1")
    with pytest.raises(CorpusError, match=r"clips\.csv:3: not UTF-8 text \(byte 0xfc at offset \d+\); re-save it as UTF-8"):
        load(write_corpus(tmp_path / "a", clips=latin1))
    with pytest.raises(CorpusError, match=r"ratings\.csv:3: not UTF-8"):
        load(write_corpus(tmp_path / "b", ratings=RATINGS.replace("w2", "wö").encode("cp1252")))
    spec = yaml.safe_dump(SPEC).replace("mini", "Müller").encode("latin-1")
    with pytest.raises(CorpusError, match=r"corpus\.yaml: not UTF-8"):
        load(_with_bytes(tmp_path / "c", spec))


def _with_bytes(root, spec_bytes):
    write_corpus(root)
    (root / "corpus.yaml").write_bytes(spec_bytes)
    return root


def test_label_spaces_as_a_mapping_read_like_the_list(tmp_path):
    as_map = {**SPEC, "label_spaces": {d["name"]: {k: v for k, v in d.items() if k != "name"} for d in SPEC["label_spaces"]}}
    a, b = load(write_corpus(tmp_path / "list")), load(write_corpus(tmp_path / "map", spec=as_map))
    assert a.label_spaces == b.label_spaces and sorted(b.label_spaces) == ["avd", "emotion", "tags"]
    assert (a.ratings_in("avd")[["arousal", "valence"]].to_numpy() == b.ratings_in("avd")[["arousal", "valence"]].to_numpy()).all()


@pytest.mark.parametrize(
    "spec, pattern",
    [
        ("name: x\nlabel_spaces: [\n", r"corpus\.yaml: malformed YAML"),
        ("- just\n- a list\n", r"corpus\.yaml: expected a mapping"),
        ("name: x\n", r"corpus\.yaml: no label_spaces declared"),
        ("name: x\nlabel_spaces: emotion\n", r"corpus\.yaml: label_spaces must be a list of mappings or a mapping"),
        ("name: x\nlabel_spaces:\n  e: categorical\n", r"corpus\.yaml: label space 'e' must be a mapping"),
        ("name: x\nlabel_spaces:\n  e: {name: f, kind: categorical, classes: [a, b]}\n", r"label space 'e' is also named 'f'"),
        ("name: x\nlabel_spaces:\n  - kind: categorical\n    classes: [a, b]\n", r"corpus\.yaml: label space 1 has no name"),
        ("name: x\nlabel_spaces:\n  - name: e\n    kind: ordinal\n    classes: [a, b]\n", r"corpus\.yaml: label space 'e': unknown kind 'ordinal'"),
        ("name: x\nlabel_spaces:\n  - name: e\n    kind: dimensional\n    dimensions: [a]\n", r"corpus\.yaml: label space 'e': a dimensional space needs a scale"),
        ("name: x\nlabel_spaces:\n  - name: e\n    kind: categorical\n    classes: [a]\n", r"corpus\.yaml: label space 'e': a categorical space needs at least 2 classes"),
        ("name: x\nlabel_spaces:\n  - name: e\n    kind: categorical\n    classes: [a, b]\n    colour: red\n", r"corpus\.yaml: label space 'e': unknown keys \['colour'\]"),
        ("name: x\nlabel_spaces:\n  - e\n", r"corpus\.yaml: label space 1 must be a mapping"),
        ("name: x\nlabel_spaces:\n  - {name: e, kind: categorical, classes: [a, b]}\n  - {name: e, kind: categorical, classes: [a, c]}\n",
         r"corpus\.yaml: label space 'e' is declared twice"),
        ("name: x\nlabel_spaces:\n  - {name: d, kind: dimensional, dimensions: [a], scale: [1, 5, 7]}\n", r"corpus\.yaml: label space 'd'.*scale"),
    ],
)
def test_malformed_corpus_yaml_is_named(tmp_path, spec, pattern):
    with pytest.raises(CorpusError, match=pattern):
        load(write_corpus(tmp_path / "c", spec=spec))


def test_annotators_file_duplicates_and_gaps(tmp_path):
    with pytest.raises(CorpusError, match=r"annotators\.csv:3: duplicate annotator id 'w1' \(first at line 2\)"):
        load(write_corpus(tmp_path / "a", annotators="annotator_id,style\nw1,a\nw1,b\nw2,c\n"))
    with pytest.raises(CorpusError, match=r"annotators\.csv:3: empty annotator id"):
        load(write_corpus(tmp_path / "b", annotators="annotator_id,style\nw1,a\n,b\nw2,c\n"))
    with pytest.warns(PerserWarning, match=r"1 annotator\(s\) rate clips but are not in annotators\.csv \(e\.g\. w2\)"):
        load(write_corpus(tmp_path / "c", annotators="annotator_id,style\nw1,a\n"))


def test_missing_files_are_named(tmp_path):
    root = write_corpus(tmp_path / "c")
    os.remove(root / "ratings.csv")
    with pytest.raises(CorpusError, match=r"missing file .*ratings\.csv"):
        load(root)


def test_is_self_values_are_checked(tmp_path):
    ok = RATINGS.replace("valence\n", "valence,is_self\n", 1).replace("3,3\n", "3,3,true\n").replace(",4,2\n", ",4,2,false\n")
    ok = ok.replace(",3,3\n", ",3,3,0\n").replace(",2,3\n", ",2,3,\n").replace(",1.5,4\n", ",1.5,4,1\n")
    c = load(write_corpus(tmp_path / "a", ratings=ok))
    assert c.ratings["is_self"].dtype == bool and c.ratings["is_self"].sum() >= 1
    bad = ok.replace(",1.5,4,1\n", ",1.5,4,maybe\n")
    with pytest.raises(CorpusError, match=r"ratings\.csv:5: is_self value 'maybe'"):
        load(write_corpus(tmp_path / "b", ratings=bad))


def test_clean_load_issues_no_warning(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load(write_corpus(tmp_path / "c", annotators="annotator_id,style\nw1,a\nw2,b\n"))


def test_blank_lines_are_skipped_and_line_numbers_stay_true(tmp_path):
    ratings = RATINGS.replace("c1,w2,hap", "\n\nc1,w2,hap") + "c2,w2,joy,hap,3,3\n"
    with pytest.raises(CorpusError, match=r"ratings\.csv:8: label 'joy' of clip 'c2'"):
        load(write_corpus(tmp_path / "a", ratings=ratings))
    c = load(write_corpus(tmp_path / "b", ratings=RATINGS.replace("c1,w2,hap", "\nc1,w2,hap") + "\n"))
    assert len(c.ratings) == 4


def test_a_label_column_holds_the_one_class_space(tmp_path):
    spec = {**SPEC, "label_spaces": [SPEC["label_spaces"][0], SPEC["label_spaces"][2]]}
    named = RATINGS.replace(",tags,", ",").replace(",ang;hap,", ",").replace(",hap,3", ",3").replace(",neu,2", ",2")
    named = named.replace(",,1.5", ",1.5")
    generic = named.replace("annotator_id,emotion,", "annotator_id,label,", 1)
    a = load(write_corpus(tmp_path / "a", spec=spec, ratings=named))
    b = load(write_corpus(tmp_path / "b", spec=spec, ratings=generic))
    pd.testing.assert_frame_equal(a.ratings, b.ratings)
    assert list(b.ratings_in("emotion")["emotion"]) == ["ang", "hap", "neu"] and "label" not in b.ratings
    # checked like the named column: a label outside the space names its line
    with pytest.raises(CorpusError, match=r"ratings\.csv:6: label 'joy' of clip 'c2' by annotator 'w2'"):
        load(write_corpus(tmp_path / "c", spec=spec, ratings=generic + "c2,w2,joy,3,3\n"))
    # a multilabel space alone may use it too
    tags = {**SPEC, "label_spaces": [SPEC["label_spaces"][1]]}
    t = load(write_corpus(tmp_path / "d", spec=tags, ratings="clip_id,annotator_id,label\nc1,w1,ang;hap\nc2,w2,neu\n"))
    assert list(t.ratings["tags"]) == ["ang;hap", "neu"]


@pytest.mark.parametrize(
    "spaces, header, pattern",
    [
        ([0, 1, 2], "clip_id,annotator_id,label,arousal,valence",
         r"ratings\.csv: a 'label' column is ambiguous with several class spaces \('emotion', 'tags'\)"),
        ([0, 2], "clip_id,annotator_id,label,emotion,arousal,valence",
         r"ratings\.csv: has both a 'label' and a 'emotion' column for label space 'emotion'"),
        ([2], "clip_id,annotator_id,label,arousal,valence",
         r"ratings\.csv: has a 'label' column, but corpus\.yaml declares no categorical or multilabel space"),
    ],
)
def test_an_ambiguous_label_column_is_an_error(tmp_path, spaces, header, pattern):
    spec = {**SPEC, "label_spaces": [SPEC["label_spaces"][i] for i in spaces]}
    n = header.count(",") + 1
    row = ",".join(["c1", "w1"] + ["ang" if h in ("label", "emotion") else "3" for h in header.split(",")[2:]])
    assert row.count(",") + 1 == n
    with pytest.raises(CorpusError, match=pattern):
        load(write_corpus(tmp_path / "c", spec=spec, ratings=f"{header}\n{row}\n"))


def test_unknown_corpus_yaml_keys_warn_and_licence_is_license(tmp_path):
    spec = {k: v for k, v in SPEC.items() if k != "license"}
    spec.update(licence="CC0-1.0", autor="me", citaton="x")
    with pytest.warns(PerserWarning, match=r"2 unknown key\(s\) in .*corpus\.yaml ignored .*\(e\.g\. 'autor', 'citaton'\)"):
        c = load(write_corpus(tmp_path / "a", spec=spec))
    assert c.meta["license"] == "CC0-1.0" and "licence" not in c.meta and "autor" not in c.meta
    back = table.write(c, tmp_path / "out")
    assert yaml.safe_load((back / "corpus.yaml").read_text())["license"] == "CC0-1.0"
    with warnings.catch_warnings():  # licence alone is no unknown key
        warnings.simplefilter("error")
        load(write_corpus(tmp_path / "b", spec={**SPEC, "licence": SPEC["license"]}))
    with pytest.raises(CorpusError, match=r"corpus\.yaml: license 'CC-BY-4\.0' and licence 'MIT' differ"):
        load(write_corpus(tmp_path / "c", spec={**SPEC, "licence": "MIT"}))
