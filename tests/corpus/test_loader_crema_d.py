"""CREMA-D loader on trees in the release layout (finishedResponses.csv, AudioWAV/)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from perser import load_corpus
from perser.corpus import detect_format
from perser.errors import ConfigError, CorpusError, PerserWarning
from perser.testing.corpora import assert_same_ratings, load_quietly, write_crema_d

HEADER = (
    '"",localid,pos,ans,ttr,queryType,numTries,clipNum,questNum,subType,clipName,sessionNums,'
    "respEmo,respLevel,dispEmo,dispVal,dispLevel"
)
# the three real rows quoted in the format notes (voice, then two face-only rows)
ROWS = [
    "1301,SSI_1160007759,33,A_18,9229,1,0,16,6,4,1001_IEO_DIS_HI,8,A,18,D,80.0,H",
    "6199,SSI_1090054680,233,A_44,1781,2,0,64,21,4,1001_DFA_DIS_XX,59,A,44,D,50.0,X",
    "10717,SSI_1110088512,274,D_57,3469,2,0,8,31,4,1001_IEO_ANG_LO,110,D,57,A,20.0,L",
]
CLIPS = ("1001_IEO_DIS_HI", "1001_DFA_DIS_XX", "1001_IEO_ANG_LO")


def _tree(root: Path, rows=ROWS, header=HEADER, clips=CLIPS) -> Path:
    (root / "AudioWAV").mkdir(parents=True, exist_ok=True)
    (root / "finishedResponses.csv").write_text("\n".join([header, *rows]) + "\n")
    for c in clips:
        sf.write(str(root / "AudioWAV" / f"{c}.wav"), np.zeros(1600, dtype=np.float32), 16000, subtype="PCM_16")
    return root


def test_documented_rows_voice_by_default_face_on_request(tmp_path):
    _tree(tmp_path)
    c = load_corpus(tmp_path)
    assert c.meta["format"] == "crema-d" and c.meta["modality"] == "voice"
    assert c.meta["responses_of_other_modalities"] == 2
    assert len(c.ratings) == 1
    r = c.ratings.iloc[0]
    assert (r["clip_id"], r["annotator_id"], r["emotion"], r["intensity"]) == (
        "1001_IEO_DIS_HI", "SSI_1160007759", "anger", 18.0)
    assert list(c.clips.index) == ["1001_IEO_DIS_HI"]
    k = c.clips.loc["1001_IEO_DIS_HI"]
    assert (k["speaker"], k["sentence"], k["intended_emotion"], k["intended_level"]) == ("1001", "IEO", "disgust", "HI")
    assert c.space("emotion").classes == ("anger", "disgust", "fear", "happy", "neutral", "sad")
    assert c.space("intensity").scale == (1.0, 100.0)
    face = load_corpus(tmp_path, modality="face")
    assert sorted(face.ratings["emotion"]) == ["anger", "disgust"] and face.meta["query_type"] == 2
    assert sorted(face.clips.index) == ["1001_DFA_DIS_XX", "1001_IEO_ANG_LO"]
    with pytest.raises(CorpusError, match=r"no audio-visual responses \(queryType 3\)"):
        load_corpus(tmp_path, modality="av")
    with pytest.raises(ConfigError, match="modality='smell'"):
        load_corpus(tmp_path, modality="smell")


@pytest.mark.parametrize("quoting", ["header", "r", "pandas"])
def test_fixture_round_trip_any_quoting(tmp_path, quoting):
    fx = write_crema_d(tmp_path, quoting=quoting, missing_audio=1, crlf=quoting == "r", seed=9)
    with pytest.warns(PerserWarning) as rec:
        c = load_corpus(fx)
    assert_same_ratings(c.ratings, fx.ratings, ["emotion", "intensity"])
    sk = c.meta["skipped"]
    assert sk["practice responses (clipNum 7443/7444) skipped"] == fx.quirks["practice"] == 2
    assert sk["responses with a non-numeric respLevel (intensity set to NaN)"] == fx.quirks["non_numeric_level"]
    assert sk["exact duplicate response rows dropped"] == fx.quirks["duplicate_responses"]
    assert any(k.startswith("clips without an audio file dropped") for k in sk)
    assert len(rec) == len(sk)
    kept = fx.clips[fx.clips["audio"]]
    assert sorted(c.clips.index) == sorted(kept.index)
    assert (c.clips.loc[kept.index, "speaker"] == kept["speaker"]).all()
    assert set(c.clips["gender"]) == {"male", "female"}  # from VideoDemographics.csv


def test_first_click_filter_is_explicit_and_counted(tmp_path):
    fx = write_crema_d(tmp_path, slow_first_click=3, seed=2)
    plain = load_quietly(fx)
    assert len(plain.ratings) == len(fx.ratings)
    with pytest.warns(PerserWarning, match=r"3 voice responses whose first click took over 10 s removed"):
        fast = load_corpus(fx, max_first_click_s=10)
    assert_same_ratings(fast.ratings, fx.ratings[~fx.ratings["slow"]], ["emotion", "intensity"])
    assert fast.meta["max_first_click_s"] == 10
    (fx.root / "finishedEmoResponses.csv").unlink()
    with pytest.raises(ConfigError, match="finishedEmoResponses.csv"):
        load_corpus(fx, max_first_click_s=10)


def test_lfs_pointers_are_refused_clearly(tmp_path):
    fx = write_crema_d(tmp_path / "a", lfs_pointers=True)
    with pytest.raises(CorpusError, match=r"are Git LFS pointers, not audio.*git lfs pull"):
        load_corpus(fx)
    _tree(tmp_path / "b")
    (tmp_path / "b" / "finishedResponses.csv").write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:" + "0" * 64 + "\nsize 4500000\n")
    with pytest.raises(CorpusError, match=r"finishedResponses\.csv is a Git LFS pointer"):
        load_corpus(tmp_path / "b")


def test_bad_values_name_the_line(tmp_path):
    _tree(tmp_path / "a", rows=[ROWS[0], ROWS[0].replace(",A,18,D,", ",Q,18,D,").replace("1301,", "1302,")])
    with pytest.raises(CorpusError, match=r"finishedResponses\.csv:3: respEmo 'Q' is not one of A D F H N S"):
        load_corpus(tmp_path / "a")
    _tree(tmp_path / "b", rows=[ROWS[0].replace(",1,0,16,", ",7,0,16,")])
    with pytest.raises(CorpusError, match=r"finishedResponses\.csv:2: queryType '7'"):
        load_corpus(tmp_path / "b")
    _tree(tmp_path / "c", header=HEADER.replace(",respEmo,", ",emotion,"))
    with pytest.raises(CorpusError, match=r"missing column\(s\) \['respEmo'\]"):
        load_corpus(tmp_path / "c")
    _tree(tmp_path / "d", rows=[ROWS[0].replace(",1001_IEO_DIS_HI,", ",1001-IEO,")])
    with pytest.raises(CorpusError, match=r":2: clipName '1001-IEO' is not like 1001_DFA_ANG_XX"):
        load_corpus(tmp_path / "d")


def test_malformed_and_non_utf8_responses_name_file_and_line(tmp_path):
    _tree(tmp_path / "a", rows=[ROWS[0], ROWS[1] + ",extra", ROWS[2]])
    with pytest.raises(CorpusError, match=r"finishedResponses\.csv:3: malformed CSV line: expected 17 fields, saw 18"):
        load_corpus(tmp_path / "a")
    _tree(tmp_path / "t", rows=[ROWS[0], ROWS[1].rsplit(",", 3)[0], ROWS[2]])  # a truncated line
    with pytest.raises(CorpusError, match=r"finishedResponses\.csv:3: malformed CSV line: expected 17 fields, saw 14"):
        load_corpus(tmp_path / "t")
    _tree(tmp_path / "b")
    f = tmp_path / "b" / "finishedResponses.csv"
    f.write_bytes("\n".join([HEADER, ROWS[0], ROWS[1].replace("SSI_1090054680", "SSI_109005468\xe9")]).encode("cp1252"))
    with pytest.raises(CorpusError, match=r"finishedResponses\.csv:3: not UTF-8 text \(byte 0xe9"):
        load_corpus(tmp_path / "b")


def test_empty_localid_names_the_line(tmp_path):
    _tree(tmp_path, rows=[ROWS[0], ROWS[0].replace("1301,SSI_1160007759,", "1302, ,")])
    with pytest.raises(CorpusError, match=r"finishedResponses\.csv:3: empty localid \(rater id\)"):
        load_corpus(tmp_path)


def test_audio_visual_responses_on_request(tmp_path):
    av = [ROWS[0].replace("1301,SSI_1160007759,33,A_18,9229,1,", "20001,SSI_1160007759,61,H_70,2100,3,"),
          ROWS[1].replace("6199,SSI_1090054680,233,A_44,1781,2,", "20002,SSI_1090054680,240,N_35,1500,3,")]
    av[0] = av[0].replace(",A,18,D,", ",H,70,D,")
    av[1] = av[1].replace(",A,44,D,", ",N,35,D,")
    _tree(tmp_path, rows=ROWS + av)
    for name in ("audio-visual", "av", 3):
        c = load_corpus(tmp_path, modality=name)
        assert c.meta["modality"] == "audio-visual" and c.meta["query_type"] == 3
        assert c.meta["responses_of_other_modalities"] == 3
        got = c.ratings.set_index("annotator_id")[["clip_id", "emotion", "intensity"]].sort_index()
        assert got.to_dict("index") == {
            "SSI_1090054680": {"clip_id": "1001_DFA_DIS_XX", "emotion": "neutral", "intensity": 35.0},
            "SSI_1160007759": {"clip_id": "1001_IEO_DIS_HI", "emotion": "happy", "intensity": 70.0},
        }
    voice = load_corpus(tmp_path)
    assert len(voice.ratings) == 1 and voice.meta["responses_of_other_modalities"] == 4


def test_non_numeric_and_off_scale_levels_are_counted(tmp_path):
    rows = [ROWS[0], ROWS[0].replace("1301,SSI_1160007759", "1400,SSI_1160007760").replace(",A,18,D,", ",A,abc,D,"),
            ROWS[0].replace("1301,SSI_1160007759", "1500,SSI_1160007761").replace(",A,18,D,", ",H,150,D,")]
    _tree(tmp_path, rows=rows)
    c = load_quietly(tmp_path)
    by = c.ratings.set_index("annotator_id")
    assert by.loc["SSI_1160007759", "intensity"] == 18.0
    assert np.isnan(by.loc["SSI_1160007760", "intensity"]) and np.isnan(by.loc["SSI_1160007761", "intensity"])
    assert by.loc["SSI_1160007761", "emotion"] == "happy"
    assert c.meta["skipped"]["responses with a non-numeric respLevel (intensity set to NaN)"] == 1
    assert c.meta["skipped"]["respLevel values off the 1-100 scale (intensity set to NaN)"] == 1


def test_detection_and_seed(tmp_path):
    a = write_crema_d(tmp_path / "a", seed=1)
    b = write_crema_d(tmp_path / "b", seed=1)
    assert detect_format(a.root) == "crema-d"
    f = "finishedResponses.csv"
    assert (a.root / f).read_bytes() == (b.root / f).read_bytes()
    assert (a.root / f).read_bytes() != (write_crema_d(tmp_path / "c", seed=2).root / f).read_bytes()
    head = (a.root / f).read_text().splitlines()[0]
    assert head.startswith('"",localid,pos,ans,ttr,queryType')
    idx = pd.read_csv(a.root / f).iloc[:, 0]
    assert idx.is_monotonic_increasing and (idx.diff().dropna() > 1).any()  # non-contiguous row numbers
