"""``perser train/enroll/predict`` with a list of feature sets (a tiny SSL model and a tiny
BERT, both randomly initialised in the test), transcripts from the input CSV, and
``perser extract --pooling`` for text."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

pytest.importorskip("transformers")

from perser.cli import extract_cmd, method_cmd  # noqa: E402
from perser.errors import ConfigError  # noqa: E402
from perser.features.text import TextEncoder  # noqa: E402
from perser.methods import Profile, load_model  # noqa: E402
from perser.testing.cli import command_app  # noqa: E402
from perser.testing.ssl import save_tiny_model  # noqa: E402

from ..features.test_text import tiny_bert  # noqa: E402
from .test_cli import tone  # noqa: E402

N = 24


def _text(i: int) -> str:
    return f"sentence {i} spoken by speaker {i % 3}"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A table corpus with audio and a transcript column, the two tiny encoders, and a model
    trained through the CLI on ``[ssl:DIR, text:DIR]``."""
    tmp = tmp_path_factory.mktemp("sets")
    root = tmp / "toy"
    (root / "wav").mkdir(parents=True)
    ids = [f"c{i:02d}" for i in range(N)]
    for i, c in enumerate(ids):
        tone(root / "wav" / f"{c}.wav", 110 + 9 * i, seconds=0.3)
    rows = [{"clip_id": c, "annotator_id": a, "emotion": ("hap" if (i + j) % 2 else "sad")}
            for j, a in enumerate(("r1", "r2", "r3")) for i, c in enumerate(ids)]
    (root / "corpus.yaml").write_text(yaml.safe_dump({
        "name": "toy", "label_spaces": [{"name": "emotion", "kind": "categorical", "classes": ["hap", "sad"]}]}))
    pd.DataFrame({"clip_id": ids, "path": [f"wav/{c}.wav" for c in ids], "speaker": "s",
                  "transcript": [_text(i) for i in range(N)]}).to_csv(root / "clips.csv", index=False)
    pd.DataFrame(rows).to_csv(root / "ratings.csv", index=False)
    ssl = save_tiny_model(tmp / "tiny-wavlm")
    bert = tiny_bert(tmp / "tiny-bert")
    store = tmp / "store"
    specs = f"[ssl:{ssl}, text:{bert}]"
    r = CliRunner().invoke(command_app(method_cmd), [
        "train", str(root), "--features", specs, "--cache", str(store), "--method", "consensus",
        "--out", str(tmp / "model"), "--no-progress", "--epochs", "3", "-p", "hidden=[8]", "-p", "patience=0",
        "-F", f"text:{bert}={{pooling: mean}}"])
    assert r.exit_code == 0, r.output
    return dict(tmp=tmp, root=root, ids=ids, ssl=ssl, bert=bert, store=store, model=tmp / "model")


def _wavs(s, idx):
    return [str(s["root"] / "wav" / f"{s['ids'][i]}.wav") for i in idx]


def test_train_records_both_sets_and_their_settings(setup):
    cfg = json.loads((setup["model"] / "config.json").read_text())
    sets = cfg["feature_spec"]["sets"]
    assert [s["spec"] for s in sets] == [f"ssl:{setup['ssl']}", f"text:{setup['bert']}"]
    assert sets[1]["settings"] == {"pooling": "mean"} and "settings" not in sets[0]
    assert cfg["feature_spec"]["shape"] == [32 + 16]  # the SSL stack's last layer, then the text vector


def test_predict_from_audio_and_transcripts_matches_the_training_features(setup):
    s = setup
    wavs = _wavs(s, [0, 5, 7])
    pd.DataFrame({"path": wavs, "transcript": [_text(i) for i in (0, 5, 7)]}).to_csv(s["tmp"] / "clips.csv", index=False)
    app = command_app(method_cmd)
    r = CliRunner().invoke(app, ["predict", str(s["model"]), "--clips", str(s["tmp"] / "clips.csv"),
                                 "--cache", str(s["store"])])
    assert r.exit_code == 0, r.output
    got = pd.read_csv(io.StringIO(r.stdout), index_col="clip_id")
    assert list(got.index) == wavs
    # the same features by hand: last SSL layer of the stored stack, then the mean-pooled text vector
    from perser.features import extract

    ssl = extract(wavs, f"ssl:{s['ssl']}", cache_dir=s["store"], progress=False, shard=(0, 1)).select(wavs)[:, -1]
    text = TextEncoder(str(s["bert"]), pooling="mean").encode([_text(i) for i in (0, 5, 7)])
    model = load_model(s["model"])
    want = model.predict(None, np.concatenate([ssl, text], axis=1))
    np.testing.assert_allclose(got[["p_hap", "p_sad"]].to_numpy(), want.proba, rtol=1e-4, atol=1e-5)
    # with --corpus, clip ids take the corpus's transcripts
    r = CliRunner().invoke(app, ["predict", str(s["model"]), "c00", "c05", "c07", "--corpus", str(s["root"]),
                                 "--cache", str(s["store"])])
    assert r.exit_code == 0, r.output
    by_id = pd.read_csv(io.StringIO(r.stdout), index_col="clip_id")
    np.testing.assert_allclose(by_id[["p_hap", "p_sad"]].to_numpy(), want.proba, rtol=1e-4, atol=1e-5)


def test_enroll_reads_transcripts_from_the_ratings_csv(setup):
    s = setup
    wavs = _wavs(s, range(6))
    df = pd.DataFrame({"path": wavs, "emotion": ["hap", "sad"] * 3, "transcript": [_text(i) for i in range(6)]})
    df.to_csv(s["tmp"] / "r.csv", index=False)
    app = command_app(method_cmd)
    r = CliRunner().invoke(app, ["enroll", str(s["model"]), "-a", "ann", "-r", str(s["tmp"] / "r.csv"),
                                 "--cache", str(s["store"]), "-o", str(s["tmp"] / "prof")])
    assert r.exit_code == 0, r.output
    assert Profile.load(s["tmp"] / "prof").data["k"] == 6


def test_a_missing_transcript_is_a_named_error(setup):
    s = setup
    wavs = _wavs(s, range(3))
    app = command_app(method_cmd)
    pd.DataFrame({"path": wavs, "emotion": ["hap", "sad", "hap"]}).to_csv(s["tmp"] / "nt.csv", index=False)
    r = CliRunner().invoke(app, ["enroll", str(s["model"]), "-a", "x", "-r", str(s["tmp"] / "nt.csv"),
                                 "--cache", str(s["store"]), "-o", str(s["tmp"] / "p2")])
    assert isinstance(r.exception, ConfigError)
    assert wavs[0] in str(r.exception) and "no transcript" in str(r.exception) and "text:" in str(r.exception)
    assert not (s["tmp"] / "p2").exists()
    pd.DataFrame({"path": wavs, "transcript": [_text(0), "", _text(2)]}).to_csv(s["tmp"] / "c2.csv", index=False)
    r = CliRunner().invoke(app, ["predict", str(s["model"]), "--clips", str(s["tmp"] / "c2.csv"),
                                 "--cache", str(s["store"])])
    assert isinstance(r.exception, ConfigError) and wavs[1] in str(r.exception)
    r = CliRunner().invoke(app, ["predict", str(s["model"]), *wavs[:1], "--cache", str(s["store"])])
    assert isinstance(r.exception, ConfigError) and "no transcript" in str(r.exception)


def test_bad_feature_lists_are_named_errors(setup, tmp_path):
    s = setup
    app = command_app(method_cmd)
    for bad, msg in (("[]", "non-empty list"), ("[egemaps, feats.npz]", "cannot be combined"), ("[a, [b", "YAML")):
        r = CliRunner().invoke(app, ["train", str(s["root"]), "--features", bad, "--method", "consensus",
                                     "--out", str(tmp_path / "m"), "--cache", str(s["store"])])
        assert isinstance(r.exception, ConfigError) and msg in str(r.exception), (bad, r.output)


def test_extract_pooling_for_text(setup, tmp_path):
    s = setup
    app = command_app(extract_cmd)
    keys = {}
    for pooling in ("cls", "mean"):
        r = CliRunner().invoke(app, ["extract", str(s["root"]), "--features", f"text:{s['bert']}",
                                     "--pooling", pooling, "--cache", str(tmp_path / "st"), "--no-progress"])
        assert r.exit_code == 0, r.output
        keys[pooling] = r.output.split("features: ")[1].split()[0]
    assert keys["cls"] != keys["mean"]
    from perser.corpus import load_corpus
    from perser.features import extract

    mean = extract(load_corpus(s["root"]), f"text:{s['bert']}", cache_dir=tmp_path / "st", pooling="mean", progress=False)
    assert mean.n_reused == N  # what the CLI's --pooling mean stored
    r = CliRunner().invoke(app, ["extract", str(s["root"]), "--features", f"text:{s['bert']}", "--pooling", "max",
                                 "--cache", str(tmp_path / "st"), "--no-progress"])
    assert r.exit_code != 0 and "pooling 'max'" in str(r.exception)
    r = CliRunner().invoke(app, ["extract", str(s["root"]), "--features", "egemaps", "--pooling", "mean",
                                 "--cache", str(tmp_path / "st"), "--no-progress"])
    assert isinstance(r.exception, ConfigError) and "--pooling" in str(r.exception)
