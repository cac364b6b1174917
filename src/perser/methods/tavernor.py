"""Pieces of Tavernor & Mower Provost's system as their code builds them.

Tavernor & Mower Provost (2025), "More Similar than Dissimilar: Modeling Annotators for
Cross-Corpus Speech Emotion Recognition". The reference is the authors' public code
(``chailab-umich/ModelingIndividualAnnotators``, "MIA"); ``docs/papers.md`` lists every
component with its file and line there.

:func:`tavernor_ccc` is MIA's concordance correlation coefficient
(``src/MIA/metrics/metrics.py``, lines 3-32), the estimator the authors use to choose
the most similar annotator and to compute CCC_ind and CCC_con. It differs from Lin's
CCC with population moments (:func:`perser.methods.losses.ccc`):

* the variances and standard deviations are unbiased (``n - 1``), the squared mean
  difference is not, so ``ccc = 2 r s_p s_t / (s_p^2 + s_t^2 + (m_p - m_t)^2)``
  with ``s`` the ``n - 1`` standard deviations;
* a deviation from the mean that is exactly 0 is replaced by ``1e-8`` before the
  Pearson ``r``, and a zero denominator by ``1e-8``: constant ratings or
  predictions give 0, never NaN.
"""

from __future__ import annotations

import numpy as np
import torch

from perser.methods.training import fit_model

EPS = 1e-8


def tavernor_ccc(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MIA's CCC along dimension 0.

    ``pred`` ``[n, ...]``; ``target`` ``[n, ...]`` of the same shape or broadcastable
    to it (e.g. ``[n, 1, D]`` against ``[n, H, D]``, the target's moments are taken
    over its own ``n`` values, as MIA does with one target column against many heads).
    Returns ``pred.shape[1:]``. Needs ``n >= 2``.
    """
    if pred.shape[0] < 2:
        raise ValueError(f"tavernor_ccc needs at least 2 values, got {pred.shape[0]}")
    pred = pred.to(torch.float64) if not torch.is_floating_point(pred) else pred
    target = target.to(pred.dtype)
    mean_t, mean_p = target.mean(0), pred.mean(0)
    var_t, var_p = target.var(0), pred.var(0)  # unbiased, as torch.var
    v_p = pred - mean_p
    v_t = target - mean_t
    v_p = torch.where(v_p == 0, torch.full_like(v_p, EPS), v_p)
    v_t = torch.where(v_t == 0, torch.full_like(v_t, EPS), v_t)
    v_t = v_t.expand_as(v_p) if v_t.shape != v_p.shape else v_t
    cor = (v_p * v_t).sum(0) / (torch.sqrt((v_p ** 2).sum(0)) * torch.sqrt((v_t ** 2).sum(0)))
    sd_t, sd_p = target.std(0), pred.std(0)
    num = 2 * cor * sd_t * sd_p
    den = var_t + var_p + (mean_t - mean_p) ** 2
    den = torch.where(den == 0, torch.full_like(den, EPS), den)
    return num / den


def tavernor_ccc_np(y: np.ndarray, pred: np.ndarray) -> float:
    """:func:`tavernor_ccc` of two 1-D arrays (truth first, as perser's metrics), in float64."""
    y = np.array(y, dtype=np.float64).ravel()
    p = np.array(pred, dtype=np.float64).ravel()
    if len(y) != len(p):
        raise ValueError(f"tavernor_ccc needs two equally long arrays, got {len(y)} and {len(p)}")
    return float(tavernor_ccc(torch.from_numpy(p), torch.from_numpy(y)))


# ------------------------------------------------------------------ network
#: the authors' fixed sizes: one shared layer (``dense_layers - 1`` with ``dense_layers: 2``,
#: MIA ``models/models.py:108-112``) and a two-layer branch per dimension
#: (``models/prediction_heads.py``, ``CombinedLayers``)
SHARED_LAYERS = 1
BRANCH_LAYERS = 2
#: epochs of consensus-head pre-training before the copy (MIA ``experiment.py``:
#: ``num_epochs_pre_training = ... 5``)
PRETRAIN_EPOCHS = 5
#: the authors' optimiser and schedule (MIA ``models/model_trainer.py:35-37``, ``models/early_stopping.py:10``)
AUTHORS_TRAINING = {"optimizer": "sgd", "momentum": 0.9, "plateau_factor": 0.1, "plateau_patience": 5}


class TavernorTrunk(torch.nn.Module):
    """Input dropout, one shared ``Linear`` + ReLU, then per dimension a branch of two
    ``Linear`` + ReLU; the output concatenates the branches (``[n, D * width]``).

    A ``(layers, dim)`` input is first reduced by learned softmax layer weights, as
    :class:`~perser.methods.nets.Encoder` does (the authors use the last layer only:
    give ``ssl:DIR`` features with ``layers: last`` for that).
    """

    def __init__(self, input_shape, n_dims: int, width: int = 256, dropout: float = 0.2):
        super().__init__()
        from torch import nn

        from perser.methods.nets import Encoder

        self.reduce = Encoder(input_shape, hidden=(), dropout=0.0)
        d = self.reduce.out_dim
        self.dropout = nn.Dropout(float(dropout))
        layers = []
        for _ in range(SHARED_LAYERS):
            layers += [nn.Linear(d, width), nn.ReLU()]
            d = width
        self.shared = nn.Sequential(*layers)
        self.branches = nn.ModuleList()
        for _ in range(n_dims):
            b = []
            for _ in range(BRANCH_LAYERS):
                b += [nn.Linear(width, width), nn.ReLU()]
            self.branches.append(nn.Sequential(*b))
        self.width, self.n_dims = int(width), int(n_dims)
        self.out_dim = self.width * self.n_dims
        self.input_shape = self.reduce.input_shape

    def layer_weights(self):
        return self.reduce.layer_weights()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.shared(self.dropout(self.reduce(x)))
        return torch.cat([b(z) for b in self.branches], dim=1)


class BranchHeads(torch.nn.Module):
    """``H`` annotator heads, each one ``Linear(width, 1)`` per dimension reading only that
    dimension's branch.

    Stored like :class:`~perser.methods.nets.MultiHead` (``weight [H, D * width, D]``,
    ``bias [H, D]``) with the entries that would read another dimension's branch held
    at zero (a fixed block mask in the forward pass; their gradient is zero), so code
    that reads ``weight`` directly sees the per-dimension heads.
    """

    def __init__(self, width: int, n_dims: int, n_heads: int):
        super().__init__()
        import math

        from torch import nn

        self.in_dim, self.n_heads, self.n_out = int(width * n_dims), int(n_heads), int(n_dims)
        mask = torch.zeros(self.in_dim, self.n_out)
        for d in range(n_dims):
            mask[d * width:(d + 1) * width, d] = 1.0
        self.register_buffer("mask", mask)
        bound = 1.0 / math.sqrt(width)  # nn.Linear(width, 1)'s initialisation
        self.weight = nn.Parameter(torch.empty(self.n_heads, self.in_dim, self.n_out).uniform_(-bound, bound) * mask)
        self.bias = nn.Parameter(torch.empty(self.n_heads, self.n_out).uniform_(-bound, bound))

    def _w(self) -> torch.Tensor:
        return self.weight * self.mask

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.einsum("ni,hio->nho", z, self._w()) + self.bias

    def forward_heads(self, z: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        return torch.einsum("ni,nio->no", z, self._w()[idx]) + self.bias[idx]

    def forward_one(self, z: torch.Tensor, h: int = 0) -> torch.Tensor:
        return z @ self._w()[h] + self.bias[h]


class TavernorNet(torch.nn.Module):
    """:class:`TavernorTrunk` (``trunk``) and :class:`BranchHeads` (``head``): the
    interface of :class:`~perser.methods.nets.HeadedNet`."""

    def __init__(self, input_shape, n_dims: int, n_heads: int, width: int = 256, dropout: float = 0.2):
        super().__init__()
        self.trunk = TavernorTrunk(input_shape, n_dims, width=width, dropout=dropout)
        self.head = BranchHeads(width, n_dims, n_heads)

    def forward(self, x: torch.Tensor, idx: torch.Tensor | None = None) -> torch.Tensor:
        z = self.trunk(x)
        if idx is not None:
            return self.head.forward_heads(z, idx)
        if self.head.n_heads == 1:
            return self.head.forward_one(z, 0)
        return self.head(z)


def make_tavernor_net(model, n_heads: int) -> TavernorNet:
    """The network of a multi-annotator ``model`` with ``architecture="tavernor"``
    (``hidden[0]`` is the layer width, 256 in the authors' configuration)."""
    from perser.errors import ConfigError

    if model.space_.kind != "dimensional":
        raise ConfigError(f"method {model.name!r}: architecture 'tavernor' needs a dimensional space "
                          f"(a branch and a head per dimension), got {model.space_.kind!r}")
    hidden = tuple(int(h) for h in (model.hidden or ()))
    width = hidden[0] if hidden else 256
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(model.seed))
        return TavernorNet(model.input_shape_, model.space_.n_outputs, n_heads, width=width,
                           dropout=float(model.dropout))


# ------------------------------------------------------------------ training
def _ccc_sum(out: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The dimensions' ``1 - CCC`` summed, each CCC over all rows (MIA ``Task1Loss`` and
    ``PreTrainLoss``: one CCC per dimension, the dimensions' losses added)."""
    from perser.methods.losses import ccc

    return (1.0 - ccc(out, t)).sum()


def _rating_tensors(model, rs, heads: list[str], dev) -> tuple:
    """Tensors of a rating set for the authors' training: features, the clips with a
    rating of one of ``heads`` (the training items), their mean ratings, each item's
    rating rows, and per rating its clip, head index (``heads`` order) and target."""
    from perser.methods.nets import to_unit

    index = {a: i for i, a in enumerate(heads)}
    X = model._tensor(rs.X).to(dev)
    keep = np.isin(rs.annotator_ids, heads)
    clip = rs.clip_index[keep]
    hidx = np.array([index[a] for a in rs.annotator_ids[keep]], dtype=np.int64)
    T = model._targets(rs.y[keep]).astype(np.float32)
    crow, C = rs.consensus()
    C = to_unit(C, model.space_.scale).astype(np.float32)
    clips = np.unique(clip)  # training items: clips with at least one kept rating
    pos = {c: i for i, c in enumerate(clips)}
    rows_of = [[] for _ in clips]
    for r, c in enumerate(clip):
        rows_of[pos[c]].append(r)
    cons = dict(zip(crow.tolist(), range(len(crow))))
    Cc = torch.from_numpy(C[[cons[c] for c in clips]]).to(dev)
    return (X, torch.from_numpy(clips).to(dev), Cc, [np.asarray(r, dtype=np.int64) for r in rows_of],
            torch.from_numpy(clip).to(dev), torch.from_numpy(hidx).to(dev), torch.from_numpy(T).to(dev))


def _annotator_loss(module, data: tuple, items) -> torch.Tensor:
    """:func:`_ccc_sum` over every rating of the batch's clips ``items`` (MIA ``Task1Loss``)."""
    X, rows_of, clip, hidx, T = data[0], data[3], data[4], data[5], data[6]
    r = torch.from_numpy(np.concatenate([rows_of[i] for i in np.asarray(items)])).to(X.device)
    return _ccc_sum(module(X[clip[r]], hidx[r]), T[r])


def fit_tavernor(model, train, valid=None):
    """Train a multi-annotator ``model`` as Tavernor & Mower Provost's code does.

    1. the trunk and a consensus head (one output per dimension) are trained for
       :data:`PRETRAIN_EPOCHS` epochs on each clip's mean rating (CCC loss);
    2. the consensus head is copied into every annotator's head;
    3. the whole network is trained on the annotators' own ratings only: per batch of
       ``batch_size`` clips, one CCC per dimension over all (clip, annotator) pairs of
       the batch, the dimensions' ``1 - CCC`` summed (MIA ``Task1Loss``), with early
       stopping on the validation loss (``patience``) and the learning rate divided by
       10 after 5 epochs without improvement.

    Both stages use SGD with momentum 0.9 and the model's ``lr`` (1e-3 in the
    recipes); the optimiser is reset between them (MIA ``ModelTrainer.reset_optim``).
    The consensus head is kept (head ``H``) for predictions without a profile.
    """
    import dataclasses

    from perser.errors import ConfigError
    from perser.methods.multi import _counts
    from perser.methods.neural import data_fingerprint

    model._check_fit_options(train)
    if float(model.head_shrinkage) > 0:
        raise ConfigError(f"method {model.name!r}: architecture 'tavernor' trains its heads as the authors do; "
                          "head_shrinkage must be 0")
    counts = _counts(train.annotator_ids)
    heads = sorted(a for a, n in counts.items() if n >= int(model.min_ratings))
    if not heads:
        raise ConfigError(f"method {model.name!r}: no annotator has min_ratings={model.min_ratings} ratings; "
                          "lower min_ratings")
    model.fit_data_ = data_fingerprint(train)
    train, valid = model._begin_fit(train, valid)
    if model.space_.kind != "dimensional":
        raise ConfigError(f"method {model.name!r}: architecture 'tavernor' needs a dimensional space")
    model.head_annotators_ = heads
    model._index = {a: i for i, a in enumerate(heads)}
    H = len(heads)
    dev = model.train_device()
    model.net_ = model._make_net(H + 1).to(dev)  # + the consensus head, index H
    D = _rating_tensors(model, train, heads, dev)
    V = _rating_tensors(model, valid, heads, dev) if valid is not None and np.isin(valid.annotator_ids, heads).any() \
        else None
    cons_idx = lambda n: torch.full((n,), H, dtype=torch.long, device=dev)  # noqa: E731

    def consensus_loss(module, data, items):
        X, clips, Cc = data[0], data[1], data[2]
        it = torch.as_tensor(items, device=dev)
        return _ccc_sum(module(X[clips[it]], cons_idx(len(it))), Cc[it])

    annotator_loss = _annotator_loss

    base = model.train_config(model.name)
    stage1 = dataclasses.replace(model.train_config(f"{model.name} consensus head", "consensus"),
                                 epochs=PRETRAIN_EPOCHS, patience=0, **AUTHORS_TRAINING)
    try:
        h1 = fit_model(model.net_, len(D[1]), lambda m, idx: consensus_loss(m, D, idx), None, stage1)
        with torch.no_grad():  # the consensus head becomes every annotator's head
            model.net_.head.weight[:H] = model.net_.head.weight[H]
            model.net_.head.bias[:H] = model.net_.head.bias[H]
        valid_loss = None
        if V is not None:
            def valid_loss(m):
                return annotator_loss(m, V, np.arange(len(V[1]))).item()
        stage2 = dataclasses.replace(model.train_config(f"{model.name} annotator heads", "heads"),
                                     **AUTHORS_TRAINING)
        stage2 = dataclasses.replace(stage2, epochs=base.epochs)
        h2 = fit_model(model.net_, len(D[1]), lambda m, idx: annotator_loss(m, D, idx), valid_loss, stage2)
        with torch.no_grad():
            model.net_.head.weight.mul_(model.net_.head.mask)
    finally:
        model.net_.to("cpu")
    model.history_ = h2
    model.pretrain_history_ = h1
    return model


# ------------------------------------------------------- fine-tuning after the copy
def finetune_copies(model, profiles: dict, target, valid=None):
    """The authors' fine-tuning after the head copy (MIA ``experiment.py``,
    ``ExperimentRunner._run_seed_fold``, Step 5 of the ASRU flow): a copy of the fitted
    ``model`` in which every target listener of ``profiles`` (listener -> the profile
    ``enroll`` gave, naming the copied seen head) has a head of their own, started as a
    copy of their chosen head, and the whole network trained on ``target`` — the
    listeners' ratings of the target corpus's training clips, all of them, not only the K
    enrollment clips — with the authors' annotator loss, a fresh SGD optimiser (momentum
    0.9, the model's ``lr``, the plateau schedule), ``batch_size`` clips a step, at most
    ``epochs`` epochs and early stopping (``patience``) on ``valid`` (the listeners'
    ratings of the validation speakers' clips; without it, ``valid_fraction`` of the
    target clips held out). No consensus pre-training (a loaded model is out of it).

    Returns ``(adapted, profiles)``: the adapted copy (``model`` is not changed) and each
    listener's profile in it (their own head). Needs top-1 whole-head choices
    (``top_k=1``, ``per_dimension=False``).
    """
    import copy
    import dataclasses

    from perser.errors import ConfigError
    from perser.methods.base import Profile

    listeners = sorted(profiles)
    if not listeners:
        raise ConfigError(f"method {model.name!r}: no enrolled listener to fine-tune for")
    src = []
    for a in listeners:
        heads = profiles[a].data.get("heads") or []
        if len(heads) != 1 or "per_dimension" in profiles[a].data:
            raise ConfigError(f"method {model.name!r}: fine-tuning after the copy needs one copied head per listener "
                              "(top_k=1, per_dimension=false)")
        src.append(model.head_index(heads[0]))
    missing = sorted(set(listeners) - set(target.annotator_ids))
    if missing:
        raise ConfigError(f"method {model.name!r}: listener(s) {missing[:5]} have no rating of the target training "
                          "clips to fine-tune on")
    new = copy.copy(model)
    net = copy.deepcopy(model.net_)
    head = BranchHeads(net.trunk.width, net.trunk.n_dims, len(listeners))
    with torch.no_grad():
        head.weight.copy_(model.net_.head.weight.detach()[src])
        head.bias.copy_(model.net_.head.bias.detach()[src])
    net.head = head
    new.net_ = net
    new.head_annotators_ = list(listeners)
    new._index = {a: i for i, a in enumerate(listeners)}
    if valid is None:  # as NeuralPersonalizer._begin_fit
        target, valid = model._split_valid(target)
    dev = model.train_device()
    net.to(dev)
    D = _rating_tensors(new, target, listeners, dev)
    V = _rating_tensors(new, valid, listeners, dev) if valid is not None and np.isin(valid.annotator_ids,
                                                                                       listeners).any() else None
    valid_loss = None
    if V is not None:
        def valid_loss(m):
            return _annotator_loss(m, V, np.arange(len(V[1]))).item()
    cfg = dataclasses.replace(model.train_config(f"{model.name} fine-tuning after the copy"), checkpoint_dir=None,
                              **AUTHORS_TRAINING)
    try:
        new.finetune_history_ = fit_model(net, len(D[1]), lambda m, idx: _annotator_loss(m, D, idx), valid_loss, cfg)
        with torch.no_grad():
            net.head.weight.mul_(net.head.mask)
    finally:
        net.to("cpu")
    net.eval()
    out = {a: Profile(method=model.name, annotator=a,
                      data={**profiles[a].data, "heads": [a], "weights": [1.0], "copied_from": profiles[a].data["heads"],
                            "finetuned": True})
           for a in listeners}
    return new, out
