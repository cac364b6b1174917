"""MuSE from the derived per-annotator file (corpus-formats §5)."""

from __future__ import annotations

import pandas as pd
import pytest

from perser.corpus import load_corpus
from perser.corpus.formats import detect_format
from perser.errors import CorpusError
from perser.testing.corpora import assert_same_ratings, load_quietly
from perser.testing.corpora import write_muse


@pytest.mark.parametrize("style", ["python", "semicolon"])
def test_muse_ratings_equal_the_written_ones(tmp_path, style):
    fx = write_muse(tmp_path / "m", list_style=style, missing_audio=2)
    assert detect_format(fx.root) == "muse"
    with pytest.warns(Warning, match="without an audio file"):
        c = load_corpus(fx.root)
    sp = c.space("avd")
    assert sp.dimensions == ("arousal", "valence") and sp.scale == (1.0, 9.0)
    assert_same_ratings(c.ratings, fx.ratings, ["arousal", "valence", "is_self"])
    assert c.ratings["is_self"].sum() == len(fx.clips) - 2  # one self report per kept clip
    assert set(c.clips["speaker"]) == set(fx.clips["speaker"])
    assert set(c.clips["stress"]) == {"stressed", "not_stressed"}
    assert c.meta["skipped"]


def test_muse_self_reports_can_be_dropped(tmp_path):
    fx = write_muse(tmp_path / "m")
    c = load_quietly(fx.root, self_reports="drop")
    assert not c.ratings["is_self"].any()
    assert not c.ratings["annotator_id"].str.startswith("self_report").any()


def test_muse_without_the_annotator_file_is_a_named_error(tmp_path):
    fx = write_muse(tmp_path / "m", annotators_file=False)
    with pytest.raises(CorpusError, match="muse_annotators.csv.*rater ids|rater ids.*muse_annotators.csv"):
        load_corpus(fx.root, format="muse")


def test_muse_annotator_file_elsewhere(tmp_path):
    fx = write_muse(tmp_path / "m")
    moved = tmp_path / "private" / "ann.csv"
    moved.parent.mkdir()
    (fx.root / "muse_annotators.csv").rename(moved)
    c = load_quietly(fx.root, format="muse", annotators_file=str(moved))
    assert len(c.ratings) == len(fx.ratings)


@pytest.mark.parametrize("change,match", [
    (lambda df: df.assign(annotators=df["annotators"].str.replace(r", '[^']*'\]$", "]", regex=True)), "equally long"),
    (lambda df: df.assign(soft_act_labels=df["soft_act_labels"].str.replace("[", "[12, ", regex=False),
                          annotators=df["annotators"].str.replace("[", "['AX', ", regex=False),
                          soft_val_labels=df["soft_val_labels"].str.replace("[", "[3, ", regex=False)),
     "outside the scale 1-9"),
    (lambda df: df.drop(columns="soft_val_labels"), "missing column"),
])
def test_muse_bad_lines_are_errors_naming_the_line(tmp_path, change, match):
    fx = write_muse(tmp_path / "m")
    f = fx.root / "muse_annotators.csv"
    change(pd.read_csv(f, dtype=str)).to_csv(f, index=False)
    with pytest.raises(CorpusError, match=match) as e:
        load_corpus(fx.root, format="muse")
    assert "muse_annotators.csv" in str(e.value)


def test_muse_scale_is_an_option(tmp_path):
    fx = write_muse(tmp_path / "m")
    with pytest.raises(CorpusError, match="outside the scale 1-5"):
        load_corpus(fx.root, scale=(1, 5))
