"""From audio to report with a (tiny, random) self-supervised speech model: extraction
into the store, the protocol on [layers, dim] features, the run folder."""

import json

import pytest
import torch

from perser.config import load_config
from perser.evaluate import evaluate

pytestmark = pytest.mark.slow


def test_evaluate_with_ssl_features_keeps_the_layers(tmp_path, monkeypatch):
    from perser.corpus.synthetic import make_demo
    from perser.methods import get_method
    from perser.testing.ssl import save_tiny_model

    from .test_layer_stacks import _spy_fits

    torch.set_num_threads(1)
    model = save_tiny_model(tmp_path / "ssl", "wavlm")
    corpus = make_demo(tmp_path / "demo", n_clips=60, n_annotators=8, n_new=4, seed=0)
    cfg = load_config(overrides={
        "corpus": str(corpus), "format": "table", "space": "emotion", "features": f"ssl:{model}",
        "feature_settings": {"pooling": "mean+std"}, "feature_cache": str(tmp_path / "store"),
        "methods": ["consensus", "similar"], "unseen_column": "new", "k": [3], "seen_k": [3], "seeds": [0],
        "n_folds": 2, "min_test": 2, "out": str(tmp_path / "run"), "progress": False, "n_bootstrap": 100,
        "method_params": {"consensus": {"hidden": [8], "epochs": 2, "patience": 0},
                          "similar": {"hidden": [8], "epochs": 2, "patience": 0, "min_ratings": 3}},
    })
    fitted = _spy_fits(get_method("similar"), monkeypatch)
    run = evaluate(cfg, console=False)
    layers = 1 + json.loads((model / "config.json").read_text())["num_hidden_layers"]
    dim = 2 * json.loads((model / "config.json").read_text())["hidden_size"]  # mean+std
    assert run.data.X.shape[1:] == (layers, dim)
    assert fitted and tuple(fitted[-1].input_shape_) == (layers, dim)
    assert fitted[-1].net_.trunk.layer_logits.shape == (layers,)
    assert {"consensus", "similar"} == set(run.results["method"])
    assert (tmp_path / "run" / "report.html").is_file()
