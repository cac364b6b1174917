"""``meta-finetune`` (``meta`` with ``adapt="finetune"``): the fine-tune baseline on exactly
meta's network and consensus start, with meta-training skipped."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from perser.errors import ConfigError
from perser.methods import load_model
from perser.methods.base import make_method
from perser.methods.maml import MAMLPlusPlus
from perser.methods.meta import MetaPerSER

from .test_meta import CONS, crowd, listener

TINY = dict(meta_epochs=2, iters_per_epoch=2, meta_batch_size=3, meta_lr=3e-2, k_support=4, k_query=4,
            n_inner_steps=3, inner_lr=0.05, first_order_epochs=1, msl_epochs=1, patience=0, adapt_layers=1)


@pytest.fixture(scope="module")
def data():
    torch.set_num_threads(1)
    return crowd("multilabel", n_clips=60, n_ann=8)


@pytest.fixture
def learner_starts(monkeypatch):
    """The initial head parameters every MAML++ learner is built with."""
    starts = []
    real = MAMLPlusPlus.__init__

    def init(self, fn, loss_fn, params, *a, **kw):
        starts.append({k: v.detach().clone() for k, v in params.items()})
        real(self, fn, loss_fn, params, *a, **kw)

    monkeypatch.setattr(MAMLPlusPlus, "__init__", init)
    return starts


def test_starts_from_exactly_metas_start_and_skips_meta_training(data, learner_starts, monkeypatch):
    rs, _ = data
    params = {**CONS, "epochs": 3, **TINY}
    meta = make_method("meta", **params).fit(rs)  # each trains its own consensus model (same settings, seed)
    assert len(learner_starts) == 1 and meta.meta_history_

    def no_meta_training(*a, **kw):
        raise AssertionError("meta-training ran")

    monkeypatch.setattr(MetaPerSER, "_meta_train", no_meta_training)
    monkeypatch.setattr(MAMLPlusPlus, "meta_gradients", no_meta_training)
    ft = make_method("meta-finetune", **params).fit(rs)
    assert ft.name == "meta-finetune" and ft.adapt == "finetune" and meta.adapt == "maml"
    assert len(learner_starts) == 1 and ft.meta_history_ == []  # no learner built, no epoch run
    # the whole network (frozen part and adapted head) is meta's start network
    a, b = meta.net_.state_dict(), ft.net_.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    start = learner_starts[0]
    assert start.keys() == ft.theta_.keys() and all(torch.equal(start[k], ft.theta_[k]) for k in start)
    # ... which meta-training moved away from
    assert any(not torch.equal(start[k], meta.theta_[k]) for k in start)
    # the inner rates stay the initial rate: plain fine-tuning, no learned rates
    assert all(torch.equal(v, torch.full((3,), 0.05)) for v in ft.inner_lrs_.values())
    # and the consensus method with the same settings is the same network
    cons = make_method("consensus", **{k: v for k, v in params.items() if k in CONS or k == "epochs"}).fit(rs)
    c = cons.net_.state_dict()
    assert all(torch.equal(c[k], b[k]) for k in c)


def test_enrollment_is_plain_gradient_descent_on_the_head(data):
    rs, W0 = data
    ft = make_method("meta-finetune", **{**CONS, "epochs": 3, **TINY}).fit(rs)
    X, y = listener("multilabel", -W0, n=12)
    prof = ft.enroll(X, y, annotator="x")
    assert prof.method == "meta-finetune" and prof.data["adapt"] == "finetune"
    # by hand: n_inner_steps steps of SGD at inner_lr on the support loss, from the consensus head
    head = {k: v.clone().requires_grad_(True) for k, v in ft.theta_.items()}
    z, t = ft._frozen(X), torch.from_numpy(ft._targets(y))
    loss_fn = ft._loss_fn()
    for _ in range(3):
        loss = loss_fn(ft.head_fn_(head, z), t)
        grads = torch.autograd.grad(loss, list(head.values()))
        head = {k: (v - 0.05 * g).detach().requires_grad_(True) for (k, v), g in zip(head.items(), grads)}
    for k, v in head.items():
        np.testing.assert_allclose(prof.tensors[k], v.detach().numpy(), rtol=1e-5, atol=1e-6)
    assert prof.data["support_loss_after"] < prof.data["support_loss_before"]


def test_save_load_and_bad_adapt(data, tmp_path):
    rs, W0 = data
    ft = make_method("meta-finetune", **{**CONS, "epochs": 2, **TINY}).fit(rs)
    ft.save(tmp_path / "m")
    back = load_model(tmp_path / "m")
    assert type(back).__name__ == "MetaFineTune" and back.adapt == "finetune"
    X, y = listener("multilabel", W0, n=20)
    p1, p2 = ft.enroll(X[:8], y[:8]), back.enroll(X[:8], y[:8])
    np.testing.assert_allclose(ft.predict(p1, X[8:]).proba, back.predict(p2, X[8:]).proba, rtol=1e-6)
    with pytest.raises(ConfigError, match="unknown adapt 'sgd'"):
        make_method("meta", adapt="sgd", **{**CONS, "epochs": 1, **TINY}).fit(rs)
