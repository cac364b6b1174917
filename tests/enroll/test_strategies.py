"""Selection strategies on hand-built head models: exact choices and posteriors."""

from __future__ import annotations

import numpy as np
import pytest

from perser.corpus.model import LabelSpace
from perser.enroll import ActiveStrategy, make_strategy, parse_strategy
from perser.errors import ConfigError, PerserError

CAT = LabelSpace("emotion", "categorical", classes=("a", "b", "c"))
DIM = LabelSpace("avd", "dimensional", dimensions=("arousal", "valence"), scale=(1, 5))
MULTI = LabelSpace("tags", "multilabel", classes=("a", "b", "c"))


def K(n):
    return np.arange(n, dtype=np.float32)[:, None]


def agree_disagree_table():
    """Clip 0: both heads say 'a'. Clip 1: head 0 says 'a', head 1 says 'b'. Clip 2: both unsure."""
    t = np.zeros((3, 2, 3), dtype=np.float32)
    t[0, :, 0] = 0.98
    t[0, :, 1:] = 0.01
    t[1, 0] = [0.98, 0.01, 0.01]
    t[1, 1] = [0.01, 0.98, 0.01]
    t[2, :, :] = 1 / 3
    return t


@pytest.mark.parametrize("criterion", ["head", "target"])
def test_active_asks_the_clip_the_heads_disagree_on(fake, criterion):
    m = fake(CAT, agree_disagree_table())
    s = ActiveStrategy(criterion=criterion, noise=0.05).fit(m)
    sel = s.select(K(3), n=1)
    assert sel.indices.tolist() == [1]
    # 'head': close to log 2 nats; 'target': a third of that (one informative clip of three targets)
    assert sel.gains[0] > (0.5 if criterion == "head" else 0.1)


def test_posterior_moves_to_the_head_that_matches_the_answer(fake):
    m = fake(CAT, agree_disagree_table())
    sess = ActiveStrategy(criterion="head", noise=0.05).fit(m).session(K(3))
    w = sess.posterior(rated=[1], y=np.array([1]))
    assert w[1] > 0.95
    # once the listener is known, nothing is left to learn about the head
    assert sess.select(1, rated=[1], y=np.array([1])).gains[0] < 0.05


def test_target_criterion_prefers_a_representative_clip_over_an_odd_one(fake):
    """Heads disagree equally on clip 0 (like clips 2-9) and on clip 1 (unlike every
    other clip). Head information ties; the predictive information about the pool
    favours the clip whose answer tells about the other clips."""
    H = 2
    t = np.zeros((10, H, 3), dtype=np.float32)
    t[:, 0] = [0.9, 0.05, 0.05]
    t[:, 1] = [0.05, 0.9, 0.05]
    t[1, 0] = [0.05, 0.05, 0.9]  # on clip 1 the heads disagree in a way no other clip shows
    t[1, 1] = [0.9, 0.05, 0.05]
    m = fake(CAT, t)
    head = ActiveStrategy(criterion="head", noise=0.05).fit(m).session(K(10))
    tgt = ActiveStrategy(criterion="target", noise=0.05).fit(m).session(K(10))
    w = np.array([0.5, 0.5])
    g_head = head.gains(w, np.arange(10))
    g_tgt = tgt.gains(w, np.arange(10))
    assert g_head[1] == pytest.approx(g_head[0], abs=1e-6)
    # both clips identify the head equally, so the predictive gain on the pool is equal too
    assert g_tgt[1] == pytest.approx(g_tgt[0], rel=1e-6)
    # a clip where heads agree tells nothing under either criterion
    t2 = t.copy()
    t2[2] = 1 / 3
    g2 = ActiveStrategy(criterion="target", noise=0.05).fit(fake(CAT, t2)).session(K(10)).gains(w, np.arange(10))
    assert g2[2] < 1e-6 < g2[0]


def test_dimensional_gaussian_criterion_and_posterior(fake):
    t = np.zeros((4, 3, 2), dtype=np.float32)  # unit-scale values
    t[0] = [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]]      # all heads agree
    t[1] = [[-0.8, 0.0], [0.0, 0.0], [0.8, 0.0]]     # heads disagree on arousal
    t[2] = [[-0.2, 0.0], [0.0, 0.0], [0.2, 0.0]]     # a little
    t[3] = [[0.0, -0.8], [0.0, 0.0], [0.0, 0.8]]     # on valence, as much as clip 1
    for crit in ("head", "target"):
        sess = ActiveStrategy(criterion=crit, noise=[0.2, 0.2]).fit(fake(DIM, t)).session(K(4))
        g = sess.gains(np.ones(3) / 3, np.arange(4))
        assert g[0] == pytest.approx(0, abs=1e-9)
        assert g[1] > g[2] > 0
    sess = ActiveStrategy(criterion="head", noise=0.2).fit(fake(DIM, t)).session(K(4))
    # native 1-5 scale: unit 0.8 is 4.6
    w = sess.posterior(rated=[1], y=np.array([[4.6, 3.0]]))
    assert np.argmax(w) == 2 and w[2] > 0.99


def test_multilabel_criterion(fake):
    t = np.full((2, 2, 3), 0.5, dtype=np.float32)
    t[0] = 0.9
    t[1, 0] = [0.95, 0.05, 0.5]
    t[1, 1] = [0.05, 0.95, 0.5]
    sel = ActiveStrategy(criterion="head", noise=0.05).fit(fake(MULTI, t)).select(K(2), n=1)
    assert sel.indices.tolist() == [1]
    sess = ActiveStrategy(criterion="head", noise=0.05).fit(fake(MULTI, t)).session(K(2))
    w = sess.posterior(rated=[1], y=np.array([[0.0, 1.0, 0.0]], dtype=np.float32))
    assert w[1] > 0.95


def test_batch_mode_spreads_over_independent_questions(fake):
    """Clips 0 and 1 ask the same question (head 0 vs 1), clip 2 another (head 2 vs 3):
    a batch of two asks both questions, not the same one twice."""
    t = np.full((3, 4, 3), 0.01, dtype=np.float32)
    t[:, :, 0] = 0.98
    for c in (0, 1):
        t[c, 1] = [0.01, 0.98, 0.01]
        t[c, 3] = [0.01, 0.98, 0.01]
    t[2, 3] = [0.01, 0.01, 0.98]
    t[2, 2] = [0.01, 0.98, 0.01]
    sess = ActiveStrategy(criterion="head", noise=0.05).fit(fake(CAT, t)).session(K(3))
    first = sess.select(1).indices[0]
    batch = sess.select(2).indices.tolist()
    assert batch[0] == first and len(set(batch)) == 2
    assert 2 in batch


def test_order_is_sequential_and_nested_and_deterministic(fake):
    rng = np.random.default_rng(0)
    t = rng.dirichlet(np.ones(3), size=(30, 8)).astype(np.float32)
    m = fake(CAT, t)
    y = rng.integers(0, 3, 30)
    a = ActiveStrategy(noise=0.1, seed=1).fit(m).session(K(30)).order(y, 6)
    b = ActiveStrategy(noise=0.1, seed=1).fit(m).session(K(30)).order(y, 6)
    assert a.indices.tolist() == b.indices.tolist()
    assert len(set(a.indices.tolist())) == 6
    # the step-j choice equals a fresh selection given the first j answers
    sess = ActiveStrategy(noise=0.1, seed=1).fit(m).session(K(30))
    for j in range(6):
        r = a.indices[:j]
        assert sess.select(1, rated=r, y=y[r]).indices[0] == a.indices[j]
    # answers outside the pool count like pool answers
    r = a.indices[:3]
    out = sess.select(1, X_rated=K(30)[r], y_rated=y[r], exclude=r)
    assert out.indices[0] == a.indices[3]


def test_answers_change_the_active_choice_but_not_random_or_diverse(fake):
    rng = np.random.default_rng(3)
    t = rng.dirichlet(np.ones(3) * 0.3, size=(40, 10)).astype(np.float32)
    m = fake(CAT, t)
    outs = {}
    for name in ("random", "diverse", "active"):
        s = make_strategy(name, seed=0)
        s.fit(m)
        sess = s.session(np.concatenate([K(40), rng.standard_normal((40, 2)).astype(np.float32)], axis=1))
        nxt = {tuple(sess.select(3, rated=[0, 1], y=np.array([c, c])).indices.tolist()) for c in range(3)}
        outs[name] = nxt
    assert len(outs["random"]) == 1 and len(outs["diverse"]) == 1
    assert len(outs["active"]) > 1


def test_random_is_a_seeded_permutation_and_batch_equals_sequential():
    X = np.random.default_rng(0).standard_normal((20, 4)).astype(np.float32)
    s = make_strategy("random", seed=5)
    sess = s.session(X)
    assert sess.select(5).indices.tolist() == np.random.default_rng(5).permutation(20)[:5].tolist()
    seq = sess.order(np.zeros(20), 5).indices.tolist()
    assert seq == sess.select(5).indices.tolist()
    assert make_strategy("random", seed=6).select(X, 5).indices.tolist() != seq


def test_diverse_covers_clusters():
    rng = np.random.default_rng(0)
    centers = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], dtype=np.float32)
    X = np.concatenate([c + rng.standard_normal((25, 2)) for c in centers]).astype(np.float32)
    sel = make_strategy("diverse").select(X, 4)
    assert sorted(set(sel.indices // 25)) == [0, 1, 2, 3]
    # a rated clip counts as covered: its cluster is not asked again first
    sel2 = make_strategy("diverse").select(X, 3, X_rated=X[:1], y_rated=np.zeros(1))
    assert sorted(set(sel2.indices // 25)) == [1, 2, 3]


def test_model_change_prefers_uncovered_uncertain_directions(fake):
    class Lin:
        name = "lin"
        space_ = DIM

        def embed(self, X):
            import torch
            return torch.from_numpy(np.asarray(X, dtype=np.float32))

    X = np.array([[1, 0], [1, 0.01], [0, 1], [0.01, 0.01]], dtype=np.float32)
    s = ActiveStrategy(density=0).fit(Lin())
    assert s.criterion_ == "model-change"
    sess = s.session(X)
    first = sess.select(1, rated=[0], y=np.array([[3.0, 3.0]])).indices[0]
    assert first == 2  # the direction the rated clip did not cover
    assert sess.select(2).indices.tolist()[1] != 1 or sess.select(2).indices.tolist()[0] != 0


def test_fit_noise_on_seen_listeners(fake):
    """Seen listeners that follow their head 80% of the time: the fitted lapse rate
    is near the true one, not at the edges of the grid."""
    from perser.methods.base import RatingSet

    rng = np.random.default_rng(0)
    H, n = 6, 200
    lab = rng.integers(0, 3, size=(n, H))
    t = np.full((n, H, 3), 0.01, dtype=np.float32)
    np.put_along_axis(t, lab[:, :, None], 0.98, axis=2)
    ann, clip, y = [], [], []
    for h in range(H):
        for i in range(n):
            ann.append(f"h{h}")
            clip.append(i)
            # the listener agrees with their own style (shared by head h and its twin h^1)
            yy = lab[i, h ^ 1] if rng.random() < 0.7 else rng.integers(0, 3)
            y.append(yy)
    t[:, 1::2] = t[:, 0::2]
    lab[:, 1::2] = lab[:, 0::2]
    rs = RatingSet(K(n), np.arange(n).astype(str), np.array(clip), np.array(ann, dtype=object), np.array(y), CAT)
    s = ActiveStrategy().fit(fake(CAT, t), rs)
    assert 0.15 <= s.noise_[0] <= 0.5
    assert ActiveStrategy(noise=0.02).fit(fake(CAT, t), rs).noise_[0] == 0.02


def test_bad_input_is_named(fake):
    m = fake(CAT, agree_disagree_table())
    with pytest.raises(ConfigError, match="criterion"):
        ActiveStrategy(criterion="bald").fit(m)
    with pytest.raises(ConfigError, match="unknown enrollment strategy 'smart'"):
        make_strategy("smart")
    with pytest.raises(ConfigError, match="strategy 'active'"):
        make_strategy("active", colour=1)
    with pytest.raises(PerserError, match="not fitted"):
        ActiveStrategy().session(K(3))
    with pytest.raises(PerserError, match="outside the pool"):
        ActiveStrategy(noise=0.1).fit(m).select(K(3), 1, rated=[7], y=np.array([0]))
    with pytest.raises(ConfigError, match="noise"):
        ActiveStrategy(noise=1.5).fit(m)

    class NoHeads:
        name = "nh"
        space_ = CAT

    with pytest.raises(ConfigError, match="no trunk embedding"):
        ActiveStrategy(criterion="model-change").fit(NoHeads())
    with pytest.raises(ConfigError, match="needs a method with seen-listener heads"):
        ActiveStrategy(criterion="head").fit(NoHeads())


def test_parse_strategy_and_exhausted_pool(fake):
    assert parse_strategy("active:criterion=head,density=0.5") == ("active", {"criterion": "head", "density": 0.5})
    s = make_strategy("active:criterion=head", noise=0.1)
    assert s.criterion == "head" and s.noise == 0.1
    sel = s.fit(fake(CAT, agree_disagree_table())).select(K(3), 5, rated=[0], y=np.array([0]))
    assert sorted(sel.indices.tolist()) == [1, 2]


@pytest.mark.parametrize("space", [CAT, DIM])
def test_many_heads_target_uses_posterior_draws_close_to_exact(fake, space):
    rng = np.random.default_rng(0)
    H, N = 400, 50
    if space is CAT:
        t = rng.dirichlet(np.ones(3) * 0.5, size=(N, H)).astype(np.float32)
    else:
        t = (rng.standard_normal((N, 1, 2)) * 0.5 + rng.standard_normal((N, H, 2)) * 0.3).astype(np.float32)
    m = fake(space, t)
    exact = ActiveStrategy(criterion="target", noise=0.2, max_heads=H).fit(m).session(K(N))
    drawn = ActiveStrategy(criterion="target", noise=0.2, max_heads=128).fit(m).session(K(N))
    w = exact.posterior(rated=[0, 1], y=(np.array([0, 1]) if space is CAT else np.array([[3.0, 3.0], [2.0, 4.0]])))
    ge, gd = exact.gains(w, np.arange(N)), drawn.gains(w, np.arange(N))
    assert np.corrcoef(ge, gd)[0, 1] > 0.8
    # the same session draws the same heads: same numbers twice
    np.testing.assert_array_equal(gd, drawn.gains(w, np.arange(N)))


def test_density_weighting_passes_over_an_outlier(fake):
    """Two clips split the heads equally well; one is an acoustic outlier. Without the
    density weight they tie (the first wins); with it the typical clip is asked."""
    t = np.full((12, 2, 3), 1 / 3, dtype=np.float32)
    for c in (0, 1):
        t[c, 0] = [0.9, 0.05, 0.05]
        t[c, 1] = [0.05, 0.9, 0.05]
    X = np.zeros((12, 3), dtype=np.float32)
    X[:, 0] = np.arange(12)  # the key FakeHeads reads
    rng = np.random.default_rng(0)
    X[:, 1:] = rng.normal(scale=0.1, size=(12, 2))
    X[0, 1:] = [8.0, 8.0]  # clip 0 sounds like nothing else
    X[:, 0] = 0  # the key column carries no acoustic information
    m = fake(CAT, t)
    keys = np.arange(12)

    class Keyed:
        name, space_, head_annotators_ = "k", CAT, m.head_annotators_

        def head_outputs(self, X, activated=True):
            import torch
            return torch.from_numpy(t[keys[: len(X)]] if len(X) == 12 else t[np.asarray(X)[:, 0].astype(int)])

    plain = ActiveStrategy(criterion="head", noise=0.05, density=0).fit(Keyed()).select(X, 1)
    dense = ActiveStrategy(criterion="head", noise=0.05, density=2).fit(Keyed()).select(X, 1)
    assert plain.indices[0] == 0 and dense.indices[0] == 1


class _ProbaModel:
    """A method without heads whose prediction for clip key i is ``table[i]``; once
    enrolled, the clips it was enrolled on are predicted with certainty."""

    name = "proba"

    def __init__(self, space, table):
        self.space_ = space
        self.table = np.asarray(table, dtype=np.float64)

    def enroll(self, X, y):
        from perser.methods.base import Profile

        return Profile(method=self.name, annotator=None, data={"seen": np.asarray(X)[:, 0].astype(int).tolist()})

    def predict(self, profile, X):
        from perser.methods.base import Predictions

        keys = np.asarray(X)[:, 0].astype(int)
        p = self.table[keys].copy()
        for j, k in enumerate(keys):
            if profile is not None and k in profile.data["seen"]:
                p[j] = np.eye(p.shape[1])[0]
        return Predictions(self.space_, proba=p)


def test_uncertainty_asks_what_the_personal_model_is_least_sure_of():
    t = np.array([[0.9, 0.05, 0.05], [0.4, 0.3, 0.3], [0.34, 0.33, 0.33], [0.6, 0.2, 0.2]])
    m = _ProbaModel(CAT, t)
    s = ActiveStrategy(criterion="uncertainty", density=0).fit(m)
    assert s.criterion_ == "uncertainty"
    sess = s.session(K(4))
    first = sess.select(1)
    assert first.indices.tolist() == [2]
    assert first.gains[0] == pytest.approx(-(t[2] * np.log(t[2])).sum())
    assert sess.select(3).indices.tolist() == [2, 1, 3]  # batch: most uncertain first
    # the answers enroll the model, and what it became sure of is not asked again
    assert sess.order(np.zeros(4, dtype=np.int64), 4).indices.tolist() == [2, 1, 3, 0]
    # the default for a method without heads in a class space, without the density weight
    auto = ActiveStrategy().fit(m)
    assert (auto.criterion_, auto.density_) == ("uncertainty", 0.0)
    assert auto.select(K(4), 1).indices.tolist() == [2]
    assert ActiveStrategy(density=2).fit(m).density_ == 2.0
    with pytest.raises(ConfigError, match="'uncertainty' needs a class space"):
        ActiveStrategy(criterion="uncertainty").fit(_ProbaModel(DIM, t[:, :2]))


def test_default_density_follows_the_methods_prediction(fake):
    m = fake(CAT, agree_disagree_table())
    assert ActiveStrategy(noise=0.1).fit(m).density_ == 2.0  # top-1 prediction: typical clips weighted up
    m.combine = "posterior"
    assert ActiveStrategy(noise=0.1).fit(m).density_ == 0.0  # posterior-weighted prediction: plain EPIG
    assert ActiveStrategy(noise=0.1, density=1).fit(m).density_ == 1.0
