"""``consensus``: conventional speech emotion recognition trained on consensus labels.

The target of a clip is derived from all its ratings (:meth:`RatingSet.consensus`): the
soft distribution of the annotators' classes (categorical, soft cross-entropy), the
fraction of annotators ticking each class (multilabel, class-balanced sigmoid
cross-entropy) or the mean rating (dimensional, CCC or MSE loss on the unit scale).
Every listener gets the same predictions: the profile is ignored.
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

    Hyper-parameters: those of :class:`~perser.methods.neural.NeuralPersonalizer`.
    """

    name = "consensus"
    personalized = False

    def _consensus_targets(self, rs: RatingSet) -> tuple[np.ndarray, np.ndarray]:
        rows, t = rs.consensus()
        if self.space_.kind == "dimensional":
            t = to_unit(t, self.space_.scale).astype(np.float32)
        return rows, t.astype(np.float32)

    def fit(self, train: RatingSet, valid: RatingSet | None = None) -> "ConsensusModel":
        train, valid = self._begin_fit(train, valid)
        dev = self.train_device()
        self.net_ = self._make_net(1).to(dev)
        X = self._tensor(train.X).to(dev)
        rows, T = self._consensus_targets(train)
        rows_t, T_t = torch.from_numpy(rows).to(dev), torch.from_numpy(T).to(dev)
        loss_fn = self._loss_fn(dev)

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

        try:
            self.history_ = fit_model(self.net_, len(rows), batch_loss, valid_loss, self.train_config("consensus", data=(train, valid)))
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
