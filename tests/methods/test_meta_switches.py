"""Meta-PerSER's four MAML++ components as switches of ``meta``: each test fails when its
component is switched off (or not passed on to the learner).

The components themselves are tested against hand computations in ``test_meta_maml.py``;
here the method's parameters are checked to reach them during a real (tiny) fit.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from perser.methods import make_method
from perser.methods.maml import MAMLPlusPlus

from .test_meta import CONS, crowd

TINY = dict(meta_epochs=3, iters_per_epoch=2, meta_batch_size=3, meta_lr=3e-2, k_support=4, k_query=4,
            n_inner_steps=3, inner_lr=0.1, patience=0)


@pytest.fixture(scope="module")
def start():
    torch.set_num_threads(1)
    rs, _ = crowd("dimensional", n_clips=60, n_ann=8)
    return rs, make_method("consensus", **{**CONS, "epochs": 3}).fit(rs)


@pytest.fixture
def spy(monkeypatch):
    """Records, for every meta-gradient, the epoch, the derivative order and the step weights,
    and the support/query batch it was computed on."""
    calls = []
    real = MAMLPlusPlus.meta_gradients

    def meta_gradients(self, batch, epoch=None):
        ep = self.epoch if epoch is None else epoch
        calls.append({"epoch": ep, "second_order": self.second_order(ep), "weights": self.step_weights(ep).clone(),
                      "same_sets": bool(torch.equal(batch.xs, batch.xq)), "learn_lr": self.learn_inner_lr})
        return real(self, batch, epoch)

    monkeypatch.setattr(MAMLPlusPlus, "meta_gradients", meta_gradients)
    return calls


def _fit(start, **kw):
    rs, cons = start
    return make_method("meta", init_model=cons, **{**TINY, "first_order_epochs": 1, "msl_epochs": 2, **kw}).fit(rs)


@pytest.mark.parametrize("on", [True, False])
def test_lslr_learns_per_layer_per_step_rates_only_when_on(start, spy, on):
    m = _fit(start, learn_inner_lr=on)
    assert all(c["learn_lr"] is on for c in spy)
    learned = any(not torch.allclose(v, torch.full_like(v, 0.1)) for v in m.inner_lrs_.values())
    assert learned is on
    assert all(v.shape == (3,) for v in m.inner_lrs_.values())  # one rate per step, per tensor


@pytest.mark.parametrize("first_order_epochs", [1, 3])
def test_derivative_order_annealing_switches_to_second_order(start, spy, first_order_epochs):
    _fit(start, first_order_epochs=first_order_epochs)
    orders = {c["epoch"]: c["second_order"] for c in spy}
    assert orders == {e: e >= first_order_epochs for e in range(3)}
    assert any(orders.values()) is (first_order_epochs < 3)  # switched off: first order throughout


@pytest.mark.parametrize("msl_epochs", [2, 0])
def test_multi_step_loss_weighs_every_inner_step_only_when_on(start, spy, msl_epochs):
    _fit(start, msl_epochs=msl_epochs)
    first = spy[0]["weights"]
    if msl_epochs:
        assert torch.allclose(first, torch.full((3,), 1 / 3))  # every step's query loss counts at first
        assert torch.equal(spy[-1]["weights"], torch.tensor([0.0, 0.0, 1.0]))  # annealed to the last step
    else:
        assert all(torch.equal(c["weights"], torch.tensor([0.0, 0.0, 1.0])) for c in spy)


@pytest.mark.parametrize("combined", [True, False])
def test_combined_set_meta_training_uses_the_same_clips_inside_and_outside(start, spy, combined):
    _fit(start, combined=combined)
    assert spy and all(c["same_sets"] is combined for c in spy)


def test_switches_change_the_learned_model(start):
    base = _fit(start)
    for kw in ({"learn_inner_lr": False}, {"first_order_epochs": 3}, {"msl_epochs": 0}, {"combined": False}):
        other = _fit(start, **kw)
        diff = max(float((base.theta_[k] - other.theta_[k]).abs().max()) for k in base.theta_)
        assert diff > 1e-7, kw
    np.testing.assert_equal(sorted(base.theta_), sorted(_fit(start).theta_))


def test_meta_training_runs_on_the_train_device_and_cpu_is_unchanged(start, monkeypatch):
    """Meta-training takes ``device``: its tasks, initial weights, learning rates and step
    weights live on ``train_device()`` (the CPU here), the fitted head comes back to the
    CPU, and ``device="cpu"`` learns exactly what the default does on this machine."""
    from perser.methods.meta import MetaPerSER

    seen = []
    real = MAMLPlusPlus.meta_gradients

    def meta_gradients(self, batch, epoch=None):
        seen.append({t.device for t in (batch.xs, batch.yq, self.step_weights(), *self.params.values(), *self.lrs.values())})
        return real(self, batch, epoch)

    asked = []
    real_dev = MetaPerSER.train_device

    def train_device(self):
        asked.append(self.device)
        return real_dev(self)

    monkeypatch.setattr(MAMLPlusPlus, "meta_gradients", meta_gradients)
    monkeypatch.setattr(MetaPerSER, "train_device", train_device)
    a = _fit(start, device="cpu")
    assert asked == ["cpu"] and seen and all(s == {torch.device("cpu")} for s in seen)
    assert all(p.device.type == "cpu" for p in a.head_.parameters()) and all(v.device.type == "cpu" for v in a.theta_.values())
    b = _fit(start)
    for k in a.theta_:
        assert torch.equal(a.theta_[k], b.theta_[k]) and torch.equal(a.inner_lrs_[k], b.inner_lrs_[k])
    rs, _ = start
    X, y = rs.of(rs.annotators[0])
    np.testing.assert_array_equal(a.predict(a.enroll(X[:4], y[:4]), X).values, b.predict(b.enroll(X[:4], y[:4]), X).values)
