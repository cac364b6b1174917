"""Paper-mode metrics: the numbers the two seed papers report, computed as their authors do.

These sit *next to* perser's per-listener view and never replace it; every name starts
with ``paper_`` so that nobody mistakes one for the other (``docs/papers.md``).

Tavernor & Mower Provost (dimensional spaces), as the authors' code computes them
(``chailab-umich/ModelingIndividualAnnotators``):

``paper_ccc_ind/<dim>``
    per run (one seed, one test fold): :func:`~perser.methods.tavernor.tavernor_ccc`
    of each listener's test ratings and predictions, for listeners with **at least two**
    test clips, averaged over those listeners (``src/MIA/evaluation/metrics.py``,
    ``calculate_per_annotator_metrics``);
``paper_ccc_con/<dim>``
    per run: the same CCC between, per test clip, the mean of the predictions made for
    the evaluated listeners who rated it and the clip's consensus recomputed over those
    same listeners (``calculate_ccc_metrics``; the consensus is the mean over the kept
    annotators, ``SERDatasets/dataset_constructor.py``, ``build``).

The summary is the mean ± standard deviation (``numpy.std``, ddof 0) over the seed ×
fold runs and a paired t-test (``scipy.stats.ttest_rel``) over the same runs against
the baseline; ``*`` marks a significantly higher mean, ``†`` a lower one (p < 0.05), as
in the authors' ``journal_results.ipynb`` (``get_cell_values``).

perser's own view differs on purpose: ``ccc/<dim>`` is Lin's CCC per listener with folds
pooled, averaged over listeners with a bootstrap CI and a Wilcoxon test over listeners;
``ccc_con/<dim>`` uses the consensus of every listener of the corpus.

Meta-PerSER (multilabel spaces): ``macro_f1_sklearn`` (per listener, in
``results.csv``, see :func:`perser.evaluate.metrics.multilabel_metrics`) is
scikit-learn's macro-F1 over all classes, a class neither rated nor predicted counting 0.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pandas as pd

from perser.methods.tavernor import tavernor_ccc_np

RUN_COLUMNS = ["method", "scenario", "k", "seed", "fold", "metric", "value", "n_listeners"]
PAPER_SUMMARY_COLUMNS = ["method", "scenario", "k", "metric", "mean", "std", "n_runs", "baseline", "p_ttest", "mark"]
#: smallest number of test clips of a listener for CCC_ind (the authors skip listeners with one)
MIN_TEST_CLIPS = 2


def tavernor_runs(blocks, space) -> pd.DataFrame:
    """Per run (method, scenario, K, seed, fold): ``paper_ccc_ind/<dim>`` and
    ``paper_ccc_con/<dim>`` (see the module docstring). ``blocks`` are
    :class:`~perser.evaluate.runner.Block` of a dimensional space."""
    dims = list(space.dimensions)
    groups: dict[tuple, list] = defaultdict(list)
    for b in blocks:
        groups[(b.method, b.scenario, int(b.k), int(b.seed), str(b.fold))].append(b)
    rows = []
    for key, bs in sorted(groups.items(), key=lambda kv: tuple(str(x) for x in kv[0])):
        y_parts, p_parts, clips = [], [], []
        ind: dict[str, list[float]] = {d: [] for d in dims}
        for b in bs:
            y = np.asarray(b.y, dtype=np.float64).reshape(len(b.y), -1)
            v = np.asarray(b.values, dtype=np.float64).reshape(len(b.values), -1)
            if len(y) >= MIN_TEST_CLIPS:
                for j, d in enumerate(dims):
                    ind[d].append(tavernor_ccc_np(y[:, j], v[:, j]))
            y_parts.append(y)
            p_parts.append(v)
            clips.append(np.asarray(b.clip_ids, dtype=object))
        for d in dims:
            vals = ind[d]
            rows.append((*key, f"paper_ccc_ind/{d}", float(np.mean(vals)) if vals else float("nan"), len(vals)))
        df = pd.DataFrame(np.concatenate(p_parts), columns=[f"p_{d}" for d in dims])
        for j, d in enumerate(dims):
            df[d] = np.concatenate(y_parts)[:, j]
        df["clip_id"] = np.concatenate(clips)
        per_clip = df.groupby("clip_id", sort=True).mean()
        for d in dims:
            value = tavernor_ccc_np(per_clip[d].to_numpy(), per_clip[f"p_{d}"].to_numpy()) if len(per_clip) >= 2 else float("nan")
            rows.append((*key, f"paper_ccc_con/{d}", value, len(bs)))
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def paper_summary(runs: pd.DataFrame, baseline: str = "consensus", alpha: float = 0.05) -> pd.DataFrame:
    """Mean ± std (ddof 0) over the seed × fold runs, and the authors' paired t-test
    against ``baseline`` on the same runs (``*`` higher, ``†`` lower at ``alpha``)."""
    from scipy.stats import ttest_rel

    out = []
    if runs.empty:
        return pd.DataFrame(columns=PAPER_SUMMARY_COLUMNS)
    for (scen, k, metric), g in runs.groupby(["scenario", "k", "metric"], sort=True):
        wide = g.pivot_table(index=["seed", "fold"], columns="method", values="value", aggfunc="first")
        for method in sorted(wide.columns):
            v = wide[method].dropna()
            mean, std = float(v.mean()) if len(v) else float("nan"), float(np.std(v.to_numpy())) if len(v) else float("nan")
            p, mark = float("nan"), ""
            if method != baseline and baseline in wide.columns:
                pair = wide[[method, baseline]].dropna()
                if len(pair) >= 2 and not np.allclose(pair[method].to_numpy(), pair[baseline].to_numpy()):
                    p = float(ttest_rel(pair[method], pair[baseline]).pvalue)
                    if p < alpha:
                        mark = "*" if pair[method].mean() > pair[baseline].mean() else "†"
            out.append((method, scen, int(k), metric, mean, std, int(len(v)), baseline, p, mark))
    return pd.DataFrame(out, columns=PAPER_SUMMARY_COLUMNS)


def paper_tables(blocks, space, baseline: str = "consensus") -> dict[str, pd.DataFrame]:
    """``{"paper_runs.csv": ..., "paper_summary.csv": ...}`` for a dimensional space;
    empty for the class spaces (their paper-mode metric is in ``results.csv``)."""
    if space.kind != "dimensional" or not blocks:
        return {}
    runs = tavernor_runs(blocks, space)
    return {"paper_runs.csv": runs, "paper_summary.csv": paper_summary(runs, baseline)}


def print_paper_summary(summary: pd.DataFrame, console=None) -> None:
    """The paper-mode terminal table: method × K, ``mean ± std`` per metric with the marks."""
    from rich.table import Table

    if summary is None or summary.empty:
        return
    if console is None:
        from perser.evaluate.report import wide_console

        console = wide_console()
    base = str(summary["baseline"].iloc[0])
    for scen in [s for s in ("unseen", "seen") if s in set(summary["scenario"])]:
        s = summary[summary["scenario"] == scen]
        metrics = sorted(set(s["metric"]), key=lambda m: (not m.startswith("paper_ccc_ind"), m))
        t = Table(title=f"paper mode (Tavernor & Mower Provost), {scen} listeners — mean ± std over seed × fold "
                        f"runs; *: higher, †: lower than {base} (paired t-test over runs, p < 0.05)",
                  title_justify="left")
        t.add_column("method", justify="left", no_wrap=True)
        t.add_column("K", justify="right")
        for m in metrics:
            t.add_column(m, justify="right", no_wrap=True)
        for (method, k), g in s.groupby(["method", "k"], sort=True):
            cells = []
            for m in metrics:
                r = g[g["metric"] == m]
                cells.append("" if r.empty else f"{r['mean'].iloc[0]:.3f} ± {r['std'].iloc[0]:.3f}{r['mark'].iloc[0]}")
            t.add_row(str(method), str(k), *cells)
        console.print(t)


def predictions_frame(blocks, space) -> pd.DataFrame:
    """Every prediction of a run, one row per (method, scenario, K, seed, fold, listener, clip).

    Columns: ``method, scenario, k, seed, fold, listener, clip_id``, then the listener's
    label(s) and the prediction: dimensional ``<dim>`` and ``pred_<dim>``; categorical
    ``label`` (class name) and ``p_<class>``; multilabel ``label`` (classes joined by
    ``;``) and ``p_<class>``.
    """
    if not blocks:
        return pd.DataFrame(columns=["method", "scenario", "k", "seed", "fold", "listener", "clip_id"])
    # one frame from arrays joined over the blocks (a frame per block costs ~1 ms each: minutes
    # for the tens of thousands of blocks of a corpus with thousands of listeners)
    n = np.array([len(b.clip_ids) for b in blocks], dtype=np.int64)

    def each(values, dtype=object):
        return np.repeat(np.asarray(values, dtype=dtype), n)

    df = pd.DataFrame({
        "method": each([b.method for b in blocks]), "scenario": each([b.scenario for b in blocks]),
        "k": each([int(b.k) for b in blocks], np.int64), "seed": each([int(b.seed) for b in blocks], np.int64),
        "fold": each([str(b.fold) for b in blocks]), "listener": each([str(b.annotator) for b in blocks]),
        "clip_id": np.concatenate([np.asarray(b.clip_ids, dtype=object) for b in blocks]),
    })

    width = len(space.dimensions) if space.kind == "dimensional" else len(space.classes)

    def joined(attr: str) -> np.ndarray:  # [rows, width] (a block without clips adds none)
        return np.concatenate([np.asarray(getattr(b, attr), dtype=np.float64).reshape(k, width)
                               for b, k in zip(blocks, n)])

    if space.kind == "dimensional":
        y, v = joined("y"), joined("values")
        for j, d in enumerate(space.dimensions):
            df[d] = y[:, j]
        for j, d in enumerate(space.dimensions):
            df[f"pred_{d}"] = v[:, j]
        return df
    classes = list(space.classes)
    if space.kind == "categorical":
        df["label"] = np.asarray(classes, dtype=object)[np.concatenate([np.asarray(b.y).ravel() for b in blocks]).astype(np.int64)]
    else:
        ind = joined("y") > 0.5
        df["label"] = [";".join(c for c, on in zip(classes, row) if on) for row in ind]
    proba = joined("proba")
    for j, c in enumerate(classes):
        df[f"p_{c}"] = proba[:, j]
    return df
