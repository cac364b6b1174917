"""MSP-Podcast loader on trees in the release layouts (EmoDetail, v2.0 columns, JSON)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from perser import load_corpus
from perser.corpus import detect_format
from perser.errors import ConfigError, CorpusError, PerserWarning
from perser.testing.corpora import assert_same_ratings, load_quietly, one_rating, write_msp_podcast

CONSENSUS = (
    "FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set\n"
    "MSP-PODCAST_0001_0008.wav,N,4.2,4.4,4.6,127,Female,Train\n"
    "MSP-PODCAST_0002_0033.wav,X,3.8,3.6,4.0,Unknown,Unknown,Development\n"
)
# the documentation's illustrative EmoDetail rows (CSV-quoted when the field has commas)
EMODETAIL = (
    "FileName,EmoDetail\n"
    'MSP-PODCAST_0001_0008.wav,"WORKER00000123; Neutral; Neutral,Concerned; A:4.0; V:4.0; D:4.0;"\n'
    "MSP-PODCAST_0001_0008.wav,WORKER00000456; Happy; ; A:5.0; V:6.0; D:5.0;\n"
    'MSP-PODCAST_0001_0008.wav,"WORKER00000789; Other-bored; Frustrated,Other-tired; A:2.0; V:3.0; D:4.0;"\n'
    'MSP-PODCAST_0002_0033.wav,"WORKER00000123; Other-bored; a bit; Sad; A:3.0; V:2.0; D:6.0;"\n'
    "MSP-PODCAST_0002_0033.wav,WORKER00000456; Sad; ; A:nan; V:nan; D:nan;\n"
)
RATED = ["emotion", "secondary", "other_text", "arousal", "valence", "dominance"]


def _tree(tmp_path: Path, detailed: str = EMODETAIL, consensus: str = CONSENSUS, label_dir="Labels",
          consensus_name="labels_consensus.csv", audio_dir="Audios", detailed_name="labels_detailed.csv") -> Path:
    ldir = tmp_path / label_dir
    ldir.mkdir(parents=True)
    (ldir / consensus_name).write_text(consensus)
    if detailed is not None:
        (ldir / detailed_name).write_text(detailed)
    for name in ("MSP-PODCAST_0001_0008", "MSP-PODCAST_0002_0033"):
        p = tmp_path / audio_dir / f"{name}.wav"
        p.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(p), np.zeros(1600, dtype=np.float32), 16000, subtype="PCM_16")
    return tmp_path


def test_documented_emodetail_rows(tmp_path):
    _tree(tmp_path)
    with pytest.warns(PerserWarning) as rec:
        c = load_corpus(tmp_path)
    assert c.meta["format"] == "msp-podcast" and c.meta["detailed_form"] == "emodetail"
    assert c.space("avd").scale == (1.0, 7.0)
    a = one_rating(c, "MSP-PODCAST_0001_0008", "WORKER00000123")
    assert (a["emotion"], a["secondary"], a["arousal"], a["valence"], a["dominance"]) == (
        "neutral", "neutral;concerned", 4.0, 4.0, 4.0)
    b = one_rating(c, "MSP-PODCAST_0001_0008", "WORKER00000456")
    assert b["emotion"] == "happy" and pd.isna(b["secondary"]) and (b["arousal"], b["valence"]) == (5.0, 6.0)
    o = one_rating(c, "MSP-PODCAST_0001_0008", "WORKER00000789")
    # "Other-tired" among the secondary answers is the secondary class other, its text kept
    assert (o["emotion"], o["secondary"], o["other_text"]) == ("other", "frustrated;other", "bored; tired")
    # free "Other-" text holding "; " stays with the primary answer
    s = one_rating(c, "MSP-PODCAST_0002_0033", "WORKER00000123")
    assert (s["emotion"], s["other_text"], s["secondary"], s["dominance"]) == ("other", "bored; a bit", "sad", 6.0)
    n = one_rating(c, "MSP-PODCAST_0002_0033", "WORKER00000456")
    assert n["emotion"] == "sad" and np.isnan(n["arousal"])
    assert c.meta["skipped"]["ratings with NaN A/V/D values (dimensions dropped, emotion kept)"] == 1
    # consensus: split, speaker as a string, Unknown speaker and gender
    k = c.clips.loc["MSP-PODCAST_0001_0008"]
    assert (k["speaker"], k["gender"], k["split"], k["release_emotion"]) == ("127", "female", "train", "neutral")
    assert (k["release_arousal"], k["release_valence"], k["release_dominance"]) == (4.2, 4.4, 4.6)
    u = c.clips.loc["MSP-PODCAST_0002_0033"]
    assert (u["speaker"], u["split"]) == ("unknown-0002", "dev") and pd.isna(u["gender"])
    assert any("Unknown speaker" in str(w.message) for w in rec)


@pytest.mark.parametrize("form", ["emodetail", "v2", "json"])
def test_fixture_round_trip_each_form(tmp_path, form):
    fx = write_msp_podcast(tmp_path, form=form, missing_audio=1, seed=11)
    with pytest.warns(PerserWarning):
        c = load_corpus(fx)
    assert c.meta["detailed_form"] == form
    assert_same_ratings(c.ratings, fx.ratings, RATED)
    kept = fx.clips[fx.clips["audio"]]
    assert sorted(c.clips.index) == sorted(kept.index)
    sk = c.meta["skipped"]
    assert sk["segments with an Unknown speaker given a per-podcast pseudo speaker 'unknown-<podcast>'"] == \
        fx.quirks["unknown_speaker"]
    if form != "json":
        assert sk["exact duplicate worker rows dropped"] == fx.quirks["exact_duplicates"]
        key = "conflicting duplicate worker rows for one (clip, annotator) resolved by duplicates='first'"
        assert sk[key] == fx.quirks["duplicate_raters"]
    assert c.clips["split"].isin(["train", "dev", "test1", "test2"]).all()
    assert c.ratings["annotator_id"].str.fullmatch(r"WORKER\d{8}").all()


def test_v2_columns_selected_by_name(tmp_path):
    fx = write_msp_podcast(tmp_path, form="v2", seed=2)
    f = fx.root / "Labels" / "labels_detailed.csv"
    df = pd.read_csv(f, dtype=str, keep_default_na=False)
    df[["EmoDom", "WorkerID", "EmoClass_Second", "FileName", "EmoVal", "EmoClass_Major", "EmoAct"]].to_csv(
        f, index=False)
    c = load_quietly(fx)
    assert_same_ratings(c.ratings, fx.ratings, RATED)


def test_release_variants_labels_concensus_validation_audio_16khz(tmp_path):
    fx = write_msp_podcast(tmp_path, label_dir="labels", consensus_name="labels_concensus.csv",
                           audio_dir="audio_16kHz", dev_name="Validation", seed=4)
    assert detect_format(fx.root) == "msp-podcast"
    c = load_quietly(fx)
    assert "dev" in set(c.clips["split"])
    assert c.clips["path"].str.contains("/audio_16kHz/").all()
    assert_same_ratings(c.ratings, fx.ratings, RATED)
    fx2 = write_msp_podcast(tmp_path / "j", consensus_name="labels_consensus.json", label_dir="label", seed=4)
    c2 = load_quietly(fx2)
    pd.testing.assert_series_equal(c2.clips["split"].sort_index(), c.clips["split"].sort_index(),
                                   check_dtype=False)


def test_duplicate_policies(tmp_path):
    dup = EMODETAIL + "MSP-PODCAST_0001_0008.wav,WORKER00000456; Happy; ; A:7.0; V:6.0; D:5.0;\n"
    _tree(tmp_path, dup)
    key = "conflicting duplicate worker rows for one (clip, annotator) resolved by duplicates={!r}"
    first = load_quietly(tmp_path)
    assert one_rating(first, "MSP-PODCAST_0001_0008", "WORKER00000456")["arousal"] == 5.0
    assert first.meta["skipped"][key.format("first")] == 1
    last = load_quietly(tmp_path, duplicates="last")
    assert one_rating(last, "MSP-PODCAST_0001_0008", "WORKER00000456")["arousal"] == 7.0
    mean = load_quietly(tmp_path, duplicates="mean")
    assert one_rating(mean, "MSP-PODCAST_0001_0008", "WORKER00000456")["arousal"] == 6.0
    assert mean.meta["duplicates"] == "mean"
    with pytest.raises(ConfigError, match="duplicates"):
        load_corpus(tmp_path, duplicates="keep")


def test_malformed_emodetail_names_file_and_line(tmp_path):
    bad = EMODETAIL.replace("WORKER00000456; Sad; ; A:nan; V:nan; D:nan;", "WORKER00000456; Sad; A:3")
    _tree(tmp_path, bad)
    with pytest.raises(CorpusError, match=r"labels_detailed\.csv:6: cannot parse EmoDetail"):
        load_corpus(tmp_path)


def test_malformed_csv_lines_name_file_and_line(tmp_path):
    # an EmoDetail holding commas but not CSV-quoted splits into too many fields
    unquoted = EMODETAIL.replace('"WORKER00000789; Other-bored; Frustrated,Other-tired; A:2.0; V:3.0; D:4.0;"',
                                 "WORKER00000789; Other-bored; Frustrated,Other-tired; A:2.0; V:3.0; D:4.0;")
    _tree(tmp_path / "a", unquoted)
    with pytest.raises(CorpusError, match=r"labels_detailed\.csv:4: malformed CSV line: expected 2 fields, saw 3"):
        load_corpus(tmp_path / "a")
    _tree(tmp_path / "b", consensus=CONSENSUS + "MSP-PODCAST_0003_0001.wav,N,4,4,4,12,Male,Train,extra\n")
    with pytest.raises(CorpusError, match=r"labels_consensus\.csv:4: malformed CSV line: expected 8 fields, saw 9"):
        load_corpus(tmp_path / "b")
    _tree(tmp_path / "c", consensus=CONSENSUS.replace("127,Female", '"127,Female'))
    with pytest.raises(CorpusError, match=r"labels_consensus\.csv:2: malformed CSV: a quoted field .* never closed"):
        load_corpus(tmp_path / "c")


def test_non_utf8_labels_name_the_file(tmp_path):
    _tree(tmp_path / "a")
    f = tmp_path / "a" / "Labels" / "labels_detailed.csv"
    f.write_bytes(EMODETAIL.replace("Other-bored; a bit", "Other-gêné; a bit").encode("latin-1"))
    with pytest.raises(CorpusError, match=r"labels_detailed\.csv:5: not UTF-8 text \(byte 0xea at offset \d+\)"):
        load_corpus(tmp_path / "a")
    _tree(tmp_path / "b")
    f = tmp_path / "b" / "Labels" / "labels_consensus.csv"
    f.write_bytes(CONSENSUS.replace("Unknown,Unknown", "Unknown,Inconnu\xe9").encode("latin-1"))
    with pytest.raises(CorpusError, match=r"labels_consensus\.csv:3: not UTF-8 text"):
        load_corpus(tmp_path / "b")


def test_unknown_primary_and_unknown_segment(tmp_path):
    _tree(tmp_path / "a", EMODETAIL.replace("WORKER00000456; Happy;", "WORKER00000456; Joyful;"))
    with pytest.raises(CorpusError, match=r"labels_detailed\.csv:3: primary emotion 'Joyful' is not one of"):
        load_corpus(tmp_path / "a")
    c = load_quietly(tmp_path / "a", unknown_labels="skip")
    assert c.meta["skipped"]["ratings with an unknown primary emotion skipped"] == 1
    extra = EMODETAIL + "MSP-PODCAST_0003_0001.wav,WORKER00000456; Sad; ; A:1.0; V:1.0; D:1.0;\n"
    _tree(tmp_path / "b", extra)
    with pytest.raises(CorpusError, match=r":7: rating of segment 'MSP-PODCAST_0003_0001', which "):
        load_corpus(tmp_path / "b")
    c = load_quietly(tmp_path / "b", unknown_clips="skip")
    assert c.meta["skipped"]["ratings of segments not in the consensus file skipped"] == 1


def test_off_scale_values_and_bad_split(tmp_path):
    _tree(tmp_path / "a", EMODETAIL.replace("A:5.0; V:6.0", "A:9.0; V:6.0"))
    c = load_quietly(tmp_path / "a")
    r = one_rating(c, "MSP-PODCAST_0001_0008", "WORKER00000456")
    assert r["emotion"] == "happy" and r[["arousal", "valence", "dominance"]].isna().all()
    assert c.meta["skipped"]["A values off the 1-7 scale (treated as NaN)"] == 1
    _tree(tmp_path / "b", consensus=CONSENSUS.replace(",Train", ",Training"))
    with pytest.raises(CorpusError, match=r"labels_consensus\.csv:2: Split_Set 'Training'"):
        load_corpus(tmp_path / "b")


def test_fractional_worker_values_are_counted_not_truncated(tmp_path):
    # workers answer on an integer 1-7 scale; 4.5 is no answer on it (int(float(x)) would silently give 4)
    _tree(tmp_path, EMODETAIL.replace("A:5.0; V:6.0; D:5.0;", "A:5.0; V:4.5; D:5.0;"))
    c = load_quietly(tmp_path)
    r = one_rating(c, "MSP-PODCAST_0001_0008", "WORKER00000456")
    assert r["emotion"] == "happy" and r[["arousal", "valence", "dominance"]].isna().all()
    assert c.meta["skipped"]["V values that are not whole numbers on the 1-7 scale (treated as NaN)"] == 1
    assert one_rating(c, "MSP-PODCAST_0001_0008", "WORKER00000123")["valence"] == 4.0  # 4.0 is a whole answer
    with pytest.warns(PerserWarning, match=r"1 V values that are not whole numbers .*4\.5 at .*labels_detailed\.csv:3"):
        load_corpus(tmp_path)


def test_empty_worker_id_names_the_line(tmp_path):
    v2 = ("FileName,WorkerID,EmoClass_Major,EmoClass_Second,EmoAct,EmoVal,EmoDom\n"
          "MSP-PODCAST_0001_0008.wav,WORKER00000123,Neutral,,4,4,4\n"
          "MSP-PODCAST_0002_0033.wav, ,Sad,,2,2,2\n")
    _tree(tmp_path / "a", v2)
    with pytest.raises(CorpusError, match=r"labels_detailed\.csv:3: empty worker id"):
        load_corpus(tmp_path / "a")
    obj = {"MSP-PODCAST_0001_0008.wav": {"Workers": [{"EmoClass_Major": "Sad", "EmoAct": "2", "EmoVal": "2",
                                                       "EmoDom": "2"}]}}
    _tree(tmp_path / "b", detailed=json.dumps(obj), detailed_name="labels_detailed.json")
    with pytest.raises(CorpusError, match=r"labels_detailed\.json \['MSP-PODCAST_0001_0008\.wav'\]\[''\]: empty worker id"):
        load_corpus(tmp_path / "b")


def test_malformed_json_and_a_segment_listed_twice(tmp_path):
    _tree(tmp_path / "a", detailed='{"MSP-PODCAST_0001_0008.wav": {\n  "WORKER00000123": {"EmoAct": 4,,}\n}}\n',
          detailed_name="labels_detailed.json")
    with pytest.raises(CorpusError, match=r"labels_detailed\.json:2: malformed JSON"):
        load_corpus(tmp_path / "a")
    _tree(tmp_path / "b", detailed=json.dumps(["not", "an", "object"]), detailed_name="labels_detailed.json")
    with pytest.raises(CorpusError, match=r"labels_detailed\.json: expected an object keyed by file name"):
        load_corpus(tmp_path / "b")
    _tree(tmp_path / "c", consensus=CONSENSUS + "MSP-PODCAST_0001_0008.wav,H,5,5,5,127,Female,Train\n")
    with pytest.raises(CorpusError, match=r"labels_consensus\.csv:4: segment 'MSP-PODCAST_0001_0008' is listed twice"):
        load_corpus(tmp_path / "c")


def test_json_workers_list_form(tmp_path):
    # the MSP-Face style: {"file": {"Workers": [{"Name": ..., values as strings}]}}
    obj = {
        "MSP-PODCAST_0001_0008.wav": {"Workers": [
            {"Name": "WORKER0000013", "EmoClass_Major": "Happy", "EmoClass_Second": "Amused,Excited",
             "EmoAct": "6", "EmoVal": "7", "EmoDom": "5"},
            {"Name": "WORKER0000014", "EmoClass_Major": "Other-sleepy", "EmoClass_Second": "",
             "EmoAct": "2", "EmoVal": "4", "EmoDom": "3"},
        ]},
        "MSP-PODCAST_0002_0033.wav": {"Workers": [
            {"Name": "WORKER0000013", "EmoClass_Major": "Sad", "EmoAct": "2.0", "EmoVal": "1", "EmoDom": "2"},
        ]},
    }
    _tree(tmp_path, detailed=json.dumps(obj), detailed_name="labels_detailed.json")
    c = load_quietly(tmp_path)
    assert c.meta["detailed_form"] == "json" and len(c.ratings) == 3
    h = one_rating(c, "MSP-PODCAST_0001_0008", "WORKER0000013")  # leading zeros kept
    assert (h["emotion"], h["secondary"], h["arousal"], h["valence"], h["dominance"]) == (
        "happy", "amused;excited", 6.0, 7.0, 5.0)
    o = one_rating(c, "MSP-PODCAST_0001_0008", "WORKER0000014")
    assert (o["emotion"], o["other_text"]) == ("other", "sleepy") and pd.isna(o["secondary"])
    assert one_rating(c, "MSP-PODCAST_0002_0033", "WORKER0000013")["arousal"] == 2.0


def test_v16_workers_columns(tmp_path):
    fx = write_msp_podcast(tmp_path, form="v2", seed=5)
    f = fx.root / "Labels" / "labels_detailed.csv"
    df = pd.read_csv(f, dtype=str, keep_default_na=False).rename(columns={"WorkerID": "Workers"})
    df.to_csv(f, index=False)
    c = load_quietly(fx)
    assert c.meta["detailed_form"] == "v1.6"
    assert_same_ratings(c.ratings, fx.ratings, RATED)
    df.drop(columns="Workers").to_csv(f, index=False)
    with pytest.raises(CorpusError, match=r"unrecognised detailed-labels header.*missing \['WorkerID'\]"):
        load_corpus(fx)


def test_secondary_multilabel_space(tmp_path):
    _tree(tmp_path)
    c = load_quietly(tmp_path, secondary=True)
    assert c.space("emotions").kind == "multilabel" and "concerned" in c.space("emotions").classes
    r = one_rating(c, "MSP-PODCAST_0001_0008", "WORKER00000789")
    assert r["emotions"] == "other;frustrated"
    assert c.space("emotions").encode(c.ratings_in("emotions")).sum() >= 5
    assert "emotions" not in load_quietly(tmp_path).label_spaces


def test_json_detailed_and_missing_audio(tmp_path):
    obj = {
        "MSP-PODCAST_0001_0008.wav": {
            "WORKER00000123": {"EmoClass_Major": "Angry", "EmoClass_Second": "Annoyed,Frustrated",
                               "EmoAct": "6", "EmoVal": 2.0, "EmoDom": 5},
        },
        "MSP-PODCAST_0002_0033.wav": {
            "WORKER00000123": {"EmoClass_Major": "Neutral", "EmoClass_Second": "", "EmoAct": 4, "EmoVal": 4,
                               "EmoDom": None},
        },
    }
    _tree(tmp_path, detailed=json.dumps(obj), detailed_name="labels_detailed.json")
    (tmp_path / "Audios" / "MSP-PODCAST_0002_0033.wav").unlink()  # like MSP-PODCAST_1909_1017 in v2.0
    with pytest.warns(PerserWarning, match="1 clips without an audio file dropped with their 1 rating"):
        c = load_corpus(tmp_path)
    assert c.meta["detailed_form"] == "json"
    r = one_rating(c, "MSP-PODCAST_0001_0008", "WORKER00000123")
    assert (r["emotion"], r["secondary"], r["arousal"], r["valence"]) == ("angry", "annoyed;frustrated", 6.0, 2.0)
    assert list(c.clips.index) == ["MSP-PODCAST_0001_0008"]
    with pytest.raises(CorpusError, match="no audio file"):
        load_corpus(tmp_path, missing_audio="error")


def test_not_detected_without_consensus(tmp_path):
    (tmp_path / "Labels").mkdir()
    with pytest.raises(CorpusError, match="could not recognise"):
        detect_format(tmp_path)


def test_sizes_and_seed(tmp_path):
    a = write_msp_podcast(tmp_path / "a", n_clips=60, n_annotators=20, ratings_per_clip=6, seed=1)
    b = write_msp_podcast(tmp_path / "b", n_clips=60, n_annotators=20, ratings_per_clip=6, seed=1)
    c = write_msp_podcast(tmp_path / "c", n_clips=60, n_annotators=20, ratings_per_clip=6, seed=2)
    f = "Labels/labels_detailed.csv"
    assert (a.root / f).read_bytes() == (b.root / f).read_bytes() != (c.root / f).read_bytes()
    k = load_quietly(a)
    counts = k.ratings["annotator_id"].value_counts()
    assert counts.index.nunique() == 20 and counts.max() > 2 * counts.min()  # long-tailed
