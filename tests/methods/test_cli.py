"""``perser train``, ``perser enroll`` and ``perser predict``."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml
from typer.testing import CliRunner

from perser.cli import method_cmd
from perser.errors import ConfigError, CorpusError, FeatureError
from perser.methods import Profile, load_model
from perser.testing.cli import command_app

CLASSES = ("ang", "hap", "neu", "sad")


@pytest.fixture()
def app():
    return command_app(method_cmd)


def tone(path, f0: float, seconds: float = 0.4, sr: int = 16000) -> None:
    t = np.arange(int(seconds * sr)) / sr
    sf.write(path, (0.3 * np.sin(2 * np.pi * f0 * t) * np.hanning(len(t))).astype(np.float32), sr)


def write_corpus(root, n_clips=120, d=6, seed=0):
    """A table-format corpus of four annotators with planted signal, and a features file."""
    rng = np.random.default_rng(seed)
    (root / "wav").mkdir(parents=True)
    X = rng.standard_normal((n_clips, d)).astype(np.float32)
    ids = [f"c{i:03d}" for i in range(n_clips)]
    for i, c in enumerate(ids):
        tone(root / "wav" / f"{c}.wav", 120 + 5 * i, seconds=0.05)
    W = {f"w{i}": rng.standard_normal((d, 4)) * 2 for i in range(4)}
    rows = [{"clip_id": c, "annotator_id": a, "emotion": CLASSES[int(np.argmax(X[i] @ Wa))]}
            for a, Wa in W.items() for i, c in enumerate(ids)]
    (root / "corpus.yaml").write_text(yaml.safe_dump({
        "name": "toy", "label_spaces": [{"name": "emotion", "kind": "categorical", "classes": list(CLASSES)}]}))
    pd.DataFrame({"clip_id": ids, "path": [f"wav/{c}.wav" for c in ids], "speaker": ["s1"] * n_clips,
                  "split": ["train"] * (n_clips - 20) + ["test"] * 20}).to_csv(root / "clips.csv", index=False)
    pd.DataFrame(rows).to_csv(root / "ratings.csv", index=False)
    np.savez(root / "feats.npz", X=X, clip_ids=np.array(ids), spec=np.array("toy-features"))
    return X, ids, W


TRAIN = ["--no-progress", "--epochs", "20", "-p", "hidden=[16]", "-p", "dropout=0", "-p", "lr=0.01", "-p", "patience=0"]


def test_train_enroll_predict_round_trip(app, tmp_path):
    X, ids, W = write_corpus(tmp_path / "toy")
    feats = str(tmp_path / "toy" / "feats.npz")
    cli = CliRunner()
    r = cli.invoke(app, ["train", str(tmp_path / "toy"), "--features", feats, "--method", "similar",
                         "--out", str(tmp_path / "model"), "--split", "train", "-p", "min_ratings=50", *TRAIN])
    assert r.exit_code == 0, r.output
    assert "model written" in r.output
    cfg = json.loads((tmp_path / "model" / "config.json").read_text())
    assert cfg["method"] == "similar" and cfg["feature_spec"]["spec"] == "toy-features"
    assert cfg["params"]["epochs"] == 20 and cfg["params"]["hidden"] == [16]
    assert cfg["seen_annotators"] == ["w0", "w1", "w2", "w3"]
    assert cfg["space"]["classes"] == list(CLASSES)

    # a new listener who labels like w2, on the held-out clips
    test_ids = ids[100:]
    labels = [CLASSES[int(np.argmax(X[int(c[1:])] @ W["w2"]))] for c in test_ids]
    pd.DataFrame({"clip_id": test_ids, "emotion": labels}).to_csv(tmp_path / "r.csv", index=False)
    r = cli.invoke(app, ["enroll", str(tmp_path / "model"), "--annotator", "lena", "--ratings", str(tmp_path / "r.csv"),
                         "--features", feats, "--out", str(tmp_path / "lena")])
    assert r.exit_code == 0, r.output
    prof = Profile.load(tmp_path / "lena")
    assert prof.annotator == "lena" and prof.data["heads"] == ["w2"]

    r = cli.invoke(app, ["predict", str(tmp_path / "model"), "--profile", str(tmp_path / "lena"), "c000", "c005",
                         "--features", feats, "--format", "json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["annotator"] == "lena" and [p["clip_id"] for p in doc["predictions"]] == ["c000", "c005"]
    model = load_model(tmp_path / "model")
    direct = model.predict(prof, X[[0, 5]])
    assert [p["emotion"] for p in doc["predictions"]] == direct.labels
    assert np.allclose([[p[f"p_{c}"] for c in CLASSES] for p in doc["predictions"]], direct.proba)

    r = cli.invoke(app, ["predict", str(tmp_path / "model"), "c001", "--features", feats,
                         "--out", str(tmp_path / "p.csv")])
    assert r.exit_code == 0, r.output
    df = pd.read_csv(tmp_path / "p.csv", index_col="clip_id")
    assert list(df.index) == ["c001"] and df.iloc[0][[f"p_{c}" for c in CLASSES]].sum() == pytest.approx(1, abs=1e-6)


def test_train_from_config_file_with_flag_overrides(app, tmp_path):
    write_corpus(tmp_path / "toy", n_clips=60)
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump({
        "method": "consensus", "features": str(tmp_path / "toy" / "feats.npz"),
        "params": {"hidden": [8], "epochs": 50, "seed": 3}}))
    r = CliRunner().invoke(app, ["train", str(tmp_path / "toy"), "--config", str(tmp_path / "exp.yaml"),
                                 "--out", str(tmp_path / "m"), "--epochs", "2", "--no-progress"])
    assert r.exit_code == 0, r.output
    p = json.loads((tmp_path / "m" / "config.json").read_text())["params"]
    assert p["epochs"] == 2 and p["hidden"] == [8] and p["seed"] == 3


def test_cli_errors_name_the_culprit(app, tmp_path):
    X, ids, W = write_corpus(tmp_path / "toy", n_clips=60)
    feats = str(tmp_path / "toy" / "feats.npz")
    cli = CliRunner()
    r = cli.invoke(app, ["train", str(tmp_path / "toy"), "--features", feats, "--method", "nope", "--out", str(tmp_path / "m")])
    assert isinstance(r.exception, ConfigError) and "nope" in str(r.exception)
    r = cli.invoke(app, ["train", str(tmp_path / "toy"), "--features", feats, "--method", "consensus",
                         "--out", str(tmp_path / "m"), "--space", "arousal"])
    assert isinstance(r.exception, CorpusError) and "arousal" in str(r.exception)
    r = cli.invoke(app, ["train", str(tmp_path / "toy"), "--features", feats, "--method", "consensus",
                         "--out", str(tmp_path / "m"), "-p", "epochs"])
    assert isinstance(r.exception, ConfigError) and "KEY=VALUE" in str(r.exception)
    r = cli.invoke(app, ["train", str(tmp_path / "toy"), "--features", feats, "--method", "consensus",
                         "--out", str(tmp_path / "m"), *TRAIN, "--epochs", "1"])
    assert r.exit_code == 0, r.output
    r = cli.invoke(app, ["predict", str(tmp_path / "m"), "c000", "zzz", "--features", feats])
    assert isinstance(r.exception, FeatureError) and "'zzz'" in str(r.exception)
    r = cli.invoke(app, ["predict", str(tmp_path / "m"), "c000"])
    assert isinstance(r.exception, ConfigError) and "'c000' is not an audio file" in str(r.exception)
    pd.DataFrame({"clip_id": ["c001", "c002"], "emotion": ["ang", "joy"]}).to_csv(tmp_path / "r.csv", index=False)
    r = cli.invoke(app, ["enroll", str(tmp_path / "m"), "-a", "x", "-r", str(tmp_path / "r.csv"), "-f", feats, "-o", str(tmp_path / "p")])
    assert isinstance(r.exception, CorpusError) and "r.csv" in str(r.exception) and "'joy'" in str(r.exception) and "3" in str(r.exception)
    pd.DataFrame({"clip": ["c001"], "emotion": ["ang"]}).to_csv(tmp_path / "r2.csv", index=False)
    r = cli.invoke(app, ["enroll", str(tmp_path / "m"), "-a", "x", "-r", str(tmp_path / "r2.csv"), "-f", feats, "-o", str(tmp_path / "p")])
    assert isinstance(r.exception, ConfigError) and "'clip_id' or 'path'" in str(r.exception)
    np.savez(tmp_path / "bad.npz", X=np.zeros((2, 3), np.float32), clip_ids=np.array(["c000", "c001"]))
    r = cli.invoke(app, ["predict", str(tmp_path / "m"), "c000", "--features", str(tmp_path / "bad.npz")])
    assert isinstance(r.exception, FeatureError) and "(3,)" in str(r.exception) and "(6,)" in str(r.exception)
    assert not (tmp_path / "p").exists()


def test_train_refuses_a_non_empty_model_folder_unless_forced(app, tmp_path):
    write_corpus(tmp_path / "toy", n_clips=60)
    feats = str(tmp_path / "toy" / "feats.npz")
    out = tmp_path / "m"
    out.mkdir()
    (out / "README").write_text("keep me")
    args = ["train", str(tmp_path / "toy"), "--features", feats, "--method", "consensus", "--out", str(out),
            *TRAIN, "--epochs", "1"]
    r = CliRunner().invoke(app, args)
    assert isinstance(r.exception, ConfigError) and "--force" in str(r.exception) and str(out) in str(r.exception)
    assert sorted(p.name for p in out.iterdir()) == ["README"]
    r = CliRunner().invoke(app, [*args, "--force"])
    assert r.exit_code == 0, r.output
    assert (out / "config.json").is_file() and not (out / "README").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    r = CliRunner().invoke(app, [*args[:-len(TRAIN) - 4], "--out", str(empty), *TRAIN, "--epochs", "1"])
    assert r.exit_code == 0, r.output


def test_train_is_a_library_function_with_a_typed_config(tmp_path):
    from perser.config import TrainConfig
    from perser.methods import train

    X, ids, W = write_corpus(tmp_path / "toy", n_clips=60)
    (tmp_path / "t.yaml").write_text(yaml.safe_dump({
        "corpus": "toy", "method": "consensus", "features": str(tmp_path / "toy" / "feats.npz"), "split": "train",
        "params": {"hidden": [8], "epochs": 2, "seed": 1, "progress": False}}))
    cfg = TrainConfig.from_yaml(tmp_path / "t.yaml", {"params": {"epochs": 1}})
    assert cfg.corpus == tmp_path / "toy" and cfg.params == {"hidden": [8], "epochs": 1, "seed": 1, "progress": False}
    lines = []
    model = train(cfg, tmp_path / "m", echo=lines.append)
    assert model.get_params()["epochs"] == 1 and (tmp_path / "m" / "config.json").is_file()
    assert len(lines) == 1 and "ratings of 40 clips by 4 annotators" in lines[0]
    assert load_model(tmp_path / "m").feature_spec["spec"] == "toy-features"
    with pytest.raises(ConfigError, match="--force"):
        train(cfg, tmp_path / "m")
    (tmp_path / "bad.yaml").write_text("method: consensus\nepochs: 3\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: epochs: Extra inputs"):
        TrainConfig.from_yaml(tmp_path / "bad.yaml")


def test_enroll_uses_the_path_column_when_no_corpus_names_the_clip_ids(tmp_path, monkeypatch):
    from perser.methods import inputs

    seen = []
    monkeypatch.setattr(inputs, "audio_features", lambda model, paths, **kw: seen.append(list(paths)) or np.zeros((len(paths), 2)))
    (tmp_path / "a.wav").write_bytes(b"")
    pd.DataFrame({"clip_id": ["x1"], "path": ["a.wav"], "emotion": ["ang"]}).to_csv(tmp_path / "r.csv", index=False)
    from perser.corpus.model import LabelSpace

    r = inputs.read_ratings(tmp_path / "r.csv", LabelSpace("emotion", "categorical", classes=CLASSES))
    assert r.clip_ids == ["x1"] and r.paths == [str(tmp_path / "a.wav")] and r.y.tolist() == [0]
    X = inputs.clip_features({"spec": "egemaps"}, r.clip_ids, r.paths)
    assert X.shape == (1, 2) and seen == [[str(tmp_path / "a.wav")]]
    with pytest.raises(ConfigError, match="'x1' is not an audio file"):
        inputs.clip_features({"spec": "egemaps"}, r.clip_ids)


@pytest.mark.slow
def test_audio_in_audio_out_with_egemaps(app, tmp_path):
    """The model remembers its feature spec: enroll and predict straight from audio files."""
    rng = np.random.default_rng(0)
    root = tmp_path / "tones"
    (root / "wav").mkdir(parents=True)
    ids, rows = [], []
    for i in range(40):
        f0 = float(rng.uniform(100, 300))
        c = f"t{i:02d}"
        tone(root / "wav" / f"{c}.wav", f0, seconds=0.5)
        ids.append(c)
        for a in ("r1", "r2"):
            rows.append({"clip_id": c, "annotator_id": a, "emotion": "hap" if f0 > 200 else "sad"})
    (root / "corpus.yaml").write_text(yaml.safe_dump({
        "name": "tones", "label_spaces": [{"name": "emotion", "kind": "categorical", "classes": ["hap", "sad"]}]}))
    pd.DataFrame({"clip_id": ids, "path": [f"wav/{c}.wav" for c in ids], "speaker": "s"}).to_csv(root / "clips.csv", index=False)
    pd.DataFrame(rows).to_csv(root / "ratings.csv", index=False)
    cli = CliRunner()
    store = str(tmp_path / "store")
    r = cli.invoke(app, ["train", str(root), "--features", "egemaps", "--cache", store, "--method", "finetune",
                         "--out", str(tmp_path / "m"), *TRAIN, "-p", "min_ratings=5"])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "m" / "config.json").read_text())["feature_spec"]["spec"] == "egemaps"
    wavs = [str(root / "wav" / f"{c}.wav") for c in ids[:6]]
    # clip ids that name no known corpus (no --corpus, no --features): the path column is used
    pd.DataFrame({"clip_id": [f"mine{i}" for i in range(6)], "path": wavs, "emotion": ["sad"] * 6}).to_csv(
        tmp_path / "r.csv", index=False)
    r = cli.invoke(app, ["enroll", str(tmp_path / "m"), "-a", "gloomy", "-r", str(tmp_path / "r.csv"),
                         "--cache", store, "-o", str(tmp_path / "p")])
    assert r.exit_code == 0, r.output
    r = cli.invoke(app, ["predict", str(tmp_path / "m"), "-p", str(tmp_path / "p"), *wavs[:2], "--cache", store])
    assert r.exit_code == 0, r.output
    df = pd.read_csv(__import__("io").StringIO(r.stdout), index_col="clip_id")
    assert len(df) == 2 and set(df["emotion"]) <= {"hap", "sad"}


@pytest.mark.parametrize("suffix", [".npz", ".parquet", ".csv"])
def test_feature_files_written_by_extract_are_read_back(tmp_path, suffix):
    from perser.features import Features

    X = np.arange(12, dtype=np.float32).reshape(3, 4) / 7
    f = Features(X=X, clip_ids=np.array(["a", "b", "c"], dtype=object), spec="egemaps", feature_names=list("wxyz"))
    path = f.save(tmp_path / f"f{suffix}")
    g = Features.load(path)
    assert np.allclose(g.X, X) and list(g.clip_ids) == ["a", "b", "c"] and g.feature_names == list("wxyz")
    assert g.spec == ("egemaps" if suffix == ".npz" else f"file:f{suffix}")
    pd.DataFrame({"clip_id": ["a"], "f0": ["x"]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(FeatureError, match="non-numeric.*f0"):
        Features.load(tmp_path / "bad.csv")


def test_feature_csv_keeps_zero_padded_clip_ids(tmp_path):
    from perser.features import Features

    def load_feature_file(f):
        g = Features.load(f)
        return g.X, g.clip_ids, g.spec

    f = tmp_path / "feats.csv"
    pd.DataFrame({"clip_id": ["0001", "0002", "NA"], "f0": [1.0, 2.0, 3.0], "f1": [0.5, 0.25, 0.0]}).to_csv(f, index=False)
    X, ids, spec = load_feature_file(f)
    assert list(ids) == ["0001", "0002", "NA"] and X.shape == (3, 2) and spec == "file:feats.csv"
    f.write_text("clip_id,f0\n0001,1.0\n,2.0\n")
    with pytest.raises(FeatureError, match=r"feats\.csv:3: empty clip_id"):
        load_feature_file(f)


def test_train_device_and_precision_flags(app, tmp_path):
    """``--device``/``--precision`` reach the method (recorded in the model's config) and,
    on the CPU, train the same model as leaving them out; a bad value is an error naming it."""
    import torch

    write_corpus(tmp_path / "toy", n_clips=60)
    feats = str(tmp_path / "toy" / "feats.npz")
    cli = CliRunner()
    base = ["train", str(tmp_path / "toy"), "--features", feats, "--method", "similar", *TRAIN, "--epochs", "2"]
    r = cli.invoke(app, [*base, "--out", str(tmp_path / "a"), "--device", "cpu", "--precision", "fp32"])
    assert r.exit_code == 0, r.output + repr(r.exception)
    p = json.loads((tmp_path / "a" / "config.json").read_text())["params"]
    assert p["device"] == "cpu" and p["precision"] == "fp32"
    r = cli.invoke(app, [*base, "--out", str(tmp_path / "b")])
    assert r.exit_code == 0, r.output
    a, b = load_model(tmp_path / "a"), load_model(tmp_path / "b")
    for (k, va), (_, vb) in zip(a.net_.state_dict().items(), b.net_.state_dict().items()):
        assert torch.equal(va, vb), k
    r = cli.invoke(app, [*base, "--out", str(tmp_path / "c"), "--device", "tpu"])
    assert isinstance(r.exception, ConfigError) and "'tpu'" in str(r.exception)
    r = cli.invoke(app, [*base, "--out", str(tmp_path / "c"), "--precision", "fp16"])
    assert isinstance(r.exception, ConfigError) and "fp16" in str(r.exception)
    if not torch.cuda.is_available():
        r = cli.invoke(app, [*base, "--out", str(tmp_path / "c"), "--device", "cuda"])
        assert isinstance(r.exception, ConfigError) and "CUDA is not available" in str(r.exception)
    assert not (tmp_path / "c").exists()
