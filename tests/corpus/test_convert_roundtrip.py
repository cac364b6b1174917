"""``perser corpus convert`` of every release format, read back through ``load_corpus``: nothing changes."""

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from perser.cli import corpus_cmd
from perser.corpus import table
from perser.corpus.model import Corpus, LabelSpace, make_clips, make_ratings
from perser.testing.cli import command_app
from perser.testing.corpora import load_quietly, write_crema_d, write_iemocap, write_msp_improv, write_msp_podcast

CASES = {
    "iemocap": (write_iemocap, {}),
    "msp-podcast": (write_msp_podcast, {"secondary": True}),
    "msp-improv": (write_msp_improv, {"secondary": True, "naturalness": True}),
    "crema-d": (write_crema_d, {}),
}


def _same_column(a: pd.Series, b: pd.Series, what: str) -> None:
    a, b = a.reset_index(drop=True), b.reset_index(drop=True)
    both_missing = a.isna().to_numpy() & b.isna().to_numpy()
    av = a.astype(object).to_numpy()
    bv = b.astype(object).to_numpy()
    differ = [i for i in range(len(a)) if not both_missing[i] and not (av[i] == bv[i] and type(av[i]) is type(bv[i])
                                                                     or _num_equal(av[i], bv[i]))]
    assert not differ, f"{what}: {len(differ)} values changed, e.g. {[(av[i], bv[i]) for i in differ[:3]]}"


def _num_equal(x, y) -> bool:
    # numbers may change width (int64 vs float64) but never value; text must stay text
    if isinstance(x, str) or isinstance(y, str):
        return False
    try:
        return float(x) == float(y)
    except (TypeError, ValueError):
        return False


def _assert_same_tables(a: pd.DataFrame | None, b: pd.DataFrame | None, name: str) -> None:
    if a is None or b is None:
        assert a is None and b is None, name
        return
    assert list(a.columns) == list(b.columns), name
    assert a.index.astype(str).tolist() == b.index.astype(str).tolist(), name
    for c in a.columns:
        _same_column(a[c], b[c], f"{name}.{c}")


@pytest.mark.parametrize("fmt", sorted(CASES))
def test_convert_then_load_gives_the_same_corpus(tmp_path, fmt):
    writer, options = CASES[fmt]
    fx = writer(tmp_path / "release")
    original = load_quietly(fx.root, format=fmt, **options)
    out = tmp_path / "elsewhere" / "deeper" / "table"  # relative audio paths from another folder
    args = ["corpus", "convert", str(fx.root), str(out), "--format", fmt]
    for k, v in options.items():
        args += ["--option", f"{k}={str(v).lower()}"]
    res = CliRunner().invoke(command_app(corpus_cmd), args)
    assert res.exit_code == 0, res.output
    back = load_quietly(out)
    assert back.label_spaces == original.label_spaces
    _assert_same_tables(original.clips, back.clips, "clips")
    _assert_same_tables(original.ratings, back.ratings, "ratings")
    _assert_same_tables(original.annotators, back.annotators, "annotators")
    assert back.meta["source_format"] == fmt
    assert all(Path(p).is_file() for p in back.clips["path"])


def _tiny(tmp_path, annotators=None, **clip_columns) -> Corpus:
    (tmp_path / "audio").mkdir()
    clips = []
    for i in range(3):
        p = tmp_path / "audio" / f"c{i}.wav"
        p.write_bytes(b"RIFF")
        clips.append({"clip_id": f"c{i}", "path": str(p), "speaker": f"s{i}",
                      **{k: v[i] for k, v in clip_columns.items()}})
    rows = [{"clip_id": f"c{i}", "annotator_id": a, "emotion": "hap" if (i + j) % 2 else "sad"}
            for i in range(3) for j, a in enumerate(["NA", "007", "w1"])]
    return Corpus("tiny", make_clips(clips), make_ratings(rows),
                  {"emotion": LabelSpace("emotion", "categorical", ("hap", "sad"))}, annotators=annotators)


def test_zero_padded_ids_in_extra_columns_stay_text(tmp_path):
    # MSP-Podcast's `podcast` column ("0001") came back as the integer 1
    c = _tiny(tmp_path, podcast=["0001", "0042", "1900"], take=[1, 2, 3], gain=[0.5, 1.0, 1.5],
              reviewed=[True, False, True])
    back = table.load(table.write(c, tmp_path / "t"))
    assert back.clips["podcast"].tolist() == ["0001", "0042", "1900"]
    assert back.clips["take"].tolist() == [1, 2, 3] and back.clips["take"].dtype.kind == "i"
    assert back.clips["gain"].tolist() == [0.5, 1.0, 1.5]
    assert back.clips["reviewed"].tolist() == [True, False, True]


def test_annotator_table_keeps_ids_that_look_missing_or_numeric(tmp_path):
    # annotators.csv was read with pandas' default NA words: annotator "NA" became NaN there while
    # ratings.csv kept it, so a written corpus failed to load; "007" became 7
    ann = pd.DataFrame({"style": ["x", "y", "z"], "group": ["01", "02", "01"]},
                       index=pd.Index(["NA", "007", "w1"], name="annotator_id"))
    c = _tiny(tmp_path, annotators=ann)
    back = table.load(table.write(c, tmp_path / "t"))
    assert back.annotators.index.tolist() == ["NA", "007", "w1"]
    assert back.annotators["group"].tolist() == ["01", "02", "01"]
    assert sorted(back.ratings["annotator_id"].unique()) == sorted(["NA", "007", "w1"])


def test_extra_rating_columns_keep_their_text(tmp_path):
    c = _tiny(tmp_path)
    c.ratings["other_text"] = [None] * 8 + ["12"]
    c.ratings["worker_batch"] = ["003"] * 9
    back = table.load(table.write(c, tmp_path / "t"))
    assert back.ratings["other_text"].iloc[-1] == "12"
    assert back.ratings["worker_batch"].tolist() == ["003"] * 9
    assert pd.isna(back.ratings["other_text"].iloc[0])
