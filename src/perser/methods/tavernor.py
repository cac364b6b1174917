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
