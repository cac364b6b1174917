"""``meta``: Meta-PerSER — MAML++ over per-listener tasks on a consensus model.

Meta-PerSER (Shen et al., Interspeech 2025) treats every seen annotator as a
few-shot task. Starting from a consensus model (:class:`~perser.methods.consensus.ConsensusModel`),
the lower layers are frozen and the *adapted head* (the output layer, plus the top
``adapt_layers`` dense layers of the trunk) is meta-trained with MAML (Finn et al.
2017) and the MAML++ ingredients of Antoniou et al. (2019): learned per-layer,
per-step inner learning rates, derivative-order annealing (first order until
``first_order_epochs``, second order after), the multi-step loss and cosine
annealing of the outer learning rate (see :mod:`perser.methods.maml`).
With ``combined=True`` (the paper's default) the inner and the outer loop both use
all of a task's sampled clips (support = query).

Enrollment runs the learned inner loop on a new listener's K clips; the profile
holds the adapted head weights (saved as safetensors). Predictions without a profile
use the meta-learned initial head.

With ``adapt="finetune"`` meta-training is skipped: the same network starts from the
same consensus model (the paper's SSL-E start), and enrollment is plain fine-tuning of
the same adapted head with the same inner optimiser (``n_inner_steps`` full-batch
gradient steps at the fixed learning rate ``inner_lr``, no learned rates). This is the
fine-tune baseline on exactly meta's start network (registered as ``meta-finetune``).

Losses per label space: log-likelihood of the rated class under the softmax
(categorical), class-balanced sigmoid cross-entropy (multilabel), 1 − CCC or MSE on
the unit scale (dimensional). Categorical predictions are class probabilities.

Under ``torchrun`` each meta-batch's tasks are split across the processes and the
meta-gradient is all-reduced, which reproduces the single-process gradient.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from perser.errors import ConfigError, PerserWarning, SkipLog
from perser.methods import distributed
from perser.methods.base import Predictions, Profile, RatingSet
from perser.methods.maml import MAMLPlusPlus, TaskBatch, adapted_query_loss, inner_loop, module_fn
from perser.methods.neural import NeuralPersonalizer, checkpoint_key
from perser.methods.training import epoch_loop


#: how enrollment adapts the head: the meta-learned inner loop, or plain fine-tuning from the consensus model
ADAPTS = ("maml", "finetune")


class AdaptedHead(nn.Module):
    """The part of the network that enrollment adapts: dense layers with ReLU, then
    a linear output layer (``layers.<i>.weight``/``bias``, ``out.weight``/``bias``).

    ``dims = (in, h_1, ..., h_a)`` gives ``a`` dense layers; ``(in,)`` only the output layer.
    No dropout: the head runs deterministically inside the inner loop.
    """

    def __init__(self, dims: Sequence[int], n_out: int):
        super().__init__()
        dims = [int(d) for d in dims]
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.layers = nn.Sequential(*layers)
        self.out = nn.Linear(dims[-1], int(n_out))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.out(self.layers(z))


class MetaPerSER(NeuralPersonalizer):
    """Meta-PerSER: a consensus model whose head is meta-trained with MAML++ over annotators.

    Parameters
    ----------
    **kwargs:
        Hyper-parameters of :class:`~perser.methods.neural.NeuralPersonalizer`
        (``hidden``, ``dropout``, ``epochs``, ``batch_size``, ``lr``, ``device``, ...);
        ``epochs``, ``batch_size``, ``lr`` and ``weight_decay`` train the consensus model
        (unless ``init_model`` is given). ``patience`` and ``min_delta`` also stop
        meta-training after that many epochs without a validation query loss lower by
        more than ``min_delta``. Without a validation set,
        ``valid_fraction`` of the task annotators (at least one, when there are five or
        more) are held out of meta-training as validation listeners.
    init_model:
        A fitted :class:`~perser.methods.consensus.ConsensusModel` or the folder of a
        saved one to start from (its ``hidden``/``dropout`` then replace these
        parameters); ``None`` trains one on the training set.
    adapt_layers:
        How many of the trunk's top dense layers are adapted besides the output layer
        (``0``: only the output layer; the rest of the network is frozen).
    k_support, k_query:
        Clips sampled per task during meta-training; an annotator needs
        ``k_support + k_query`` ratings to give a task (others are excluded, counted).
    combined:
        Combined-set meta-training: inner and outer loop on all ``k_support + k_query``
        sampled clips. ``False``: inner loop on ``k_support``, outer on the other ``k_query``.
    n_inner_steps, inner_lr, learn_inner_lr:
        Inner gradient steps, the initial inner learning rate, and whether the
        per-layer per-step rates are meta-learned (LSLR).
    first_order_epochs:
        Meta-epochs with first-order meta-gradients before switching to second order.
    msl_epochs:
        Meta-epochs over which the multi-step-loss weights anneal towards the last step.
    meta_batch_size, meta_epochs, iters_per_epoch:
        Tasks per meta-batch, meta-training epochs and meta-batches per epoch.
    meta_lr, min_meta_lr:
        Outer (Adam) learning rate, cosine-annealed to ``min_meta_lr`` over ``meta_epochs``.
    use_vmap:
        Evaluate a meta-batch's tasks in one :func:`torch.func.vmap` (else one by one).
    adapt:
        ``"maml"``: meta-train the head, enroll with the learned inner loop.
        ``"finetune"``: no meta-training; enroll by plain fine-tuning of the consensus
        model's head (``n_inner_steps`` gradient steps at ``inner_lr``): the fine-tune
        baseline on the same network and start.
    """

    name = "meta"
    #: the default of ``adapt`` (``meta-finetune`` is the same class with ``"finetune"``)
    default_adapt = "maml"

    def __init__(
        self,
        init_model=None,
        adapt_layers: int = 0,
        k_support: int = 10,
        k_query: int = 10,
        combined: bool = True,
        n_inner_steps: int = 5,
        inner_lr: float = 0.1,
        learn_inner_lr: bool = True,
        first_order_epochs: int = 10,
        msl_epochs: int = 10,
        meta_batch_size: int = 8,
        meta_epochs: int = 30,
        iters_per_epoch: int = 20,
        meta_lr: float = 1e-3,
        min_meta_lr: float = 1e-5,
        use_vmap: bool = True,
        adapt: str | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.adapt = self.default_adapt if adapt is None else adapt
        self.init_model = init_model
        self.adapt_layers = adapt_layers
        self.k_support = k_support
        self.k_query = k_query
        self.combined = combined
        self.n_inner_steps = n_inner_steps
        self.inner_lr = inner_lr
        self.learn_inner_lr = learn_inner_lr
        self.first_order_epochs = first_order_epochs
        self.msl_epochs = msl_epochs
        self.meta_batch_size = meta_batch_size
        self.meta_epochs = meta_epochs
        self.iters_per_epoch = iters_per_epoch
        self.meta_lr = meta_lr
        self.min_meta_lr = min_meta_lr
        self.use_vmap = use_vmap

    def get_params(self) -> dict:
        p = super().get_params()
        if p.get("init_model") is not None and not isinstance(p["init_model"], (str, Path)):
            p["init_model"] = None  # a model object: its weights are part of the saved model
        elif isinstance(p.get("init_model"), Path):
            p["init_model"] = str(p["init_model"])
        return p

    # ----------------------------------------------------------- checking
    def _check_meta_params(self) -> None:
        if self.adapt not in ADAPTS:
            raise ConfigError(f"method {self.name!r}: unknown adapt {self.adapt!r}; use one of {ADAPTS}")
        for n in ("k_support", "k_query", "n_inner_steps", "meta_batch_size", "meta_epochs", "iters_per_epoch"):
            v = getattr(self, n)
            if int(v) != v or v < (0 if n == "k_query" else 1):
                raise ConfigError(f"method 'meta': {n} must be a {'non-negative' if n == 'k_query' else 'positive'} integer, got {v!r}")
        if not self.combined and self.k_query < 1:
            raise ConfigError("method 'meta': k_query must be at least 1 unless combined=True")
        if not self.meta_lr > 0 or self.min_meta_lr < 0 or self.min_meta_lr > self.meta_lr:
            raise ConfigError(f"method 'meta': need 0 <= min_meta_lr <= meta_lr and meta_lr > 0, got {self.min_meta_lr}, {self.meta_lr}")
        if int(self.adapt_layers) != self.adapt_layers or not 0 <= self.adapt_layers <= len(tuple(self.hidden)):
            raise ConfigError(
                f"method 'meta': adapt_layers must be between 0 and the number of trunk layers "
                f"({len(tuple(self.hidden))}), got {self.adapt_layers!r}"
            )

    # ------------------------------------------------------------ building
    def _base_model(self, train: RatingSet, valid: RatingSet | None):
        """The consensus model to start from: given, loaded, or trained now."""
        from perser.methods.consensus import ConsensusModel

        base = self.init_model
        if isinstance(base, (str, Path)):
            base = ConsensusModel.load(base)
        if base is None:
            base_params = {k: getattr(self, k) for k in ConsensusModel.param_names() if hasattr(self, k)}
            if self.checkpoint_dir:
                base_params["checkpoint_dir"] = str(Path(self.checkpoint_dir) / "consensus")
            base = ConsensusModel(**base_params)
            base.fit(train, valid)
        elif not isinstance(base, ConsensusModel) or getattr(base, "net_", None) is None:
            raise ConfigError("method 'meta': init_model must be a fitted ConsensusModel or the folder of a saved one")
        if base.space_ != train.space:
            raise ConfigError(
                f"method 'meta': init_model was trained on space {base.space_.name!r} ({base.space_.kind}), "
                f"the training set is in {train.space.name!r} ({train.space.kind})"
            )
        if tuple(base.input_shape_) != tuple(train.X.shape[1:]):
            raise ConfigError(f"method 'meta': init_model expects features of shape {tuple(base.input_shape_)}, got {train.X.shape[1:]}")
        return base

    def _build_head(self) -> None:
        """Split the network: frozen lower part, adapted head (:class:`AdaptedHead`)."""
        trunk = self.net_.trunk
        linears = [m for m in trunk.layers if isinstance(m, nn.Linear)]
        a = int(self.adapt_layers)
        if a > len(linears):
            raise ConfigError(f"method 'meta': adapt_layers={a} but the trunk has {len(linears)} dense layers")
        adapted = linears[len(linears) - a:]
        self.frozen_depth_ = list(trunk.layers).index(adapted[0]) if adapted else len(trunk.layers)
        dims = [adapted[0].in_features] + [m.out_features for m in adapted] if adapted else [trunk.out_dim]
        self.head_ = AdaptedHead(dims, self.space_.n_outputs).eval()
        with torch.no_grad():
            lin = [m for m in self.head_.layers if isinstance(m, nn.Linear)]
            for dst, src in zip(lin, adapted):
                dst.weight.copy_(src.weight)
                dst.bias.copy_(src.bias)
            self.head_.out.weight.copy_(self.net_.head.weight[0].T)
            self.head_.out.bias.copy_(self.net_.head.bias[0])
        for p in self.head_.parameters():
            p.requires_grad_(False)
        self.head_fn_ = module_fn(self.head_)

    def _frozen(self, X: np.ndarray) -> torch.Tensor:
        """Output of the frozen part of the network (input of the adapted head)."""
        self._check_fitted()
        x = self._tensor(X)
        trunk = self.net_.trunk
        trunk.eval()
        with torch.no_grad():
            if trunk.layer_logits is not None:
                x = torch.einsum("nld,l->nd", x, torch.softmax(trunk.layer_logits, dim=0))
            return trunk.layers[: self.frozen_depth_](x)

    # ----------------------------------------------------------------- fit
    def fit(self, train: RatingSet, valid: RatingSet | None = None) -> "MetaPerSER":
        """Train (or take) the consensus model, then meta-train the head over annotators."""
        self.check_space(train.space)
        self._check_meta_params()
        if len(train) == 0:
            raise ConfigError("method 'meta': the training set has no ratings")
        if self.loss not in ("ccc", "mse"):
            raise ConfigError(f"method 'meta': unknown loss {self.loss!r}; use 'ccc' or 'mse'")
        if valid is not None and valid.space != train.space:
            raise ConfigError(f"validation space {valid.space.name!r} differs from training space {train.space.name!r}")
        torch_dist = distributed.init()
        base = self._base_model(train, valid)
        self.hidden, self.dropout = tuple(base.hidden), base.dropout
        self.space_, self.input_shape_ = base.space_, tuple(base.input_shape_)
        self.standardizer_, self.class_weights_ = base.standardizer_, base.class_weights_
        self.feature_spec = self.feature_spec or base.feature_spec
        self.net_ = base.net_
        self.net_.eval()
        for p in self.net_.parameters():
            p.requires_grad_(False)
        self.seen_annotators_ = train.annotators
        self._build_head()
        if self.adapt == "finetune":  # the fine-tune baseline: meta's start, no meta-training
            steps = int(self.n_inner_steps)
            self._set_meta({**{f"theta.{k}": v.detach() for k, v in self.head_.named_parameters()},
                            **{f"lr.{k}": torch.full((steps,), float(self.inner_lr))
                               for k, _ in self.head_.named_parameters()}})
            self.meta_history_, self.task_counts_ = [], {}
            return self
        dev = self.train_device()
        try:
            self._fit_meta(train, valid, dev, torch_dist)
        finally:
            self.head_.to("cpu")  # the fitted model is kept and run on the CPU
        return self

    def _fit_meta(self, train: RatingSet, valid: RatingSet | None, dev: torch.device, torch_dist: bool) -> None:
        """Meta-train the head on ``dev``: the frozen features of the tasks, the head's
        initial weights, learning rates and outer optimiser live there."""
        train_tasks, valid_tasks, self.task_counts_ = self._tasks(train, valid, dev)
        self.head_.to(dev)
        learner = MAMLPlusPlus(
            self.head_fn_, self._loss_fn(dev), dict(self.head_.named_parameters()),
            n_inner_steps=int(self.n_inner_steps), inner_lr=float(self.inner_lr),
            learn_inner_lr=bool(self.learn_inner_lr), first_order_epochs=int(self.first_order_epochs),
            msl_epochs=int(self.msl_epochs), meta_lr=float(self.meta_lr), min_meta_lr=float(self.min_meta_lr),
            n_epochs=int(self.meta_epochs), use_vmap=bool(self.use_vmap),
        )
        ck_key = None
        if self.checkpoint_dir:  # a checkpoint of other data or settings is refused, not resumed
            settings = {k: v for k, v in self.get_params().items()
                        if k not in (*self.RESUMABLE, "meta_epochs", "use_vmap", "init_model")}
            ck_key = checkpoint_key((train, valid), settings)
        self.meta_history_ = self._meta_train(learner, train_tasks, valid_tasks, torch_dist, ck_key)

    def _tasks(self, train: RatingSet, valid: RatingSet | None, dev: torch.device | str = "cpu"):
        """Per-annotator row pools for meta-training and fixed validation tasks."""
        n_task = int(self.k_support) + int(self.k_query)
        log = SkipLog("meta")
        pools = {}
        for a, rows in _rows_by_annotator(train.annotator_ids).items():
            if len(rows) >= n_task:
                pools[a] = rows
            else:
                log.add(f"annotators with fewer than {n_task} ratings (k_support + k_query) excluded from meta-training", a)
        if not pools:
            most = max(np.unique(train.annotator_ids, return_counts=True)[1])
            raise ConfigError(
                f"method 'meta': no annotator has the {n_task} ratings a task needs "
                f"(k_support={self.k_support} + k_query={self.k_query}); the most ratings by one annotator is {most}"
            )
        Z = self._frozen(train.X).to(dev)
        T = torch.from_numpy(self._targets(train.y)).to(dev)
        ci = torch.from_numpy(train.clip_index).to(dev)
        data = (Z, T, ci)

        k = int(self.k_support)
        vtasks: list = []
        if valid is not None and len(valid):
            Zv, Tv, civ = (self._frozen(valid.X).to(dev), torch.from_numpy(self._targets(valid.y)).to(dev),
                           torch.from_numpy(valid.clip_index).to(dev))
            for a, rows in _rows_by_annotator(valid.annotator_ids).items():
                if len(rows) < k + 2:
                    log.add(f"validation annotators with fewer than {k + 2} ratings (k_support + 2) not used for early stopping", a)
                    continue
                vtasks.append(_fixed_task(rows, k, Zv, Tv, civ, [int(self.seed), 11, len(vtasks)]))
        elif self.valid_fraction and self.valid_fraction > 0 and len(pools) >= 5:
            names = sorted(pools)
            n_hold = max(1, int(round(len(names) * float(self.valid_fraction))))
            held = np.random.default_rng([int(self.seed), 13]).choice(len(names), size=n_hold, replace=False)
            for i in sorted(held):
                a = names[int(i)]
                vtasks.append(_fixed_task(pools.pop(a), k, Z, T, ci, [int(self.seed), 11, len(vtasks)]))
        if log:
            log.emit(stacklevel=3)
        counts = {"task_annotators": len(pools), "valid_annotators": len(vtasks), **log.counts()}
        return (sorted(pools), pools, data), vtasks, counts

    def _sample_batch(self, names, pools, data, epoch: int, it: int) -> TaskBatch:
        """Meta-batch ``it`` of ``epoch``: the next annotators of a per-epoch shuffle, each
        with ``k_support + k_query`` of its ratings drawn without replacement."""
        Z, T, ci = data
        rng = np.random.default_rng([int(self.seed), 17, epoch, it])
        B = min(int(self.meta_batch_size), len(names))
        order = self._epoch_order(len(names), epoch)
        start = (it * B) % len(names)
        pick = [order[(start + j) % len(names)] for j in range(B)]
        n_task = int(self.k_support) + int(self.k_query)
        rows = np.stack([rng.choice(pools[names[i]], size=n_task, replace=False) for i in pick])
        r = torch.from_numpy(rows).to(Z.device)
        x, y = Z[ci[r]], T[r]
        if self.combined:
            return TaskBatch(x, y, x, y)
        k = int(self.k_support)
        return TaskBatch(x[:, :k], y[:, :k], x[:, k:], y[:, k:])

    def _epoch_order(self, n: int, epoch: int) -> np.ndarray:
        """The per-epoch shuffle of the task annotators (drawn once per epoch, not per meta-batch)."""
        key = (n, epoch)
        if getattr(self, "_order_key", None) != key:
            self._order = np.random.default_rng([int(self.seed), 19, epoch]).permutation(n)
            self._order_key = key
        return self._order

    def _meta_train(self, learner: MAMLPlusPlus, train_tasks, vtasks, torch_dist: bool,
                    ck_key: str | None = None) -> list[dict]:
        names, pools, data = train_tasks
        world, rank = distributed.world_size(), distributed.rank()
        fp = {"names": names, "n_params": {k: list(v.shape) for k, v in learner.params.items()},
              "seed": int(self.seed), "world_size": world,
              **({"data": ck_key} if ck_key else {})}
        iters = int(self.iters_per_epoch)

        def run_epoch(epoch: int) -> dict:
            learner.set_epoch(epoch)
            total = 0.0
            for it in range(iters):
                batch = self._sample_batch(names, pools, data, epoch, it)
                n = len(batch)
                local = distributed.shard(np.arange(n), rank, world) if torch_dist else np.arange(n)
                if len(local):
                    loss, gp, ga = learner.meta_gradients(batch.task(slice(int(local[0]), int(local[-1]) + 1)))
                    w = len(local) / n
                    gp = {k: v * w for k, v in gp.items()}
                    ga = {k: v * w for k, v in ga.items()}
                    loss = loss * w
                else:
                    loss = 0.0
                    gp = {k: torch.zeros_like(v) for k, v in learner.params.items()}
                    ga = {k: torch.zeros_like(v) for k, v in learner.lrs.items()}
                if torch_dist:
                    keys_p, keys_a = sorted(gp), sorted(ga)
                    lt = torch.tensor([float(loss)], device=learner.device)
                    distributed.all_reduce_sum([gp[k] for k in keys_p] + [ga[k] for k in keys_a] + [lt])
                    loss = float(lt)
                if not math.isfinite(loss):
                    raise ConfigError(f"meta-training: the loss became {loss} in epoch {epoch}; lower meta_lr or inner_lr")
                learner.apply(gp, ga)
                total += loss
            return {"train_loss": total / iters, "second_order": learner.second_order(epoch), "meta_lr": learner.meta_lr}

        def valid_loss() -> float:
            return adapted_query_loss(self.head_fn_, learner.loss_fn, learner.params, learner.lrs,
                                      learner.n_inner_steps, vtasks)

        res = epoch_loop(
            _LearnerTrainee(learner), run_epoch, epochs=int(self.meta_epochs),
            valid_loss=valid_loss if vtasks else None, patience=int(self.patience or 0),
            min_delta=float(self.min_delta), checkpoint=Path(self.checkpoint_dir) / "meta" if self.checkpoint_dir else None,
            fingerprint=fp, progress=bool(self.progress), description="meta-training",
            items=iters * min(int(self.meta_batch_size), len(names)), unit="tasks",
        )
        self.meta_epoch_seconds_ = res.epoch_seconds
        if not vtasks:
            warnings.warn("meta: no validation annotators; meta-training ran all epochs without early stopping",
                          PerserWarning, stacklevel=3)
        self._set_meta(res.best if res.best is not None else learner.tensors())
        return res.history

    def _set_meta(self, t: dict[str, torch.Tensor]) -> None:
        names = [k for k, _ in self.head_.named_parameters()]
        try:
            self.theta_ = {k: torch.as_tensor(t[f"theta.{k}"]).detach().cpu().clone() for k in names}
            self.inner_lrs_ = {k: torch.as_tensor(t[f"lr.{k}"]).detach().cpu().clone() for k in names}
        except KeyError as e:
            raise ConfigError(f"meta-learned weights lack tensor {e.args[0]!r}") from None
        for k, p in self.head_.named_parameters():
            if tuple(self.theta_[k].shape) != tuple(p.shape):
                raise ConfigError(f"meta-learned tensor {k!r} has shape {tuple(self.theta_[k].shape)}, the head expects {tuple(p.shape)}")

    # ------------------------------------------------------------ enrollment
    def enroll(self, X: np.ndarray, y: np.ndarray, annotator: str | None = None) -> Profile:
        """The learned inner loop on a new listener's K clips; the profile holds the adapted head.

        With a dimensional CCC loss a single clip carries no correlation to learn from,
        so K=1 leaves the head at its meta-learned initialisation.
        """
        X, y = self._check_support(X, y)
        self._check_meta()
        z = self._frozen(X)
        t = torch.from_numpy(self._targets(y))
        loss_fn = self._loss_fn()
        params, _ = inner_loop(self.head_fn_, loss_fn, self.theta_, self.inner_lrs_, z, t, int(self.n_inner_steps),
                               first_order=True)
        with torch.no_grad():
            before = float(loss_fn(self.head_fn_(self.theta_, z), t))
            after = float(loss_fn(self.head_fn_(params, z), t))
        return Profile(
            method=self.name, annotator=annotator,
            data={"k": int(len(X)), "adapt": self.adapt, "n_inner_steps": int(self.n_inner_steps),
                  "support_loss_before": before, "support_loss_after": after},
            tensors={k: v.detach().numpy().copy() for k, v in params.items()},
        )

    def predict(self, profile: Profile | None, X: np.ndarray) -> Predictions:
        """Predictions of the listener adapted in ``profile`` (``None``: the meta-learned initial head)."""
        self._check_fitted()
        self._check_meta()
        self._check_profile(profile)
        params = self.theta_ if profile is None or not profile.tensors else self._profile_params(profile)
        z = self._frozen(X)
        with torch.no_grad():
            return self._predictions(self.head_fn_(params, z))

    def _profile_params(self, profile: Profile) -> dict[str, torch.Tensor]:
        out = {}
        for k, ref in self.theta_.items():
            if k not in profile.tensors:
                raise ConfigError(f"profile of {profile.annotator!r} lacks adapted tensor {k!r} (made by another model?)")
            v = torch.as_tensor(np.asarray(profile.tensors[k], dtype=np.float32))
            if tuple(v.shape) != tuple(ref.shape):
                raise ConfigError(f"profile of {profile.annotator!r}: tensor {k!r} has shape {tuple(v.shape)}, "
                                  f"this model's head expects {tuple(ref.shape)}")
            out[k] = v
        return out

    def _check_meta(self) -> None:
        if getattr(self, "theta_", None) is None:
            raise ConfigError("method 'meta' is not fitted: call fit() or load a saved model first")

    # ------------------------------------------------------------ persistence
    def _extra_state(self) -> dict:
        return {"meta_history": getattr(self, "meta_history_", []), "task_counts": getattr(self, "task_counts_", {})}

    def _extra_arrays(self) -> dict[str, np.ndarray]:
        self._check_meta()
        out = {f"meta.theta.{k}": v.numpy() for k, v in self.theta_.items()}
        out.update({f"meta.lr.{k}": v.numpy() for k, v in self.inner_lrs_.items()})
        return out

    def _restore(self, state: dict, arrays: dict[str, np.ndarray]) -> None:
        for p in self.net_.parameters():
            p.requires_grad_(False)
        self._build_head()
        self._set_meta({k[5:]: torch.from_numpy(np.array(v, copy=True)) for k, v in arrays.items() if k.startswith("meta.")})
        self.meta_history_ = state.get("meta_history", [])
        self.task_counts_ = state.get("task_counts", {})


class MetaFineTune(MetaPerSER):
    """``meta-finetune``: :class:`MetaPerSER` with ``adapt="finetune"``: the fine-tune
    baseline on meta's network and consensus start, without meta-training."""

    default_adapt = "finetune"


class _LearnerTrainee:
    """A :class:`MAMLPlusPlus` learner as a :class:`~perser.methods.training.Trainee`:
    its initial weights and learning rates (``cur.*``) and outer optimiser state (``opt.*``)."""

    def __init__(self, learner: MAMLPlusPlus):
        self.learner = learner

    def state(self) -> tuple[dict[str, torch.Tensor], dict]:
        t = {f"cur.{k}": v for k, v in self.learner.tensors().items()}
        return {**t, **self.learner.optimizer_tensors()}, {}

    def load_state(self, tensors: dict[str, torch.Tensor], doc: dict) -> None:
        self.learner.load_tensors({k[4:]: v for k, v in tensors.items() if k.startswith("cur.")})
        self.learner.epoch = int(doc["epoch"]) + 1
        self.learner.load_optimizer_tensors(tensors)

    def snapshot(self) -> dict[str, torch.Tensor]:
        return self.learner.tensors()


def _rows_by_annotator(ids: np.ndarray) -> dict[str, np.ndarray]:
    """Rating rows of every annotator (sorted by id; rows in order), by one stable sort
    instead of one scan of all ratings per annotator."""
    uniq, inv = np.unique(np.asarray(ids, dtype=str), return_inverse=True)
    order = np.argsort(inv.reshape(-1), kind="stable")
    bounds = np.cumsum(np.bincount(inv.reshape(-1), minlength=len(uniq)))[:-1]
    return {str(a): r for a, r in zip(uniq, np.split(order, bounds))}


def _fixed_task(rows: np.ndarray, k: int, Z, T, ci, seed) -> tuple:
    """A validation task: ``k`` support ratings and the rest as query, in a seeded order."""
    rows = np.random.default_rng(seed).permutation(rows)
    s, q = torch.from_numpy(rows[:k]).to(Z.device), torch.from_numpy(rows[k:]).to(Z.device)
    return Z[ci[s]], T[s], Z[ci[q]], T[q]
