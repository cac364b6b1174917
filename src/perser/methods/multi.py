"""The multi-annotator model and the two trivial baselines built on it.

:class:`MultiAnnotatorModel` is a shared :class:`~perser.methods.nets.Encoder` with one
linear output head per seen annotator who has at least ``min_ratings`` ratings, all
evaluated in one batched product (:class:`~perser.methods.nets.MultiHead`). Each
rating trains its annotator's head. With ``consensus_weight > 0`` an extra *consensus
head* is trained jointly on per-clip consensus targets built from **all** ratings, so
annotators with fewer ratings still count there; it serves predictions without a
profile and is the starting point of ``finetune``. With ``head_shrinkage > 0`` each
annotator's head is pulled toward the consensus head (hierarchical shrinkage: a
Gaussian prior centred on the consensus head, which weighs most on the heads of
annotators with few ratings).

The fitted network depends only on the hyper-parameters listed in :data:`FIT_PARAMS`
and the training data, not on the baseline built on it, so an evaluation fits it once
per split and shares it between ``random-annotator``, ``mean-annotator``, ``similar``
and ``finetune`` (:meth:`MultiAnnotatorModel.fit_signature`,
:meth:`MultiAnnotatorModel.adopt_fit`).

* ``random-annotator`` (:class:`RandomAnnotator`): a new listener gets a seen
  annotator's head drawn at random (seeded by ``seed`` and the listener's name);
* ``mean-annotator`` (:class:`MeanAnnotator`): the mean of all seen heads'
  predictions (mean of probabilities for classes).
"""

from __future__ import annotations

import copy
import zlib

import numpy as np
import torch

from perser.errors import ConfigError, PerserError
from perser.methods.base import Predictions, Profile, RatingSet
from perser.methods.neural import NeuralPersonalizer, data_fingerprint
from perser.methods.nets import activate, to_unit
from perser.methods.training import fit_model

#: profile name of the consensus head
CONSENSUS = "<consensus>"

#: hyper-parameters that determine the fitted multi-annotator network
FIT_PARAMS = ("hidden", "dropout", "epochs", "batch_size", "lr", "weight_decay", "patience", "min_delta", "valid_fraction",
              "loss", "cb_beta", "seed", "device", "min_ratings", "consensus_weight", "head_shrinkage", "head_updates", "precision",
              "architecture")

#: values of ``architecture``
ARCHITECTURES = ("perser", "tavernor")

#: fitted attributes that :meth:`MultiAnnotatorModel.adopt_fit` takes over
_FITTED = ("space_", "input_shape_", "standardizer_", "seen_annotators_", "class_weights_", "head_annotators_",
           "_index", "history_", "fit_data_", "listener_noise_")


class MultiAnnotatorModel(NeuralPersonalizer):
    """Shared trunk with one output head per seen annotator (plus a consensus head).

    Parameters
    ----------
    min_ratings:
        Annotators with fewer training ratings get no head of their own (their ratings
        still enter the consensus targets).
    consensus_weight:
        Weight of the consensus head's loss (0: no consensus head).
    head_shrinkage:
        Strength ``lambda`` of the pull of every annotator head toward the consensus
        head: ``lambda * sum_h ||W_h - W_c||^2 / N`` (weights and biases; ``N`` training
        ratings; the consensus side is not moved by it) is added to the loss, i.e. a
        Gaussian prior on each head worth about ``lambda`` ratings per unit squared
        distance. ``0`` (default): independent heads. Tavernor & Mower Provost's heads are
        independent too, but each starts as a copy of a trained consensus head, which
        this model does not do (``docs/papers.md``).
        Needs a consensus head. With ``head_updates="sparse"`` the term is written per
        rating, ``lambda / n_h * ||W_h - W_c||^2`` for the rating's head ``h`` with
        ``n_h`` training ratings, and averaged over the batch like the loss: over an
        epoch (and in expectation over a step) it is the same penalty, but a step touches
        only the batch's heads.
    head_updates:
        ``"sparse"`` (default): a step reads, updates and shrinks only the heads of the
        annotators in its batch (row-sparse gradients and :class:`~perser.methods.training.LazyAdam`),
        so its cost follows the batch, not the number of annotators. ``"dense"``: every
        head takes part in every step (:class:`torch.optim.Adam` over all heads: heads
        not in the batch keep moving on their momentum, and the shrinkage term is summed
        over all heads), the implementation before the sparse one; it costs
        ``O(annotators)`` per step. The two agree exactly when every batch holds every
        head (e.g. full-batch steps).
    architecture:
        ``"perser"`` (default): the :class:`~perser.methods.nets.HeadedNet` trunk and
        heads above, all trained jointly. ``"tavernor"`` (dimensional spaces): Tavernor &
        Mower Provost's network and head training as their code builds them
        (:mod:`perser.methods.tavernor`: input dropout, one shared layer, a two-layer
        branch per dimension, a linear head per annotator per dimension; a consensus head
        trained first and copied into every annotator's head, then SGD on the
        annotators' ratings only). ``hidden[0]`` is its layer width; ``consensus_weight``
        and ``head_updates`` are not used (the consensus head is always made).
    **kwargs:
        Hyper-parameters of :class:`~perser.methods.neural.NeuralPersonalizer`.
    """

    def __init__(self, min_ratings: int = 10, consensus_weight: float = 1.0, head_shrinkage: float = 0.0,
                 head_updates: str = "sparse", architecture: str = "perser", **kwargs):
        super().__init__(**kwargs)
        self.min_ratings = min_ratings
        self.consensus_weight = consensus_weight
        self.head_shrinkage = head_shrinkage
        self.head_updates = head_updates
        self.architecture = architecture

    # ----------------------------------------------------------- shared fits
    def fit_signature(self) -> tuple | None:
        """``("multi-annotator", (name, value), ...)`` over :data:`FIT_PARAMS`; ``None``
        with checkpoints (a checkpoint folder belongs to one method's run)."""
        if self.checkpoint_dir:
            return None
        return ("multi-annotator", *((p, _freeze(getattr(self, p, None))) for p in FIT_PARAMS))

    def adopt_fit(self, fitted: "MultiAnnotatorModel", train: RatingSet) -> "MultiAnnotatorModel":
        """Take over the network of ``fitted``, a model with the same :meth:`fit_signature`
        fitted on the same ``train``: the result equals ``self.fit(train)``.

        The network is copied, so later changes to one model do not reach the other.
        """
        self._check_fit_options(train)
        if not isinstance(fitted, MultiAnnotatorModel) or getattr(fitted, "net_", None) is None:
            raise ConfigError(f"method {self.name!r}: can only adopt a fitted multi-annotator model")
        if fitted.fit_signature() != self.fit_signature() or self.fit_signature() is None:
            raise ConfigError(f"method {self.name!r}: cannot adopt the fit of {fitted.name!r}: their "
                              f"hyper-parameters differ ({', '.join(_differences(self, fitted))})")
        if getattr(fitted, "fit_data_", None) != data_fingerprint(train):
            raise ConfigError(f"method {self.name!r}: cannot adopt the fit of {fitted.name!r}: it was fitted "
                              "on other training data")
        for a in _FITTED:
            setattr(self, a, copy.copy(getattr(fitted, a, None)))
        self.net_ = copy.deepcopy(fitted.net_)
        self.feature_spec = self.feature_spec or fitted.feature_spec
        return self

    def _check_fit_options(self, train: RatingSet) -> None:
        """Checks of a subclass's own options before fitting (or adopting a fit)."""
        self.check_space(train.space)
        if self.architecture not in ARCHITECTURES:
            raise ConfigError(f"method {self.name!r}: unknown architecture {self.architecture!r}; use one of "
                              f"{ARCHITECTURES}")
        if self.architecture == "tavernor" and train.space.kind != "dimensional":
            raise ConfigError(f"method {self.name!r}: architecture 'tavernor' needs a dimensional space, "
                              f"got {train.space.kind!r}")
        if float(self.head_shrinkage) < 0:
            raise ConfigError(f"method {self.name!r}: head_shrinkage must be >= 0, got {self.head_shrinkage}")
        if float(self.head_shrinkage) > 0 and not float(self.consensus_weight) > 0:
            raise ConfigError(f"method {self.name!r}: head_shrinkage needs a consensus head (consensus_weight > 0)")
        if self.head_updates not in ("sparse", "dense"):
            raise ConfigError(f"method {self.name!r}: head_updates must be 'sparse' or 'dense', got {self.head_updates!r}")

    def fit_settings(self) -> dict:
        return {p: _freeze(getattr(self, p, None)) for p in FIT_PARAMS if p not in self.RESUMABLE}

    # ---------------------------------------------------------------- fitting
    def _make_net(self, n_heads: int):
        if self.architecture == "tavernor":
            from perser.methods.tavernor import make_tavernor_net

            return make_tavernor_net(self, n_heads)
        return super()._make_net(n_heads)

    def fit(self, train: RatingSet, valid: RatingSet | None = None) -> "MultiAnnotatorModel":
        if self.architecture == "tavernor":
            from perser.methods.tavernor import fit_tavernor

            fit_tavernor(self, train, valid)
            self._fit_listener_noise(train)
            return self
        self._check_fit_options(train)
        full_train = train
        counts = _counts(train.annotator_ids)
        heads = sorted(a for a, n in counts.items() if n >= int(self.min_ratings))
        if not heads:
            top, n = max(counts.items(), key=lambda kv: kv[1]) if counts else ("<none>", 0)
            raise ConfigError(
                f"method {self.name!r}: no annotator has min_ratings={self.min_ratings} ratings "
                f"(most: {top!r} with {n}); lower min_ratings"
            )
        self.fit_data_ = data_fingerprint(full_train)
        train, valid = self._begin_fit(full_train, valid)
        self.head_annotators_ = heads
        self._index = {a: i for i, a in enumerate(heads)}
        use_cons = float(self.consensus_weight) > 0
        sparse = self.head_updates == "sparse"
        dev = self.train_device()
        self.net_ = self._make_net(len(heads) + int(use_cons)).to(dev)
        self.net_.head.sparse_grad = sparse
        loss_fn = self._loss_fn(dev)
        w_cons = float(self.consensus_weight)
        H = len(heads)
        Xt = self._tensor(train.X).to(dev)  # every clip once, standardised; ratings index into it

        def prepare(rs: RatingSet, X: torch.Tensor):
            hid = _head_ids(rs.annotator_ids, heads)  # -1: no head of its own
            keep = hid >= 0
            clip = torch.from_numpy(rs.clip_index[keep]).to(dev)
            hidx = torch.from_numpy(hid[keep]).to(dev)
            T = torch.from_numpy(self._targets(rs.y[keep])).to(dev)
            # consensus target of every clip, from all ratings (indexed by clip row)
            crow, C = rs.consensus()
            if self.space_.kind == "dimensional":
                C = to_unit(C, self.space_.scale)
            Cfull = torch.zeros((len(rs.X), self.space_.n_outputs))
            Cfull[torch.from_numpy(crow)] = torch.from_numpy(C.astype(np.float32))
            return X, clip, hidx, T, Cfull.to(dev)

        X, clip, hidx, T, Cfull = prepare(train, Xt)

        def loss_on(module, X, clip, hidx, T, Cfull, r):
            # the trunk runs once per distinct clip of the batch; its ratings and its
            # consensus target share that output
            uc, inv = torch.unique(clip[r], return_inverse=True)
            if not use_cons:
                return loss_fn(module(X[uc], hidx[r], rows=inv), T[r])
            n = len(r)
            out = module(X[uc], torch.cat([hidx[r], torch.full((len(uc),), H, device=dev)]),
                         rows=torch.cat([inv, torch.arange(len(uc), device=dev)]))
            return loss_fn(out[:n], T[r]) + w_cons * loss_fn(out[n:], Cfull[uc])

        lam = float(self.head_shrinkage)
        shrink = lam / max(len(clip), 1)
        head_mod = self.net_.head
        # per-rating shrinkage weight lambda / n_h of the rating's head (sparse updates)
        per_rating = lam / torch.bincount(hidx, minlength=H).clamp(min=1).to(torch.float32)

        def batch_loss(module, idx):
            r = torch.from_numpy(idx).to(dev)
            loss = loss_on(module, X, clip, hidx, T, Cfull, r)
            if lam > 0 and sparse:
                u, inv = torch.unique(hidx[r], return_inverse=True)
                w, b = head_mod.gather(u)
                sq = (w - head_mod.weight[H].detach()).pow(2).sum((1, 2)) + (b - head_mod.bias[H].detach()).pow(2).sum(1)
                loss = loss + (per_rating[hidx[r]] * sq[inv]).mean()
            elif lam > 0:
                dw = head_mod.weight[:H] - head_mod.weight[H:].detach()
                db = head_mod.bias[:H] - head_mod.bias[H:].detach()
                loss = loss + shrink * (dw.pow(2).sum() + db.pow(2).sum())
            return loss

        valid_loss = None
        if valid is not None and np.isin(valid.annotator_ids, heads).any():
            V = prepare(valid, Xt if valid.X is train.X else self._tensor(valid.X).to(dev))
            all_rows = torch.arange(len(V[1]), device=dev)

            def valid_loss(model):
                return loss_on(model, *V, all_rows).item()

        cfg = self.train_config(self.name, data=(train, valid), optimizer="lazy-adam" if sparse else "adam")
        cfg.unit = "ratings"
        try:
            self.history_ = fit_model(self.net_, len(clip), batch_loss, valid_loss, cfg)
        finally:
            self.net_.to("cpu")
            self.net_.head.sparse_grad = False
        self._fit_listener_noise(full_train)
        return self

    def _fit_listener_noise(self, train: RatingSet) -> None:
        """``listener_noise_``: the noise of the head posterior
        (:mod:`perser.methods.head_posterior`) fitted on the seen listeners' ratings,
        kept in the model folder for active enrollment and ``combine="posterior"``;
        ``None`` (the default is then used, with a counted warning) when no listener
        has another listener's head to be explained by."""
        from perser.methods.head_posterior import fit_noise

        try:
            self.listener_noise_ = [float(v) for v in fit_noise(self, train)]
        except PerserError:
            self.listener_noise_ = None

    # --------------------------------------------------------------- heads
    @property
    def has_consensus_head(self) -> bool:
        return self.net_.head.n_heads > len(self.head_annotators_)

    def head_index(self, annotator: str) -> int:
        """Index of a seen annotator's head (or of the consensus head for :data:`CONSENSUS`)."""
        self._check_fitted()
        if annotator == CONSENSUS:
            if not self.has_consensus_head:
                raise ConfigError(f"method {self.name!r} was trained without a consensus head (consensus_weight=0)")
            return len(self.head_annotators_)
        try:
            return self._index[annotator]
        except KeyError:
            raise ConfigError(
                f"annotator {annotator!r} has no head in this model "
                f"({len(self.head_annotators_)} seen annotators with >= {self.min_ratings} ratings)"
            ) from None

    def _flat_heads(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The seen heads as one class-major ``[in_dim, n_out * H]`` matrix (column
        ``c * H + h`` is output ``c`` of head ``h``) and ``[H, n_out]`` biases.

        Cached until the head's weights change (their version counter moves on every
        in-place update), so enrollment costs one matrix product for all heads; the
        class-major order makes the per-head reductions over classes (softmax,
        log-sum-exp) run along a long axis instead of one of ``n_out`` values.
        """
        head = self.net_.head
        H = len(self.head_annotators_)
        key = (head.weight.data_ptr(), head.weight._version, head.bias._version, H)
        if getattr(self, "_flat_key", None) != key:
            w = head.weight.detach()[:H]  # [H, in, out]
            self._flat = (w.permute(1, 2, 0).reshape(head.in_dim, head.n_out * H).contiguous(), head.bias.detach()[:H])
            self._flat_key = key
        return self._flat

    def _contrast_heads(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Categorical heads relative to their first class: ``[in_dim, (n_out - 1) * H]``
        class-major weights ``W[:, c, h] - W[:, 0, h]`` for ``c >= 1`` and biases
        ``[(n_out - 1) * H]`` likewise.

        A softmax does not change when one logit is subtracted from all of them, so these
        give every head's log-probabilities with one class fewer in the matrix product
        (:func:`perser.methods.similar.categorical_loglik`). Cached like :meth:`_flat_heads`.
        """
        head = self.net_.head
        H = len(self.head_annotators_)
        key = (head.weight.data_ptr(), head.weight._version, head.bias._version, H)
        if getattr(self, "_contrast_key", None) != key:
            w = head.weight.detach()[:H]  # [H, in, out]
            b = head.bias.detach()[:H]  # [H, out]
            dw = (w[:, :, 1:] - w[:, :, :1]).permute(1, 2, 0).reshape(head.in_dim, (head.n_out - 1) * H).contiguous()
            db = (b[:, 1:] - b[:, :1]).t().reshape(-1).contiguous()
            self._contrast = (dw, db)
            self._contrast_mean = (dw.view(head.in_dim, head.n_out - 1, H).mean(dim=2), db.view(head.n_out - 1, H).mean(dim=1))
            self._contrast_key = key
        return self._contrast

    def _contrast_mean_head(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The mean of :meth:`_contrast_heads` over heads: ``[in_dim, n_out - 1]`` and
        ``[n_out - 1]`` (cached with them)."""
        self._contrast_heads()
        return self._contrast_mean

    def head_outputs(self, X: np.ndarray, activated: bool = True) -> torch.Tensor:
        """Every seen annotator's output for ``X``: ``[n, H, n_out]`` (consensus head left
        out; a class-major view, see :meth:`_flat_heads`)."""
        z = self.embed(X)
        W, b = self._flat_heads()
        with torch.no_grad():
            out = (z @ W).view(len(z), b.shape[1], b.shape[0]).permute(0, 2, 1) + b
        return activate(self.space_.kind, out) if activated else out

    def seen_profile(self, annotator: str) -> Profile:
        """The profile of a seen annotator: their own head."""
        self.head_index(annotator)
        return Profile(method=self.name, annotator=annotator, data={"heads": [annotator], "weights": [1.0]})

    def _predict_heads(self, data: dict, X: np.ndarray) -> Predictions:
        """Predictions from a profile's ``heads``/``weights`` or ``per_dimension`` choice."""
        z = self.embed(X)
        with torch.no_grad():
            if "per_dimension" in data:
                out = torch.empty(len(z), self.space_.n_outputs)
                for d, name in enumerate(self.space_.dimensions):
                    h = self.head_index(data["per_dimension"][name])
                    out[:, d] = self.net_.head.forward_one(z, h)[:, d]
                return self._predictions(out)
            heads, weights = data["heads"], data.get("weights") or [1.0] * len(data["heads"])
            acc = None
            for name, w in zip(heads, weights):
                a = activate(self.space_.kind, self.net_.head.forward_one(z, self.head_index(name))) * float(w)
                acc = a if acc is None else acc + a
            return self._predictions(acc / float(sum(weights)), activated=True)

    def _n_heads(self) -> int:
        return self.net_.head.n_heads

    def _extra_state(self) -> dict:
        state = {"head_annotators": list(self.head_annotators_)}
        if getattr(self, "listener_noise_", None) is not None:
            state["listener_noise"] = list(self.listener_noise_)
        return state

    def _restore(self, state: dict, arrays: dict) -> None:
        self.head_annotators_ = list(state["head_annotators"])
        self._index = {a: i for i, a in enumerate(self.head_annotators_)}
        # absent in folders saved before it was stored: users of the noise fall back to
        # the default with a counted warning (perser.methods.head_posterior.model_noise)
        noise = state.get("listener_noise")
        self.listener_noise_ = None if noise is None else [float(v) for v in noise]


class RandomAnnotator(MultiAnnotatorModel):
    """A new listener is predicted by a randomly drawn seen annotator's head.

    The draw is seeded by ``seed`` and the listener's name, so the same listener always
    gets the same head. Without a profile, the draw uses ``seed`` alone.
    """

    name = "random-annotator"

    def _draw(self, annotator: str | None) -> str:
        key = [int(self.seed)] if annotator is None else [int(self.seed), zlib.crc32(annotator.encode("utf-8"))]
        rng = np.random.default_rng(key)
        return self.head_annotators_[int(rng.integers(len(self.head_annotators_)))]

    def enroll(self, X: np.ndarray, y: np.ndarray, annotator: str | None = None) -> Profile:
        self._check_support(X, y)
        return Profile(method=self.name, annotator=annotator, data={"heads": [self._draw(annotator)], "weights": [1.0]})

    def seen_profile(self, annotator: str) -> Profile:
        """A seen listener gets a random head too (not their own): the baseline says what a
        head chosen without looking at the listener is worth, for seen and new listeners alike."""
        self.head_index(annotator)
        return Profile(method=self.name, annotator=annotator, data={"heads": [self._draw(annotator)], "weights": [1.0]})

    def predict(self, profile: Profile | None, X: np.ndarray) -> Predictions:
        self._check_fitted()
        self._check_profile(profile)
        data = profile.data if profile is not None and profile.data.get("heads") else {"heads": [self._draw(None)]}
        return self._predict_heads(data, X)


class MeanAnnotator(MultiAnnotatorModel):
    """Every listener gets the mean of all seen heads' predictions (profile ignored)."""

    name = "mean-annotator"
    personalized = False

    def enroll(self, X: np.ndarray, y: np.ndarray, annotator: str | None = None) -> Profile:
        self._check_support(X, y)
        return Profile(method=self.name, annotator=annotator, data={"k": int(len(X))})

    def seen_profile(self, annotator: str) -> Profile:
        """The same mean of all heads for a seen listener (the profile names no head)."""
        self.head_index(annotator)
        return Profile(method=self.name, annotator=annotator, data={})

    def predict(self, profile: Profile | None, X: np.ndarray) -> Predictions:
        self._check_fitted()
        self._check_profile(profile)
        return self._predictions(self.head_outputs(X).mean(dim=1), activated=True)


def _freeze(v):
    """A hashable, comparable form of a hyper-parameter value."""
    if isinstance(v, (list, tuple)):
        return tuple(_freeze(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _freeze(x)) for k, x in v.items()))
    if isinstance(v, (np.integer, np.floating)):
        return v.item()
    return v


def _differences(a: MultiAnnotatorModel, b: MultiAnnotatorModel) -> list[str]:
    return [f"{p}: {getattr(a, p, None)!r} vs {getattr(b, p, None)!r}" for p in FIT_PARAMS
            if _freeze(getattr(a, p, None)) != _freeze(getattr(b, p, None))] or ["checkpoint_dir"]


def _head_ids(ids: np.ndarray, heads: list[str]) -> np.ndarray:
    """Head index of every rating's annotator (``heads`` sorted), ``-1`` for annotators
    without a head: one sort over the distinct ids, no Python loop over ratings."""
    uniq, inv = np.unique(np.asarray(ids, dtype=str), return_inverse=True)
    h = np.asarray(heads, dtype=str)
    pos = np.searchsorted(h, uniq).clip(max=max(len(h) - 1, 0))
    found = (h[pos] == uniq) if len(h) else np.zeros(len(uniq), dtype=bool)
    return np.where(found, pos, -1).astype(np.int64)[inv.reshape(-1)]


def _counts(ids: np.ndarray) -> dict[str, int]:
    u, n = np.unique(np.asarray(ids, dtype=str), return_counts=True)
    return {str(a): int(c) for a, c in zip(u, n)}
