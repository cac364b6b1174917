"""The functional MAML++ core (perser.methods.maml) on small constructed problems."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.func import functional_call

from perser.methods.maml import (
    MAMLPlusPlus,
    TaskBatch,
    inner_loop,
    meta_gradients,
    module_fn,
    msl_weights,
)


def mse(out, y):
    return ((out - y) ** 2).mean()


def mlp(d_in=4, hidden=6, d_out=2, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(d_in, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, d_out))


def tasks(T=4, K=5, Q=7, d_in=4, d_out=2, seed=1):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(T, d_in, d_out, generator=g)
    xs = torch.randn(T, K, d_in, generator=g)
    xq = torch.randn(T, Q, d_in, generator=g)
    return TaskBatch(xs, torch.einsum("tkd,tdo->tko", xs, w), xq, torch.einsum("tkd,tdo->tko", xq, w))


def reference_meta_grad(module, params, lrs, batch, n_steps, second_order, weights):
    """Plain-autograd MAML (one task at a time), independent of torch.func."""
    P = {k: v.detach().clone().requires_grad_() for k, v in params.items()}
    A = {k: v.detach().clone().requires_grad_() for k, v in lrs.items()}
    total = 0.0
    for t in range(len(batch)):
        p = P
        qs = []
        for s in range(n_steps):
            loss = mse(functional_call(module, p, (batch.xs[t],)), batch.ys[t])
            g = torch.autograd.grad(loss, list(p.values()), create_graph=second_order)
            p = {k: p[k] - A[k][s] * gk for k, gk in zip(p, g)}
            qs.append(mse(functional_call(module, p, (batch.xq[t],)), batch.yq[t]))
        total = total + (weights * torch.stack(qs)).sum()
    total = total / len(batch)
    gs = torch.autograd.grad(total, list(P.values()) + list(A.values()))
    n = len(P)
    return dict(zip(P, gs[:n])), dict(zip(A, gs[n:]))


def test_inner_steps_equal_hand_computed_update_with_per_layer_per_step_lrs():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 3))
    y = rng.normal(size=(6, 2))
    W = rng.normal(size=(3, 2))
    b = rng.normal(size=(2,))
    lr = {"W": np.array([0.1, 0.3]), "b": np.array([0.2, 0.05])}

    def fn(p, xx):
        return xx @ p["W"] + p["b"]

    t = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    params = {"W": t(W), "b": t(b)}
    lrs = {k: t(v) for k, v in lr.items()}
    for n_steps in (1, 2):
        out, _ = inner_loop(fn, mse, params, lrs, t(x), t(y), n_steps)
        Wh, bh = W.copy(), b.copy()
        for s in range(n_steps):  # analytic gradient of mean squared error of a linear map
            r = x @ Wh + bh - y
            dW = 2 * x.T @ r / r.size
            db = 2 * r.sum(axis=0) / r.size
            Wh, bh = Wh - lr["W"][s] * dW, bh - lr["b"][s] * db
        np.testing.assert_allclose(out["W"].numpy(), Wh, rtol=1e-10)
        np.testing.assert_allclose(out["b"].numpy(), bh, rtol=1e-10)
    # the two layers really use their own rates: swapping them changes the result
    swapped = {"W": lrs["b"], "b": lrs["W"]}
    out_sw, _ = inner_loop(fn, mse, params, swapped, t(x), t(y), 2)
    assert not torch.allclose(out_sw["W"], out["W"])


def test_inner_loop_returns_query_loss_after_every_step():
    net = mlp()
    fn = module_fn(net)
    b = tasks(T=1)
    p = {k: v.detach() for k, v in net.named_parameters()}
    lrs = {k: torch.full((3,), 0.5) for k in p}
    _, q = inner_loop(fn, mse, p, lrs, b.xs[0], b.ys[0], 3, xq=b.xq[0], yq=b.yq[0])
    assert q.shape == (3,)
    p2, _ = inner_loop(fn, mse, p, lrs, b.xs[0], b.ys[0], 2)
    assert torch.allclose(q[1], mse(fn(p2, b.xq[0]), b.yq[0]))


def test_derivative_order_annealing_switches_at_the_set_epoch():
    net = mlp()
    b = tasks(T=3)
    m = MAMLPlusPlus(module_fn(net), mse, dict(net.named_parameters()), n_inner_steps=2, inner_lr=0.3,
                     first_order_epochs=2, msl_epochs=0)
    w = m.step_weights()
    fo = reference_meta_grad(net, m.params, m.lrs, b, 2, second_order=False, weights=w)
    so = reference_meta_grad(net, m.params, m.lrs, b, 2, second_order=True, weights=w)
    # second order really differs from first order on this problem
    assert max(float((fo[0][k] - so[0][k]).abs().max()) for k in fo[0]) > 1e-3
    for epoch, want in ((0, fo), (1, fo), (2, so), (5, so)):
        assert m.second_order(epoch) == (epoch >= 2)
        _, gp, ga = m.meta_gradients(b, epoch=epoch)
        for k in gp:
            torch.testing.assert_close(gp[k], want[0][k], rtol=1e-4, atol=1e-6)
            torch.testing.assert_close(ga[k], want[1][k], rtol=1e-4, atol=1e-6)


def test_learned_inner_lrs_receive_gradients_and_change():
    net = mlp()
    b = tasks(T=4)
    m = MAMLPlusPlus(module_fn(net), mse, dict(net.named_parameters()), n_inner_steps=3, inner_lr=0.1,
                     first_order_epochs=0, meta_lr=1e-2)
    before = {k: v.detach().clone() for k, v in m.lrs.items()}
    _, _, ga = m.meta_gradients(b)
    for k, g in ga.items():
        assert g.shape == (3,)
        assert bool((g.abs() > 0).all()), k
    m.step(b)
    for k in before:
        assert not torch.equal(before[k], m.lrs[k].detach()), k
    # fixed rates when LSLR is off
    f = MAMLPlusPlus(module_fn(net), mse, dict(net.named_parameters()), n_inner_steps=3, inner_lr=0.1,
                     learn_inner_lr=False, meta_lr=1e-2)
    f.step(b)
    assert all(torch.equal(v.detach(), torch.full((3,), 0.1)) for v in f.lrs.values())


@pytest.mark.parametrize("second_order", [False, True])
def test_vmapped_meta_batch_gradient_is_mean_of_per_task_gradients(second_order):
    net = mlp()
    fn = module_fn(net)
    b = tasks(T=5)
    p = {k: v.detach() for k, v in net.named_parameters()}
    a = {k: torch.tensor([0.2, 0.1, 0.05]) for k in p}
    w = msl_weights(3, 1, 4)
    loss, gp, ga = meta_gradients(fn, mse, p, a, b, 3, not second_order, w, use_vmap=True)
    per = [meta_gradients(fn, mse, p, a, b.task(t), 3, not second_order, w, use_vmap=True) for t in range(len(b))]
    assert loss == pytest.approx(float(np.mean([float(x[0]) for x in per])), rel=1e-5)
    for k in p:
        torch.testing.assert_close(gp[k], torch.stack([x[1][k] for x in per]).mean(0), rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(ga[k], torch.stack([x[2][k] for x in per]).mean(0), rtol=1e-4, atol=1e-6)
    _, gl, al = meta_gradients(fn, mse, p, a, b, 3, not second_order, w, use_vmap=False)
    for k in p:
        torch.testing.assert_close(gp[k], gl[k], rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(ga[k], al[k], rtol=1e-4, atol=1e-6)
    ref = reference_meta_grad(net, p, a, b, 3, second_order, w)
    for k in p:
        torch.testing.assert_close(gp[k], ref[0][k], rtol=1e-4, atol=1e-6)


def test_multi_step_loss_weights_anneal_towards_the_last_step():
    w0 = msl_weights(5, 0, 10)
    assert torch.allclose(w0, torch.full((5,), 0.2))
    last = [float(msl_weights(5, e, 10)[-1]) for e in range(12)]
    assert all(b > a for a, b in zip(last[:10], last[1:10]))
    for e in range(10):
        w = msl_weights(5, e, 10)
        assert float(w.sum()) == pytest.approx(1.0, abs=1e-6)
        assert float(w[:-1].min()) >= 0.03 / 5 - 1e-9
    assert torch.equal(msl_weights(5, 10, 10), torch.tensor([0.0, 0, 0, 0, 1]))
    assert torch.equal(msl_weights(3, 0, 0), torch.tensor([0.0, 0, 1]))
    # the weights reach the task loss: with all weight on step 1 the loss is the step-1 query loss
    net = mlp()
    fn = module_fn(net)
    b = tasks(T=2)
    p = {k: v.detach() for k, v in net.named_parameters()}
    a = {k: torch.full((2,), 0.3) for k in p}
    l_first, _, _ = meta_gradients(fn, mse, p, a, b, 2, True, torch.tensor([1.0, 0.0]))
    one = [float(mse(fn(inner_loop(fn, mse, p, a, b.xs[t], b.ys[t], 1)[0], b.xq[t]), b.yq[t])) for t in range(2)]
    assert float(l_first) == pytest.approx(np.mean(one), rel=1e-5)


@pytest.mark.filterwarnings("ignore:Detected call of")
def test_outer_learning_rate_is_cosine_annealed():
    net = mlp()
    m = MAMLPlusPlus(module_fn(net), mse, dict(net.named_parameters()), meta_lr=1e-2, min_meta_lr=1e-4, n_epochs=4)
    lrs = [m.meta_lr]
    for _ in range(4):
        m.end_epoch()
        lrs.append(m.meta_lr)
    assert lrs[0] == pytest.approx(1e-2)
    assert lrs[2] == pytest.approx((1e-2 + 1e-4) / 2)
    assert lrs[4] == pytest.approx(1e-4)
    assert all(b < a for a, b in zip(lrs, lrs[1:]))


def test_meta_training_lowers_the_adapted_query_loss():
    # tasks share a structure (outputs = x @ w_task, w_task near a common w): MAML
    # should learn an initialisation and rates that adapt well in 2 steps
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 2)
    g = torch.Generator().manual_seed(3)
    base = torch.randn(4, 2, generator=g)

    def sample(T=8, K=6):
        w = base + 0.3 * torch.randn(T, 4, 2, generator=g)
        x = torch.randn(T, 2 * K, 4, generator=g)
        y = torch.einsum("tkd,tdo->tko", x, w)
        return TaskBatch(x[:, :K], y[:, :K], x[:, K:], y[:, K:])

    m = MAMLPlusPlus(module_fn(net), mse, dict(net.named_parameters()), n_inner_steps=2, inner_lr=0.05,
                     first_order_epochs=3, msl_epochs=3, meta_lr=0.05, n_epochs=10)
    val = sample(T=16)
    before = m.query_loss(val)
    for _ in range(10):
        for _ in range(5):
            m.step(sample())
        m.end_epoch()
    after = m.query_loss(val)
    assert after < 0.5 * before


def test_adapt_refuses_more_steps_than_meta_learned():
    net = mlp()
    m = MAMLPlusPlus(module_fn(net), mse, dict(net.named_parameters()), n_inner_steps=2)
    b = tasks(T=1)
    with pytest.raises(ValueError, match="at most 2"):
        m.adapt(b.xs[0], b.ys[0], n_steps=3)
    p = m.adapt(b.xs[0], b.ys[0])
    assert all(not v.requires_grad for v in p.values())


def test_state_round_trip():
    net = mlp()
    m = MAMLPlusPlus(module_fn(net), mse, dict(net.named_parameters()), n_inner_steps=2, meta_lr=1e-2)
    m.step(tasks(T=2))
    t = m.tensors()
    m2 = MAMLPlusPlus(module_fn(mlp(seed=5)), mse, dict(mlp(seed=5).named_parameters()), n_inner_steps=2)
    m2.load_tensors(t)
    b = tasks(T=1)
    a1, a2 = m.adapt(b.xs[0], b.ys[0]), m2.adapt(b.xs[0], b.ys[0])
    for k in a1:
        assert torch.equal(a1[k], a2[k])
