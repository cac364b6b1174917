"""Every registered method x every label-space kind x 2-D and [layers, dim] features
through the evaluation protocol (both scenarios): no crash, finite metrics."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from perser.config import load_config
from perser.corpus.model import LabelSpace
from perser.evaluate import make_plan, plan_settings
from perser.evaluate.data import load_eval_data
from perser.evaluate.runner import run_plan
from perser.evaluate.scoring import score_blocks
from perser.methods import available_methods

TINY = {"hidden": [8], "epochs": 2, "batch_size": 256, "patience": 0}
EXTRA = {"finetune": {"steps": 2}, "meta": {"meta_epochs": 1, "iters_per_epoch": 1, "n_inner_steps": 1,
                                             "meta_batch_size": 2}}
SPACES = {"categorical": "emotion", "multilabel": "emotions", "dimensional": "avd"}


def with_multilabel(corpus):
    r = corpus.ratings.copy()
    # two ticked classes on some ratings: a real multilabel value
    second = r["emotion"].map({"a": "b", "b": "c", "c": "d", "d": "a"})
    r["emotions"] = np.where(np.arange(len(r)) % 3 == 0, r["emotion"] + ";" + second, r["emotion"])
    spaces = {**corpus.label_spaces, "emotions": LabelSpace("emotions", "multilabel", classes=("a", "b", "c", "d"))}
    return replace(corpus, ratings=r, label_spaces=spaces)


def stack(X, layers=3, seed=0):
    rng = np.random.default_rng(seed)
    out = rng.normal(size=(len(X), layers, X.shape[1])).astype(np.float32)
    out[:, -1] = X
    return out


@pytest.fixture(scope="module")
def small_toy(make_toy):
    corpus, X, ids = make_toy(n_speakers=6, clips_per_speaker=12, n_listeners=12, n_new=4, per_listener=40)
    return with_multilabel(corpus), X, ids


def _data(tmp_path, toy, kind, layered):
    corpus, X, ids = toy
    cfg = load_config(overrides={"corpus": "toy", "space": SPACES[kind], "k": [3], "seeds": [0], "n_folds": 2,
                                 "unseen_column": "new", "out": str(tmp_path / "run"), "progress": False,
                                 "report": False, "min_test": 3})
    feats = stack(X) if layered else X
    data = load_eval_data(cfg, corpora={"train": corpus}, features={"eval": (feats, ids)})
    return data, make_plan(data, plan_settings(cfg))[:1]


@pytest.mark.parametrize("layered", [False, True], ids=["vectors", "layers"])
@pytest.mark.parametrize("kind", list(SPACES))
@pytest.mark.parametrize("method", available_methods())
def test_every_method_kind_and_feature_shape(tmp_path, small_toy, method, kind, layered):
    torch.set_num_threads(1)
    data, plan = _data(tmp_path, small_toy, kind, layered)
    params = {**TINY, **EXTRA.get(method, {}), "min_ratings": 5} if not method.startswith("consensus") else dict(TINY)
    if method in ("consensus", "consensus-finetuned", "meta", "meta-finetune"):
        params.pop("min_ratings", None)
    if method in ("meta", "meta-finetune"):
        params.update(EXTRA["meta"], k_support=3, k_query=3)
    from perser.errors import ConfigError
    from perser.methods import get_method

    if kind not in get_method(method).kinds:  # e.g. similar-finetuned: the authors' network is dimensional
        with pytest.raises(ConfigError, match=f"does not support {kind}"):
            run_plan(data, plan, {method: params}, progress=False)
        return
    out = run_plan(data, plan, {method: params}, progress=False)
    assert {b.scenario for b in out.blocks} == {"unseen", "seen"}
    for b in out.blocks:
        pred = b.values if kind == "dimensional" else b.proba
        assert pred is not None and np.isfinite(pred).all()
        if kind == "dimensional":
            assert ((pred >= 1) & (pred <= 5)).all()
    res = score_blocks(out.blocks, data)
    metrics = res[~res["metric"].isin(["n_test", "threshold", "threshold_max"])]
    assert len(metrics) and np.isfinite(metrics["value"].to_numpy(dtype=float)).all()
    seen = [b for b in out.blocks if b.scenario == "seen"]
    if method == "similar":
        # a seen listener is predicted by their own head, not by an enrollment
        assert seen and all(b.profile.get("heads") == [b.annotator] for b in seen)
    elif method == "random-annotator":
        # a random head for seen listeners too, the same draw whatever K (not their own, as a rule)
        assert seen and all(len(b.profile.get("heads")) == 1 for b in seen)
        assert any(b.profile["heads"] != [b.annotator] for b in seen)
    elif method == "mean-annotator":
        assert seen and all(not b.profile.get("heads") for b in seen)  # the mean names no head
    elif method in ("finetune", "meta", "meta-finetune"):
        # no head of their own: enrolled with K of their training ratings
        assert seen and all(b.profile.get("k") == b.k for b in seen)
