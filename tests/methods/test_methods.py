"""The personalization methods on constructed data with a planted signal."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from perser.errors import ConfigError, FeatureError
from perser.methods import Profile, get_method, load_model, make_method
from perser.methods.losses import ccc
from perser.methods.nets import from_unit

KINDS = ("categorical", "multilabel", "dimensional")
METHODS = ("consensus", "random-annotator", "mean-annotator", "similar", "finetune")
SMALL = dict(hidden=(32,), dropout=0.0, epochs=25, batch_size=128, lr=5e-3, patience=0, progress=False, seed=0)


def quality(pred, y, space) -> float:
    """Higher is better; 0 is chance: UAR − 1/C, mean ROC-AUC − 0.5, mean CCC."""
    if space.kind == "categorical":
        return balanced_accuracy_score(y, pred.proba.argmax(1)) - 1 / len(space.classes)
    if space.kind == "multilabel":
        cols = [c for c in range(y.shape[1]) if 0 < y[:, c].sum() < len(y)]
        return float(np.mean([roc_auc_score(y[:, c], pred.proba[:, c]) for c in cols])) - 0.5
    return float(ccc(torch.tensor(pred.values), torch.tensor(y)).mean())


# ---------------------------------------------------------------- fixtures
_cache: dict = {}


def shared_data(synth, kind):
    """Three annotators who all label from the same weights (plus small differences)."""
    key = ("shared", kind)
    if key not in _cache:
        rng = np.random.default_rng(5)
        k = synth(kind, n_clips=8).space.n_outputs
        W0 = rng.standard_normal((6, k)) * 1.5
        W = {f"s{i}": W0 + 0.2 * rng.standard_normal(W0.shape) for i in range(3)}
        _cache[key] = (synth(kind, n_clips=200, weights=W, seed=1), W0)
    return _cache[key]


def fitted_shared(synth, kind, method):
    key = ("fit", kind, method)
    if key not in _cache:
        data, _ = shared_data(synth, kind)
        _cache[key] = make_method(method, min_ratings=20, **SMALL).fit(data.train) if method != "consensus" \
            else make_method(method, **SMALL).fit(data.train)
    return _cache[key]


def split_data(synth, kind):
    """A crowd of four like-minded annotators and two who each label their own way."""
    key = ("split", kind)
    if key not in _cache:
        rng = np.random.default_rng(11)
        k = synth(kind, n_clips=8).space.n_outputs
        WA = rng.standard_normal((6, k)) * 1.5
        W = {f"a{i}": WA + 0.2 * rng.standard_normal(WA.shape) for i in range(4)}
        W["b0"] = rng.standard_normal((6, k)) * 1.5
        W["b1"] = rng.standard_normal((6, k)) * 1.5
        _cache[key] = synth(kind, n_clips=200, weights=W, seed=2)
    return _cache[key]


def fitted_split(synth, kind, method):
    key = ("split-fit", kind, method)
    if key not in _cache:
        params = dict(SMALL) if method == "consensus" else dict(SMALL, min_ratings=20)
        _cache[key] = make_method(method, **params).fit(split_data(synth, kind).train)
    return _cache[key]


# ------------------------------------------------------------------- tests
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("method", METHODS)
def test_each_method_beats_chance(synth, kind, method):
    data, W0 = shared_data(synth, kind)
    m = fitted_shared(synth, kind, method)
    Xq, yq = data.listener(W0, 120, seed=3)
    prof = m.enroll(Xq[:20], yq[:20], annotator="listener")
    pred = m.predict(prof, Xq[20:])
    if kind == "categorical":
        assert pred.proba.shape == (100, 4) and np.allclose(pred.proba.sum(1), 1, atol=1e-5)
    if kind == "dimensional":
        assert pred.values.shape == (100, 2) and pred.values.min() >= 1 and pred.values.max() <= 5
    assert quality(pred, yq[20:], data.space) > 0.2, method


@pytest.mark.parametrize("kind", KINDS)
def test_similar_picks_the_source_annotator(synth, kind):
    data = split_data(synth, kind)
    m = fitted_split(synth, kind, "similar")
    for source in ("b0", "b1"):
        Xq, yq = data.listener(data.W[source], 30, seed=4)
        prof = m.enroll(Xq, yq, annotator="new")
        assert prof.data["heads"] == [source]
        assert prof.data["ranking"][0][0] == source
        assert prof.data["scores"][0] == pytest.approx(prof.data["ranking"][0][1])


@pytest.mark.parametrize("kind", KINDS)
def test_personalized_methods_beat_consensus_on_a_dissenting_listener(synth, kind):
    data = split_data(synth, kind)
    rng = np.random.default_rng(8)
    # a listener who labels like b0, not like the crowd
    W = data.W["b0"] + 0.1 * rng.standard_normal(data.W["b0"].shape)
    Xq, yq = data.listener(W, 130, seed=6)
    sup, qry = slice(0, 30), slice(30, None)
    q = {}
    for method in ("consensus", "similar", "finetune"):
        m = fitted_split(synth, kind, method)
        q[method] = quality(m.predict(m.enroll(Xq[sup], yq[sup], annotator="dissenter"), Xq[qry]), yq[qry], data.space)
    assert q["similar"] > q["consensus"] + 0.1, q
    assert q["finetune"] > q["consensus"] + 0.05, q


def test_similar_options_per_dimension_and_top_k(synth):
    data = split_data(synth, "dimensional")
    m = fitted_split(synth, "dimensional", "similar")
    # arousal like b0, valence like b1
    W = np.stack([data.W["b0"][:, 0], data.W["b1"][:, 1]], axis=1)
    Xq, yq = data.listener(W, 40, seed=9)
    m.per_dimension = True
    try:
        prof = m.enroll(Xq, yq)
    finally:
        m.per_dimension = False
    assert prof.data["per_dimension"] == {"arousal": "b0", "valence": "b1"}
    p = m.predict(prof, Xq)
    direct = [m.predict(m.seen_profile(a), Xq).values[:, d] for d, a in enumerate(["b0", "b1"])]
    assert np.allclose(p.values, np.stack(direct, axis=1))

    m.top_k, m.temperature = 3, 0.5
    try:
        prof = m.enroll(Xq, yq)
    finally:
        m.top_k, m.temperature = 1, 0.1
    assert len(prof.data["heads"]) == 3 and pytest.approx(sum(prof.data["weights"])) == 1.0
    assert prof.data["weights"] == sorted(prof.data["weights"], reverse=True)
    w = prof.data["weights"]
    outs = m.head_outputs(Xq).numpy()  # unit scale, before clipping to the native scale
    mix = sum(wi * outs[:, m.head_index(a)] for a, wi in zip(prof.data["heads"], w))
    assert np.allclose(m.predict(prof, Xq).values, np.clip(from_unit(mix, (1, 5)), 1, 5), atol=1e-5)


def test_similar_k1_uses_absolute_error_and_f1_option(synth):
    data = split_data(synth, "dimensional")
    m = fitted_split(synth, "dimensional", "similar")
    Xq, yq = data.listener(data.W["b1"], 1, seed=10)
    prof = m.enroll(Xq, yq)
    assert prof.data["criterion"] == "mae" and prof.data["scores"][0] <= 0
    cat = fitted_split(synth, "categorical", "similar")
    d = split_data(synth, "categorical")
    Xq, yq = d.listener(d.W["b0"], 40, seed=10)
    cat.score = "f1"
    try:
        prof = cat.enroll(Xq, yq)
    finally:
        cat.score = "auto"
    assert prof.data["criterion"] == "f1" and prof.data["heads"] == ["b0"]
    assert 0 < prof.data["scores"][0] <= 1


def test_macro_f1_matches_scikit_learn():
    from sklearn.metrics import f1_score

    from perser.methods.similar import _macro_f1_categorical, _macro_f1_multilabel

    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 25)
    pred = rng.integers(0, 4, (25, 3))
    ours = _macro_f1_categorical(pred, y, 4)
    for h in range(3):
        assert ours[h] == pytest.approx(f1_score(y, pred[:, h], average="macro"))
    Y = rng.random((25, 4)) > 0.5
    P = rng.random((25, 3, 4)) > 0.5
    ours = _macro_f1_multilabel(P, Y)
    for h in range(3):
        assert ours[h] == pytest.approx(f1_score(Y, P[:, h], average="macro", zero_division=0))


def test_random_annotator_is_seeded_by_listener(synth):
    m = fitted_shared(synth, "categorical", "random-annotator")
    X, y = shared_data(synth, "categorical")[0].listener(np.ones((6, 4)), 5)
    heads = {m.enroll(X, y, annotator=f"l{i}").data["heads"][0] for i in range(20)}
    assert heads <= set(m.head_annotators_) and len(heads) > 1
    assert m.enroll(X, y, annotator="l3").data == m.enroll(X, y, annotator="l3").data


def test_finetune_moves_the_head_and_lowers_the_support_loss(synth):
    data = split_data(synth, "categorical")
    m = fitted_split(synth, "categorical", "finetune")
    Xq, yq = data.listener(data.W["b0"], 30, seed=12)
    prof = m.enroll(Xq, yq, annotator="x")
    assert prof.data["init"] == "<consensus>"
    assert prof.data["loss_after"] < prof.data["loss_before"]
    assert prof.tensors["head.weight"].shape == (32, 4)
    assert not np.allclose(prof.tensors["head.weight"], m.net_.head.weight[-1].detach().numpy())
    m.init = "similar"
    try:
        prof2 = m.enroll(Xq, yq)
    finally:
        m.init = "consensus"
    assert prof2.data["init"] == "b0"


def test_finetune_does_not_overfit_a_few_clips_of_a_crowd_listener(synth):
    """At K=5, a listener who labels like the crowd gains little from fine-tuning, and
    the default (L2-SP) must not lose much against the starting consensus head;
    unregularised fine-tuning does (log-loss up by about 0.2 here)."""
    data = split_data(synth, "categorical")
    m = fitted_split(synth, "categorical", "finetune")

    def log_loss(p, y):
        return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1)).mean())

    def mean_change(**params):
        old = {k: getattr(m, k) for k in params}
        try:
            for k, v in params.items():
                setattr(m, k, v)
            d = []
            for i in range(8):
                W = data.W["a0"] + 0.2 * np.random.default_rng(i).standard_normal(data.W["a0"].shape)
                X, y = data.listener(W, 105, seed=100 + i)
                init = log_loss(m.predict(None, X[5:]).proba, y[5:])
                d.append(log_loss(m.predict(m.enroll(X[:5], y[:5]), X[5:]).proba, y[5:]) - init)
            return float(np.mean(d))
        finally:
            for k, v in old.items():
                setattr(m, k, v)

    assert mean_change() < 0.05
    assert mean_change(l2sp=0.0, steps=10) > 0.1  # what the penalty prevents


@pytest.mark.parametrize("method", METHODS)
def test_save_load_gives_identical_predictions(synth, tmp_path, method):
    for kind in KINDS:
        data, W0 = shared_data(synth, kind)
        m = fitted_shared(synth, kind, method)
        m.feature_spec = {"name": "synthetic", "dim": 6}
        Xq, yq = data.listener(W0, 40, seed=13)
        prof = m.enroll(Xq[:10], yq[:10], annotator="p")
        m.save(tmp_path / kind / "model")
        prof.save(tmp_path / kind / "profile")
        m2 = load_model(tmp_path / kind / "model")
        assert type(m2) is type(m) and m2.get_params() == m.get_params()
        assert m2.feature_spec == {"name": "synthetic", "dim": 6}
        p1, p2 = m.predict(prof, Xq), m2.predict(Profile.load(tmp_path / kind / "profile"), Xq)
        a1 = p1.proba if p1.proba is not None else p1.values
        a2 = p2.proba if p2.proba is not None else p2.values
        assert np.array_equal(a1, a2), (method, kind)
        assert m2.enroll(Xq[:10], yq[:10], annotator="p").data == prof.data
        assert not list((tmp_path / kind).glob(".*")), "no temporary folder left behind"


def test_same_seed_same_model(synth):
    data, _ = shared_data(synth, "dimensional")
    a = make_method("consensus", **dict(SMALL, epochs=3)).fit(data.train)
    b = make_method("consensus", **dict(SMALL, epochs=3)).fit(data.train)
    c = make_method("consensus", **dict(SMALL, epochs=3, seed=1)).fit(data.train)
    assert all(torch.equal(x, y) for x, y in zip(a.net_.state_dict().values(), b.net_.state_dict().values()))
    assert not torch.equal(a.net_.head.weight, c.net_.head.weight)


def test_ssl_layer_stacks_are_accepted(synth):
    data, W0 = shared_data(synth, "categorical")
    from perser.methods.base import RatingSet

    rs = data.train
    X3 = np.stack([rs.X, np.zeros_like(rs.X), rs.X * 2], axis=1)  # [n, 3 layers, 6]
    m = make_method("consensus", **dict(SMALL, epochs=5)).fit(RatingSet(X3, rs.clip_ids, rs.clip_index, rs.annotator_ids, rs.y, rs.space))
    assert m.net_.trunk.layer_logits.shape == (3,)
    assert m.predict(None, X3[:4]).proba.shape == (4, 4)
    with pytest.raises(FeatureError, match=r"\(6,\).*\(3, 6\)"):
        m.predict(None, rs.X[:4])


# --------------------------------------------------------------- bad input
def test_unknown_method_named():
    with pytest.raises(ConfigError, match="nope.*available"):
        make_method("nope")
    with pytest.raises(ConfigError, match="consensus.*bogus"):
        make_method("consensus", bogus=1)


def test_bad_options_and_spaces_are_refused(synth):
    data, _ = shared_data(synth, "categorical")
    with pytest.raises(ConfigError, match="per_dimension.*categorical"):
        make_method("similar", per_dimension=True, **SMALL).fit(data.train)
    with pytest.raises(ConfigError, match="'ccc' needs a dimensional"):
        make_method("similar", score="ccc", **SMALL).fit(data.train)
    with pytest.raises(ConfigError, match="init 'best'"):
        make_method("finetune", init="best", **SMALL).fit(data.train)
    with pytest.raises(ConfigError, match="loss 'huber'"):
        make_method("consensus", loss="huber", **SMALL).fit(data.train)
    with pytest.raises(ConfigError, match="device 'tpu7'"):
        make_method("consensus", device="tpu7", **SMALL).fit(data.train)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            make_method("consensus", device="cuda", **SMALL).fit(data.train)

    class CatOnly(get_method("consensus")):
        kinds = ("categorical",)

    dim, _ = shared_data(synth, "dimensional")
    with pytest.raises(ConfigError, match="does not support dimensional"):
        CatOnly(**SMALL).fit(dim.train)


def test_too_few_ratings_names_the_annotator(synth):
    data, _ = shared_data(synth, "dimensional")
    with pytest.raises(ConfigError, match=r"min_ratings=1000.*'s\d' with 200"):
        make_method("similar", min_ratings=1000, **SMALL).fit(data.train)


def test_mismatched_features_and_labels_are_named(synth, tmp_path):
    data, W0 = shared_data(synth, "categorical")
    m = fitted_shared(synth, "categorical", "similar")
    X, y = data.listener(W0, 10)
    with pytest.raises(FeatureError, match=r"\(7,\).*\(6,\)"):
        m.predict(None, np.zeros((3, 7), dtype=np.float32))
    with pytest.raises(FeatureError, match=r"\(5,\).*\(6,\)"):
        m.enroll(X[:, :5], y)
    with pytest.raises(ConfigError, match="at least one"):
        m.enroll(X[:0], y[:0])
    with pytest.raises(ConfigError, match="0..3"):
        m.enroll(X, y + 4)
    with pytest.raises(ConfigError, match="10 feature rows but 9 labels"):
        m.enroll(X, y[:9])
    with pytest.raises(ConfigError, match="made by method 'finetune'"):
        m.predict(Profile(method="finetune", annotator="z"), X)
    with pytest.raises(ConfigError, match="annotator 'zz' has no head"):
        m.predict(Profile(method="similar", data={"heads": ["zz"]}), X)
    with pytest.raises(ConfigError, match="not fitted"):
        make_method("similar").predict(None, X)
    with pytest.raises(ConfigError, match="no config.json"):
        load_model(tmp_path)


def test_batched_head_outputs_follow_weight_changes(synth):
    """The cached flat head matrix must equal the heads, also after the weights change."""
    data, _ = shared_data(synth, "dimensional")
    m = make_method("similar", **dict(SMALL, epochs=1), min_ratings=20).fit(data.train)
    X = data.X[:7]
    z = m.embed(X)
    ref = m.net_.head(z)[:, : len(m.head_annotators_)]
    assert torch.allclose(m.head_outputs(X, activated=False), ref, atol=1e-6)
    with torch.no_grad():
        m.net_.head.weight[1].mul_(-2.0)
        m.net_.head.bias[0].add_(1.0)
    ref2 = m.net_.head(z)[:, : len(m.head_annotators_)]
    assert not torch.allclose(ref, ref2)
    assert torch.allclose(m.head_outputs(X, activated=False), ref2, atol=1e-6)


def test_head_shrinkage_pulls_heads_toward_the_consensus_head(synth):
    data = split_data(synth, "categorical")

    def spread(lam):
        m = make_method("similar", min_ratings=20, head_shrinkage=lam, **SMALL).fit(data.train)
        W, b = m.net_.head.weight.detach(), m.net_.head.bias.detach()
        H = len(m.head_annotators_)
        return float(((W[:H] - W[H:]) ** 2).sum() + ((b[:H] - b[H:]) ** 2).sum())

    assert spread(1e4) < 0.05 * spread(0.0)
    with pytest.raises(ConfigError, match="consensus head"):
        make_method("similar", head_shrinkage=1.0, consensus_weight=0.0, **SMALL).fit(data.train)


def _with_rare_listener(rs, clips: np.ndarray, label: int, name: str = "rare"):
    """``rs`` plus one annotator who rated only ``clips``, all with class ``label``."""
    from perser.methods.base import RatingSet

    return RatingSet(
        X=rs.X, clip_ids=rs.clip_ids, space=rs.space,
        clip_index=np.concatenate([rs.clip_index, clips]),
        annotator_ids=np.concatenate([rs.annotator_ids, np.array([name] * len(clips), dtype=object)]),
        y=np.concatenate([rs.y, np.full(len(clips), label, dtype=rs.y.dtype)]),
    )


def test_annotator_below_min_ratings_gets_no_head_but_shapes_the_consensus_head(synth, fast):
    s = synth("categorical", n_clips=120, n_annotators=3)
    clips = np.arange(8)
    rare = _with_rare_listener(s.train, clips, label=0)
    # the same data with the rare listener's 8 ratings saying the opposite class
    other = _with_rare_listener(s.train, clips, label=3)
    kw = {**fast, "min_ratings": 10, "valid_fraction": 0.0}
    m_rare = make_method("similar", **kw).fit(rare)
    m_other = make_method("similar", **kw).fit(other)
    assert m_rare.head_annotators_ == ["a0", "a1", "a2"]  # 8 < min_ratings: no head
    with pytest.raises(ConfigError, match="rare"):
        m_rare.head_index("rare")
    X = s.X[clips]
    p_rare = m_rare.predict(None, X).proba  # no profile: the consensus head
    p_other = m_other.predict(None, X).proba
    assert p_rare[:, 0].mean() > p_other[:, 0].mean() + 0.02
    assert p_other[:, 3].mean() > p_rare[:, 3].mean() + 0.02


def test_standardizer_is_fitted_on_training_clips_only(synth, fast):
    s = synth("dimensional", n_clips=100, n_annotators=2)
    X = s.X.copy()
    X[:, 0] += 1000.0 * (np.arange(len(X)) % 2)  # every other clip far off on feature 0
    from perser.methods.base import RatingSet

    rs = RatingSet(X=X, clip_ids=s.train.clip_ids, clip_index=s.train.clip_index,
                   annotator_ids=s.train.annotator_ids, y=s.train.y, space=s.space)
    m = make_method("consensus", **{**fast, "epochs": 1, "valid_fraction": 0.3})
    m.fit(rs)
    used = np.setdiff1d(np.arange(len(X)), _validation_clips(m, rs))
    np.testing.assert_allclose(m.standardizer_.mean, X[used].mean(0), rtol=1e-4, atol=1e-3)
    assert not np.allclose(m.standardizer_.mean, X.mean(0), atol=1e-3)


def _validation_clips(model, rs) -> np.ndarray:
    """The clip rows ``model`` held out for validation (its seeded split, recomputed)."""
    train, valid = type(model)(**model.get_params())._begin_fit(rs, None)
    return np.unique(valid.clip_index)
