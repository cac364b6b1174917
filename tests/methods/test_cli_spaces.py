"""``perser train`` / ``enroll`` / ``predict`` with dimensional and multilabel spaces and
with every kind of model (profile-free, chosen heads, adapted weights)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
import yaml
from typer.testing import CliRunner

from perser.cli import method_cmd
from perser.methods import Profile, load_model
from perser.testing.cli import command_app

CLASSES = ("ang", "hap", "neu", "sad")
DIMS = ("arousal", "valence")
TINY = ["--no-progress", "--epochs", "2", "-p", "hidden=[8]", "-p", "patience=0", "-p", "batch_size=256"]
METHOD_PARAMS = {
    "consensus": [],
    "similar": ["-p", "min_ratings=5"],
    "finetune": ["-p", "min_ratings=5", "-p", "steps=2"],
    "finetune-similar": ["-p", "min_ratings=5", "-p", "steps=2", "-p", "init=similar"],
    "meta": ["-p", "k_support=3", "-p", "k_query=3", "-p", "meta_epochs=1", "-p", "iters_per_epoch=1",
             "-p", "n_inner_steps=1", "-p", "adapt_layers=1"],
}


@pytest.fixture()
def app():
    torch.set_num_threads(1)
    return command_app(method_cmd)


def write_corpus(root, layered=False, n_clips=40, d=5, seed=0):
    """Three spaces (categorical, multilabel, dimensional 1-5) rated by four annotators."""
    rng = np.random.default_rng(seed)
    (root / "wav").mkdir(parents=True)
    X = rng.standard_normal((n_clips, d)).astype(np.float32)
    ids = [f"c{i:03d}" for i in range(n_clips)]
    for c in ids:
        sf.write(root / "wav" / f"{c}.wav", np.zeros(160, dtype=np.float32), 16000)
    rows = []
    for a in range(4):
        for i, c in enumerate(ids):
            k = int(np.argmax(X[i, :4] + a))  # annotators differ
            rows.append({"clip_id": c, "annotator_id": f"w{a}", "emotion": CLASSES[k],
                         "emotions": ";".join(sorted({CLASSES[k], CLASSES[(k + a) % 4]})),
                         "arousal": float(np.clip(3 + X[i, 0], 1, 5)), "valence": float(np.clip(3 - a * X[i, 1], 1, 5))})
    (root / "corpus.yaml").write_text(yaml.safe_dump({"name": "toy", "label_spaces": [
        {"name": "emotion", "kind": "categorical", "classes": list(CLASSES)},
        {"name": "emotions", "kind": "multilabel", "classes": list(CLASSES)},
        {"name": "avd", "kind": "dimensional", "dimensions": list(DIMS), "scale": [1, 5]}]}))
    pd.DataFrame({"clip_id": ids, "path": [f"wav/{c}.wav" for c in ids], "speaker": ["s1"] * n_clips}) \
        .to_csv(root / "clips.csv", index=False)
    pd.DataFrame(rows).to_csv(root / "ratings.csv", index=False)
    F = np.repeat(X[:, None, :], 3, axis=1) if layered else X
    np.savez(root / "feats.npz", X=F, clip_ids=np.array(ids), spec=np.array("toy-features"))
    return X, ids, pd.DataFrame(rows)


def _train(cli, app, root, tmp_path, method, space):
    name = "finetune" if method == "finetune-similar" else method
    out = tmp_path / f"model-{method}-{space}"
    r = cli.invoke(app, ["train", str(root), "--features", str(root / "feats.npz"), "--method", name,
                         "--space", space, "--out", str(out), *TINY, *METHOD_PARAMS[method]])
    assert r.exit_code == 0, r.output
    return out


@pytest.mark.parametrize("layered", [False, True], ids=["vectors", "layers"])
@pytest.mark.parametrize("method", list(METHOD_PARAMS))
@pytest.mark.parametrize("space", ["avd", "emotions"])
def test_enroll_and_predict_in_every_space(app, tmp_path, method, space, layered):
    root = tmp_path / "toy"
    X, ids, ratings = write_corpus(root, layered=layered)
    cli = CliRunner()
    model_dir = _train(cli, app, root, tmp_path, method, space)
    model = load_model(model_dir)
    sp = model.space_
    assert sp.name == space

    # the listener w1's labels of 8 clips, in the enrollment CSV's shape for this space
    own = ratings[ratings["annotator_id"] == "w1"].head(8)
    cols = list(DIMS) if space == "avd" else [space]
    own[["clip_id", *cols]].to_csv(tmp_path / "r.csv", index=False)
    r = cli.invoke(app, ["enroll", str(model_dir), "--annotator", "lena", "--ratings", str(tmp_path / "r.csv"),
                         "--features", str(root / "feats.npz"), "--out", str(tmp_path / "lena")])
    assert r.exit_code == 0, r.output
    prof = Profile.load(tmp_path / "lena")
    assert prof.annotator == "lena" and prof.data["k"] == 8

    # the profile made through the CLI is the one the Python API makes from the same labels
    F = np.load(root / "feats.npz")["X"]
    direct = model.enroll(F[:8], sp.encode(own), annotator="lena")
    assert prof.data.get("heads") == direct.data.get("heads")
    assert sorted(prof.tensors) == sorted(direct.tensors)
    for k in prof.tensors:
        np.testing.assert_allclose(prof.tensors[k], direct.tensors[k], rtol=1e-5, atol=1e-6)

    want = model.predict(direct, F[:3])
    r = cli.invoke(app, ["predict", str(model_dir), "--profile", str(tmp_path / "lena"), *ids[:3],
                         "--features", str(root / "feats.npz"), "--out", str(tmp_path / "p.csv")])
    assert r.exit_code == 0, r.output
    got = pd.read_csv(tmp_path / "p.csv", keep_default_na=False)
    assert list(got["clip_id"]) == list(ids[:3])
    if space == "avd":
        assert [c for c in got.columns if c != "clip_id"] == list(DIMS)
        np.testing.assert_allclose(got[list(DIMS)].to_numpy(), want.values, rtol=1e-5)
        assert ((got[list(DIMS)] >= 1) & (got[list(DIMS)] <= 5)).all().all()
    else:
        assert list(got.columns) == ["clip_id", space, *[f"p_{c}" for c in CLASSES]]
        np.testing.assert_allclose(got[[f"p_{c}" for c in CLASSES]].to_numpy(), want.proba, rtol=1e-5)
        # the label column is the ';'-joined set, as enrollment CSVs and ratings write it
        assert list(got[space]) == want.labels
        for v in got[space]:
            assert all(c in CLASSES for c in v.split(";") if c)

    r = cli.invoke(app, ["predict", str(model_dir), "--profile", str(tmp_path / "lena"), *ids[:3],
                         "--features", str(root / "feats.npz"), "--format", "json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["annotator"] == "lena" and doc["space"] == space and doc["method"] == model.name
    assert [p["clip_id"] for p in doc["predictions"]] == list(ids[:3])
    if space == "avd":
        np.testing.assert_allclose([[p[d] for d in DIMS] for p in doc["predictions"]], want.values, rtol=1e-5)
    else:
        assert [p[space] for p in doc["predictions"]] == want.labels
