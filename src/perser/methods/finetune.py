"""``finetune``: adapt an output head to a new listener with a few gradient steps.

The seen-annotator model is a :class:`~perser.methods.multi.MultiAnnotatorModel` with a
consensus head. Enrollment starts from the consensus head (``init="consensus"``) or
from the head of the most similar seen annotator (``init="similar"``, chosen as in
:mod:`perser.methods.similar`) and takes ``steps`` full-batch Adam steps (learning rate
``finetune_lr``) on the K enrollment clips with the training loss (a mean over the
clips) plus the L2-SP penalty ``l2sp / (2 K) * ||theta - theta_0||^2`` (Li et al. 2018,
"Explicit inductive bias for transfer learning"), which keeps the adapted weights near
the starting ones. Dividing by K makes it a Gaussian prior on the weights: a few clips
move the head only as far as they can support, more clips move it further. Only the head is adapted
unless ``train_trunk=True``. Seen annotators are enrolled like new ones (the model
keeps no adapted head per seen annotator). Dropout is off during adaptation, so the same
enrollment set always gives the same profile. The profile holds the adapted tensors
(``head.weight [in, n_out]``, ``head.bias [n_out]``, and ``trunk.*`` when the trunk is
adapted).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.func import functional_call

from perser.errors import ConfigError
from perser.methods.base import Predictions, Profile, RatingSet
from perser.methods.multi import CONSENSUS, MultiAnnotatorModel
from perser.methods.similar import check_score, score_heads

INITS = ("consensus", "similar")


class FineTune(MultiAnnotatorModel):
    """Few-step fine-tuning of an output head on the enrollment set.

    Parameters
    ----------
    init:
        ``"consensus"`` (the consensus head) or ``"similar"`` (the best-matching seen
        annotator's head).
    steps, finetune_lr:
        Number of Adam steps on the enrollment set and their learning rate.
    l2sp:
        Strength of the L2-SP prior pulling the adapted weights toward the starting
        weights, in clips (the penalty is ``l2sp / (2 K)`` times the squared distance;
        0: plain fine-tuning). The default, 100, was chosen on the demo's seen
        listeners (enrolled with K = 5, 10, 20 of their training clips, tested on
        unseen clips), where plain fine-tuning (10 steps, learning rate 0.01) raised
        the log-loss above the starting consensus head's at every K and the prior
        lowered it at every K (see ``benchmarks/demo/RESULTS.md``).
    train_trunk:
        Adapt the trunk too (the profile then carries the trunk's weights).
    similar_score:
        Score used to choose the head for ``init="similar"`` (see
        :class:`~perser.methods.similar.SimilarAnnotator`).
    **kwargs:
        Hyper-parameters of :class:`~perser.methods.multi.MultiAnnotatorModel`.
    """

    name = "finetune"

    def __init__(
        self,
        init: str = "consensus",
        steps: int = 30,
        finetune_lr: float = 1e-2,
        l2sp: float = 100.0,
        train_trunk: bool = False,
        similar_score: str = "auto",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.init = init
        self.steps = steps
        self.finetune_lr = finetune_lr
        self.l2sp = l2sp
        self.train_trunk = train_trunk
        self.similar_score = similar_score

    def _check_options(self, kind: str) -> None:
        if self.init not in INITS:
            raise ConfigError(f"method {self.name!r}: unknown init {self.init!r}; use one of {INITS}")
        if self.init == "consensus" and not float(self.consensus_weight) > 0:
            raise ConfigError(f"method {self.name!r}: init='consensus' needs a consensus head (consensus_weight > 0)")
        if int(self.steps) < 0:
            raise ConfigError(f"method {self.name!r}: steps must be >= 0, got {self.steps}")
        if not float(self.finetune_lr) > 0:
            raise ConfigError(f"method {self.name!r}: finetune_lr must be positive, got {self.finetune_lr}")
        if float(self.l2sp) < 0:
            raise ConfigError(f"method {self.name!r}: l2sp must be >= 0, got {self.l2sp}")
        check_score(self.name, self.similar_score, kind, option="similar_score")

    def seen_profile(self, annotator: str) -> Profile:
        """Seen annotators have no adapted head of their own: they are enrolled like new ones."""
        raise ConfigError(f"method {self.name!r} keeps no per-annotator profile; enroll {annotator!r} instead")

    def _check_fit_options(self, train: RatingSet) -> None:
        super()._check_fit_options(train)
        self._check_options(train.space.kind)

    def _start_head(self, X: np.ndarray, y: np.ndarray) -> tuple[str, int]:
        if self.init == "consensus":
            return CONSENSUS, self.head_index(CONSENSUS)
        _, s, tie = score_heads(self, X, y, score=self.similar_score)
        h = int(np.lexsort((tie, -s))[0])
        return self.head_annotators_[h], h

    def enroll(self, X: np.ndarray, y: np.ndarray, annotator: str | None = None) -> Profile:
        """Adapt the head (and optionally the trunk) to the listener's K rated clips."""
        X, y = self._check_support(X, y)
        self._check_options(self.space_.kind)
        start, h = self._start_head(X, y)
        T = torch.from_numpy(self._targets(y))
        loss_fn = self._loss_fn()
        if self.space_.kind == "dimensional" and self.loss == "ccc" and len(X) < 3:
            from perser.methods.losses import mse as loss_fn  # CCC is degenerate on fewer than 3 clips
        self.net_.eval()
        head = {
            "head.weight": self.net_.head.weight[h].detach().clone().requires_grad_(True),
            "head.bias": self.net_.head.bias[h].detach().clone().requires_grad_(True),
        }
        trunk = {}
        if self.train_trunk:
            trunk = {k: v.detach().clone().requires_grad_(True) for k, v in self.net_.trunk.named_parameters()}
        xs = self._tensor(X)
        with torch.no_grad():
            z_fixed = None if self.train_trunk else self.net_.trunk(xs)

        def fit_loss():
            z = functional_call(self.net_.trunk, trunk, (xs,)) if self.train_trunk else z_fixed
            return loss_fn(z @ head["head.weight"] + head["head.bias"], T)

        params = list(head.values()) + list(trunk.values())
        start_values = [p.detach().clone() for p in params]
        alpha = float(self.l2sp) / len(X)

        def loss_now():
            loss = fit_loss()
            if alpha > 0:
                loss = loss + 0.5 * alpha * sum((p - p0).pow(2).sum() for p, p0 in zip(params, start_values))
            return loss

        with torch.no_grad():
            before = float(fit_loss())
        if int(self.steps) > 0:
            opt = torch.optim.Adam(params, lr=float(self.finetune_lr))
            for _ in range(int(self.steps)):
                opt.zero_grad(set_to_none=True)
                loss = loss_now()
                loss.backward()
                opt.step()
        with torch.no_grad():
            after = float(fit_loss())
        tensors = {k: v.detach().numpy().copy() for k, v in head.items()}
        tensors.update({f"trunk.{k}": v.detach().numpy().copy() for k, v in trunk.items()})
        data = {"init": start, "steps": int(self.steps), "lr": float(self.finetune_lr), "k": int(len(X)),
                "l2sp": float(self.l2sp), "loss_before": before, "loss_after": after, "train_trunk": bool(self.train_trunk)}
        return Profile(method=self.name, annotator=annotator, data=data, tensors=tensors)

    def predict(self, profile: Profile | None, X: np.ndarray) -> Predictions:
        """Predictions of the adapted head; without a profile, of the consensus head."""
        self._check_fitted()
        self._check_profile(profile)
        if profile is None or not profile.tensors:
            if self.has_consensus_head:
                return self._predict_heads({"heads": [CONSENSUS]}, X)
            return self._predictions(self.head_outputs(X).mean(dim=1), activated=True)
        t = {k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in profile.tensors.items()}
        W, b = t.get("head.weight"), t.get("head.bias")
        if W is None or b is None or tuple(W.shape) != (self.net_.head.in_dim, self.net_.head.n_out):
            raise ConfigError(f"profile of {profile.annotator!r} does not hold a head for this model")
        xs = self._tensor(X)
        self.net_.eval()
        with torch.no_grad():
            trunk = {k[len("trunk."):]: v for k, v in t.items() if k.startswith("trunk.")}
            z = functional_call(self.net_.trunk, trunk, (xs,)) if trunk else self.net_.trunk(xs)
            return self._predictions(z @ W + b)
