"""Paired comparisons of enrollment strategies on the same listeners.

Every non-random strategy's results (method ``<method>+<strategy>``) are compared with
the same method enrolled at random (method ``<method>``), listener by listener (each
listener's metric averaged over seeds and folds):

* at the same K (does the strategy ever do worse than random?);
* the strategy at K against random at a larger K' (``k_ratio``: K' = 2K by default,
  "5 chosen clips reach what 10 random ones reach").

``gain`` is the mean paired difference strategy - random, sign-flipped for
lower-is-better metrics (positive: the strategy is better); ``ci_low``/``ci_high`` its
bootstrap CI; ``p`` the two-sided Wilcoxon signed-rank p-value.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from perser.evaluate.metrics import bootstrap_ci, paired_wilcoxon
from perser.evaluate.scoring import NOT_METRICS, lower_is_better

COLUMNS = ["method", "strategy", "scenario", "metric", "k", "random_k", "n", "strategy_mean", "random_mean", "gain",
           "ci_low", "ci_high", "p"]


def strategy_tests(results: pd.DataFrame, k_ratio: int = 2, n_boot: int = 2000, level: float = 0.95,
                   seed: int = 0) -> pd.DataFrame:
    """The paired tests of every ``<method>+<strategy>`` against ``<method>`` (module docstring)."""
    res = results[~results["metric"].isin(NOT_METRICS) & (results["annotator"] != "")]
    names = sorted({m for m in res["method"].unique() if "+" in m})
    rows = []
    for name in names:
        method, strategy = name.split("+", 1)
        sub = res[res["method"].isin([name, method])]
        if method not in set(sub["method"]):
            continue
        per = sub.groupby(["method", "scenario", "metric", "k", "annotator"])["value"].mean()
        for (scen, metric), g in sub.groupby(["scenario", "metric"]):
            sign = -1.0 if lower_is_better(metric) else 1.0
            ks = sorted(set(g.loc[g["method"] == name, "k"]))
            rks = set(g.loc[g["method"] == method, "k"])
            for k in ks:
                for rk in (k, k * k_ratio):
                    if rk not in rks:
                        continue
                    a = per.loc[(name, scen, metric, k)]
                    b = per.loc[(method, scen, metric, rk)]
                    common = a.index.intersection(b.index)
                    av, bv = a.loc[common].to_numpy(float), b.loc[common].to_numpy(float)
                    ok = ~(np.isnan(av) | np.isnan(bv))
                    d = sign * (av[ok] - bv[ok])
                    lo, hi = bootstrap_ci(d, n_boot=n_boot, level=level, seed=seed) if len(d) else (np.nan, np.nan)
                    rows.append((method, strategy, scen, metric, int(k), int(rk), int(ok.sum()),
                                 float(av[ok].mean()) if ok.any() else np.nan,
                                 float(bv[ok].mean()) if ok.any() else np.nan,
                                 float(d.mean()) if len(d) else np.nan, lo, hi, paired_wilcoxon(av[ok], bv[ok])))
    return pd.DataFrame(rows, columns=COLUMNS)
