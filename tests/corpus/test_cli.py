import json
import re
import sys

import pandas as pd
import pytest
from typer.testing import CliRunner

from perser.cli import corpus_cmd
from perser.corpus import table
from perser.corpus.model import Corpus, LabelSpace, make_clips, make_ratings
from perser.errors import ConfigError
from perser.testing.cli import command_app
from perser.testing.corpora import load_quietly, write_crema_d


@pytest.fixture()
def app():
    return command_app(corpus_cmd)


def _corpus(tmp_path):
    (tmp_path / "audio").mkdir()
    clips = []
    for i in range(6):
        p = tmp_path / "audio" / f"c{i}.wav"
        p.write_bytes(b"RIFF")
        clips.append({"clip_id": f"c{i}", "path": str(p), "speaker": f"s{i % 3}", "split": "train" if i < 4 else "test"})
    rows = []
    for i in range(6):
        for a, lab in zip("abc", ["hap", "hap" if i % 2 else "sad", "sad"]):
            rows.append({"clip_id": f"c{i}", "annotator_id": a, "emotion": lab, "arousal": 1.0 + i % 3})
    return Corpus(
        "tiny",
        make_clips(clips),
        make_ratings(rows),
        {
            "emotion": LabelSpace("emotion", "categorical", ("hap", "sad")),
            "av": LabelSpace("av", "dimensional", dimensions=("arousal",), scale=(1, 5)),
        },
    )


def test_stats_json_and_tables(app, tmp_path):
    src = table.write(_corpus(tmp_path), tmp_path / "tiny")
    runner = CliRunner()
    res = runner.invoke(app, ["corpus", "stats", str(src), "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["n_clips"] == 6 and d["n_ratings"] == 18 and d["n_annotators"] == 3
    assert d["splits"]["split"] == {"test": 2, "train": 4}
    assert d["spaces"]["emotion"]["label_distribution"]["hap"]["count"] == 9
    res = runner.invoke(app, ["corpus", "stats", str(src), "--format", "table"])
    assert res.exit_code == 0, res.output
    assert "ratings per clip" in res.stdout and "Fleiss" in res.stdout and "arousal" in res.stdout


def test_convert_writes_the_table_format_and_refuses_to_overwrite(app, tmp_path):
    src = table.write(_corpus(tmp_path), tmp_path / "tiny")
    out = tmp_path / "copy"
    runner = CliRunner()
    res = runner.invoke(app, ["corpus", "convert", str(src), str(out)])
    assert res.exit_code == 0, res.output
    assert "6 clips, 18 ratings, 3 annotators" in res.stdout
    back = table.load(out)
    orig = table.load(src)
    pd.testing.assert_frame_equal(back.clips, orig.clips)
    pd.testing.assert_frame_equal(back.ratings, orig.ratings)
    res = runner.invoke(app, ["corpus", "convert", str(src), str(out)])
    assert res.exit_code != 0 and "--overwrite" in str(res.exception)
    res = runner.invoke(app, ["corpus", "convert", str(src), str(out), "--overwrite"])
    assert res.exit_code == 0, res.output


def test_make_demo_passes_options(app, tmp_path, monkeypatch):
    import perser.corpus.synthetic as demo

    seen = {}

    def fake(out, **kw):
        seen.update(kw, out=out)
        return out

    monkeypatch.setattr(demo, "make_demo", fake)
    res = CliRunner().invoke(app, ["corpus", "make-demo", str(tmp_path / "d"), "--clips", "30", "--annotators", "7",
                                   "--new", "2", "--seed", "5", "--overwrite"])
    assert res.exit_code == 0, res.output
    assert seen == {"out": tmp_path / "d", "n_clips": 30, "n_annotators": 7, "n_new": 2, "seed": 5, "overwrite": True}


def test_bad_corpus_is_one_red_line_and_exit_code_2(tmp_path, monkeypatch, capsys):
    from perser.cli import main

    src = table.write(_corpus(tmp_path), tmp_path / "tiny")
    with open(src / "ratings.csv", "a", encoding="utf-8") as f:
        f.write("c1,zed,angry,2.0\n")
    monkeypatch.setattr(sys, "argv", ["perser", "corpus", "stats", str(src)])
    with pytest.raises(SystemExit) as e:
        main()
    assert e.value.code == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "'angry'" in lines[0] and "zed" in lines[0]


def test_describe_counts_distinct_raters_and_is_json_ready():
    from perser.corpus.stats import describe

    clips = make_clips([{"clip_id": f"c{i}", "path": f"/a/c{i}.wav", "speaker": f"s{i % 2}", "session": f"S{i % 2}",
                         "duration": 2.0} for i in range(4)])
    rows = [
        # IEMOCAP-like: one evaluator gives a class and dimensions on separate rows
        {"clip_id": "c0", "annotator_id": "E1", "tags": "hap;neu"},
        {"clip_id": "c0", "annotator_id": "E1", "arousal": 3.0},
        {"clip_id": "c0", "annotator_id": "E2", "tags": "hap"},
        {"clip_id": "c0", "annotator_id": "F1", "tags": "sad", "is_self": True},
        {"clip_id": "c1", "annotator_id": "E1", "tags": "sad", "arousal": 2.0},
        {"clip_id": "c1", "annotator_id": "E2", "tags": "sad", "arousal": 2.5},
        {"clip_id": "c2", "annotator_id": "E3", "tags": "neu", "arousal": 4.0},
    ]
    r = make_ratings(rows)
    r["is_self"] = r["is_self"].fillna(False).astype(bool)
    corpus = Corpus("mini", clips, r, {
        "tags": LabelSpace("tags", "multilabel", ("hap", "neu", "sad")),
        "av": LabelSpace("av", "dimensional", dimensions=("arousal",), scale=(1, 5)),
    }).validate()
    d = describe(corpus)
    json.dumps(d, allow_nan=False)  # strictly JSON: no NaN, no numpy types
    assert d["n_ratings"] == 7 and d["n_self_evaluations"] == 1 and d["n_annotators"] == 3
    assert d["clips_without_ratings"] == 1
    # c0 has 2 external raters (E1 counted once across its two rows), c1 2, c2 1, c3 0
    assert d["ratings_per_clip"] == {"n": 4, "min": 0, "q1": 0.75, "median": 1.5, "q3": 2, "max": 2, "mean": 1.25}
    assert d["clips_per_annotator"]["max"] == 2 and d["clips_per_annotator"]["min"] == 1
    assert d["speakers"]["n"] == 2 and d["splits"]["session"] == {"S0": 2, "S1": 2}
    assert d["duration"]["hours"] == round(8 / 3600, 3)
    tags = d["spaces"]["tags"]
    assert tags["n_ratings"] == 5 and tags["label_distribution"]["hap"] == {"count": 2, "share": 0.4}
    assert tags["label_distribution"]["sad"]["count"] == 2  # the self-evaluation is not counted
    assert set(tags["agreement"]["per_class"]) == {"hap", "neu", "sad"}
    av = d["spaces"]["av"]
    assert av["label_distribution"]["arousal"]["mean"] == pytest.approx(2.875)
    assert av["agreement"]["n_clips_pairable"] == 1
    assert d == corpus.describe()


def test_counted_warnings_are_printed_as_one_line_each(app, tmp_path):
    src = table.write(_corpus(tmp_path), tmp_path / "tiny")
    (src / "annotators.csv").write_text("annotator_id,style\na,calm\n", encoding="utf-8")
    res = CliRunner().invoke(app, ["corpus", "stats", str(src), "--json"])
    assert res.exit_code == 0, res.output
    warn = [ln for ln in res.stderr.splitlines() if ln.startswith("warning:")]
    assert len(warn) == 1 and "2 annotator(s) rate clips but are not in annotators.csv (e.g. b, c)" in warn[0]
    assert json.loads(res.stdout)["n_annotators"] == 3


def test_loader_options_reach_the_loader(app, tmp_path):
    from perser.corpus.stats import describe

    fx = write_crema_d(tmp_path / "crema", seed=3)
    runner = CliRunner()
    got = []
    for opts in ([], ["--option", "modality=face"], ["-o", "modality=1", "-o", "max_first_click_s=10"]):
        res = runner.invoke(app, ["corpus", "stats", str(fx.root), "--json", *opts])
        assert res.exit_code == 0, res.output
        got.append(json.loads(res.stdout))
    expected = [describe(load_quietly(fx, **kw)) for kw in
                ({}, {"modality": "face"}, {"modality": "voice", "max_first_click_s": 10})]
    assert got == json.loads(json.dumps(expected))
    assert got[0] != got[1] and got[2]["n_ratings"] == got[0]["n_ratings"] - fx.quirks["slow_first_click"]
    out = tmp_path / "face"
    res = runner.invoke(app, ["corpus", "convert", str(fx.root), str(out), "--option", "modality=face"])
    assert res.exit_code == 0, res.output
    assert table.load(out, check_audio=False).meta["modality"] == "face"


@pytest.mark.parametrize(
    "option, message",
    [
        ("modalty=face", r"the crema-d loader has no option 'modalty'; it accepts: modality \(default 'voice'\), "),
        ("modality", r"--option 'modality' is not KEY=VALUE"),
        ("=face", r"--option '=face' is not KEY=VALUE"),
        ("modality=[face, voice]", r"the value must be a single value, not a YAML list"),
    ],
)
def test_bad_loader_options_are_named(app, tmp_path, option, message):
    fx = write_crema_d(tmp_path / "crema", seed=3)
    for cmd in (["stats", str(fx.root)], ["convert", str(fx.root), str(tmp_path / "out")]):
        res = CliRunner().invoke(app, ["corpus", *cmd, "--option", option])
        assert res.exit_code != 0 and isinstance(res.exception, ConfigError)
        assert re.search(message, str(res.exception)), str(res.exception)
    assert not (tmp_path / "out").exists()


def test_option_values_are_yaml_scalars():
    got = corpus_cmd.parse_options(["a=true", "b=10", "c=2.5", "d=face", "e=", "f=null", "g='10'", "h=x=y"])
    assert got == {"a": True, "b": 10, "c": 2.5, "d": "face", "e": None, "f": None, "g": "10", "h": "x=y"}
    with pytest.raises(ConfigError, match="--option a is given twice"):
        corpus_cmd.parse_options(["a=1", "a=2"])


def test_load_corpus_refuses_an_option_its_loader_lacks(tmp_path):
    from perser import load_corpus

    fx = write_crema_d(tmp_path / "crema", seed=3)
    with pytest.raises(ConfigError, match=r"the crema-d loader has no option 'flip_arousal'"):
        load_corpus(fx.root, flip_arousal=True)


def test_the_detected_format_is_printed_and_recorded(app, tmp_path, caplog):
    import logging

    fx = write_crema_d(tmp_path / "crema", seed=3)
    runner = CliRunner()
    res = runner.invoke(app, ["corpus", "stats", str(fx.root), "--json"])
    assert res.exit_code == 0, res.output
    assert "detected format: crema-d" in res.stderr and json.loads(res.stdout)["format"] == "crema-d"
    res = runner.invoke(app, ["corpus", "stats", str(fx.root), "--json", "--format", "crema-d"])
    assert res.exit_code == 0 and "detected format" not in res.stderr  # chosen, not detected
    out = tmp_path / "converted"
    res = runner.invoke(app, ["corpus", "convert", str(fx.root), str(out)])
    assert res.exit_code == 0 and "detected format: crema-d" in res.stderr
    res = runner.invoke(app, ["corpus", "stats", str(out)])
    assert res.exit_code == 0 and "detected format: table" in res.stderr
    # the Python API records its choice in the corpus meta and logs it
    with caplog.at_level(logging.INFO, logger="perser.corpus.formats"):
        c = load_quietly(out)
    assert (c.meta["format"], c.meta["source_format"]) == ("table", "crema-d")
    assert any("detected corpus format 'table'" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="perser.corpus.formats"):
        assert load_quietly(fx.root, format="crema-d").meta["format"] == "crema-d"
    assert not any("detected" in r.getMessage() for r in caplog.records)
