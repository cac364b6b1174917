"""The posterior over a multi-annotator model's seen heads given a new listener's labels.

A new listener is taken to label like one of the seen listeners (one head of a
:class:`~perser.methods.multi.MultiAnnotatorModel`), with noise. Given labels ``y_j``
of clips ``x_j`` the posterior over heads is ``w_h ∝ prod_j p(y_j | head h, x_j)``
(uniform prior) with the likelihood

* categorical: ``(1 - eps) p_h(y | x) + eps / C`` (a lapse rate ``eps``);
* multilabel: the same per class (``eps / 2``), classes independent given the head;
* dimensional: Gaussian, ``y ~ N(f_h(x), sigma_d^2)`` per dimension on the unit scale.

The noise (``eps``, or one ``sigma_d`` per dimension) is fitted on the seen listeners by
:func:`fit_noise`: the grid value that maximises the leave-own-head-out marginal
likelihood ``sum_a log mean_{h != a} p(ratings of a | h)``, i.e. how well the mixture of
the *other* listeners' heads explains each seen listener -- the model a new listener
is then scored under. A multi-annotator model fits it at training time and keeps it in
its model folder (``listener_noise_``); active enrollment
(:mod:`perser.enroll.active`) and ``similar``'s ``combine="posterior"`` use this one
posterior.
"""

from __future__ import annotations

import warnings

import numpy as np

from perser.errors import CountedWarning, PerserError

#: lapse rates and unit-scale noise levels tried when fitting the likelihood
EPS_GRID = (0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5)
SIGMA_GRID = (0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.7, 1.0)
#: noise used when none was fitted (lapse rate; unit-scale standard deviation)
DEFAULT_EPS = 0.1
DEFAULT_SIGMA = 0.25


def default_noise(space) -> np.ndarray:
    """:data:`DEFAULT_SIGMA` per dimension (dimensional spaces) or ``[DEFAULT_EPS]``."""
    if space.kind == "dimensional":
        return np.full(len(space.dimensions), DEFAULT_SIGMA)
    return np.array([DEFAULT_EPS])


def model_noise(model, warn: bool = True) -> np.ndarray:
    """The noise ``model`` fitted on its seen listeners at training time
    (``listener_noise_``), else :func:`default_noise` with a counted warning
    (a model folder saved before the noise was stored, or a model whose noise could
    not be fitted)."""
    v = getattr(model, "listener_noise_", None)
    if v is not None:
        return np.asarray(v, dtype=np.float64)
    if warn:
        kind = model.space_.kind
        what = f"sigma {DEFAULT_SIGMA}" if kind == "dimensional" else f"lapse {DEFAULT_EPS}"
        warnings.warn(CountedWarning(getattr(model, "name", "") or "model", f"model without a fitted listener noise "
                                     f"level (saved before it was stored with the model); the default {what} is used",
                                     1), stacklevel=2)
    return default_noise(model.space_)


# ------------------------------------------------------------------ likelihoods
def factor_probs(out: np.ndarray, kind: str, eps: float) -> np.ndarray:
    """Head outputs ``[n, H, O]`` (activated) as factor probabilities ``[n, H, F, V]``
    with the lapse mixed in: categorical one factor of C values, multilabel C binary factors."""
    if kind == "categorical":
        C = out.shape[-1]
        return ((1 - eps) * out + eps / C)[:, :, None, :]
    p = (1 - eps) * out + eps / 2
    return np.stack([1 - p, p], axis=-1)


def answer_codes(y: np.ndarray, kind: str) -> np.ndarray:
    """Labels as factor values ``[n, F]``."""
    y = np.asarray(y)
    if kind == "categorical":
        return y.astype(np.int64).reshape(-1, 1)
    return (y > 0.5).astype(np.int64).reshape(len(y), -1)


def loglik_classes(P: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """``[H]`` log-likelihood of answers ``codes [n, F]`` under factor probs ``P [n, H, F, V]``."""
    if len(codes) == 0:
        return np.zeros(P.shape[1])
    g = np.take_along_axis(P, codes[:, None, :, None].repeat(P.shape[1], axis=1), axis=3)[..., 0]  # [n, H, F]
    return np.log(g).sum(axis=(0, 2))


def loglik_dims(F: np.ndarray, y_unit: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """``[H]`` Gaussian log-likelihood of unit-scale answers ``[n, D]`` under head values ``F [n, H, D]``."""
    if len(y_unit) == 0:
        return np.zeros(F.shape[1])
    z = (y_unit[:, None, :] - F) / sigma
    return (-0.5 * z**2 - np.log(sigma)).sum(axis=(0, 2))


def unit_values(model, y: np.ndarray) -> np.ndarray:
    """Native-scale dimensional labels ``[n, D]`` on the model's unit scale."""
    from perser.methods.nets import to_unit

    return to_unit(np.asarray(y, dtype=np.float64), model.space_.scale).reshape(len(y), -1)


def logmeanexp(a: np.ndarray, axis: int = -1) -> np.ndarray:
    m = a.max(axis=axis, keepdims=True)
    return (m + np.log(np.exp(a - m).mean(axis=axis, keepdims=True))).squeeze(axis)


def head_loglik(model, X: np.ndarray, y: np.ndarray, noise) -> np.ndarray:
    """``[H]`` log-likelihood of labels ``y`` of clips ``X`` under each seen head of ``model``."""
    noise = np.atleast_1d(np.asarray(noise, dtype=np.float64))
    out = model.head_outputs(np.asarray(X, dtype=np.float32), activated=True).numpy().astype(np.float64)
    kind = model.space_.kind
    if kind == "dimensional":
        return loglik_dims(out, unit_values(model, y), noise)
    return loglik_classes(factor_probs(out, kind, float(noise[0])), answer_codes(y, kind))


def head_posterior(model, X: np.ndarray, y: np.ndarray, noise) -> np.ndarray:
    """Posterior probabilities ``[H]`` of the seen heads (order of ``head_annotators_``)
    given labels ``y`` of clips ``X``, uniform prior."""
    lw = head_loglik(model, X, y, noise)
    w = np.exp(lw - lw.max())
    return w / w.sum()


def fit_noise(model, train, max_listeners: int = 400) -> np.ndarray:
    """The likelihood's noise that best explains each seen listener of ``train`` (a
    :class:`~perser.methods.base.RatingSet`) by the mixture of the *other* listeners'
    heads (leave-own-head-out marginal likelihood, maximised on :data:`EPS_GRID` or,
    per dimension, :data:`SIGMA_GRID`). At most ``max_listeners`` listeners (the first
    in sorted order) are used; head outputs are computed one listener at a time, so
    memory stays at one listener's clips times the heads."""
    kind = model.space_.kind
    names = list(model.head_annotators_)
    index = {a: i for i, a in enumerate(names)}
    anns = sorted(set(np.asarray(train.annotator_ids).astype(str).tolist()))[: int(max_listeners)]
    grid = SIGMA_GRID if kind == "dimensional" else EPS_GRID
    D = len(model.space_.dimensions) if kind == "dimensional" else 1
    totals = np.zeros((len(grid), D))
    used = 0
    ids = np.asarray(train.annotator_ids).astype(str)
    for a in anns:
        keep = np.ones(len(names), dtype=bool)
        if a in index:
            keep[index[a]] = False
        if keep.sum() == 0:
            continue
        m = ids == a
        out = model.head_outputs(train.X[train.clip_index[m]], activated=True).numpy().astype(np.float64)[:, keep]
        y = train.y[m]
        used += 1
        if kind == "dimensional":
            yu = unit_values(model, y)
            for g, s in enumerate(grid):
                for d in range(D):
                    totals[g, d] += float(logmeanexp(loglik_dims(out[:, :, d:d + 1], yu[:, d:d + 1], np.array([s]))))
        else:
            codes = answer_codes(y, kind)
            for g, e in enumerate(grid):
                totals[g, 0] += float(logmeanexp(loglik_classes(factor_probs(out, kind, e), codes)))
    if not used:
        raise PerserError("fit_noise: no seen listener to fit the noise on (a listener needs another listener's head)")
    return np.array([grid[int(i)] for i in np.argmax(totals, axis=0)], dtype=np.float64)
