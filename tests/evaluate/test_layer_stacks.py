"""SSL features ([layers, dim] per clip) reach the methods whole through the evaluation."""

import numpy as np
import pytest
import torch

from perser.config import load_config
from perser.evaluate import make_plan, plan_settings
from perser.evaluate.data import _features, load_eval_data
from perser.evaluate.runner import run_plan
from perser.errors import SkipLog


def _stack(X: np.ndarray, layers: int = 3, seed: int = 0) -> np.ndarray:
    """A [n, layers, dim] stack whose last layer holds the features (the others noise)."""
    rng = np.random.default_rng(seed)
    out = rng.normal(size=(len(X), layers, X.shape[1])).astype(np.float32)
    out[:, -1] = X
    return out


def test_extracted_layer_stacks_are_not_flattened(monkeypatch, toy):
    corpus, X, ids = toy
    import perser.features as features

    class Fake:
        def __init__(self):
            self.X, self.clip_ids, self.failures = _stack(X), ids, {}

    calls = []
    monkeypatch.setattr(features, "extract", lambda *a, **k: calls.append(k) or Fake())
    cfg = load_config(overrides={"corpus": "toy", "space": "emotion", "features": "ssl:/nowhere",
                                 "feature_settings": {"pooling": "mean+std", "precision": "fp16"}})
    got, got_ids = _features(corpus, cfg, SkipLog("t"))
    assert got.shape == (len(X), 3, X.shape[1]) and list(got_ids) == list(ids)
    assert calls[0]["pooling"] == "mean+std" and calls[0]["precision"] == "fp16"  # the store key's settings


@pytest.mark.parametrize("method", ["similar", "meta"])
def test_methods_fitted_in_the_protocol_see_the_layers(tmp_path, toy, method, monkeypatch):
    torch.set_num_threads(1)
    corpus, X, ids = toy
    cfg = load_config(overrides={"corpus": "toy", "space": "emotion", "k": [5], "seeds": [0], "n_folds": 2,
                                 "unseen_column": "new", "out": str(tmp_path / "run"), "progress": False,
                                 "report": False, "min_test": 5})
    data = load_eval_data(cfg, corpora={"train": corpus}, features={"eval": (_stack(X), ids)})
    assert data.X.shape[1:] == (3, X.shape[1])
    plan = make_plan(data, plan_settings(cfg))[:1]
    from perser.methods import get_method

    fitted = _spy_fits(get_method(method), monkeypatch)
    small = {"hidden": [8], "epochs": 2, "batch_size": 128, "patience": 0}
    if method == "meta":
        small.update(meta_epochs=1, iters_per_epoch=2)
    out = run_plan(data, plan, {method: small}, progress=False)
    assert out.blocks and fitted
    model = fitted[-1]
    assert tuple(model.input_shape_) == (3, X.shape[1])
    logits = model.net_.trunk.layer_logits  # one learned weight per layer
    assert logits is not None and logits.shape == (3,)


def _spy_fits(cls, monkeypatch) -> list:
    """Every model of class ``cls`` that finishes a ``fit`` in this test (``monkeypatch`` restores ``fit``)."""
    fitted = []
    real_fit = cls.fit

    def spy(self, train, valid=None):
        out = real_fit(self, train, valid)
        fitted.append(self)
        return out

    monkeypatch.setattr(cls, "fit", spy)
    return fitted
