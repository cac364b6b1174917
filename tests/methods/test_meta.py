"""``meta`` (Meta-PerSER) on small constructed crowds with a planted signal."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from perser.corpus.model import LabelSpace
from perser.errors import ConfigError, FeatureError, PerserWarning
from perser.methods.base import Profile, RatingSet, make_method
from perser.methods.losses import ccc

SPACES = {
    "categorical": LabelSpace("emotion", "categorical", classes=("ang", "hap", "neu", "sad")),
    "multilabel": LabelSpace("tags", "multilabel", classes=("ang", "hap", "neu", "sad")),
    "dimensional": LabelSpace("avd", "dimensional", dimensions=("arousal", "valence"), scale=(1, 5)),
}
D = 6


@pytest.fixture(autouse=True)
def one_thread():
    # tiny tensors: one intra-op thread is faster and keeps timings stable on a shared machine
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def label(space, X, W, rng, noise=0.1):
    s = X @ W + noise * rng.standard_normal((len(X), W.shape[1]))
    if space.kind == "categorical":
        return s.argmax(1).astype(np.int64)
    if space.kind == "multilabel":
        return (s > 0.5).astype(np.float32)
    lo, hi = space.scale
    return ((np.tanh(s / 2) + 1) / 2 * (hi - lo) + lo).astype(np.float32)


def crowd(kind, n_clips=160, n_ann=24, seed=0, n_ratings=None):
    """A crowd whose majority shares one view (W0) and a third reverses it (−W0)."""
    rng = np.random.default_rng(seed)
    sp = SPACES[kind]
    W0 = rng.standard_normal((D, sp.n_outputs)) * 1.5
    X = rng.standard_normal((n_clips, D)).astype(np.float32)
    ci, ann, ys = [], [], []
    for i in range(n_ann):
        W = (-1.0 if i % 3 == 0 else 1.0) * W0 + 0.3 * rng.standard_normal(W0.shape)
        n = n_clips if n_ratings is None else n_ratings[i]
        rows = rng.choice(n_clips, size=n, replace=False)
        ci.append(rows)
        ann += [f"a{i:02d}"] * n
        ys.append(label(sp, X[rows], W, rng))
    rs = RatingSet(X=X, clip_ids=np.array([f"c{i:04d}" for i in range(n_clips)], dtype=object),
                   clip_index=np.concatenate(ci), annotator_ids=np.array(ann, dtype=object),
                   y=np.concatenate(ys), space=sp)
    return rs, W0


def listener(kind, W, n=90, seed=5):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, D)).astype(np.float32)
    return X, label(SPACES[kind], X, W, rng)


CONS = dict(hidden=(32,), dropout=0.0, epochs=25, batch_size=32, lr=3e-3, patience=0, progress=False, seed=0)
META = dict(meta_epochs=8, iters_per_epoch=8, meta_batch_size=6, meta_lr=3e-2,
            first_order_epochs=3, msl_epochs=3, k_support=10, k_query=10)


@pytest.fixture(scope="module")
def fitted():
    """Per kind: the crowd, its consensus model and a meta model started from it."""
    cache = {}

    def get(kind):
        if kind not in cache:
            torch.set_num_threads(1)
            rs, W0 = crowd(kind)
            cons = make_method("consensus", **CONS).fit(rs)
            meta = make_method("meta", init_model=cons, **META).fit(rs)
            cache[kind] = (rs, W0, cons, meta)
        return cache[kind]

    return get


def score(kind, pred, y):
    if kind == "dimensional":
        return float(ccc(torch.tensor(pred.values), torch.tensor(y)).mean())
    if kind == "categorical":
        return float((pred.proba.argmax(1) == y).mean())
    return float(((pred.proba >= 0.5) == (y > 0.5)).mean())


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["dimensional", "categorical", "multilabel"])
def test_enrollment_beats_consensus_on_a_listener_who_disagrees_with_the_crowd(fitted, kind):
    rs, W0, cons, meta = fitted(kind)
    X, y = listener(kind, -W0)
    prof = meta.enroll(X[:10], y[:10], annotator="contrarian")
    assert prof.method == "meta" and prof.annotator == "contrarian" and prof.data["k"] == 10
    assert prof.data["support_loss_after"] < prof.data["support_loss_before"]
    s_cons = score(kind, cons.predict(None, X[10:]), y[10:])
    s_meta = score(kind, meta.predict(prof, X[10:]), y[10:])
    s_init = score(kind, meta.predict(None, X[10:]), y[10:])
    assert s_meta > s_cons + 0.1, (s_meta, s_cons)
    assert s_meta > s_init, (s_meta, s_init)
    # a listener who shares the majority view stays well served
    Xm, ym = listener(kind, W0, seed=6)
    pm = meta.enroll(Xm[:10], ym[:10])
    assert score(kind, meta.predict(pm, Xm[10:]), ym[10:]) > score(kind, cons.predict(None, Xm[10:]), ym[10:]) - 0.1


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["dimensional", "categorical", "multilabel"])
def test_predictions_per_space(fitted, kind):
    rs, W0, cons, meta = fitted(kind)
    X, y = listener(kind, W0)
    p = meta.predict(meta.enroll(X[:10], y[:10]), X[10:20])
    if kind == "categorical":
        assert p.proba.shape == (10, 4)
        np.testing.assert_allclose(p.proba.sum(1), 1.0, rtol=1e-5)
        assert set(p.labels) <= set(rs.space.classes)
    elif kind == "multilabel":
        assert p.proba.shape == (10, 4) and ((p.proba >= 0) & (p.proba <= 1)).all()
    else:
        assert p.values.shape == (10, 2) and ((p.values >= 1) & (p.values <= 5)).all()
    # meta-training ran with early stopping on held-out listeners and the annealing schedule
    h = meta.meta_history_
    assert meta.task_counts_["valid_annotators"] >= 1 and all("valid_loss" in r for r in h)
    assert [r["second_order"] for r in h] == [r["epoch"] >= 3 for r in h]
    assert all(b["meta_lr"] < a["meta_lr"] for a, b in zip(h, h[1:]))
    # the inner learning rates were learned
    assert any(not torch.allclose(v, torch.full_like(v, 0.1)) for v in meta.inner_lrs_.values())


@pytest.mark.slow
def test_save_load_gives_identical_predictions(fitted, tmp_path):
    rs, W0, cons, meta = fitted("categorical")
    X, y = listener("categorical", -W0)
    prof = meta.enroll(X[:10], y[:10], annotator="L")
    meta.save(tmp_path / "model")
    prof.save(tmp_path / "prof")
    assert (tmp_path / "model" / "config.json").is_file() and (tmp_path / "model" / "model.safetensors").is_file()
    assert not list((tmp_path / "model").glob("*.pkl"))
    from perser.methods.base import get_method

    m2 = get_method("meta").load(tmp_path / "model")
    p2 = Profile.load(tmp_path / "prof")
    np.testing.assert_array_equal(meta.predict(prof, X[10:]).proba, m2.predict(p2, X[10:]).proba)
    np.testing.assert_array_equal(meta.predict(None, X[10:]).proba, m2.predict(None, X[10:]).proba)
    # enrollment after loading reproduces the profile
    p3 = m2.enroll(X[:10], y[:10], annotator="L")
    for k in prof.tensors:
        np.testing.assert_array_equal(prof.tensors[k], p3.tensors[k])
    assert m2.get_params()["adapt_layers"] == 0 and m2.meta_history_ == meta.meta_history_


def test_adapted_head_reproduces_the_consensus_network():
    rs, _ = crowd("dimensional", n_clips=40, n_ann=4)
    cons = make_method("consensus", **{**CONS, "hidden": (8, 8), "epochs": 2}).fit(rs)
    for a, names in ((0, {"out.weight", "out.bias"}), (1, {"layers.0.weight", "layers.0.bias", "out.weight", "out.bias"}),
                     (2, {"layers.0.weight", "layers.2.weight", "out.weight", "layers.0.bias", "layers.2.bias", "out.bias"})):
        m = make_method("meta", adapt_layers=a, **{**CONS, "hidden": (8, 8)})
        m.space_, m.input_shape_, m.standardizer_, m.net_ = cons.space_, cons.input_shape_, cons.standardizer_, cons.net_
        m._build_head()
        assert {k for k, _ in m.head_.named_parameters()} == names
        params = dict(m.head_.named_parameters())
        with torch.no_grad():
            torch.testing.assert_close(m.head_fn_(params, m._frozen(rs.X)), cons.net_(cons._tensor(rs.X)))
    with pytest.raises(ConfigError, match="adapt_layers"):
        make_method("meta", adapt_layers=3, **{**CONS, "hidden": (8, 8)}).fit(rs)


def test_adapting_a_trunk_layer_trains_and_enrolls():
    rs, W0 = crowd("dimensional", n_clips=60, n_ann=8)
    m = make_method("meta", adapt_layers=1, **{**CONS, "epochs": 3}, **{**META, "meta_epochs": 2, "iters_per_epoch": 2})
    m.fit(rs)
    X, y = listener("dimensional", -W0, n=20)
    prof = m.enroll(X[:10], y[:10])
    assert set(prof.tensors) == {"layers.0.weight", "layers.0.bias", "out.weight", "out.bias"}
    assert prof.tensors["layers.0.weight"].shape == (32, 6)
    assert not np.array_equal(prof.tensors["layers.0.weight"], m.theta_["layers.0.weight"].numpy())


def test_task_sampling_combined_and_split():
    rs, _ = crowd("dimensional", n_clips=40, n_ann=5)
    m = make_method("meta", **CONS, **{**META, "k_support": 4, "k_query": 3, "meta_batch_size": 3})
    cons = make_method("consensus", **{**CONS, "epochs": 1}).fit(rs)
    m.space_, m.input_shape_, m.standardizer_, m.net_ = cons.space_, cons.input_shape_, cons.standardizer_, cons.net_
    m._build_head()
    (names, pools, data), _, _ = m._tasks(rs, None)
    b = m._sample_batch(names, pools, data, epoch=0, it=0)
    assert b.xs.shape == (3, 7, 32) and torch.equal(b.xs, b.xq) and torch.equal(b.ys, b.yq)
    m.combined = False
    b = m._sample_batch(names, pools, data, epoch=0, it=0)
    assert b.xs.shape == (3, 4, 32) and b.xq.shape == (3, 3, 32)
    for t in range(3):  # support and query clips of a task differ
        d = torch.cdist(b.xs[t], b.xq[t])
        assert bool((d > 0).all())
    # same seed, same batch; another iteration, another batch
    again = m._sample_batch(names, pools, data, epoch=0, it=0)
    assert torch.equal(again.xs, b.xs)
    assert not torch.equal(m._sample_batch(names, pools, data, epoch=0, it=1).xs, b.xs)


def test_annotators_with_too_few_ratings_are_excluded_with_a_count():
    n = [40] * 6 + [12, 15]
    rs, _ = crowd("dimensional", n_clips=40, n_ann=8, n_ratings=n)
    m = make_method("meta", **{**CONS, "epochs": 2}, **{**META, "meta_epochs": 1, "iters_per_epoch": 1})
    with pytest.warns(PerserWarning, match=r"2 annotators with fewer than 20 ratings"):
        m.fit(rs)
    assert m.task_counts_["task_annotators"] + m.task_counts_["valid_annotators"] == 6


def test_errors():
    rs, _ = crowd("dimensional", n_clips=30, n_ann=3)
    with pytest.raises(ConfigError, match=r"no annotator has the 40 ratings .* most ratings by one annotator is 30"):
        make_method("meta", **{**CONS, "epochs": 1}, **{**META, "k_support": 20, "k_query": 20}).fit(rs)
    with pytest.raises(ConfigError, match="unknown loss 'huber'"):
        make_method("meta", loss="huber", **{k: v for k, v in CONS.items()}).fit(rs)
    with pytest.raises(ConfigError, match="k_support must be a positive integer"):
        make_method("meta", **CONS, **{**META, "k_support": 0}).fit(rs)
    odd = LabelSpace("avd", "dimensional", dimensions=("arousal",), scale=(1, 5))
    object.__setattr__(odd, "kind", "ordinal")
    with pytest.raises(ConfigError, match="does not support ordinal"):
        make_method("meta", **CONS).fit(RatingSet(rs.X, rs.clip_ids, rs.clip_index, rs.annotator_ids, rs.y[:, :1], odd))
    with pytest.raises(ConfigError, match="not fitted"):
        make_method("meta").enroll(rs.X[:3], rs.y[:3])
    m = make_method("meta", **{**CONS, "epochs": 1}, **{**META, "meta_epochs": 1, "iters_per_epoch": 1, "k_support": 5, "k_query": 5})
    with pytest.warns(PerserWarning, match="no validation annotators"):
        m.fit(rs)
    with pytest.raises(FeatureError, match="shape"):
        m.enroll(np.zeros((5, D + 1), np.float32), rs.y[:5])
    with pytest.raises(ConfigError, match="at least one rated clip"):
        m.enroll(np.zeros((0, D), np.float32), rs.y[:0])
    with pytest.raises(ConfigError, match="made by method 'similar'"):
        m.predict(Profile("similar", "x"), rs.X[:3])
    bad = m.enroll(rs.X[:5], rs.y[:5])
    bad.tensors["out.weight"] = np.zeros((3, 3), np.float32)
    with pytest.raises(ConfigError, match="out.weight"):
        m.predict(bad, rs.X[:3])
    other = make_method("consensus", **{**CONS, "epochs": 1}).fit(
        RatingSet(rs.X, rs.clip_ids, rs.clip_index, rs.annotator_ids, (rs.y[:, 0] > 3).astype(np.int64),
                  LabelSpace("e", "categorical", classes=("lo", "hi"))))
    with pytest.raises(ConfigError, match="init_model was trained on space 'e'"):
        make_method("meta", init_model=other, **CONS).fit(rs)


def test_same_seed_same_model_and_resume_after_a_kill(tmp_path, monkeypatch):
    rs, _ = crowd("dimensional", n_clips=50, n_ann=8)
    cons = make_method("consensus", **{**CONS, "epochs": 3}).fit(rs)
    cfg = {**META, "meta_epochs": 4, "iters_per_epoch": 3}
    a = make_method("meta", init_model=cons, **cfg).fit(rs)
    b = make_method("meta", init_model=cons, **cfg).fit(rs)
    for k in a.theta_:
        assert torch.equal(a.theta_[k], b.theta_[k]) and torch.equal(a.inner_lrs_[k], b.inner_lrs_[k])

    from perser.methods import maml

    calls = {"n": 0}
    real = maml.MAMLPlusPlus.apply

    def dying(self, gp, ga):
        calls["n"] += 1
        if calls["n"] == 8:  # killed in the third epoch
            raise KeyboardInterrupt
        return real(self, gp, ga)

    monkeypatch.setattr(maml.MAMLPlusPlus, "apply", dying)
    with pytest.raises(KeyboardInterrupt):
        make_method("meta", init_model=cons, checkpoint_dir=str(tmp_path / "ck"), **cfg).fit(rs)
    monkeypatch.setattr(maml.MAMLPlusPlus, "apply", real)
    assert (tmp_path / "ck" / "meta" / "state.json").is_file()
    c = make_method("meta", init_model=cons, checkpoint_dir=str(tmp_path / "ck"), **cfg).fit(rs)
    assert [r["epoch"] for r in c.meta_history_] == [0, 1, 2, 3]
    for k in a.theta_:
        torch.testing.assert_close(a.theta_[k], c.theta_[k], rtol=0, atol=1e-6)
        torch.testing.assert_close(a.inner_lrs_[k], c.inner_lrs_[k], rtol=0, atol=1e-6)


DIST_SCRIPT = textwrap.dedent(
    """
    import sys, numpy as np, torch
    torch.set_num_threads(1)
    sys.path.insert(0, sys.argv[1])
    from test_meta import crowd, CONS, META
    from perser.methods.base import make_method
    from perser.methods.consensus import ConsensusModel
    from perser.methods import distributed
    rs, _ = crowd("dimensional", n_clips=50, n_ann=9)
    cons = ConsensusModel.load(sys.argv[2])
    m = make_method("meta", init_model=cons, **{**META, "meta_epochs": 3, "iters_per_epoch": 3, "meta_batch_size": 5})
    m.fit(rs)
    if distributed.is_main():
        from safetensors.torch import save_file
        save_file({**{"theta." + k: v for k, v in m.theta_.items()}, **{"lr." + k: v for k, v in m.inner_lrs_.items()},
                   "world_size": torch.tensor([distributed.world_size()])}, sys.argv[3])
    distributed.shutdown()
    """
)


@pytest.mark.slow
def test_two_processes_match_one(tmp_path):
    rs, _ = crowd("dimensional", n_clips=50, n_ann=9)
    cons = make_method("consensus", **{**CONS, "epochs": 2}).fit(rs)
    cons.save(tmp_path / "cons")
    script = tmp_path / "dist_meta.py"
    script.write_text(DIST_SCRIPT)
    here = str(Path(__file__).parent)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, str(script), here, str(tmp_path / "cons"), str(tmp_path / "one.safetensors")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          str(script), here, str(tmp_path / "cons"), str(tmp_path / "two.safetensors")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    from safetensors.torch import load_file

    a, b = load_file(tmp_path / "one.safetensors"), load_file(tmp_path / "two.safetensors")
    assert set(a) == set(b)
    assert int(a.pop("world_size")) == 1 and int(b.pop("world_size")) == 2
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)
