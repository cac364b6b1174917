"""``consensus``: conventional speech emotion recognition trained on consensus labels.

The target of a clip is derived from all its ratings (:meth:`RatingSet.consensus`): the
soft distribution of the annotators' classes (categorical, soft cross-entropy), the
fraction of annotators ticking each class (multilabel, class-balanced sigmoid
cross-entropy) or the mean rating (dimensional, CCC or MSE loss on the unit scale).
Every listener gets the same predictions: the profile is ignored.

``architecture="tavernor"`` (dimensional spaces) is Tavernor & Mower Provost's own
consensus baseline, the "Consensus" rows of their tables: their code's
``baseline_aggregate`` experiment (model type ``BASELINE_AGGREGATE``, head
``AggregateHead``). It is the network of their per-annotator model with one output per
dimension instead of the annotator heads (input dropout, one shared layer, a two-layer
branch per dimension, a linear consensus output per dimension), trained with their
``PreTrainLoss`` (one CCC per dimension between the outputs and the clips' mean
ratings, the dimensions' ``1 - CCC`` summed) by SGD with momentum 0.9,
reduce-on-plateau and early stopping, as their ``ModelTrainer`` trains every model
(``docs/papers.md`` gives the files and lines).
"""

from __future__ import annotations

import numpy as np
import torch

from perser.methods.base import Predictions, Profile, RatingSet
from perser.methods.neural import NeuralPersonalizer
from perser.methods.nets import to_unit
from perser.methods.training import fit_model


class ConsensusModel(NeuralPersonalizer):
    """Encoder and one output head trained on per-clip consensus targets.

    Parameters
    ----------
    architecture:
        ``"perser"`` (default): :class:`~perser.methods.nets.HeadedNet` with one head,
        trained with Adam. ``"tavernor"`` (dimensional spaces): Tavernor & Mower Provost's
        consensus baseline (the module docstring): their network with a consensus output
        per dimension (``hidden[0]`` is its layer width), the dimensions' ``1 - CCC``
        summed, SGD with momentum 0.9 and the learning rate divided by 10 after 5 epochs
        without progress; ``loss`` is not used (always CCC).
    **kwargs:
        Hyper-parameters of :class:`~perser.methods.neural.NeuralPersonalizer`.
    """

    name = "consensus"
    personalized = False

    def __init__(self, architecture: str = "perser", finetune_on_target: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.architecture = architecture
        self.finetune_on_target = finetune_on_target

    def adapts(self) -> bool:
        return bool(self.finetune_on_target)

    def adapt(self, profiles: dict, target: RatingSet, valid: RatingSet | None = None):
        """Tavernor & Mower Provost's fine-tuning of their consensus baseline on the target
        corpus (MIA ``experiment.py``, ``_run_seed_fold``, Step 5, which runs for
        ``BASELINE_AGGREGATE`` too): a copy of the network trained further on the mean
        ratings of the evaluated listeners (``target``: their ratings of the fold's
        training clips) with the same loss, a fresh SGD optimiser and early stopping on
        ``valid`` (their ratings of the validation speakers' clips; without it,
        ``valid_fraction`` of the target clips). Returns ``(adapted copy, profiles)``; the
        fitted model is not changed."""
        import copy
        import dataclasses

        from perser.errors import ConfigError
        from perser.methods.losses import ccc
        from perser.methods.tavernor import AUTHORS_TRAINING

        self._check_fitted()
        if self.architecture != "tavernor":
            raise ConfigError(f"method {self.name!r}: finetune_on_target is the authors' fine-tuning of their "
                              "consensus baseline; it needs architecture 'tavernor'")
        if valid is None:  # as _begin_fit
            target, valid = self._split_valid(target)
        new = copy.copy(self)
        new.net_ = copy.deepcopy(self.net_)
        dev = self.train_device()
        new.net_.to(dev)

        def loss_fn(out, t):
            return (1.0 - ccc(out, t)).sum()

        n_rows, batch_loss, valid_loss = self._consensus_losses(target, valid, loss_fn, dev)

        cfg = dataclasses.replace(self.train_config(f"{self.name} fine-tuning on the target corpus"),
                                  checkpoint_dir=None, **AUTHORS_TRAINING)
        try:
            new.finetune_history_ = fit_model(new.net_, n_rows, batch_loss, valid_loss, cfg)
        finally:
            new.net_.to("cpu")
        new.net_.eval()
        out = {a: Profile(method=self.name, annotator=a, data={**p.data, "finetuned": True}) for a, p in profiles.items()}
        return new, out

    def fit_settings(self) -> dict:
        return {**super().fit_settings(), "architecture": self.architecture}

    def _make_net(self, n_heads: int):
        if self.architecture == "tavernor":
            from perser.methods.tavernor import make_tavernor_net

            return make_tavernor_net(self, n_heads)
        return super()._make_net(n_heads)

    def _consensus_losses(self, train: RatingSet, valid: RatingSet | None, loss_fn, dev):
        """``(rows, batch_loss, valid_loss)`` for :func:`fit_model` on the per-clip consensus
        targets of ``train`` (and of ``valid``; ``valid_loss`` is ``None`` without it)."""
        X = self._tensor(train.X).to(dev)
        rows, T = self._consensus_targets(train)
        rows_t, T_t = torch.from_numpy(rows).to(dev), torch.from_numpy(T).to(dev)

        def batch_loss(module, idx):
            i = torch.from_numpy(idx).to(dev)
            return loss_fn(module(X[rows_t[i]]), T_t[i])

        valid_loss = None
        if valid is not None and len(valid):
            Xv = self._tensor(valid.X).to(dev)
            vrows, vT = self._consensus_targets(valid)
            vrows_t, vT_t = torch.from_numpy(vrows).to(dev), torch.from_numpy(vT).to(dev)

            def valid_loss(model):
                return loss_fn(model(Xv[vrows_t]), vT_t).item()

        return len(rows), batch_loss, valid_loss

    def _consensus_targets(self, rs: RatingSet) -> tuple[np.ndarray, np.ndarray]:
        rows, t = rs.consensus()
        if self.space_.kind == "dimensional":
            t = to_unit(t, self.space_.scale).astype(np.float32)
        return rows, t.astype(np.float32)

    def fit(self, train: RatingSet, valid: RatingSet | None = None) -> "ConsensusModel":
        from perser.errors import ConfigError

        if self.architecture not in ("perser", "tavernor"):
            raise ConfigError(f"method {self.name!r}: unknown architecture {self.architecture!r}; use 'perser' or "
                              "'tavernor'")
        tavernor = self.architecture == "tavernor"
        if self.finetune_on_target and not tavernor:
            raise ConfigError(f"method {self.name!r}: finetune_on_target (the authors' fine-tuning of their consensus "
                              "baseline) needs architecture 'tavernor'")
        if tavernor and train.space.kind != "dimensional":
            raise ConfigError(f"method {self.name!r}: architecture 'tavernor' needs a dimensional space, "
                              f"got {train.space.kind!r}")
        train, valid = self._begin_fit(train, valid)
        dev = self.train_device()
        self.net_ = self._make_net(1).to(dev)
        loss_fn = self._loss_fn(dev)
        cfg = self.train_config("consensus", data=(train, valid))
        if tavernor:  # MIA PreTrainLoss: the dimensions' (1 - CCC) summed; MIA ModelTrainer's SGD and schedule
            import dataclasses

            from perser.methods.losses import ccc
            from perser.methods.tavernor import AUTHORS_TRAINING

            def loss_fn(out, t):
                return (1.0 - ccc(out, t)).sum()

            cfg = dataclasses.replace(cfg, **AUTHORS_TRAINING)

        n_rows, batch_loss, valid_loss = self._consensus_losses(train, valid, loss_fn, dev)

        try:
            self.history_ = fit_model(self.net_, n_rows, batch_loss, valid_loss, cfg)
        finally:
            self.net_.to("cpu")
        return self

    def enroll(self, X: np.ndarray, y: np.ndarray, annotator: str | None = None) -> Profile:
        """The consensus model learns nothing from enrollment; the profile is empty."""
        self._check_support(X, y)
        return Profile(method=self.name, annotator=annotator, data={"k": int(len(X))})

    def predict(self, profile: Profile | None, X: np.ndarray) -> Predictions:
        self._check_fitted()
        self._check_profile(profile)
        self.net_.eval()
        with torch.no_grad():
            return self._predictions(self.net_(self._tensor(X)))


class ConsensusFinetuned(ConsensusModel):
    """``consensus-finetuned``: the authors' consensus baseline (``architecture="tavernor"``)
    fine-tuned on the target corpus's training fold in an evaluation
    (``finetune_on_target=True``, :meth:`ConsensusModel.adapt`)."""

    name = "consensus-finetuned"
    kinds = ("dimensional",)

    def __init__(self, finetune_on_target: bool = True, architecture: str = "tavernor", **kwargs):
        super().__init__(architecture=architecture, finetune_on_target=finetune_on_target, **kwargs)
