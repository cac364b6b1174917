"""Networks, standardisation and losses."""

import numpy as np
import pytest
import torch
from torch.func import functional_call, grad

from perser.corpus.model import LabelSpace
from perser.errors import ConfigError, FeatureError
from perser.methods.losses import (
    ccc,
    ccc_loss,
    class_balanced_bce,
    class_balanced_weights,
    loss_for,
    mse,
    soft_cross_entropy,
    training_targets,
)
from perser.methods.nets import Encoder, HeadedNet, MultiHead, Standardizer, from_unit, to_unit


def test_standardizer_vectors_and_layers_roundtrip():
    rng = np.random.default_rng(0)
    X = rng.normal(3.0, 2.0, size=(50, 4)).astype(np.float32)
    X[:, 2] = 7.0  # constant feature maps to 0, not NaN
    s = Standardizer().fit(X)
    Z = s.transform(X)
    assert np.allclose(Z[:, [0, 1, 3]].mean(0), 0, atol=1e-5)
    assert np.allclose(Z[:, [0, 1, 3]].std(0), 1, atol=1e-4)
    assert np.all(Z[:, 2] == 0)
    s2 = Standardizer.from_dict(s.to_dict())
    assert np.array_equal(s2.transform(X), Z)
    X3 = rng.normal(size=(20, 3, 5)).astype(np.float32) * np.array([1, 10, 100])[None, :, None]
    s3 = Standardizer().fit(X3)
    assert s3.mean.shape == (3, 5)
    assert np.allclose(s3.transform(X3).std(0), 1, atol=1e-4)
    with pytest.raises(FeatureError, match=r"\(4,\).*\(3, 5\)"):
        s3.transform(X)


def test_encoder_layer_weights_reduce_ssl_stack():
    torch.manual_seed(0)
    enc = Encoder((3, 4), hidden=(), dropout=0.0)
    x = torch.randn(6, 3, 4)
    assert torch.allclose(enc(x), x.mean(1), atol=1e-6)  # zero logits: mean of the layers
    with torch.no_grad():
        enc.layer_logits.copy_(torch.tensor([0.0, 50.0, 0.0]))
    assert torch.allclose(enc(x), x[:, 1], atol=1e-5)
    assert Encoder((7,), hidden=(8, 5))(torch.randn(2, 7)).shape == (2, 5)
    with pytest.raises(FeatureError):
        Encoder((7,))(torch.randn(2, 6))


def test_multihead_batched_equals_per_head():
    torch.manual_seed(0)
    mh = MultiHead(5, 4, 3)
    z = torch.randn(8, 5)
    out = mh(z)
    for h in range(4):
        assert torch.allclose(out[:, h], z @ mh.weight[h] + mh.bias[h], atol=1e-6)
        assert torch.allclose(mh.forward_one(z, h), out[:, h], atol=1e-6)
    idx = torch.tensor([0, 1, 2, 3, 3, 2, 1, 0])
    assert torch.allclose(mh.forward_heads(z, idx), out[torch.arange(8), idx], atol=1e-6)


def test_functional_call_and_grad_match_autograd():
    torch.manual_seed(0)
    net = HeadedNet((2, 6), 3, n_heads=4, hidden=(8,), dropout=0.0)
    x, t = torch.randn(10, 2, 6), torch.randn(10, 3)
    idx = torch.randint(0, 4, (10,))
    params = {k: v.detach() for k, v in net.named_parameters()}
    g = grad(lambda p: ccc_loss(functional_call(net, p, (x, idx)), t))(params)
    ccc_loss(net(x, idx), t).backward()
    for k, p in net.named_parameters():
        assert torch.allclose(g[k], p.grad, atol=1e-6), k


def test_ccc_known_values():
    t = torch.tensor([[1.0, 2.0], [2.0, 4.0], [3.0, 6.0]])
    assert torch.allclose(ccc(t, t), torch.ones(2), atol=1e-6)
    # shifted prediction: perfect correlation, penalised by the mean difference
    c = ccc(t[:, 0] + 1.0, t[:, 0])
    assert abs(c.item() - 2 * (2 / 3) / (2 / 3 + 2 / 3 + 1.0)) < 1e-6
    assert ccc(-t, t)[0] < 0
    assert ccc_loss(t, t).item() == pytest.approx(0.0, abs=1e-6)
    assert mse(t, t + 2).item() == pytest.approx(4.0)


def test_soft_cross_entropy_equals_hard_for_one_hot():
    logits = torch.randn(5, 4)
    y = torch.tensor([0, 3, 1, 2, 2])
    assert torch.allclose(soft_cross_entropy(logits, torch.eye(4)[y]), torch.nn.functional.cross_entropy(logits, y))


def test_class_balanced_weights_effective_number():
    y = np.zeros((110, 2), dtype=np.float32)
    y[:100, 0] = 1
    y[100:, 1] = 1
    beta = 0.99
    w = class_balanced_weights(y, beta=beta)
    e = (1 - beta ** np.array([100, 10])) / (1 - beta)
    expect = (1 / e) / (1 / e).sum() * 2
    assert np.allclose(w, expect, rtol=1e-5)
    assert w[1] > w[0] and w.sum() == pytest.approx(2.0)
    # categorical indices give the same weights as one-hot rows
    assert np.allclose(class_balanced_weights(y.argmax(1), beta=beta, n_classes=2), w)
    # beta -> 0: no re-weighting
    assert np.allclose(class_balanced_weights(y, beta=0.0), [1.0, 1.0])
    with pytest.raises(ConfigError):
        class_balanced_weights(y, beta=1.0)


def test_class_balanced_bce_weights_each_class():
    logits, t = torch.zeros(4, 2), torch.tensor([[1.0, 0.0]] * 4)
    base = class_balanced_bce(logits, t)
    assert torch.allclose(class_balanced_bce(logits, t, torch.tensor([2.0, 0.0])), base)
    assert torch.allclose(class_balanced_bce(logits, t, torch.tensor([0.0, 0.0])), torch.tensor(0.0))


def test_loss_for_and_targets():
    cat = LabelSpace("emo", "categorical", classes=("a", "b", "c"))
    dim = LabelSpace("avd", "dimensional", dimensions=("arousal",), scale=(1, 5))
    assert loss_for(cat) is soft_cross_entropy
    assert loss_for(dim) is ccc_loss and loss_for(dim, "mse") is mse
    with pytest.raises(ConfigError, match="huber"):
        loss_for(dim, "huber")
    assert np.array_equal(training_targets(cat, np.array([2, 0])), [[0, 0, 1], [1, 0, 0]])
    u = training_targets(dim, np.array([[1.0], [3.0], [5.0]]))
    assert np.allclose(u[:, 0], [-1, 0, 1])
    assert np.allclose(from_unit(to_unit(np.array([1.5, 4.2]), (1, 5)), (1, 5)), [1.5, 4.2])


def test_standardizer_clips_outliers_but_keeps_ordinary_values():
    import numpy as np

    from perser.methods.nets import Standardizer

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3)).astype(np.float32)
    s = Standardizer().fit(X)
    Z = s.transform(np.array([[0.5, 1e4, -1e4]], dtype=np.float32))
    assert Z[0, 1] == s.clip and Z[0, 2] == -s.clip
    assert abs(Z[0, 0] - (0.5 - s.mean[0]) / s.std[0]) < 1e-6
    assert np.abs(Standardizer(clip=None).fit(X).transform(np.array([[0, 1e4, 0]], dtype=np.float32))).max() > 100
