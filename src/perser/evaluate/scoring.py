"""From predictions to ``results.csv`` (long) and ``summary.csv`` (with CIs and p-values).

Listener-level metrics are computed per listener on their test clips. With
``pool_folds=True`` (default) a listener's predictions from all folds of one seed are
pooled first (each of their test clips is predicted once per seed, by the profile
enrolled in that clip's fold), so small per-fold test sets do not make UAR, F1 or CCC
erratic; the ``fold`` column then reads ``all``.

In the summary a listener is the unit: their values are averaged over seeds (and
folds), the mean over listeners gets a percentile bootstrap CI over listeners, and
each method is compared with ``consensus`` and with the configured baseline on the
same listeners by a two-sided Wilcoxon signed-rank test. Corpus-level metrics
(``ccc_con``) have one value per seed (and fold); the seed is then the unit.

``summary.csv`` columns (:data:`SUMMARY_COLUMNS`), first the core ones, then the
extra ones:

``method, scenario, k, metric``
    the row's cell;
``mean, ci_low, ci_high``
    mean over units and its percentile bootstrap CI;
``p_vs_consensus``
    Wilcoxon p-value of the method against ``consensus`` -- always against
    ``consensus``, whatever the baseline; empty for ``consensus`` itself and when
    ``consensus`` was not run;
``unit, n``
    what one value is (``listener`` or ``seed/fold``) and how many there are;
``baseline``
    the method that ``gain_vs_baseline`` and ``p_vs_baseline`` compare against (the
    config's ``baseline``, default ``consensus``: then ``p_vs_baseline`` equals
    ``p_vs_consensus``);
``gain_vs_baseline, p_vs_baseline``
    mean paired gain (positive = better) and Wilcoxon p-value against ``baseline``;
``decision``
    how the metric turns predictions into labels: ``argmax``, ``balanced``
    (distribution divided by the listener's predicted label prior), ``probabilities``
    (log-loss, Brier: no decision), ``threshold 0.5`` (multilabel: a class is on when
    its probability reaches the threshold; a range ``threshold 0.3-0.6 (range over
    listeners)`` when the method's threshold varies), ``values`` (dimensional) or
    ``profile`` (retrieval).

Multilabel runs also write ``threshold`` rows to ``results.csv``: the decision
threshold behind that listener's F1 values (with pooled folds whose thresholds
differ, each fold's predictions are decided with their own threshold, ``threshold``
is the lowest and ``threshold_max`` the highest).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pandas as pd

from perser.evaluate.metrics import (
    LOWER_IS_BETTER,
    bootstrap_ci,
    categorical_metrics,
    ccc,
    dimensional_metrics,
    multilabel_metrics,
    paired_wilcoxon,
)
from perser.evaluate.protocol import EvalData
from perser.evaluate.runner import Block

RESULT_COLUMNS = ["method", "scenario", "k", "seed", "fold", "annotator", "metric", "value"]
#: the core columns first (method ... p_vs_consensus), then the extra ones
SUMMARY_COLUMNS = ["method", "scenario", "k", "metric", "mean", "ci_low", "ci_high", "p_vs_consensus",
                   "unit", "n", "baseline", "gain_vs_baseline", "p_vs_baseline", "decision"]

#: results.csv rows that describe a listener's test set or decision, not metrics
NOT_METRICS = ("n_test", "threshold", "threshold_max")
MULTILABEL_METRICS = frozenset({"macro_f1", "macro_f1_sklearn", "micro_f1", "subset_accuracy"})


def base_metric(metric: str) -> str:
    """``ccc/arousal`` -> ``ccc``; ``uar_balanced`` -> ``uar_balanced``."""
    return metric.split("/")[0]


def lower_is_better(metric: str) -> bool:
    return base_metric(metric) in LOWER_IS_BETTER


def metric_decision(metric: str) -> str:
    """How ``metric`` turns predictions into labels (multilabel: ``threshold``, refined by :func:`summarize`)."""
    b = base_metric(metric)
    if b.endswith("_argmax"):
        return "argmax"
    if b.endswith("_balanced"):
        return "balanced"
    if b in LOWER_IS_BETTER:
        return "probabilities"
    if b in MULTILABEL_METRICS:
        return "threshold"
    if b in ("ccc", "ccc_con"):
        return "values"
    if b == "retrieval":
        return "profile"
    return ""


def threshold_text(lo: float, hi: float) -> str:
    """``threshold 0.5`` or ``threshold 0.3-0.6 (range over listeners)``."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "threshold"
    return f"threshold {lo:g}" if lo == hi else f"threshold {lo:g}-{hi:g} (range over listeners)"


def _metrics(space, y, proba, values, threshold) -> dict[str, float]:
    if space.kind == "categorical":
        return categorical_metrics(y, proba)
    if space.kind == "multilabel":
        return multilabel_metrics(y, proba, threshold)
    return dimensional_metrics(y, values, space.dimensions)


def chosen_annotators(profile: dict, seen: set[str]) -> tuple[list[str], list[float]]:
    """The seen listeners a profile copies, with weights.

    Reads ``heads``/``weights`` (``similar``, ``random-annotator``), a
    ``per_dimension`` mapping (equal weights) or an ``annotator`` entry; ids that are
    not seen listeners (e.g. a consensus head) are left out.
    """
    if "heads" in profile:
        heads = [str(h) for h in profile["heads"]]
        w = list(profile.get("weights") or [1.0] * len(heads))
    elif isinstance(profile.get("per_dimension"), dict):
        heads = [str(h) for h in profile["per_dimension"].values()]
        w = [1.0] * len(heads)
    elif isinstance(profile.get("annotator"), str):
        heads, w = [profile["annotator"]], [1.0]
    else:
        return [], []
    keep = [(h, float(x)) for h, x in zip(heads, w) if h in seen]
    return [h for h, _ in keep], [x for _, x in keep]


def score_blocks(
    blocks: list[Block], data: EvalData, pool_folds: bool = True, style_column: str | None = "style",
) -> pd.DataFrame:
    """Long results table (see :data:`RESULT_COLUMNS`)."""
    space = data.space
    rows: list[tuple] = []
    groups: dict[tuple, list[Block]] = defaultdict(list)
    for b in blocks:
        key = (b.method, b.scenario, b.k, b.seed, "all" if pool_folds else b.fold, b.annotator)
        groups[key].append(b)
    for key, bs in groups.items():
        y = np.concatenate([b.y for b in bs])
        proba = None if bs[0].proba is None else np.concatenate([b.proba for b in bs])
        values = None if bs[0].values is None else np.concatenate([b.values for b in bs])
        thresholds = [float(b.threshold) for b in bs]
        thr = thresholds[0]
        if space.kind == "multilabel" and len(set(thresholds)) > 1:
            # pooled folds decided with different thresholds: each fold's own decision, then one F1
            proba = np.concatenate([(b.proba >= b.threshold).astype(np.float64) for b in bs])
            thr = 0.5
        for metric, value in _metrics(space, y, proba, values, thr).items():
            rows.append((*key, metric, value))
        if space.kind == "multilabel":  # the decision threshold behind the F1 values of this row group
            rows.append((*key, "threshold", min(thresholds)))
            if max(thresholds) != min(thresholds):
                rows.append((*key, "threshold_max", max(thresholds)))
        rows.append((*key, "n_test", float(len(y))))
    # retrieval: did the method's profile name a seen listener of the listener's own style?
    styles = None
    if style_column and data.annotators is not None and style_column in data.annotators.columns:
        styles = data.annotators[style_column].astype(str)
        styles.index = styles.index.astype(str)
        seen_all = set(data.ratings["annotator_id"].unique()) & set(styles.index)
        ret: dict[tuple, list[float]] = defaultdict(list)
        for b in blocks:
            if b.annotator not in styles.index or not b.profile:
                continue
            chosen, w = chosen_annotators(b.profile, seen_all - {b.annotator})
            if not chosen:
                continue
            same = np.average([styles.get(c) == styles[b.annotator] for c in chosen], weights=w)
            key = (b.method, b.scenario, b.k, b.seed, "all" if pool_folds else b.fold, b.annotator)
            ret[key].append(float(same))
        for key, v in ret.items():
            rows.append((*key, "retrieval", float(np.mean(v))))
    if space.kind == "dimensional":
        rows.extend(_ccc_con(blocks, data, pool_folds))
    out = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    out["fold"] = out["fold"].astype(str)
    out["k"] = out["k"].astype(int)
    out["seed"] = out["seed"].astype(int)
    return out.sort_values(["method", "scenario", "k", "seed", "fold", "annotator", "metric"], kind="stable",
                           ignore_index=True)


def consensus_values(data: EvalData) -> pd.DataFrame:
    """Mean rating per clip over every listener of the evaluation data (the consensus label)."""
    cols = list(data.space.dimensions)
    return data.ratings.groupby("clip_id")[cols].mean()


def _ccc_con(blocks: list[Block], data: EvalData, pool_folds: bool) -> list[tuple]:
    cons = consensus_values(data)
    dims = list(data.space.dimensions)
    groups: dict[tuple, list[Block]] = defaultdict(list)
    for b in blocks:
        groups[(b.method, b.scenario, b.k, b.seed, "all" if pool_folds else b.fold)].append(b)
    rows = []
    for key, bs in groups.items():
        ids = np.concatenate([b.clip_ids for b in bs])
        vals = np.concatenate([b.values for b in bs])
        df = pd.DataFrame(vals, columns=dims)
        df["clip_id"] = ids
        mean_pred = df.groupby("clip_id")[dims].mean()
        truth = cons.loc[mean_pred.index]
        per = {d: ccc(truth[d].to_numpy(), mean_pred[d].to_numpy()) for d in dims}
        for d, v in per.items():
            rows.append((*key, "", f"ccc_con/{d}", v))
        rows.append((*key, "", "ccc_con/mean", float(np.nanmean(list(per.values())))))
    return rows


def summarize(
    results: pd.DataFrame, baseline: str = "consensus", n_boot: int = 2000, level: float = 0.95, seed: int = 0,
) -> pd.DataFrame:
    """One row per (method, scenario, k, metric) with mean, bootstrap CI and the paired tests.

    ``gain_vs_baseline`` is the mean paired difference method - baseline, sign-flipped
    for lower-is-better metrics so that a positive gain is always an improvement.
    ``p_vs_baseline`` and ``p_vs_consensus`` are two-sided Wilcoxon signed-rank
    p-values on the paired units against ``baseline`` and against ``consensus``
    (empty for the method itself and where no pairs exist).
    """
    res = results[~results["metric"].isin(NOT_METRICS)]
    thr = results[results["metric"].isin(["threshold", "threshold_max"])]
    thr_range = thr.groupby(["method", "scenario", "k"])["value"].agg(["min", "max"]) if len(thr) else None
    out = []
    for (scen, k, metric), g in res.groupby(["scenario", "k", "metric"], sort=True):
        corpus_level = (g["annotator"] == "").all()
        unit_cols = ["seed", "fold"] if corpus_level else ["annotator"]
        per_unit = g.groupby(["method", *unit_cols])["value"].mean()
        methods_here = set(per_unit.index.get_level_values(0))

        def units_of(name):
            return per_unit.xs(name, level="method") if name in methods_here else None

        base, cons = units_of(baseline), units_of("consensus")
        sign = -1.0 if lower_is_better(metric) else 1.0
        for method, vals in per_unit.groupby(level="method", sort=True):
            v = vals.droplevel("method")
            lo, hi = bootstrap_ci(v.to_numpy(), n_boot=n_boot, level=level, seed=seed)
            gain, p = _paired(v, base, sign) if method != baseline else (np.nan, np.nan)
            if baseline == "consensus":  # the same test
                p_cons = p
            else:
                p_cons = _paired(v, cons, sign)[1] if method != "consensus" else np.nan
            decision = metric_decision(metric)
            if decision == "threshold" and thr_range is not None and (method, scen, k) in thr_range.index:
                decision = threshold_text(*thr_range.loc[(method, scen, k)].to_numpy(dtype=float))
            out.append((method, scen, int(k), metric,
                        float(np.nanmean(v.to_numpy())) if v.notna().any() else np.nan, lo, hi, p_cons,
                        "seed/fold" if corpus_level else "listener", int(v.notna().sum()), baseline, gain, p,
                        decision))
    return pd.DataFrame(out, columns=SUMMARY_COLUMNS)


def _paired(v: pd.Series, ref: pd.Series | None, sign: float) -> tuple[float, float]:
    """(mean signed gain, Wilcoxon p) of ``v`` against ``ref`` on their common units."""
    if ref is None:
        return np.nan, np.nan
    common = v.index.intersection(ref.index)
    if not len(common):
        return np.nan, np.nan
    a, b = v.loc[common].to_numpy(), ref.loc[common].to_numpy()
    return float(np.nanmean(sign * (a - b))), paired_wilcoxon(a, b)


def listener_gains(results: pd.DataFrame, metric: str, scenario: str, k: int, baseline: str = "consensus") -> pd.DataFrame:
    """Per-listener gain over the baseline (positive = better), one column per method."""
    g = results[(results["metric"] == metric) & (results["scenario"] == scenario) & (results["k"] == k)]
    if g.empty:
        return pd.DataFrame()
    per = g.groupby(["annotator", "method"])["value"].mean().unstack("method")
    if baseline not in per.columns:
        return pd.DataFrame()
    sign = -1.0 if lower_is_better(metric) else 1.0
    return per.drop(columns=[baseline]).sub(per[baseline], axis=0).mul(sign)


def confusion_counts(blocks: list[Block], data: EvalData) -> pd.DataFrame:
    """Counts of (true class, decided class) per method, scenario, K and decision (categorical only)."""
    from perser.evaluate.metrics import balanced_decision

    if data.space.kind != "categorical":
        return pd.DataFrame(columns=["method", "scenario", "k", "decision", "true", "pred", "count"])
    classes = data.space.classes
    C = len(classes)
    acc: dict[tuple, np.ndarray] = defaultdict(lambda: np.zeros((C, C), dtype=np.int64))
    listener_groups: dict[tuple, list[Block]] = defaultdict(list)
    for b in blocks:
        listener_groups[(b.method, b.scenario, b.k, b.seed, b.annotator)].append(b)
    for (method, scen, k, _seed, _a), bs in listener_groups.items():
        y = np.concatenate([b.y for b in bs])
        p = np.concatenate([b.proba for b in bs])
        for decision, pred in (("argmax", p.argmax(axis=1)), ("balanced", balanced_decision(p))):
            np.add.at(acc[(method, scen, k, decision)], (y, pred), 1)
    rows = []
    for (method, scen, k, decision), m in acc.items():
        for i in range(C):
            for j in range(C):
                rows.append((method, scen, k, decision, classes[i], classes[j], int(m[i, j])))
    return pd.DataFrame(rows, columns=["method", "scenario", "k", "decision", "true", "pred", "count"])
