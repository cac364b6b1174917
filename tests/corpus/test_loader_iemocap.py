"""IEMOCAP loader on trees written in the release's byte layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from perser import load_corpus
from perser.corpus import detect_format
from perser.corpus import iemocap
from perser.errors import ConfigError, CorpusError, PerserWarning
from perser.testing.corpora import assert_same_ratings, load_quietly, write_iemocap

T = "\t"
# two blocks of the real file (values of the documentation's examples), plus a male
# utterance in a female-led script dialog, a multi-label line and an "Other" answer
DOC = "\r\n".join(
    [
        "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]",
        "",
        f"[6.2901 - 8.2357]{T}Ses01F_impro01_F000{T}neu{T}[2.5000, 2.5000, 2.5000]",
        f"C-E2:{T}Neutral;{T}()",
        f"C-E3:{T}Neutral;{T}()",
        f"C-E4:{T}Neutral;{T}()",
        f"C-F1:{T}Neutral;{T}(curious)",
        f"A-E3:{T}val 3; act 2; dom  2;{T}()",
        f"A-E4:{T}val 2; act 3; dom  3;{T}(mildly aggravated but staying polite, attitude)",
        f"A-F1:{T}val 3; act 2; dom  1;{T}()",
        "",
        f"[140.2250 - 145.6000]{T}Ses01F_impro01_F019{T}ang{T}[1.5000, 4.0000, 4.5000]",
        f"C-E1:{T}Anger;{T}()",
        f"C-E3:{T}Anger;{T}()",
        f"C-E4:{T}Anger;{T}()",
        f"C-F1:{T}Anger;{T}()",
        f"A-E3:{T}val 2; act 4; dom  4;{T}()",
        f"A-E4:{T}val 1; act 4; dom  5;{T}(threatening, belligerent)",
        f"A-F1:{T}val 1; act 5; dom  5;{T}()",
        "",
        f"[150.0000 - 151.5000]{T}Ses01F_impro01_M020{T}xxx{T}[3.0000, 3.5000, 2.0000]",
        f"C-E1:{T}Neutral; Anger;{T}()",
        f"C-E2:{T}Other;{T}(bored)",
        f"C-E3:{T}Excited;{T}()",
        f"C-M1:{T}Frustration;{T}()",
        f"A-E1:{T}val 3; act 3;{T}()",
        f"A-E2:{T}val 3; act 4; dom  2;{T}()",
        "",
    ]
) + "\r\n"
DIALOG = "Ses01F_impro01"


def _wav(path: Path, seconds: float = 0.2) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.zeros(int(16000 * seconds), dtype=np.float32), 16000, subtype="PCM_16")


def _doc_tree(tmp_path: Path, text: str = DOC, wavs=("F000", "F019", "M020")) -> Path:
    root = tmp_path / "IEMOCAP_full_release"
    ev = root / "Session1" / "dialog" / "EmoEvaluation"
    ev.mkdir(parents=True)
    (ev / f"{DIALOG}.txt").write_bytes(text.encode("ascii"))
    for w in wavs:
        _wav(root / "Session1" / "sentences" / "wav" / DIALOG / f"{DIALOG}_{w}.wav")
    return root


def _rating(c, clip, ann, space):
    r = c.ratings_in(space, include_self=True)
    r = r[(r["clip_id"] == f"{DIALOG}_{clip}") & (r["annotator_id"] == ann)]
    assert len(r) == 1, (clip, ann, space, r)
    return r.iloc[0]


def test_documented_blocks_are_parsed_by_name(tmp_path):
    root = _doc_tree(tmp_path)
    with pytest.warns(PerserWarning, match="without 'dom'"):
        c = load_corpus(tmp_path)  # the folder holding IEMOCAP_full_release
    assert c.meta["format"] == "iemocap"
    assert set(c.label_spaces) == {"emotion", "emotions", "avd"}
    assert c.label_spaces["avd"].dimensions == ("arousal", "valence", "dominance")
    assert c.label_spaces["avd"].scale == (1.0, 5.0)
    # rater lines give val, act, dom: E4 of the second block rated val 1, act 4, dom 5
    r = _rating(c, "F019", "E4", "avd")
    assert (r["arousal"], r["valence"], r["dominance"]) == (4.0, 1.0, 5.0)
    # the summary line is [V, A, D]
    clip = c.clips.loc[f"{DIALOG}_F019"]
    assert (clip["release_valence"], clip["release_arousal"], clip["release_dominance"]) == (1.5, 4.0, 4.5)
    assert clip["release_emotion"] == "anger"
    assert pd.isna(c.clips.loc[f"{DIALOG}_M020", "release_emotion"])  # xxx: no majority
    assert clip["duration"] == pytest.approx(145.6 - 140.225)
    assert clip["path"] == str(root / "Session1" / "sentences" / "wav" / DIALOG / f"{DIALOG}_F019.wav")
    # speaker = session + the utterance's (last) gender letter, not the dialog's
    m = c.clips.loc[f"{DIALOG}_M020"]
    assert (m["speaker"], m["gender"], m["session"], m["fold"]) == ("Ses01M", "male", "Ses01", 1)
    assert c.clips.loc[f"{DIALOG}_F000", "speaker"] == "Ses01F"


def test_self_evaluations_kept_marked_and_left_out_by_default(tmp_path):
    _doc_tree(tmp_path)
    c = load_quietly(tmp_path)
    selfs = c.ratings[c.ratings["is_self"]]
    assert set(selfs["annotator_id"]) == {"Ses01/F1", "Ses01/M1"}
    assert len(selfs) == 2 + 2 + 1  # C-F1 x2, A-F1 x2, C-M1
    ext = c.ratings_in("emotion")
    assert not ext["annotator_id"].str.contains("/").any()
    f000 = ext[ext["clip_id"] == f"{DIALOG}_F000"]
    assert sorted(f000["annotator_id"]) == ["E2", "E3", "E4"]
    with_self = c.ratings_in("emotion", include_self=True)
    assert len(with_self) == len(ext) + 3
    # C and A rater sets differ and stay separate rows: E2 rated F000 categorically only
    assert len(c.ratings[(c.ratings["clip_id"] == f"{DIALOG}_F000") & (c.ratings["annotator_id"] == "E2")]) == 1
    assert sorted(c.ratings_in("avd").query("clip_id == @DIALOG + '_F000'")["annotator_id"]) == ["E3", "E4"]


def test_multilabel_other_and_missing_dom(tmp_path):
    _doc_tree(tmp_path)
    with pytest.warns(PerserWarning) as rec:
        c = load_corpus(tmp_path)
    r = _rating(c, "M020", "E1", "emotion")
    assert r["emotion"] == "neutral"
    assert _rating(c, "M020", "E1", "emotions")["emotions"] == "neutral;anger"
    row = c.ratings[(c.ratings["clip_id"] == f"{DIALOG}_M020") & (c.ratings["annotator_id"] == "E2")
                    & c.ratings["emotion"].notna()].iloc[0]
    assert (row["emotion"], row["other_text"]) == ("other", "bored")
    assert _rating(c, "M020", "E3", "emotion")["emotion"] == "excited"
    # "val 3; act 3;" without dom: the dimensional line is skipped (all three or none), counted
    assert c.ratings_in("avd").query("clip_id == @DIALOG + '_M020'")["annotator_id"].tolist() == ["E2"]
    assert c.meta["skipped"] == {"dimensional lines without 'dom' skipped": 1}
    msgs = [str(w.message) for w in rec]
    assert any("1 dimensional lines without 'dom' skipped" in m and f"{DIALOG}.txt:26" in m for m in msgs)
    enc = c.space("emotions").encode(c.ratings_in("emotions"))
    assert enc.shape[1] == 10 and enc.sum(axis=1).max() == 2


def test_fixture_round_trip_with_crlf_subfolders_and_quirks(tmp_path):
    fx = write_iemocap(tmp_path, n_sessions=2, n_dialogs=3, crlf=True, missing_audio=1, seed=3)
    assert b"\r\n" in (fx.root / "Session1/dialog/EmoEvaluation/Ses01F_impro01.txt").read_bytes()
    with pytest.warns(PerserWarning) as rec:
        c = load_corpus(fx)
    assert_same_ratings(c.ratings, fx.ratings, ["emotion", "emotions", "arousal", "valence", "dominance",
                                                 "is_self", "other_text"])
    kept = fx.clips[fx.clips["audio"]]
    assert sorted(c.clips.index) == sorted(kept.index)
    assert (c.clips.loc[kept.index, "speaker"] == kept["speaker"]).all()
    sk = c.meta["skipped"]
    assert sk["dimensional lines without 'dom' skipped"] == fx.quirks["missing_dom"] == 1
    assert sk["dimensional lines with 'act' off the 1-5 scale skipped"] == fx.quirks["off_scale"] == 1
    assert sk["macOS '._*' resource files ignored"] == 2  # one per session; never parsed
    assert any(k.startswith("clips without an audio file dropped") for k in sk)
    assert len(rec) == len(sk)
    # the per-evaluator Categorical/ and Attribute/ files are not read
    assert "neutral state" not in set(c.ratings["emotion"].dropna())


def test_malformed_line_names_file_and_line(tmp_path):
    lines = DOC.split("\r\n")
    lines.insert(5, "C-E5 Neutral")  # becomes line 6
    _doc_tree(tmp_path, "\r\n".join(lines))
    with pytest.raises(CorpusError, match=rf"{DIALOG}\.txt:6: cannot parse line 'C-E5 Neutral'"):
        load_corpus(tmp_path)


def test_rater_line_outside_a_block_and_bad_summary(tmp_path):
    lines = DOC.split("\r\n")
    lines.insert(2, f"C-E2:{T}Neutral;{T}()")
    _doc_tree(tmp_path / "a", "\r\n".join(lines))
    with pytest.raises(CorpusError, match=r":3: rater line .* not inside an utterance block"):
        load_corpus(tmp_path / "a")
    bad = DOC.replace("[6.2901 - 8.2357]", "[6.2901 8.2357]")
    _doc_tree(tmp_path / "b", bad)
    with pytest.raises(CorpusError, match=r":3: malformed summary line"):
        load_corpus(tmp_path / "b")


def test_unknown_label_errors_or_is_counted(tmp_path):
    _doc_tree(tmp_path, DOC.replace(f"C-E3:{T}Excited;", f"C-E3:{T}Bored;"))
    with pytest.raises(CorpusError, match=r"\.txt:24: categorical label 'Bored' is not one of"):
        load_corpus(tmp_path)
    c = load_quietly(tmp_path, unknown_labels="skip")
    assert c.meta["skipped"]["ratings with an unknown categorical label skipped"] == 1
    assert len(c.ratings_in("emotion").query("clip_id == @DIALOG + '_M020'")) == 2


def test_blank_and_off_scale_values_skip_the_line(tmp_path):
    text = DOC.replace("A-E3:\tval 3; act 2; dom  2;", "A-E3:\tval ; act 2; dom  2;")
    text = text.replace("A-E4:\tval 2; act 3; dom  3;", "A-E4:\tval 2; act 6; dom  3;")
    _doc_tree(tmp_path, text)
    c = load_quietly(tmp_path)
    assert c.ratings_in("avd").query("clip_id == @DIALOG + '_F000'").empty
    assert len(c.ratings_in("emotion").query("clip_id == @DIALOG + '_F000'")) == 3  # C lines unaffected
    assert c.meta["skipped"]["dimensional lines with a blank 'val' value skipped"] == 1
    assert c.meta["skipped"]["dimensional lines with 'act' off the 1-5 scale skipped"] == 1
    _doc_tree(tmp_path / "x", DOC.replace("A-E3:\tval 3; act 2; dom  2;", "A-E3:\tval x; act 2; dom  2;"))
    with pytest.raises(CorpusError, match=r":8: val value 'x' is not a number"):
        load_corpus(tmp_path / "x")


def test_annotator_scope(tmp_path):
    _doc_tree(tmp_path)
    raw = load_quietly(tmp_path)
    ses = load_quietly(tmp_path, annotator_scope="session")
    dlg = load_quietly(tmp_path, annotator_scope="dialog")
    assert "E3" in raw.annotator_ids
    assert "Ses01/E3" in ses.annotator_ids and "E3" not in ses.annotator_ids
    assert f"{DIALOG}/E3" in dlg.annotator_ids
    assert "Ses01/F1" in dlg.annotator_ids  # self-evaluations are always scoped per session
    with pytest.raises(ConfigError, match="annotator_scope"):
        load_corpus(tmp_path, annotator_scope="global")


def test_missing_audio_policies(tmp_path):
    _doc_tree(tmp_path, wavs=("F000", "F019"))
    with pytest.warns(PerserWarning, match=r"1 clips without an audio file dropped with their 5 rating"):
        c = load_corpus(tmp_path)
    assert f"{DIALOG}_M020" not in c.clips.index
    assert not (c.ratings["clip_id"] == f"{DIALOG}_M020").any()
    with pytest.raises(CorpusError, match=r"1 clip\(s\) have no audio file, e.g. Ses01F_impro01_M020"):
        load_corpus(tmp_path, missing_audio="error")
    kept = load_quietly(tmp_path, missing_audio="keep")
    assert f"{DIALOG}_M020" in kept.clips.index


def test_undecodable_file_names_line(tmp_path):
    _doc_tree(tmp_path)
    f = tmp_path / "IEMOCAP_full_release/Session1/dialog/EmoEvaluation" / f"{DIALOG}.txt"
    f.write_bytes(f.read_bytes().replace(b"(curious)", b"(curi\xffous)"))
    with pytest.raises(CorpusError, match=rf"{DIALOG}\.txt:7: not utf-8 text"):
        load_corpus(tmp_path)


def test_detection():
    assert not iemocap.detect(Path("/nonexistent"))


def test_detect_format_and_same_seed_same_bytes(tmp_path):
    a = write_iemocap(tmp_path / "a", seed=5)
    b = write_iemocap(tmp_path / "b", seed=5)
    c = write_iemocap(tmp_path / "c", seed=6)
    assert detect_format(a.root) == "iemocap" and detect_format(tmp_path / "a") == "iemocap"
    files = sorted(p.relative_to(a.root) for p in a.root.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b.root) for p in b.root.rglob("*") if p.is_file())
    assert all((a.root / p).read_bytes() == (b.root / p).read_bytes() for p in files)
    f = "Session1/dialog/EmoEvaluation/Ses01F_impro01.txt"
    assert (a.root / f).read_bytes() != (c.root / f).read_bytes()


def test_fixture_scales_for_a_small_experiment(tmp_path):
    fx = write_iemocap(tmp_path, n_sessions=3, n_dialogs=2, n_clips_per_dialog=6, n_annotators=8, seed=1)
    c = load_quietly(fx)
    assert len(c.clips) == 36
    assert c.clips["speaker"].nunique() == 6
    assert c.ratings_in("emotions")["annotator_id"].nunique() == 8
    # each external evaluator keeps one identity across sessions (raw ids)
    per = c.ratings_in("emotion").merge(c.clips[["session"]], left_on="clip_id", right_index=True)
    assert per.groupby("annotator_id")["session"].nunique().max() == 3
