"""``similar``'s enrollment scoring against many heads: the log-likelihood computed from
logits relative to class 0 (one class fewer in the matrix product) and the partial sort of
the best heads give what the exhaustive scoring gives — every head's log-softmax over all
classes, then a full sort."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from perser.methods import make_method
from perser.methods.nets import MultiHead
from perser.methods.similar import RANKING, best_heads, categorical_loglik


def _exhaustive(model, X, y) -> np.ndarray:
    """The reference: log-softmax of every head's outputs over all classes, in float64."""
    out = model.head_outputs(X, activated=False).double()  # [K, H, C]
    lp = torch.log_softmax(out, dim=-1)
    yt = torch.from_numpy(np.asarray(y, dtype=np.int64))
    return lp[torch.arange(len(y)), :, :].gather(2, yt[:, None, None].expand(len(y), out.shape[1], 1))[..., 0].mean(0).numpy()


@pytest.fixture(scope="module")
def fitted():
    from .conftest import FAST, Synth

    s = Synth("categorical", n_clips=120, n_annotators=6)
    m = make_method("similar", **{**FAST, "epochs": 5}).fit(s.train)
    return m, s


def _many_heads(m, n_heads: int, scale: float, seed: int):
    """``m`` with its head bank replaced by ``n_heads`` random heads (plus the consensus head)."""
    torch.manual_seed(seed)
    head = MultiHead(m.net_.head.in_dim, n_heads + 1, m.net_.head.n_out)
    with torch.no_grad():
        head.weight.mul_(scale)
        head.bias.mul_(scale)
    m.net_.head = head
    m.head_annotators_ = [f"h{i:04d}" for i in range(n_heads)]
    m._index = {a: i for i, a in enumerate(m.head_annotators_)}
    return m


@pytest.mark.parametrize("scale", [1.0, 40.0])
def test_relative_logit_loglik_equals_the_exhaustive_log_softmax(fitted, scale):
    import copy

    m, s = fitted
    m = _many_heads(copy.deepcopy(m), 300, scale, seed=1)
    X, y = s.listener(s.W["a0"], 25)
    got = categorical_loglik(m, X, y).numpy()
    ref = _exhaustive(m, X, y)
    assert np.isfinite(got).all()  # logits of +-40 x a trunk output would overflow a plain exp
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-4 * scale)
    # and through the method: score_heads returns it for the default score
    crit, sc, tie = m.score_heads(X, y)
    assert crit == "loglik" and np.array_equal(sc, got.astype(np.float64)) and not tie.any()


def test_every_label_class_enters_the_score(fitted):
    """Class 0's relative logit is 0, so its clips take a different branch: a listener
    labelling only class 0, and one never labelling it, both match the reference."""
    import copy

    m, s = fitted
    m = _many_heads(copy.deepcopy(m), 50, 3.0, seed=2)
    X, _ = s.listener(s.W["a1"], 12)
    for y in (np.zeros(12, dtype=np.int64), np.arange(12) % 3 + 1):
        np.testing.assert_allclose(categorical_loglik(m, X, y).numpy(), _exhaustive(m, X, y), rtol=1e-5, atol=1e-5)


def test_the_cache_follows_head_updates(fitted):
    import copy

    m, s = fitted
    m = _many_heads(copy.deepcopy(m), 40, 1.0, seed=3)
    X, y = s.listener(s.W["a2"], 10)
    before = categorical_loglik(m, X, y).numpy()
    with torch.no_grad():
        m.net_.head.weight[5].mul_(-3.0)  # an in-place step moves the version counter
    after = categorical_loglik(m, X, y).numpy()
    np.testing.assert_allclose(after, _exhaustive(m, X, y), rtol=1e-5, atol=1e-5)
    assert not np.isclose(after[5], before[5]) and np.allclose(np.delete(after, 5), np.delete(before, 5))


def test_enroll_profile_equals_the_exhaustive_ranking(fitted):
    import copy

    m, s = fitted
    m = _many_heads(copy.deepcopy(m), 2000, 2.0, seed=4)
    m.top_k = 3
    for seed in range(3):
        X, y = s.listener(s.W[f"a{seed}"], 30, seed=seed)
        ref = _exhaustive(m, X, y)
        order = np.argsort(-ref, kind="stable")
        p = m.enroll(X, y).data
        names = [n for n, _ in p["ranking"]]
        assert len(names) == RANKING and p["heads"] == names[:3]
        want = [m.head_annotators_[h] for h in order[:RANKING]]
        # the same heads in the same order, except where two reference scores are within rounding
        gaps = np.diff(ref[order[: RANKING + 1]])
        if (np.abs(gaps) > 1e-5).all():
            assert names == want
        np.testing.assert_allclose([v for _, v in p["ranking"]], ref[order[:RANKING]], rtol=1e-5, atol=1e-5)


def test_best_heads_is_the_head_of_a_full_lexsort():
    rng = np.random.default_rng(0)
    for trial in range(200):
        H = int(rng.integers(1, 400))
        n = int(rng.integers(1, 15))
        s = rng.integers(-5, 5, size=H).astype(np.float64)  # many exact ties
        tie = rng.integers(0, 3, size=H).astype(np.float64)
        if trial % 7 == 0:
            s[rng.random(H) < 0.5] = np.nan
        if trial % 11 == 0:
            s[rng.random(H) < 0.5] = -np.inf
        assert np.array_equal(best_heads(s, tie, n), np.lexsort((tie, -s))[:n]), trial


def test_the_upper_bound_holds_for_every_head(fitted):
    """Gibbs' inequality: no head scores above its bound, near or far from the mean head."""
    import copy

    from perser.methods.similar import loglik_upper_bound

    m, s = fitted
    for scale, seed in ((0.3, 5), (5.0, 6)):
        mm = _many_heads(copy.deepcopy(m), 500, scale, seed=seed)
        X, y = s.listener(s.W["a3"], 20, seed=seed)
        X, y = mm._check_support(X, y)
        exact = categorical_loglik(mm, X, y).numpy()
        bound = loglik_upper_bound(mm, mm.embed(X), y).numpy()
        assert (bound >= exact - 1e-5).all()
        assert np.median(bound - exact) < (0.05 if scale < 1 else 50)  # a bound, not a constant


@pytest.mark.parametrize("scale,spread", [(0.5, 0.0), (3.0, 0.0), (1.0, 4.0)])
def test_two_stage_search_finds_the_exhaustive_best_heads(fitted, scale, spread):
    """Heads alike (tight bound, one stage), heads far apart (a second stage), and heads
    near the mean plus a few far ones: the screened enrollment equals the exhaustive one."""
    import copy

    import perser.methods.similar as similar

    m, s = fitted
    mm = _many_heads(copy.deepcopy(m), 3000, scale, seed=7)
    if spread:
        with torch.no_grad():
            mm.net_.head.weight[::50] *= spread
    mm.top_k = 12
    calls = []
    exact = similar._loglik

    def counting(model, z, y, heads):
        calls.append(None if heads is None else len(heads))
        return exact(model, z, y, heads)

    similar._loglik = counting
    try:
        for seed in range(4):
            X, y = s.listener(s.W[f"a{seed}"], 30, seed=10 + seed)
            assert mm._screens(12)
            p = mm.enroll(X, y).data
            ref = _exhaustive(mm, X, y)
            order = np.argsort(-ref, kind="stable")[:12]
            assert p["heads"] == [mm.head_annotators_[h] for h in order]
            np.testing.assert_allclose(p["scores"], ref[order], rtol=1e-5, atol=1e-5)
            assert [h for h, _ in p["ranking"]] == p["heads"][:RANKING]
    finally:
        similar._loglik = exact
    assert None not in calls and sum(calls) < 4 * 3000  # never every head in one product
    if scale >= 3:
        assert len(calls) > 4  # loose bounds: second stages ran
