"""Per-step cost proportional to the batch: row-sparse head gradients, lazy Adam and
the per-rating shrinkage term, checked against the dense implementation.

What "match" means here: a row-sparse gradient equals the dense gradient exactly
(rows outside the batch are zero in the dense one); lazy Adam equals
:class:`torch.optim.Adam` to float rounding (1e-6) on rows touched by every step and
leaves untouched rows (weights and moments) alone; the per-rating shrinkage gradient
summed over an epoch's batches equals the dense term's to 1e-5; and a fit with
full-batch steps (every head in every step) gives the dense fit's weights to 1e-5.
With mini-batches the two differ by design (dense Adam keeps moving heads that are
not in the batch on their momentum)."""

from __future__ import annotations

import pytest
import torch

from perser.methods import distributed, multi
from perser.methods.base import make_method
from perser.methods.nets import MultiHead, gather_rows
from perser.methods.training import LazyAdam, TrainResult, batch_plan

from .test_meta import crowd


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_gathered_rows_get_the_dense_gradient_as_a_sparse_tensor():
    w = torch.randn(6, 4, 3, requires_grad=True)
    rows = torch.tensor([1, 4])
    (gather_rows(w, rows) * torch.arange(24.0).view(2, 4, 3)).sum().backward()
    g = w.grad
    assert g.is_sparse and g.coalesce().indices()[0].tolist() == [1, 4]
    w2 = w.detach().clone().requires_grad_(True)
    (w2[rows] * torch.arange(24.0).view(2, 4, 3)).sum().backward()
    assert torch.equal(g.to_dense(), w2.grad)

    head = MultiHead(4, 6, 3)
    z, idx = torch.randn(5, 4), torch.tensor([3, 0, 3, 5, 0])
    dense = head.forward_heads(z, idx)
    dense.pow(2).sum().backward()
    gw, gb = head.weight.grad.clone(), head.bias.grad.clone()
    head.zero_grad(set_to_none=True)
    head.sparse_grad = True
    out = head.forward_heads(z, idx)
    torch.testing.assert_close(out, dense, rtol=0, atol=1e-6)
    out.pow(2).sum().backward()
    assert head.weight.grad.is_sparse and sorted(head.weight.grad.coalesce().indices()[0].tolist()) == [0, 3, 5]
    torch.testing.assert_close(head.weight.grad.to_dense(), gw, rtol=0, atol=1e-6)
    torch.testing.assert_close(head.bias.grad.to_dense(), gb, rtol=0, atol=1e-6)


def test_lazy_adam_is_adam_on_touched_rows_and_leaves_the_others_alone():
    g = torch.Generator().manual_seed(0)
    start = torch.randn(5, 3, generator=g)
    grads = [torch.randn(5, 3, generator=g) for _ in range(12)]
    trunk0 = torch.randn(4, generator=g)
    # every row in every step, dense and sparse gradients: Adam's trajectory
    for as_sparse in (False, True):
        a, b = start.clone().requires_grad_(True), start.clone().requires_grad_(True)
        ta, tb = trunk0.clone().requires_grad_(True), trunk0.clone().requires_grad_(True)
        ref = torch.optim.Adam([a, ta], lr=0.05, weight_decay=0.1)
        lazy = LazyAdam([b, tb], lr=0.05, weight_decay=0.1)
        for gr in grads:
            a.grad, ta.grad = gr.clone(), gr[0, :1].repeat(4)
            b.grad = gr.to_sparse(1) if as_sparse else gr.clone()
            tb.grad = gr[0, :1].repeat(4)
            ref.step()
            lazy.step()
        torch.testing.assert_close(b, a, rtol=0, atol=1e-6)
        torch.testing.assert_close(tb, ta, rtol=0, atol=1e-6)
    # rows 1 and 3 only in even steps: rows 0, 2, 4 never move; rows 1 and 3 follow Adam
    # on their own six gradients (their own step count)
    c = start.clone().requires_grad_(True)
    lazy = LazyAdam([c], lr=0.05)
    rows = torch.tensor([1, 3])
    for s, gr in enumerate(grads):
        c.grad = torch.sparse_coo_tensor(rows[None], gr[rows], c.shape, check_invariants=True) if s % 2 == 0 else \
            torch.sparse_coo_tensor(torch.zeros((1, 0), dtype=torch.long), torch.zeros(0, 3), c.shape, check_invariants=True)
        lazy.step()
    assert torch.equal(c.detach()[[0, 2, 4]], start[[0, 2, 4]])
    assert torch.equal(lazy.state[c]["exp_avg"][[0, 2, 4]], torch.zeros(3, 3))
    alone = start[rows].clone().requires_grad_(True)
    ref = torch.optim.Adam([alone], lr=0.05)
    for gr in grads[::2]:
        alone.grad = gr[rows].clone()
        ref.step()
    torch.testing.assert_close(c.detach()[rows], alone.detach(), rtol=0, atol=1e-6)


def _capture(monkeypatch, kind="categorical", **params):
    """Fit set-up of a `similar` model without training: the network and batch loss."""
    got = {}

    def fake_fit(model, n, batch_loss, valid_loss=None, config=None, params=None):
        got.update(model=model, n=n, batch_loss=batch_loss, config=config)
        return TrainResult(0, -1, None)

    monkeypatch.setattr(multi, "fit_model", fake_fit)
    rs, _ = crowd(kind, n_clips=40, n_ann=7, n_ratings=[40, 30, 12, 12, 25, 11, 40])
    m = make_method("similar", hidden=(8,), dropout=0.0, valid_fraction=0, progress=False, min_ratings=10, **params)
    m.fit(rs)
    got["model"].head.sparse_grad = m.head_updates == "sparse"
    return got


def test_per_rating_shrinkage_sums_to_the_dense_term_over_an_epoch(monkeypatch):
    grads = {}
    for mode in ("dense", "sparse"):
        got = _capture(monkeypatch, head_shrinkage=50.0, head_updates=mode)
        net, total = got["model"], None
        net.train()
        assert got["n"] == 170  # ten batches of 17: every batch the same size
        for batch in batch_plan(got["n"], 17, seed=0, epoch=0):
            net.zero_grad(set_to_none=True)
            got["batch_loss"](net, batch).backward()
            gw = net.head.weight.grad
            gw = gw.to_dense() if gw.is_sparse else gw
            total = gw if total is None else total + gw
        grads[mode] = total
    assert grads["sparse"].abs().sum() > 0
    torch.testing.assert_close(grads["sparse"], grads["dense"], rtol=0, atol=1e-5)


def test_full_batch_sparse_fit_matches_the_dense_fit():
    rs, _ = crowd("dimensional", n_clips=40, n_ann=6)
    common = dict(hidden=(8,), dropout=0.0, epochs=6, batch_size=10_000, lr=1e-2, patience=0, valid_fraction=0,
                  progress=False, head_shrinkage=20.0, min_ratings=10)
    d = make_method("similar", head_updates="dense", **common).fit(rs)
    s = make_method("similar", head_updates="sparse", **common).fit(rs)
    start = d._make_net(d.net_.head.n_heads)
    assert not torch.allclose(start.head.weight, d.net_.head.weight, atol=1e-3)  # training moved the heads
    for (k, a), (_, b) in zip(d.net_.state_dict().items(), s.net_.state_dict().items()):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-5, msg=k)


def test_bad_head_updates_is_named():
    from perser.errors import ConfigError

    rs, _ = crowd("dimensional", n_clips=20, n_ann=3)
    with pytest.raises(ConfigError, match="head_updates"):
        make_method("similar", head_updates="lazy", progress=False).fit(rs)


def test_all_reduce_rows_outside_a_process_group_coalesces():
    g = torch.sparse_coo_tensor(torch.tensor([[3, 1, 3]]), torch.ones(3, 2), (5, 2))
    out = distributed.all_reduce_rows(g, (5, 2))
    assert out.is_coalesced() and out.indices()[0].tolist() == [1, 3]
    assert torch.equal(out.to_dense()[3], torch.full((2,), 2.0))
    empty = distributed.all_reduce_rows(None, (5, 2))
    assert empty.to_dense().abs().sum() == 0
