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
``softmax(score / temperature)``. ``combine="posterior"`` predicts with the posterior
over heads instead of the best one(s): every head weighted by its posterior probability
given the K labels (:mod:`perser.methods.head_posterior`: a lapse or Gaussian
likelihood whose noise is fitted on the seen listeners at training time -- the posterior
active enrollment selects with), the heads holding all but ``1e-4`` of the mass kept
(at most :data:`MAX_POSTERIOR_HEADS`). It reduces to the best head when the posterior
is one-hot; ``score``, ``top_k`` and ``temperature`` are then not used. In a dimensional
space the mixture shrinks the predicted values toward the middle of the scale, which
costs CCC (measured in ``benchmarks/enrollment/RESULTS.md``): keep ``top1`` there. Ties are broken by the lower absolute error
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
COMBINES = ("top1", "posterior")
#: most heads a ``combine="posterior"`` profile keeps (the most probable ones)
MAX_POSTERIOR_HEADS = 100

#: heads recorded in a profile's ``ranking``
RANKING = 10

#: fewest seen heads from which ``enroll`` takes the two-stage search (below, scoring all is as cheap)
SCREEN_MIN_HEADS = 1024


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
    combine:
        ``"top1"`` (the best ``top_k`` head(s) by ``score``, the authors' enrollment) or
        ``"posterior"`` (all heads weighted by their posterior probability; see the
        module docstring).
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
                 combine: str = "top1", finetune_after_copy: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.score = score
        self.per_dimension = per_dimension
        self.top_k = top_k
        self.temperature = temperature
        self.combine = combine
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
        if self.combine not in COMBINES:
            raise ConfigError(f"method {self.name!r}: unknown combine {self.combine!r}; use one of {COMBINES}")
        if self.combine == "posterior" and self.per_dimension:
            raise ConfigError(f"method {self.name!r}: combine='posterior' weighs whole heads; it cannot be "
                              "combined with per_dimension=True")
        if self.finetune_after_copy and (self.architecture != "tavernor" or int(self.top_k) != 1 or self.per_dimension
                                         or self.combine != "top1"):
            raise ConfigError(f"method {self.name!r}: finetune_after_copy (the authors' fine-tuning) needs "
                              "architecture 'tavernor', top_k=1, combine='top1' and per_dimension=false")

    def _check_fit_options(self, train: RatingSet) -> None:
        super()._check_fit_options(train)
        self._check_options(train.space.kind)

    # -------------------------------------------------------------- scoring
    def score_heads(self, X: np.ndarray, y: np.ndarray) -> tuple[str, np.ndarray, np.ndarray]:
        """Score every seen head on the enrollment clips (see :func:`score_heads`)."""
        self._check_fitted()
        self._check_options(self.space_.kind)
        return score_heads(self, X, y, score=self.score, per_dimension=bool(self.per_dimension))

    def _screens(self, n: int) -> bool:
        """Whether :meth:`enroll` finds the ``n`` best heads by the two-stage search
        (:func:`screened_best_loglik`; same result): log-likelihood score of a class
        space, at least :data:`SCREEN_MIN_HEADS` heads."""
        self._check_fitted()
        self._check_options(self.space_.kind)
        return (self.space_.kind == "categorical" and self.score in ("auto", "loglik") and not self.per_dimension
                and len(self.space_.classes) >= 2 and len(self.head_annotators_) >= max(SCREEN_MIN_HEADS, 32 * n))

    def enroll(self, X: np.ndarray, y: np.ndarray, annotator: str | None = None) -> Profile:
        """Choose the best-matching seen head(s) for a new listener.

        Every head is scored; with the log-likelihood score and many heads the best ones
        are found by a two-stage search that scores exactly only the heads that can still
        be among them (:func:`screened_best_loglik`) — same heads, same scores. With
        ``combine="posterior"`` the heads are weighted by their posterior probability.
        """
        if getattr(self, "combine", "top1") == "posterior":
            return self._enroll_posterior(X, y, annotator)
        n = max(int(self.top_k), RANKING)
        if self._screens(n):
            X, y = self._check_support(X, y)
            best, s = screened_best_loglik(self, X, y, n)
            return self._profile(annotator, "loglik", len(X), best, s, self.head_annotators_)
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
        best = best_heads(s, tie, n)
        return self._profile(annotator, crit, len(X), best, s[best], names)

    def _profile(self, annotator: str | None, crit: str, K: int, best: np.ndarray, scores: np.ndarray, names: list) -> Profile:
        """The profile from the best heads ``best`` (best first, at least ``top_k`` of
        them when there are) and their scores."""
        k = min(int(self.top_k), len(best))
        w = np.exp((scores[:k] - scores[:k].max()) / float(self.temperature))
        w = w / w.sum()
        data: dict = {"criterion": crit, "k": int(K)}
        data["heads"] = [names[h] for h in best[:k]]
        data["weights"] = [float(v) for v in w]
        data["scores"] = [float(v) for v in scores[:k]]
        data["ranking"] = [[names[h], float(v)] for h, v in zip(best[:RANKING], scores[:RANKING])]
        return Profile(method=self.name, annotator=annotator, data=data)

    def _enroll_posterior(self, X: np.ndarray, y: np.ndarray, annotator: str | None) -> Profile:
        """``combine="posterior"``: the heads weighted by their posterior probability."""
        from perser.methods.head_posterior import head_posterior, model_noise

        self._check_fitted()
        self._check_options(self.space_.kind)
        X, y = self._check_support(X, y)
        w = head_posterior(self, X, y, model_noise(self))
        order = np.argsort(-w, kind="stable")  # ties: the head order
        mass = np.cumsum(w[order])
        n = min(int(np.searchsorted(mass, 1 - 1e-4)) + 1, MAX_POSTERIOR_HEADS, len(order))
        top = order[:n]
        names = self.head_annotators_
        kept = w[top] / w[top].sum()
        data = {"criterion": "posterior", "k": int(len(X)), "heads": [names[h] for h in top],
                "weights": [float(v) for v in kept], "scores": [float(v) for v in w[top]],
                "ranking": [[names[h], float(w[h])] for h in order[:RANKING]]}
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
    if kind == "categorical" and score in ("auto", "loglik") and len(model.space_.classes) >= 2:
        s = categorical_loglik(model, X, y).numpy().astype(np.float64)
        return "loglik", s, np.zeros_like(s)
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


def categorical_loglik(model: MultiAnnotatorModel, X: np.ndarray, y: np.ndarray, heads: torch.Tensor | None = None) -> torch.Tensor:
    """Mean log-likelihood ``[H]`` of class labels ``y [K]`` under every seen head (or
    the heads ``heads``) of a categorical ``model``, for features ``X [K, ...]`` (already
    checked).

    Equal to ``log_softmax(head_outputs(X)).gather(y).mean(0)`` (the exhaustive scoring;
    ``tests/methods/test_enroll_scoring.py`` checks it) but computed from the heads'
    logits *relative to class 0* (:meth:`~perser.methods.multi.MultiAnnotatorModel._contrast_heads`):
    ``log p(y) = o'_y - log(1 + sum_{c >= 1} exp(o'_c))`` with ``o'_c = o_c - o_0``, so
    the one matrix product over the heads has ``n_out - 1`` classes instead of ``n_out``,
    the biases enter through ``addmm``, and the log-sum-exp runs in place on its output.
    """
    return _loglik(model, model.embed(X), y, heads)


def _loglik(model: MultiAnnotatorModel, z: torch.Tensor, y: np.ndarray, heads: torch.Tensor | None) -> torch.Tensor:
    K, C1 = len(z), len(model.space_.classes) - 1
    with torch.no_grad():
        if heads is None:
            W, b = model._contrast_heads()
        else:  # a few heads: from the head-major weights (a class-major column gather would miss the cache)
            w = model.net_.head.weight.detach().index_select(0, heads)  # [n, in, C]
            bb = model.net_.head.bias.detach().index_select(0, heads)  # [n, C]
            W = (w[:, :, 1:] - w[:, :, :1]).permute(1, 2, 0).reshape(w.shape[1], C1 * len(heads))
            b = (bb[:, 1:] - bb[:, :1]).t().reshape(-1)
        o = torch.addmm(b, z, W).view(K, C1, -1)  # [K, C - 1, H]: logits minus class 0's
        yt = torch.from_numpy(np.asarray(y, dtype=np.int64))
        rows = torch.nonzero(yt > 0)[:, 0]
        picked = torch.zeros(K, o.shape[2])
        picked[rows] = o[rows, yt[rows] - 1]  # class 0's relative logit is 0
        m = o.amax(dim=1).clamp_min_(0.0)  # [K, H]: the largest logit, class 0's included
        o.sub_(m[:, None]).exp_()
        lse = (o.sum(dim=1) + torch.exp(-m)).log_().add_(m)
        return (picked - lse).mean(dim=0)


def loglik_upper_bound(model: MultiAnnotatorModel, z: torch.Tensor, y: np.ndarray) -> torch.Tensor:
    """An upper bound ``[H]`` on every seen head's mean log-likelihood of ``y`` (trunk
    outputs ``z [K, in]``) that costs one read of the heads, not a product with ``K`` rows.

    By Gibbs' inequality ``log sum_c exp(o_c) >= sum_c pi_c o_c + H(pi)`` for any
    distribution ``pi`` (equality at ``pi = softmax(o)``), so with ``pi_k`` the
    prediction of the mean head on clip ``k``::

        mean_k log p_h(y_k | k) <= 1/K sum_{c >= 1} [(S_c - T_c) . w'_ch + (n_c - t_c) b'_ch] - mean_k H(pi_k)

    with ``S_c`` the sum of the ``z_k`` labelled ``c``, ``n_c`` their number,
    ``T_c = sum_k pi_kc z_k``, ``t_c = sum_k pi_kc`` and ``w'``, ``b'`` the heads relative
    to class 0: one vector-matrix product per class. The bound is tight for heads that
    predict like the mean head and loose for the others.
    """
    W, b = model._contrast_heads()
    C1, H, K = len(model.space_.classes) - 1, len(model.head_annotators_), len(z)
    Wv, bv = W.view(W.shape[0], C1, H), b.view(C1, H)
    mean_w, mean_b = model._contrast_mean_head()  # the mean head, relative to class 0: [in, C1], [C1]
    with torch.no_grad():
        logits = torch.cat([torch.zeros(K, 1), z @ mean_w + mean_b], dim=1)  # [K, C]
        logpi = torch.log_softmax(logits.double(), dim=1)
        pi = logpi.exp()
        ent = float(-(pi * logpi).sum(dim=1).mean())
        onehot = torch.nn.functional.one_hot(torch.from_numpy(np.asarray(y, dtype=np.int64)), C1 + 1).double()
        coef = (onehot - pi)[:, 1:]  # [K, C1]: the weight of z_k on class c's relative logit
        D = (coef.t() @ z.double()).float()  # [C1, in]
        n = coef.sum(dim=0).float()  # [C1]
        U = torch.zeros(H)
        for c in range(C1):
            U.add_(D[c] @ Wv[:, c, :]).add_(bv[c] * n[c])
        return U.div_(K).sub_(ent)


def screened_best_loglik(model: MultiAnnotatorModel, X: np.ndarray, y: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` best heads by mean log-likelihood of ``y`` (higher first, ties to the
    lower index) and their scores, as :func:`best_heads` over :func:`categorical_loglik`
    gives them, without scoring every head exactly.

    Two stages: :func:`loglik_upper_bound` for every head; then exact scores for the
    heads in decreasing order of their bound — first the ``max(8 n, 128)`` highest, which
    sets ``tau``, the ``n``-th best exact score, then every other head whose bound
    reaches ``tau``. A head left out has ``score <= bound < tau``: ``n`` scored heads beat
    it. The bound is taken with a float32 slack of ``1e-4 (1 + |bound|)``, so the result
    is the exhaustive one up to the rounding of scores less than that apart. How many
    heads the second stage scores depends on how tight the bound is (how alike the heads
    predict); at worst all.
    """
    z = model.embed(X)
    H = len(model.head_annotators_)
    U = loglik_upper_bound(model, z, y)
    U = U + 1e-4 * (1 + U.abs())
    first = torch.sort(torch.topk(U, min(H, max(8 * n, 128))).indices).values
    heads, scores = [first], [_loglik(model, z, y, first)]
    if len(first) < H:
        tau = torch.topk(scores[0], min(n, len(first))).values[-1]
        mask = U >= tau
        mask[first] = False
        rest = torch.nonzero(mask)[:, 0]
        if len(rest):
            heads.append(rest)
            scores.append(_loglik(model, z, y, rest))
    h = torch.cat(heads).numpy()
    s = torch.cat(scores).numpy().astype(np.float64)
    best = np.lexsort((h, -s))[:n]
    return h[best], s[best]


def best_heads(s: np.ndarray, tie: np.ndarray, n: int) -> np.ndarray:
    """The first ``n`` of ``np.lexsort((tie, -s))`` (higher score first, then lower
    ``tie``, then lower index) without sorting all heads: only those scoring at least the
    ``n``-th best score are sorted."""
    if len(s) <= 4 * n:
        return np.lexsort((tie, -s))[:n]
    thr = -np.partition(-s, n - 1)[n - 1]
    if not np.isfinite(thr):
        return np.lexsort((tie, -s))[:n]
    cand = np.flatnonzero(s >= thr)  # ascending, so the index stays the last key
    return cand[np.lexsort((tie[cand], -s[cand]))][:n]


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
