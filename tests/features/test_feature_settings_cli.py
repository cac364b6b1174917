"""Extractor settings travel from ``perser train --feature-setting`` into the model, and
back out when the model featurises audio for ``perser predict``."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import soundfile as sf
import yaml
from typer.testing import CliRunner

from perser.cli import method_cmd
from perser.errors import ConfigError
from perser.testing.cli import command_app

from .conftest import save_tiny_model, voice


def _corpus(root, n: int = 30):
    (root / "wav").mkdir(parents=True)
    ids = [f"c{i:02d}" for i in range(n)]
    for i, c in enumerate(ids):
        sf.write(root / "wav" / f"{c}.wav", voice(0.4 + 0.01 * i, seed=i), 16000, subtype="FLOAT")
    rng = np.random.default_rng(0)
    rows = [{"clip_id": c, "annotator_id": a, "emotion": ["ang", "hap"][int(rng.integers(2))]} for a in ("r1", "r2") for c in ids]
    (root / "corpus.yaml").write_text(yaml.safe_dump({"name": "toy", "label_spaces": [
        {"name": "emotion", "kind": "categorical", "classes": ["ang", "hap"]}]}))
    pd.DataFrame({"clip_id": ids, "path": [f"wav/{c}.wav" for c in ids], "speaker": ["s1"] * n}).to_csv(root / "clips.csv", index=False)
    pd.DataFrame(rows).to_csv(root / "ratings.csv", index=False)
    return ids


def test_feature_settings_are_recorded_and_reused_for_audio(tmp_path):
    model_dir = save_tiny_model(tmp_path / "ssl", "wavlm")
    _corpus(tmp_path / "toy")
    app, cli = command_app(method_cmd), CliRunner()
    train = ["train", str(tmp_path / "toy"), "--features", f"ssl:{model_dir}", "--method", "consensus",
             "--cache", str(tmp_path / "store"), "--no-progress", "--epochs", "2", "-p", "hidden=[8]"]
    r = cli.invoke(app, [*train, "--out", str(tmp_path / "m"), "-F", "pooling=mean+std", "-F", "precision=fp32"])
    assert r.exit_code == 0, r.output
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["feature_spec"]["settings"] == {"pooling": "mean+std", "precision": "fp32"}
    layers, dim = cfg["feature_spec"]["shape"]
    plain = cli.invoke(app, [*train, "--out", str(tmp_path / "plain")])
    assert plain.exit_code == 0, plain.output
    assert json.loads((tmp_path / "plain" / "config.json").read_text())["feature_spec"]["shape"] == [layers, dim // 2]
    # predicting from audio featurises with the recorded settings ([layers, 2 x dim] again)
    wav = str(tmp_path / "toy" / "wav" / "c03.wav")
    r = cli.invoke(app, ["predict", str(tmp_path / "m"), wav, "--cache", str(tmp_path / "store"), "--format", "json"])
    assert r.exit_code == 0, r.output
    assert len(json.loads(r.output)["predictions"]) == 1
    # a setting the extractor does not take is named
    bad = cli.invoke(app, [*train, "--out", str(tmp_path / "x"), "-F", "poling=mean"])
    assert isinstance(bad.exception, ConfigError) and "poling" in str(bad.exception)
    bad = cli.invoke(app, [*train, "--out", str(tmp_path / "x"), "-F", "pooling"])
    assert isinstance(bad.exception, ConfigError) and "--feature-setting" in str(bad.exception)
    assert not (tmp_path / "x").exists()
