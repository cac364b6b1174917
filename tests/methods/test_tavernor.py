"""``similar`` with ``score="ccc_tavernor"``: heads scored with Tavernor & Mower Provost's CCC."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from perser.errors import ConfigError
from perser.methods import make_method
from perser.methods.nets import to_unit


def _by_hand(y, p):
    y, p = np.asarray(y, float), np.asarray(p, float)
    dy, dp = y - y.mean(), p - p.mean()
    dy[dy == 0], dp[dp == 0] = 1e-8, 1e-8
    r = (dy * dp).sum() / np.sqrt((dy ** 2).sum() * (dp ** 2).sum())
    sy, sp = y.std(ddof=1), p.std(ddof=1)
    return 2 * r * sy * sp / (sy ** 2 + sp ** 2 + (y.mean() - p.mean()) ** 2)


def test_ccc_tavernor_scores_each_head_with_the_authors_estimator(synth, fast):
    s = synth("dimensional", n_annotators=4)
    m = make_method("similar", score="ccc_tavernor", **fast).fit(s.train)
    X, y = s.listener(s.W["a2"], n=6)
    crit, scores, _ = m.score_heads(X, y)
    assert crit == "ccc_tavernor"
    with torch.no_grad():
        out = m.head_outputs(X, activated=False).double().numpy()  # [K, H, D]
    t = to_unit(y.astype(np.float32), s.space.scale).astype(np.float64)
    expect = [sum(_by_hand(t[:, d], out[:, h, d]) for d in range(2)) for h in range(out.shape[1])]
    np.testing.assert_allclose(scores, expect, rtol=1e-5)
    # perser's default CCC (Lin's, population moments) gives other scores on 6 clips
    _, lin, _ = make_method("similar", score="ccc", **fast).adopt_fit(m, s.train).score_heads(X, y)
    assert np.max(np.abs(lin - scores)) > 1e-4
    # one enrollment clip: the authors' absolute-error choice
    crit1, s1, _ = m.score_heads(X[:1], y[:1])
    assert crit1 == "mae"
    profile = m.enroll(X, y, annotator="new")
    assert profile.data["heads"][0] in m.seen_annotators_


def test_ccc_tavernor_needs_a_dimensional_space(synth, fast):
    s = synth("categorical", n_annotators=3)
    with pytest.raises(ConfigError, match="ccc_tavernor"):
        make_method("similar", score="ccc_tavernor", **fast).fit(s.train)


def test_tavernor_network_is_the_authors_layout(synth, fast):
    from torch import nn

    from perser.methods.tavernor import BranchHeads, TavernorNet

    s = synth("dimensional", n_annotators=3)
    m = make_method("similar", architecture="tavernor", **{**fast, "hidden": (16,), "epochs": 3}).fit(s.train)
    net = m.net_
    assert isinstance(net, TavernorNet) and isinstance(net.head, BranchHeads)
    assert [type(x) for x in net.trunk.shared] == [nn.Linear, nn.ReLU]
    assert net.trunk.shared[0].in_features == s.d and net.trunk.shared[0].out_features == 16
    assert len(net.trunk.branches) == 2  # arousal, valence
    assert all([type(x) for x in b] == [nn.Linear, nn.ReLU, nn.Linear, nn.ReLU] for b in net.trunk.branches)
    assert isinstance(net.trunk.dropout, nn.Dropout) and net.trunk.dropout.p == fast["dropout"]
    # one head per annotator (+ the consensus head), each reading only its dimension's branch
    W = net.head.weight.detach()
    assert W.shape == (4, 32, 2)
    assert torch.all(W[:, 16:, 0] == 0) and torch.all(W[:, :16, 1] == 0)
    assert m.has_consensus_head
    # the heads' outputs are the per-dimension linear maps of the branches
    X = s.X[:5]
    z = m.embed(X)
    out = m.head_outputs(X, activated=False)
    h = 1
    expect0 = z[:, :16] @ W[h, :16, 0] + net.head.bias[h, 0]
    assert torch.allclose(out[:, h, 0], expect0.detach(), atol=1e-5)


def test_tavernor_training_copies_the_consensus_head_then_trains_with_sgd(synth, fast, monkeypatch):
    import perser.methods.tavernor as tav

    calls = []
    real = tav.fit_model

    def spy(model, n, batch_loss, valid_loss, cfg):
        calls.append({"cfg": cfg, "W": model.head.weight.detach().clone(), "b": model.head.bias.detach().clone(),
                      "valid": valid_loss is not None})
        return real(model, n, batch_loss, valid_loss, cfg)

    monkeypatch.setattr(tav, "fit_model", spy)
    s = synth("dimensional", n_annotators=3)
    m = make_method("similar", architecture="tavernor", **{**fast, "hidden": (16,), "epochs": 4, "patience": 10,
                                                           "batch_size": 32, "lr": 1e-3}).fit(s.train)
    assert len(calls) == 2
    first, second = calls
    assert first["cfg"].epochs == tav.PRETRAIN_EPOCHS and not first["valid"]
    assert first["cfg"].optimizer == second["cfg"].optimizer == "sgd" and second["cfg"].momentum == 0.9
    assert second["cfg"].plateau_factor == 0.1 and second["cfg"].plateau_patience == 5 and second["valid"]
    H = len(m.head_annotators_)
    # stage 2 starts with every annotator head equal to the (pre-trained) consensus head
    for h in range(H):
        assert torch.equal(second["W"][h], second["W"][H]) and torch.equal(second["b"][h], second["b"][H])
    # ... which stage 1 changed (it was trained, not left at its random start)
    assert not torch.equal(first["W"][H], second["W"][H])
    # stage 2 then trains the annotator heads apart
    W = m.net_.head.weight.detach()
    assert not torch.equal(W[0], W[1])
    assert "lr" in m.history_.history[0]  # the plateau scheduler ran


def test_tavernor_model_saves_and_loads(synth, fast, tmp_path):
    from perser.methods.similar import SimilarAnnotator

    s = synth("dimensional", n_annotators=3)
    m = make_method("similar", architecture="tavernor", score="ccc_tavernor",
                    **{**fast, "hidden": (16,), "epochs": 2}).fit(s.train)
    X, y = s.listener(s.W["a1"], n=8)
    p = m.enroll(X, y, annotator="x")
    m.save(tmp_path / "m")
    m2 = SimilarAnnotator.load(tmp_path / "m")
    np.testing.assert_allclose(m2.predict(p, X).values, m.predict(p, X).values, rtol=1e-6)
    assert m2.enroll(X, y, annotator="x").data["heads"] == p.data["heads"]


def test_tavernor_architecture_refuses_class_spaces_and_unknown_names(synth, fast):
    s = synth("categorical", n_annotators=3)
    with pytest.raises(ConfigError, match="tavernor.*dimensional"):
        make_method("similar", architecture="tavernor", **fast).fit(s.train)
    d = synth("dimensional", n_annotators=3)
    with pytest.raises(ConfigError, match="unknown architecture"):
        make_method("similar", architecture="resnet", **fast).fit(d.train)


def test_consensus_tavernor_is_the_authors_aggregate_baseline(synth, fast, monkeypatch, tmp_path):
    """``consensus`` with ``architecture: tavernor``: the authors' BASELINE_AGGREGATE model
    (their network with one consensus output per dimension, AggregateHead), trained with their
    PreTrainLoss (the dimensions' 1 - CCC summed against the clips' mean ratings) by SGD."""
    from torch import nn

    import perser.methods.consensus as cons
    from perser.methods.consensus import ConsensusModel
    from perser.methods.losses import ccc
    from perser.methods.nets import HeadedNet
    from perser.methods.tavernor import TavernorNet

    calls = []
    real = cons.fit_model

    def spy(model, n, batch_loss, valid_loss, cfg):
        calls.append({"cfg": cfg, "loss": batch_loss(model, np.arange(n)).item()})
        return real(model, n, batch_loss, valid_loss, cfg)

    monkeypatch.setattr(cons, "fit_model", spy)
    s = synth("dimensional", n_annotators=3)
    params = {**fast, "hidden": (16,), "epochs": 3, "patience": 10}
    m = make_method("consensus", architecture="tavernor", **params).fit(s.train)
    net = m.net_
    assert isinstance(net, TavernorNet) and net.head.n_heads == 1
    assert [type(x) for x in net.trunk.shared] == [nn.Linear, nn.ReLU] and len(net.trunk.branches) == 2
    assert all([type(x) for x in b] == [nn.Linear, nn.ReLU, nn.Linear, nn.ReLU] for b in net.trunk.branches)
    cfg = calls[0]["cfg"]
    assert cfg.optimizer == "sgd" and cfg.momentum == 0.9 and cfg.plateau_factor == 0.1 and cfg.plateau_patience == 5
    # the loss of the untrained network (dropout off) on all clips: (1 - CCC) per dimension
    # against the clips' mean ratings, summed over the dimensions (MIA PreTrainLoss), not averaged
    calls.clear()
    p0 = {**params, "dropout": 0.0}
    make_method("consensus", architecture="tavernor", **p0).fit(s.train)
    fresh = ConsensusModel(architecture="tavernor", **p0)
    tr, _ = fresh._begin_fit(s.train, None)
    net0 = fresh._make_net(1)
    rows, T = fresh._consensus_targets(tr)
    with torch.no_grad():
        per_dim = 1 - ccc(net0(fresh._tensor(tr.X)[torch.from_numpy(rows)]), torch.from_numpy(T))
    assert per_dim.shape == (2,)
    assert calls[0]["loss"] == pytest.approx(float(per_dim.sum()), rel=1e-5)
    assert calls[0]["loss"] != pytest.approx(float(per_dim.mean()), rel=1e-3)
    default = make_method("consensus", **params).fit(s.train)
    assert isinstance(default.net_, HeadedNet) and calls[-1]["cfg"].optimizer == "adam"
    # saved and loaded, it predicts the same
    X = s.X[:6]
    m.save(tmp_path / "c")
    np.testing.assert_allclose(ConsensusModel.load(tmp_path / "c").predict(None, X).values,
                               m.predict(None, X).values, rtol=1e-6)
    cat = synth("categorical", n_annotators=3)
    with pytest.raises(ConfigError, match="tavernor.*dimensional"):
        make_method("consensus", architecture="tavernor", **fast).fit(cat.train)
    with pytest.raises(ConfigError, match="unknown architecture"):
        make_method("consensus", architecture="resnet", **fast).fit(s.train)


def test_finetune_after_copy_trains_each_listener_from_their_copied_head(synth, fast, monkeypatch):
    """The authors' fine-tuning after the copy (MIA _run_seed_fold, Step 5): each listener's
    head starts as the head enrollment chose, then the whole network is trained by SGD on all
    the listeners' target ratings; the fitted model itself is left as it was."""
    import perser.methods.tavernor as tav
    from perser.methods.base import RatingSet

    s = synth("dimensional", n_annotators=3)
    params = {**fast, "hidden": (16,), "epochs": 3, "patience": 10, "batch_size": 8}
    m = make_method("similar-finetuned", score="ccc_tavernor", **params).fit(s.train)
    assert m.adapts() and m.architecture == "tavernor"
    assert not make_method("similar", architecture="tavernor", **params).adapts()
    listeners = {"L1": s.listener(-s.W["a0"], n=40, seed=3), "L2": s.listener(s.W["a2"] * 0.5, n=40, seed=4)}
    profiles = {a: m.enroll(X[:5], y[:5], annotator=a) for a, (X, y) in listeners.items()}
    target = RatingSet(
        X=np.concatenate([X for X, _ in listeners.values()]),
        clip_ids=np.array([f"t{i}" for i in range(80)], dtype=object),
        clip_index=np.arange(80), annotator_ids=np.array(["L1"] * 40 + ["L2"] * 40, dtype=object),
        y=np.concatenate([y for _, y in listeners.values()]), space=s.space)
    calls = []
    real = tav.fit_model

    def spy(net, n, batch_loss, valid_loss, cfg):
        calls.append({"cfg": cfg, "W": net.head.weight.detach().clone(), "b": net.head.bias.detach().clone(),
                      "valid": valid_loss is not None})
        return real(net, n, batch_loss, valid_loss, cfg)

    monkeypatch.setattr(tav, "fit_model", spy)
    before = {k: v.clone() for k, v in m.net_.state_dict().items()}
    X_test = s.X[:10]
    zero_shot = {a: m.predict(p, X_test).values for a, p in profiles.items()}
    adapted, profs = m.adapt(profiles, target, None)
    (call,) = calls
    assert call["cfg"].optimizer == "sgd" and call["cfg"].momentum == 0.9 and call["cfg"].plateau_factor == 0.1
    assert call["valid"]  # no validation speakers given: valid_fraction of the target clips
    for i, a in enumerate(sorted(profiles)):  # each listener's head starts as their chosen head
        h = m.head_index(profiles[a].data["heads"][0])
        assert torch.equal(call["W"][i], m.net_.head.weight.detach()[h])
        assert torch.equal(call["b"][i], m.net_.head.bias.detach()[h])
        assert profs[a].data["heads"] == [a] and profs[a].data["copied_from"] == profiles[a].data["heads"]
        assert not np.allclose(adapted.predict(profs[a], X_test).values, zero_shot[a])   # trained away from the copy
    assert all(torch.equal(before[k], v) for k, v in m.net_.state_dict().items())           # the fitted model untouched
    for a, p in profiles.items():
        np.testing.assert_allclose(m.predict(p, X_test).values, zero_shot[a])
    with pytest.raises(ConfigError, match="finetune_after_copy.*architecture 'tavernor'"):
        make_method("similar", finetune_after_copy=True, **params).fit(s.train)


def test_consensus_finetuned_trains_the_baseline_on_the_target_consensus(synth, fast, monkeypatch):
    """The authors also fine-tune their consensus baseline on the target training fold (their
    _train_model runs for BASELINE_AGGREGATE): consensus-finetuned, SGD on the evaluated
    listeners' mean ratings; the fitted model is left as it was."""
    import perser.methods.consensus as cons
    from perser.methods.base import RatingSet

    s = synth("dimensional", n_annotators=3)
    params = {**fast, "hidden": (16,), "epochs": 3, "patience": 10, "batch_size": 8}
    m = make_method("consensus-finetuned", **params).fit(s.train)
    assert m.adapts() and m.architecture == "tavernor" and not make_method("consensus", **params).adapts()
    X, y1 = s.listener(-s.W["a0"], n=40, seed=3)
    _, y2 = s.listener(-s.W["a0"], n=40, seed=3)
    target = RatingSet(X=X, clip_ids=np.array([f"t{i}" for i in range(40)], dtype=object),
                       clip_index=np.concatenate([np.arange(40)] * 2),
                       annotator_ids=np.array(["L1"] * 40 + ["L2"] * 40, dtype=object),
                       y=np.concatenate([y1, y2]), space=s.space)
    profiles = {a: m.enroll(X[:5], y1[:5], annotator=a) for a in ("L1", "L2")}
    calls = []
    real = cons.fit_model

    def spy(net, n, batch_loss, valid_loss, cfg):
        calls.append({"cfg": cfg, "n": n, "before": batch_loss(net, np.arange(n)).item()})
        h = real(net, n, batch_loss, valid_loss, cfg)
        calls[-1]["after"] = batch_loss(net, np.arange(n)).item()
        return h

    monkeypatch.setattr(cons, "fit_model", spy)
    before = {k: v.clone() for k, v in m.net_.state_dict().items()}
    zero = m.predict(None, s.X[:10]).values
    adapted, profs = m.adapt(profiles, target, None)
    (call,) = calls
    assert call["cfg"].optimizer == "sgd" and call["cfg"].momentum == 0.9 and call["n"] == 36  # 10% held out
    assert call["after"] < call["before"]                       # trained toward the target listeners' mean
    assert all(p.data["finetuned"] for p in profs.values())
    assert not np.allclose(adapted.predict(profs["L1"], s.X[:10]).values, zero)
    assert all(torch.equal(before[k], v) for k, v in m.net_.state_dict().items())
    with pytest.raises(ConfigError, match="finetune_on_target.*architecture 'tavernor'"):
        make_method("consensus", finetune_on_target=True, **params).fit(s.train)
