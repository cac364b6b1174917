"""``similar``: enroll a new listener as the most similar seen annotator.

Tavernor & Mower Provost (2025), "More Similar than Dissimilar": a shared trunk with one
output head per seen annotator (:class:`~perser.methods.multi.MultiAnnotatorModel`).
Enrollment runs every head on the listener's K rated clips — the trunk once, then all
heads in one batched product — scores each head against the listener's labels and
predicts with the best one:

* dimensional: the summed CCC over dimensions (K = 1: the lowest absolute error);
* categorical / multilabel: the mean log-likelihood of the listener's labels under the
  head's predicted distribution (``score="f1"``: macro-F1 of the head's decisions).

Options: ``per_dimension=True`` picks the best head for each dimension on its own (the
"one-to-two" mapping); ``top_k > 1`` averages the ``top_k`` best heads with weights
``softmax(score / temperature)``. Ties are broken by the lower absolute error
(dimensional) or by the head order. The profile records the chosen head(s) — seen
annotator ids — their scores, and the ten best heads.

A seen annotator's head is trained on that annotator's ratings alone, often a few
dozen noisy ones. ``head_shrinkage > 0`` (see
:class:`~perser.methods.multi.MultiAnnotatorModel`) trains the heads as a hierarchy
instead, each pulled toward the jointly trained consensus head, so a copied head is
the consensus corrected by what that annotator's ratings support. Independent heads
are the default (``head_shrinkage=0``; the authors' heads are independent but start as
copies of a consensus head, ``docs/papers.md``); what shrinkage does on the demo
corpus is measured in ``benchmarks/demo/RESULTS.md``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from perser.errors import ConfigError
from perser.methods.base import Predictions, Profile, RatingSet
from perser.methods.losses import ccc
from perser.methods.multi import CONSENSUS, MultiAnnotatorModel
from perser.methods.nets import to_unit
from perser.methods.tavernor import tavernor_ccc

SCORES = ("auto", "ccc", "ccc_tavernor", "mae", "loglik", "f1")


class SimilarAnnotator(MultiAnnotatorModel):
    """Pick the seen annotator's head that best matches the enrollment labels.

    Parameters
    ----------
    score:
        ``"auto"`` (CCC, or absolute error for K = 1, for dimensional spaces;
        log-likelihood for class spaces), ``"ccc"``, ``"ccc_tavernor"`` (the CCC estimator
        of Tavernor & Mower Provost's code, :func:`perser.methods.tavernor.tavernor_ccc`:
        unbiased variances; at K = 1 their absolute error), ``"mae"``, ``"loglik"`` or ``"f1"``.
    per_dimension:
        Dimensional spaces only: choose the best head per dimension.
    top_k:
        Average the ``top_k`` best heads (1: copy the best head).
    temperature:
        Softness of the top-k weights ``softmax(score / temperature)``.
    finetune_after_copy:
        ``architecture="tavernor"`` only: in an evaluation, after every listener of a
        (seed, fold, K) is enrolled, fine-tune a copy of the whole network on those
        listeners' ratings of all the fold's training clips, each listener's head started
        as the copy of their chosen head, as Tavernor & Mower Provost's code does after
        its zero-shot test (:func:`perser.methods.tavernor.finetune_copies`; the
        ``similar-finetuned`` method has it on). A listener then contributes every
        training-fold rating, not only K; enrolling one listener alone (``enroll``)
        stays the copy.
    **kwargs:
        Hyper-parameters of :class:`~perser.methods.multi.MultiAnnotatorModel`.
    """

    name = "similar"

    def __init__(self, score: str = "auto", per_dimension: bool = False, top_k: int = 1, temperature: float = 0.1,
                 finetune_after_copy: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.score = score
        self.per_dimension = per_dimension
        self.top_k = top_k
        self.temperature = temperature
        self.finetune_after_copy = finetune_after_copy

    def adapts(self) -> bool:
        return bool(self.finetune_after_copy)

    def adapt(self, profiles: dict, target: RatingSet, valid: RatingSet | None = None):
        """The authors' fine-tuning after the head copy for the enrolled listeners of
        ``profiles`` on their ``target`` ratings (:func:`perser.methods.tavernor.finetune_copies`):
        ``(adapted copy, each listener's profile in it)``."""
        self._check_fitted()
        if self.architecture != "tavernor":
            raise ConfigError(f"method {self.name!r}: finetune_after_copy is the authors' fine-tuning of their "
                              "network; it needs architecture 'tavernor'")
        from perser.methods.tavernor import finetune_copies

        return finetune_copies(self, profiles, target, valid)

    def _check_options(self, kind: str) -> None:
        check_score(self.name, self.score, kind)
        if self.per_dimension and kind != "dimensional":
            raise ConfigError(f"method {self.name!r}: per_dimension=True needs a dimensional space, not {kind}")
        if int(self.top_k) < 1:
            raise ConfigError(f"method {self.name!r}: top_k must be at least 1, got {self.top_k}")
        if not float(self.temperature) > 0:
            raise ConfigError(f"method {self.name!r}: temperature must be positive, got {self.temperature}")
        if self.finetune_after_copy and (self.architecture != "tavernor" or int(self.top_k) != 1 or self.per_dimension):
            raise ConfigError(f"method {self.name!r}: finetune_after_copy (the authors' fine-tuning) needs "
                              "architecture 'tavernor', top_k=1 and per_dimension=false")

    def _check_fit_options(self, train: RatingSet) -> None:
        super()._check_fit_options(train)
        self._check_options(train.space.kind)

    # -------------------------------------------------------------- scoring
    def score_heads(self, X: np.ndarray, y: np.ndarray) -> tuple[str, np.ndarray, np.ndarray]:
        """Score every seen head on the enrollment clips (see :func:`score_heads`)."""
        self._check_fitted()
        self._check_options(self.space_.kind)
        return score_heads(self, X, y, score=self.score, per_dimension=bool(self.per_dimension))

    def enroll(self, X: np.ndarray, y: np.ndarray, annotator: str | None = None) -> Profile:
        """Choose the best-matching seen head(s) for a new listener."""
        crit, s, tie = self.score_heads(X, y)
        names = self.head_annotators_
        data: dict = {"criterion": crit, "k": int(len(X))}
        if self.per_dimension:
            best = {}
            for d, dim in enumerate(self.space_.dimensions):
                h = int(np.lexsort((tie[:, d], -s[:, d]))[0])
                best[dim] = (names[h], float(s[h, d]))
            data["per_dimension"] = {dim: b[0] for dim, b in best.items()}
            data["scores"] = {dim: b[1] for dim, b in best.items()}
            return Profile(method=self.name, annotator=annotator, data=data)
        order = np.lexsort((tie, -s))
        k = min(int(self.top_k), len(order))
        top = order[:k]
        w = np.exp((s[top] - s[top].max()) / float(self.temperature))
        w = w / w.sum()
        data["heads"] = [names[h] for h in top]
        data["weights"] = [float(v) for v in w]
        data["scores"] = [float(s[h]) for h in top]
        data["ranking"] = [[names[h], float(s[h])] for h in order[:10]]
        return Profile(method=self.name, annotator=annotator, data=data)

    def predict(self, profile: Profile | None, X: np.ndarray) -> Predictions:
        """The chosen head(s); without a profile the consensus head (or the mean of all heads)."""
        self._check_fitted()
        self._check_profile(profile)
        if profile is not None:
            return self._predict_heads(profile.data, X)
        if self.has_consensus_head:
            return self._predict_heads({"heads": [CONSENSUS]}, X)
        return self._predictions(self.head_outputs(X).mean(dim=1), activated=True)


class SimilarFinetuned(SimilarAnnotator):
    """``similar-finetuned``: :class:`SimilarAnnotator` with ``finetune_after_copy=True``
    (and ``architecture="tavernor"``): Tavernor & Mower Provost's copy of the most similar
    head followed by their fine-tuning of the whole network on the target training fold.
    Shares its base fit with ``similar`` (same network and training settings)."""

    name = "similar-finetuned"
    kinds = ("dimensional",)

    def __init__(self, finetune_after_copy: bool = True, architecture: str = "tavernor", **kwargs):
        super().__init__(finetune_after_copy=finetune_after_copy, architecture=architecture, **kwargs)


def check_score(method: str, score: str, kind: str, option: str = "score") -> None:
    """A :data:`SCORES` entry that fits a ``kind`` label space, or a :class:`ConfigError`
    naming ``method`` and its ``option``."""
    if score not in SCORES:
        raise ConfigError(f"method {method!r}: unknown {option} {score!r}; use one of {SCORES}")
    if kind == "dimensional" and score in ("loglik", "f1"):
        raise ConfigError(f"method {method!r}: {option} {score!r} needs a class space; use 'ccc' or 'mae'")
    if kind != "dimensional" and score in ("ccc", "ccc_tavernor", "mae"):
        raise ConfigError(f"method {method!r}: {option} {score!r} needs a dimensional space; use 'loglik' or 'f1'")


def score_heads(model: MultiAnnotatorModel, X: np.ndarray, y: np.ndarray, score: str = "auto", per_dimension: bool = False) -> tuple[str, np.ndarray, np.ndarray]:
    """Score every seen head of a fitted multi-annotator ``model`` on enrollment clips.

    Returns ``(criterion, scores, tiebreak)``: ``scores`` is ``[H]`` (or ``[H, D]``
    with ``per_dimension``), higher is better; ``tiebreak`` the same shape, lower is
    better (the absolute error, or zeros).
    """
    X, y = model._check_support(X, y)
    kind = model.space_.kind
    check_score(model.name, score, kind)  # an unknown score or one of the other kind would fall through to another
    out = model.head_outputs(X, activated=False)  # [K, H, n_out]
    K = len(X)
    if kind == "dimensional":
        t = torch.from_numpy(to_unit(y.astype(np.float32), model.space_.scale))[:, None, :]  # [K, 1, D]
        err = (out - t).abs().mean(dim=0)  # [H, D]
        crit = score if score != "auto" else ("ccc" if K >= 2 else "mae")
        if crit == "ccc_tavernor" and K < 2:
            crit = "mae"  # the authors' choice for a single enrollment clip
        if crit == "ccc" and K < 2:
            raise ConfigError("score 'ccc' needs at least 2 enrollment clips; use 'mae' for K = 1")
        if crit == "ccc":
            per_dim = ccc(out, t.expand_as(out))  # [H, D]
        elif crit == "ccc_tavernor":
            per_dim = tavernor_ccc(out.double(), t.double()).float()  # [H, D]; the target's own n - 1 moments
        else:
            per_dim = -err
        if per_dimension:
            return crit, per_dim.numpy(), err.numpy()
        return crit, per_dim.sum(dim=1).numpy(), err.sum(dim=1).numpy()
    crit = "loglik" if score == "auto" else score
    if kind == "categorical":
        yt = torch.from_numpy(y.astype(np.int64))
        if crit == "loglik":
            picked = out.gather(2, yt[:, None, None].expand(K, out.shape[1], 1))[..., 0]  # [K, H]
            s = (picked - torch.logsumexp(out, dim=-1)).mean(dim=0)
        else:
            s = torch.from_numpy(_macro_f1_categorical(out.argmax(-1).numpy(), y, len(model.space_.classes)))
    else:
        yt = torch.from_numpy(y.astype(np.float32))[:, None, :].expand_as(out)
        if crit == "loglik":
            s = -F.binary_cross_entropy_with_logits(out, yt, reduction="none").sum(-1).mean(dim=0)
        else:
            s = torch.from_numpy(_macro_f1_multilabel((out > 0).numpy(), y.astype(bool)))
    s = s.numpy() if isinstance(s, torch.Tensor) else s
    return crit, s.astype(np.float64), np.zeros_like(s, dtype=np.float64)


def _macro_f1_categorical(pred: np.ndarray, y: np.ndarray, n_classes: int) -> np.ndarray:
    """Macro-F1 of each head's decisions ``pred [K, H]`` against ``y [K]``, over the
    classes present in the labels or the decisions (as scikit-learn's ``f1_score``)."""
    P = pred[..., None] == np.arange(n_classes)  # [K, H, C]
    T = (y[:, None] == np.arange(n_classes))[:, None, :]  # [K, 1, C]
    return _f1_from_masks(P, T)


def _macro_f1_multilabel(pred: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Macro-F1 over classes of decisions ``pred [K, H, C]`` against indicators ``y [K, C]``."""
    return _f1_from_masks(pred, y[:, None, :])


def _f1_from_masks(P: np.ndarray, T: np.ndarray) -> np.ndarray:
    tp = (P & T).sum(0)
    fp = (P & ~T).sum(0)
    fn = (~P & T).sum(0)
    denom = 2 * tp + fp + fn
    present = denom > 0
    f1 = np.where(present, 2 * tp / np.maximum(denom, 1), 0.0)
    return f1.sum(-1) / np.maximum(present.sum(-1), 1)
