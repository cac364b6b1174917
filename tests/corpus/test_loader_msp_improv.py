"""MSP-IMPROV loader on trees in the release layout (Evaluation.txt, inverted arousal)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from perser import load_corpus
from perser.corpus import detect_format, msp_improv
from perser.errors import CorpusError, PerserWarning
from perser.testing.corpora import assert_same_ratings, load_quietly, one_rating, write_msp_improv

# the documentation's illustrative block (space before the ";" after D; NaN D/N)
EVAL = (
    "UTD-IMPROV-S01A-F01-P-FM01.avi; A; A:2.600000; V:1.800000; D:3.200000 ; N:4.000000;\n"
    "r01a; Angry; Frustrated,Angry; A:2.000000; V:2.000000; D:3.000000; N:4.000000;\n"
    "r02b; Other; Annoyed; A:3.000000; V:2.000000; D:NaN; N:NaN;\n"
    "r03c; Happy; ; A:1.000000; V:5.000000; D:4.000000; N:3.000000;\n"
    "\n"
    "UTD-IMPROV-S02H-M03-T-MF02.avi; X; A:2.000000; V:4.000000; D:3.000000 ; N:3.000000;\n"
    "r01a; Neutral; ; A:5.000000; V:3.000000; D:3.000000; N:3.000000;\n"
    "r01a; Neutral; ; A:5.000000; V:3.000000; D:3.000000; N:3.000000;\n"
    "\n"
)
CLIP1 = "MSP-IMPROV-S01A-F01-P-FM01"
CLIP2 = "MSP-IMPROV-S02H-M03-T-MF02"
RATED = ["emotion", "secondary", "other_text", "arousal", "valence", "dominance"]


def _tree(root: Path, text: str = EVAL, audio_root: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "Evaluation.txt").write_text(text)
    base = root / audio_root if audio_root else root
    for sess, folder, scen, cid in ((1, "S01A", "P", CLIP1), (3, "S02H", "T", CLIP2)):
        p = base / f"session{sess}" / folder / scen / f"{cid}.wav"
        p.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(p), np.zeros(1600, dtype=np.float32), 16000, subtype="PCM_16")
        p.with_suffix(".avi").write_bytes(b"")
    return root


def test_documented_block_video_name_mapped_and_arousal_flipped(tmp_path):
    _tree(tmp_path)
    with pytest.warns(PerserWarning) as rec:
        c = load_corpus(tmp_path)
    assert c.meta["format"] == "msp-improv" and c.meta["arousal_flipped"] is True
    assert "6 - A" in c.meta["scales"]["avd"] and "6 - A" in msp_improv.__doc__
    assert sorted(c.clips.index) == [CLIP1, CLIP2]
    k = c.clips.loc[CLIP1]
    assert k["path"] == str(tmp_path / "session1" / "S01A" / "P" / f"{CLIP1}.wav")
    assert (k["speaker"], k["gender"], k["session"], k["fold"], k["scenario"]) == ("F01", "female", "session1", 1, "P")
    assert k["release_arousal"] == pytest.approx(6 - 2.6) and k["release_dominance"] == 3.2
    assert c.clips.loc[CLIP2, "speaker"] == "M03" and pd.isna(c.clips.loc[CLIP2, "release_emotion"])
    a = one_rating(c, CLIP1, "r01a")
    assert (a["emotion"], a["secondary"], a["arousal"], a["valence"], a["dominance"]) == (
        "angry", "frustrated;angry", 4.0, 2.0, 3.0)  # arousal 2 on disk (1 = high) is 4
    assert one_rating(c, CLIP1, "r03c")["arousal"] == 5.0
    o = one_rating(c, CLIP1, "r02b")
    assert (o["emotion"], o["other_text"]) == ("other", "Annoyed") and pd.isna(o["secondary"])
    # D:NaN: the line's A/V/D are dropped (all or none), its emotion kept; both counted
    assert o[["arousal", "valence", "dominance"]].isna().all()
    sk = c.meta["skipped"]
    assert sk["rater lines with dominance NaN"] == 1 and sk["rater lines with naturalness NaN"] == 1
    assert sk["rater lines missing one of arousal/valence/dominance (dimensions dropped, emotion kept)"] == 1
    # the repeated rater line is an exact copy: dropped and counted
    assert sk["exact duplicate rater rows dropped"] == 1
    assert len(c.ratings[c.ratings["clip_id"] == CLIP2]) == 1
    assert len(rec) == len(sk)


def test_flip_off_dominance_off_and_naturalness(tmp_path):
    _tree(tmp_path)
    raw = load_quietly(tmp_path, flip_arousal=False)
    assert raw.meta["arousal_flipped"] is False
    assert one_rating(raw, CLIP1, "r01a")["arousal"] == 2.0
    assert raw.clips.loc[CLIP1, "release_arousal"] == 2.6
    av = load_quietly(tmp_path, dominance=False, naturalness=True)
    assert av.space("avd").dimensions == ("arousal", "valence")
    o = one_rating(av, CLIP1, "r02b")
    assert (o["arousal"], o["valence"]) == (3.0, 2.0) and np.isnan(o["naturalness"])
    assert av.space("naturalness").scale == (1.0, 5.0)
    assert len(av.ratings_in("naturalness")) == 3


def test_fixture_round_trip_both_audio_roots(tmp_path):
    for audio_root in ("", "Audio"):
        fx = write_msp_improv(tmp_path / (audio_root or "plain"), audio_root=audio_root, missing_audio=1, crlf=True,
                              seed=7)
        with pytest.warns(PerserWarning):
            c = load_corpus(fx)
        assert_same_ratings(c.ratings, fx.ratings, RATED)
        kept = fx.clips[fx.clips["audio"]]
        assert sorted(c.clips.index) == sorted(kept.index)
        assert (c.clips.loc[kept.index, "speaker"] == kept["speaker"]).all()
        assert c.meta["skipped"]["exact duplicate rater rows dropped"] == fx.quirks["duplicate_rows"]
        assert (c.clips["path"].str.contains(f"/{audio_root}/session") if audio_root else
                ~c.clips["path"].str.contains("/Audio/")).all()


def test_conflicting_repeats_follow_the_policy(tmp_path):
    text = EVAL.replace(
        "r01a; Neutral; ; A:5.000000; V:3.000000; D:3.000000; N:3.000000;\n\n",
        "r01a; Neutral; ; A:3.000000; V:3.000000; D:3.000000; N:3.000000;\n\n",
    )
    _tree(tmp_path, text)
    first, last, mean = (load_quietly(tmp_path, duplicates=d) for d in ("first", "last", "mean"))
    assert [one_rating(x, CLIP2, "r01a")["arousal"] for x in (first, last, mean)] == [1.0, 3.0, 2.0]
    key = "conflicting duplicate rater rows for one (clip, annotator) resolved by duplicates='first'"
    assert first.meta["skipped"][key] == 1


def test_malformed_lines_name_file_and_line(tmp_path):
    bad = EVAL.replace("r03c; Happy; ; A:1.000000;", "r03c; Happy; A:1.000000;")
    _tree(tmp_path / "a", bad.replace("; N:3.000000;\n\nUTD", "; N:3.000000\n\nUTD"))
    with pytest.raises(CorpusError, match=r"Evaluation\.txt:4: cannot parse line"):
        load_corpus(tmp_path / "a")
    _tree(tmp_path / "b", "r01a; Angry; ; A:2.0; V:2.0; D:3.0; N:4.0;\n" + EVAL)
    with pytest.raises(CorpusError, match=r"Evaluation\.txt:1: rater line .* not inside an utterance block"):
        load_corpus(tmp_path / "b")
    _tree(tmp_path / "c", EVAL.replace("V:1.800000", "V:high"))
    with pytest.raises(CorpusError, match=r"Evaluation\.txt:1: V value 'high' is not a number"):
        load_corpus(tmp_path / "c")
    _tree(tmp_path / "d", EVAL.replace("r03c; Happy;", "r03c; Bored;"))
    with pytest.raises(CorpusError, match=r"Evaluation\.txt:4: primary emotion 'Bored' is not one of"):
        load_corpus(tmp_path / "d")


def test_bad_consensus_code_names_the_line(tmp_path):
    _tree(tmp_path, EVAL.replace("MF02.avi; X;", "MF02.avi; Z;"))
    with pytest.raises(CorpusError, match=r"Evaluation\.txt:6: consensus code 'Z' is not one of \['A', 'H', 'N', 'O', 'S', 'X'\]"):
        load_corpus(tmp_path)


def test_non_utf8_evaluation_names_file_and_line(tmp_path):
    _tree(tmp_path)
    (tmp_path / "Evaluation.txt").write_bytes(EVAL.replace("r03c; Happy; ;", "r03c; Happy; Ravi\xe9;").encode("latin-1"))
    with pytest.raises(CorpusError, match=r"Evaluation\.txt:4: not utf-8 text \(byte 0xe9"):
        load_corpus(tmp_path)


def test_missing_audio_and_detection(tmp_path):
    _tree(tmp_path)
    (tmp_path / "session3/S02H/T" / f"{CLIP2}.wav").unlink()
    assert detect_format(tmp_path) == "msp-improv"
    with pytest.warns(PerserWarning, match="1 clips without an audio file dropped with their 1 rating"):
        c = load_corpus(tmp_path)
    assert list(c.clips.index) == [CLIP1]
    with pytest.raises(CorpusError, match=f"no audio file, e.g. {CLIP2}"):
        load_corpus(tmp_path, missing_audio="error")


def test_secondary_multilabel_and_seed(tmp_path):
    fx = write_msp_improv(tmp_path / "a", seed=3, n_sessions=3, n_annotators=12)
    again = write_msp_improv(tmp_path / "b", seed=3, n_sessions=3, n_annotators=12)
    other = write_msp_improv(tmp_path / "c", seed=4, n_sessions=3, n_annotators=12)
    text = (fx.root / "Evaluation.txt").read_bytes()
    assert text == (again.root / "Evaluation.txt").read_bytes() != (other.root / "Evaluation.txt").read_bytes()
    c = load_quietly(fx, secondary=True)
    assert c.space("emotions").kind == "multilabel"
    em = c.ratings_in("emotions")
    assert (em["emotions"].str.split(";").str[0] == c.ratings.loc[em.index, "emotion"]).all()
    assert c.clips["speaker"].nunique() == 6 and c.clips["fold"].nunique() == 3
