"""Metrics of one listener's predictions, and their aggregation over listeners.

Every categorical metric is computed from predicted *probabilities*. Two decisions
turn a distribution into a class, and each metric's name says which it uses:

``argmax``
    the most probable class (what accuracy rewards);
``balanced``
    the most probable class after dividing the distribution by that listener's
    *predicted* label prior, the mean predicted distribution over the listener's
    test clips (no true labels are used). A listener who rarely says "happy" has a
    small predicted prior for it, so the balanced decision still predicts "happy"
    where it is relatively likely; UAR and macro-F1 reward that decision.

Dimensional metrics are perser's per-listener view of Tavernor & Mower Provost's two
measures, *not* their computation: ``ccc`` is each listener's concordance correlation
coefficient (Lin's, population moments) per dimension with folds pooled, averaged over
listeners by the summary; ``ccc_con`` compares, per clip, the mean of the listeners'
predictions with the consensus (mean) label of every listener of the corpus. The
authors' per-fold CCC_ind and CCC_con, with their CCC estimator, are
``paper_ccc_ind``/``paper_ccc_con`` (:mod:`perser.evaluate.paper_metrics`).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

#: metrics where a smaller value is better (everything else: larger is better)
LOWER_IS_BETTER = frozenset({"log_loss", "brier"})

#: one line per metric family, shown in reports
DESCRIPTIONS: dict[str, str] = {
    "accuracy_argmax": "agreement with the listener's label, argmax decision",
    "log_loss": "negative log-likelihood of the listener's label under the predicted distribution (natural log)",
    "brier": "Brier score: squared error of the predicted distribution against the one-hot label, summed over classes",
    "macro_f1_argmax": "macro-F1 over the classes present in the listener's labels or predictions, argmax decision",
    "uar_argmax": "unweighted average recall over the listener's classes, argmax decision",
    "macro_f1_balanced": "macro-F1, balanced decision (distribution / listener's predicted label prior)",
    "uar_balanced": "unweighted average recall, balanced decision (distribution / listener's predicted label prior)",
    "macro_f1": "multilabel macro-F1 over the classes present in the listener's labels or predictions, a class "
                "is on when its probability >= threshold",
    "macro_f1_sklearn": "multilabel macro-F1 as scikit-learn's f1_score(average='macro', zero_division=0): over all "
                        "classes, a class neither rated nor predicted counts 0 (Meta-PerSER's paper-mode metric)",
    "micro_f1": "multilabel micro-F1, same threshold",
    "ccc": "concordance correlation coefficient of one listener's ratings and predictions (CCC_ind per dimension)",
    "ccc_con": "CCC of the mean of the listeners' predictions per clip against the consensus (mean) label",
    "retrieval": "fraction of enrollments in which 'similar' chose a seen listener of the same perception style",
}

EPS = 1e-12


# ---------------------------------------------------------------- categorical
def _check_proba(proba: np.ndarray, y: np.ndarray) -> np.ndarray:
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2 or len(proba) != len(y):
        raise ValueError(f"proba must be [n, C] with n={len(y)}, got shape {proba.shape}")
    return proba


def log_loss(y: np.ndarray, proba: np.ndarray) -> float:
    """Mean negative log-probability of the true class (probabilities clipped at 1e-12)."""
    y = np.asarray(y, dtype=np.int64)
    proba = _check_proba(proba, y)
    p = proba / np.clip(proba.sum(axis=1, keepdims=True), EPS, None)
    return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], EPS, 1.0))))


def brier(y: np.ndarray, proba: np.ndarray) -> float:
    """Mean over clips of ``sum_c (p_c - [y = c])^2`` (0 perfect, 2 worst)."""
    y = np.asarray(y, dtype=np.int64)
    proba = _check_proba(proba, y)
    onehot = np.zeros_like(proba)
    onehot[np.arange(len(y)), y] = 1.0
    return float(np.mean(np.sum((proba - onehot) ** 2, axis=1)))


def balanced_decision(proba: np.ndarray, prior: np.ndarray | None = None) -> np.ndarray:
    """Class indices ``argmax_c p_c / prior_c``.

    ``prior`` defaults to the mean of ``proba`` over its rows: the listener's
    predicted label prior on the clips being scored.
    """
    proba = np.asarray(proba, dtype=np.float64)
    if prior is None:
        prior = proba.mean(axis=0)
    return np.argmax(proba / np.clip(np.asarray(prior, dtype=np.float64), EPS, None), axis=1)


def categorical_metrics(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """All categorical metrics of one listener's test clips.

    Parameters
    ----------
    y:
        ``int64 [n]`` the listener's class indices.
    proba:
        ``[n, C]`` predicted distributions.
    """
    y = np.asarray(y, dtype=np.int64)
    proba = _check_proba(proba, y)
    arg = proba.argmax(axis=1)
    bal = balanced_decision(proba)
    return {
        "accuracy_argmax": float(np.mean(arg == y)),
        "log_loss": log_loss(y, proba),
        "brier": brier(y, proba),
        "macro_f1_argmax": macro_f1(y, arg, proba.shape[1]),
        "uar_argmax": uar(y, arg, proba.shape[1]),
        "macro_f1_balanced": macro_f1(y, bal, proba.shape[1]),
        "uar_balanced": uar(y, bal, proba.shape[1]),
    }


def confusion(y: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """``[C, C]`` counts, rows the true class, columns the decided class."""
    y = np.asarray(y, dtype=np.int64)
    pred = np.asarray(pred, dtype=np.int64)
    return np.bincount(y * n_classes + pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def uar(y: np.ndarray, pred: np.ndarray, n_classes: int | None = None) -> float:
    """Unweighted average recall over the classes present in ``y``
    (equals scikit-learn's ``balanced_accuracy_score``)."""
    C = int(max(np.max(y), np.max(pred)) + 1) if n_classes is None else n_classes
    cm = confusion(y, pred, C)
    support = cm.sum(axis=1)
    present = support > 0
    return float(np.mean(np.diag(cm)[present] / support[present]))


def macro_f1(y: np.ndarray, pred: np.ndarray, n_classes: int | None = None) -> float:
    """Macro-F1 over the classes present in ``y`` or ``pred``
    (equals scikit-learn's ``f1_score(average="macro")``)."""
    C = int(max(np.max(y), np.max(pred)) + 1) if n_classes is None else n_classes
    cm = confusion(y, pred, C)
    tp = np.diag(cm).astype(np.float64)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    used = (cm.sum(axis=0) + cm.sum(axis=1)) > 0
    return float(np.mean(2 * tp[used] / (2 * tp[used] + fp[used] + fn[used])))


# ----------------------------------------------------------------- multilabel
def multilabel_metrics(y: np.ndarray, proba: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Macro- and micro-F1 of ``proba >= threshold`` against 0/1 indicators ``y [n, C]``.

    ``macro_f1`` averages over the classes that occur in the labels or the predictions
    (a class neither said nor predicted is left out rather than counted as 0 or 1);
    ``macro_f1_sklearn`` is scikit-learn's default macro-F1 over all classes with
    ``zero_division=0``, so such a class counts 0 (the paper-mode metric of Meta-PerSER).
    """
    from sklearn.metrics import f1_score

    y = np.asarray(y) > 0.5
    pred = np.asarray(proba) >= threshold
    if y.shape != pred.shape:
        raise ValueError(f"labels {y.shape} and predictions {pred.shape} differ in shape")
    tp = (y & pred).sum(axis=0).astype(np.float64)
    fp = (~y & pred).sum(axis=0)
    fn = (y & ~pred).sum(axis=0)
    used = (tp + fp + fn) > 0
    macro = float(np.mean(2 * tp[used] / (2 * tp[used] + fp[used] + fn[used]))) if used.any() else 1.0
    den = 2 * tp.sum() + fp.sum() + fn.sum()
    micro = float(2 * tp.sum() / den) if den > 0 else 1.0
    sk = float(f1_score(y, pred, average="macro", zero_division=0))
    return {"macro_f1": macro, "macro_f1_sklearn": sk, "micro_f1": micro,
            "subset_accuracy": float(np.mean((y == pred).all(axis=1)))}


# ---------------------------------------------------------------- dimensional
def ccc(y: np.ndarray, pred: np.ndarray) -> float:
    """Lin's concordance correlation coefficient of two 1-D arrays (population moments).

    ``2 cov / (var_y + var_p + (mean_y - mean_p)^2)``; ``nan`` when both are constant
    and equal means make it undefined (0/0).
    """
    y = np.asarray(y, dtype=np.float64).ravel()
    p = np.asarray(pred, dtype=np.float64).ravel()
    if len(y) != len(p) or len(y) == 0:
        raise ValueError(f"ccc needs two equally long non-empty arrays, got {len(y)} and {len(p)}")
    my, mp = y.mean(), p.mean()
    cov = np.mean((y - my) * (p - mp))
    den = y.var() + p.var() + (my - mp) ** 2
    if den <= 0:
        return float("nan")
    return float(2 * cov / den)


def dimensional_metrics(y: np.ndarray, values: np.ndarray, dimensions: tuple[str, ...]) -> dict[str, float]:
    """Per-dimension CCC (``ccc/<dim>``) and its mean over dimensions (``ccc/mean``)."""
    y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    v = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    out = {f"ccc/{d}": ccc(y[:, j], v[:, j]) for j, d in enumerate(dimensions)}
    vals = [x for x in out.values() if np.isfinite(x)]
    out["ccc/mean"] = float(np.mean(vals)) if vals else float("nan")
    return out


# ---------------------------------------------------------------- aggregation
def bootstrap_ci(
    values: np.ndarray, n_boot: int = 2000, level: float = 0.95, seed: int = 0,
    stat: Callable[[np.ndarray], float] = np.mean,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of ``stat`` over units (e.g. listeners).

    NaN values are left out. One unit gives ``(x, x)``; none gives ``(nan, nan)``.
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return float("nan"), float("nan")
    if len(v) == 1:
        return float(v[0]), float(v[0])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(v), size=(n_boot, len(v)))
    if stat is np.mean:
        boots = v[idx].mean(axis=1)
    else:
        boots = np.array([stat(v[i]) for i in idx])
    a = (1 - level) / 2
    lo, hi = np.quantile(boots, [a, 1 - a])
    return float(lo), float(hi)


def paired_wilcoxon(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided p-value of the Wilcoxon signed-rank test of paired values ``a`` vs ``b``.

    Pairs with a NaN are dropped; ``nan`` when fewer than two pairs differ (the
    test is undefined), ``1.0`` when every pair is equal.
    """
    from scipy.stats import wilcoxon

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    d = a[ok] - b[ok]
    if len(d) == 0:
        return float("nan")
    if np.all(d == 0):
        return 1.0
    if np.count_nonzero(d) < 2:
        return float("nan")
    return float(wilcoxon(a[ok], b[ok], zero_method="wilcox", alternative="two-sided").pvalue)
