"""Losses and agreement measures for the three label-space kinds.

Every function is pure tensor arithmetic (no in-place updates, no Python branching on
values), so it works under :func:`torch.func.grad` and :func:`torch.func.vmap`.

* categorical — :func:`soft_cross_entropy` against a class distribution (one-hot for a
  single rating, the rating distribution for a consensus target);
* multilabel — :func:`class_balanced_bce` with per-class weights from
  :func:`class_balanced_weights` (Cui et al. 2019, "Class-Balanced Loss Based on
  Effective Number of Samples");
* dimensional — :func:`ccc_loss` (1 − mean concordance correlation coefficient) or
  :func:`mse`, on the unit scale (see :func:`perser.methods.nets.to_unit`).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from perser.corpus.model import LabelSpace
from perser.errors import ConfigError

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def ccc(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Concordance correlation coefficient per dimension (Lin 1989).

    ``pred``/``target``: ``[n, D]`` (or ``[n]``); returns ``[D]`` (or a scalar).
    ``ccc = 2 cov(p, t) / (var p + var t + (mean p − mean t)^2)``, population moments.
    """
    mp, mt = pred.mean(dim=0), target.mean(dim=0)
    dp, dt = pred - mp, target - mt
    cov = (dp * dt).mean(dim=0)
    vp, vt = (dp * dp).mean(dim=0), (dt * dt).mean(dim=0)
    return 2.0 * cov / (vp + vt + (mp - mt) ** 2 + eps)


def ccc_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``1 − mean CCC`` over dimensions (0 is perfect agreement, 2 the worst)."""
    return 1.0 - ccc(pred, target).mean()


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over all rows and dimensions."""
    return ((pred - target) ** 2).mean()


def soft_cross_entropy(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of ``softmax(logits)`` against target distributions ``[n, C]``, mean over rows."""
    return -(target_probs * F.log_softmax(logits, dim=-1)).sum(dim=-1).mean()


def class_balanced_weights(y: np.ndarray, beta: float = 0.999, n_classes: int | None = None) -> np.ndarray:
    """Per-class weights ``(1 − beta) / (1 − beta^n_c)`` normalised to sum to ``C``.

    The inverse of the *effective number of samples* of Cui et al. (2019). ``y`` holds
    ``[n, C]`` indicators or fractions (multilabel: ``n_c`` is the column sum) or
    ``[n]`` class indices (categorical, with ``n_classes``). A class without positives
    counts as one sample (the largest weight) rather than dividing by zero.
    """
    if not 0.0 <= beta < 1.0:
        raise ConfigError(f"class_balanced_weights: beta must be in [0, 1), got {beta}")
    y = np.asarray(y)
    if y.ndim == 1:
        if n_classes is None:
            n_classes = int(y.max()) + 1 if len(y) else 0
        counts = np.bincount(y.astype(np.int64), minlength=n_classes).astype(np.float64)
    elif y.ndim == 2:
        counts = y.astype(np.float64).sum(axis=0)
    else:
        raise ConfigError(f"class_balanced_weights: expected [n] or [n, C] targets, got shape {y.shape}")
    counts = np.maximum(counts, 1.0)
    effective = (1.0 - np.power(beta, counts)) / (1.0 - beta) if beta > 0 else np.ones_like(counts)
    w = 1.0 / effective
    return (w * len(w) / w.sum()).astype(np.float32)


def class_balanced_bce(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Sigmoid binary cross-entropy per class, each class scaled by ``weights[c]``, mean over rows and classes."""
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    if weights is not None:
        bce = bce * weights
    return bce.mean()


def loss_for(space: LabelSpace | str, loss: str = "ccc", class_weights: np.ndarray | torch.Tensor | None = None) -> LossFn:
    """The training loss ``f(outputs, target) -> scalar`` for a label space (or kind).

    Targets: ``[n, C]`` class distributions (categorical), ``[n, C]`` indicators or
    fractions (multilabel), ``[n, D]`` unit-scale values (dimensional). ``loss`` picks
    ``"ccc"`` or ``"mse"`` for dimensional spaces and is ignored otherwise.
    """
    kind = space if isinstance(space, str) else space.kind
    if kind == "categorical":
        return soft_cross_entropy
    if kind == "multilabel":
        w = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
        return lambda out, t: class_balanced_bce(out, t, w)
    if kind == "dimensional":
        if loss == "ccc":
            return ccc_loss
        if loss == "mse":
            return mse
        raise ConfigError(f"unknown dimensional loss {loss!r}; use 'ccc' or 'mse'")
    raise ConfigError(f"unknown label-space kind {kind!r}")


def training_targets(space: LabelSpace, y: np.ndarray) -> np.ndarray:
    """Encoded ratings (:meth:`LabelSpace.encode`) as the float targets :func:`loss_for` expects.

    Categorical class indices become one-hot rows (class distributions pass through);
    multilabel indicators pass through; dimensional values are mapped to ``[-1, 1]``.
    """
    from perser.methods.nets import to_unit

    y = np.asarray(y)
    if space.kind == "categorical":
        if y.ndim == 1:
            C = len(space.classes)
            if len(y) and (y.min() < 0 or y.max() >= C):
                raise ConfigError(f"space {space.name!r}: class index out of range 0..{C - 1}")
            return np.eye(C, dtype=np.float32)[y.astype(np.int64)]
        return y.astype(np.float32)
    if space.kind == "multilabel":
        return y.astype(np.float32)
    return np.asarray(to_unit(y.astype(np.float32), space.scale), dtype=np.float32)
