"""``perser evaluate`` on precomputed features: the per-stage timings it prints and writes
(``timings.csv``), the run-wide ``--device``/``--precision``, and the feature file read
without a copy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from perser.cli import _register, app
from perser.errors import ConfigError

CLASSES = ("ang", "hap", "neu", "sad")


def write_corpus(root, n_clips: int = 160, n_annotators: int = 12, d: int = 8, seed: int = 0):
    """A table corpus without audio (16 speakers) and its features as an ``.npz`` file."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    X = rng.standard_normal((n_clips, d)).astype(np.float32)
    ids = [f"c{i:04d}" for i in range(n_clips)]
    W = rng.standard_normal((n_annotators, d, len(CLASSES)))
    rows = [{"clip_id": c, "annotator_id": f"w{a:02d}", "emotion": CLASSES[int(np.argmax(X[i] @ W[a]))]}
            for a in range(n_annotators) for i, c in enumerate(ids) if (i + a) % 3]
    (root / "corpus.yaml").write_text(yaml.safe_dump({
        "name": "toy", "label_spaces": [{"name": "emotion", "kind": "categorical", "classes": list(CLASSES)}]}))
    pd.DataFrame({"clip_id": ids, "path": [f"wav/{c}.wav" for c in ids],
                  "speaker": [f"s{i % 16}" for i in range(n_clips)]}).to_csv(root / "clips.csv", index=False)
    pd.DataFrame(rows).to_csv(root / "ratings.csv", index=False)
    np.savez(root / "feats.npz", X=X, clip_ids=np.array(ids))
    return root, root / "feats.npz"


def _evaluate(corpus, feats, out, *extra):
    _register()
    return CliRunner().invoke(app, [
        "evaluate", "--corpus", str(corpus), "--features", str(feats), "--corpus-options.check_audio", "false",
        "--methods", "consensus,similar", "--k", "5", "--seeds", "0", "--n-folds", "4", "--folds", "0",
        "--n-bootstrap", "100", "--no-report", "--progress", "false", "--out", str(out),
        "--method-params.consensus.hidden", "[8]", "--method-params.consensus.epochs", "2",
        "--method-params.similar.hidden", "[8]", "--method-params.similar.epochs", "2", *extra],
        env={"COLUMNS": "200"}, terminal_width=200)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("scale") / "toy")


def test_evaluate_prints_and_writes_every_stage(corpus, tmp_path):
    root, feats = corpus
    r = _evaluate(root, feats, tmp_path / "run")
    assert r.exit_code == 0, r.output + repr(r.exception)
    t = pd.read_csv(tmp_path / "run" / "timings.csv", keep_default_na=False)
    assert t["stage"].tolist() == ["load", "split", "fit", "fit", "enroll", "enroll", "predict", "predict",
                                   "metrics", "report"]
    assert t.loc[t["stage"] == "fit", "method"].tolist() == ["consensus", "similar"]
    # loading, fitting and predicting take measurable time; a stage with little to do
    # (consensus enrolls nobody; no report) may round to 0 ms
    assert (t["wall_s"] >= 0).all() and (t["peak_rss_gb"] > 0).all()
    assert (t.loc[t["stage"].isin(["load", "fit", "predict"]), "wall_s"] > 0).all()
    text = " ".join(r.output.split())
    assert "Stages (wall and CPU seconds" in text and "load" in text and "metrics" in text


def test_device_and_precision_reach_every_neural_method(corpus, tmp_path):
    """The run-wide ``--device cpu --precision fp32`` is every method's, unless its
    method_params say otherwise; on the CPU the numbers equal a run without them."""
    root, feats = corpus
    r = _evaluate(root, feats, tmp_path / "a", "--device", "cpu", "--precision", "fp32",
                  "--method-params.similar.precision", "auto")
    assert r.exit_code == 0, r.output + repr(r.exception)
    cfg = yaml.safe_load((tmp_path / "a" / "config.yaml").read_text())
    assert cfg["device"] == "cpu" and cfg["precision"] == "fp32"
    from perser.config import load_config
    from perser.evaluate import _methods

    methods, _ = _methods(load_config(tmp_path / "a" / "config.yaml"))
    assert methods["consensus"]["device"] == methods["similar"]["device"] == "cpu"
    assert methods["consensus"]["precision"] == "fp32" and methods["similar"]["precision"] == "auto"
    r = _evaluate(root, feats, tmp_path / "b")
    assert r.exit_code == 0, r.output
    a = pd.read_csv(tmp_path / "a" / "results.csv", keep_default_na=False)
    b = pd.read_csv(tmp_path / "b" / "results.csv", keep_default_na=False)
    pd.testing.assert_frame_equal(a, b)
    r = _evaluate(root, feats, tmp_path / "c", "--device", "tpu")
    assert isinstance(r.exception, ConfigError) and "'tpu'" in str(r.exception)
    r = _evaluate(root, feats, tmp_path / "c", "--precision", "fp16")
    assert isinstance(r.exception, ConfigError) and "precision" in str(r.exception) and "'bf16'" in str(r.exception)
    assert not (tmp_path / "c").exists()


def test_a_float32_feature_file_is_not_copied_on_load(tmp_path):
    """Loading a float32 ``.npz`` holds the features once: the peak of the allocations is
    one array's size (plus small change), not two as a converted copy would make it."""
    import tracemalloc

    from perser.features import Features

    X = np.random.default_rng(0).standard_normal((4000, 256)).astype(np.float32)  # 4 MB
    np.savez(tmp_path / "f.npz", X=X, clip_ids=np.array([f"c{i}" for i in range(len(X))]))
    tracemalloc.start()
    try:
        f = Features.load(tmp_path / "f.npz")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert f.X.dtype == np.float32 and np.array_equal(f.X, X)
    assert peak < 1.5 * X.nbytes, peak / X.nbytes
