"""The Meta-PerSER recipe's set-up on the demo corpus: ``meta`` vs the same-start fine-tune
baseline (``meta-finetune``) vs ``consensus``, with the paper-mode metric.

IEMOCAP was not available where they were chosen, so the recipe's methods and settings
(``perser/recipes/meta-perser-iemocap.yaml``: two linear layers, the consensus model as
meta's start, MAML++ with the values chosen by ``meta_select.py``; ``meta-finetune``:
the same network and start, no meta-training, plain fine-tuning with the same inner
steps and learning rate) run on the synthetic demo corpus, its categorical ratings read as
multilabel ratings with one class ticked (the paper's task is multilabel). The demo's
seen listeners train; its new listeners are enrolled with K of their ratings of
training-fold clips and tested on their ratings of clips by unseen speakers (3
speaker-independent folds). Features: eGeMAPS (the paper's SSL upstream needs model
weights, none ship). The numbers say nothing about the paper's tables.

    python benchmarks/papers/meta_demo.py --out /tmp/perser-meta-demo

Prints, per method and K, macro_f1_sklearn (the paper-mode metric: scikit-learn's
macro-F1 over all classes, a class neither rated nor predicted counting 0), perser's
macro_f1 (present classes) and micro_f1, as the mean over listeners [95% bootstrap CI]
with the Wilcoxon p against ``consensus``, the Wilcoxon p of ``meta`` against
``meta-finetune`` on the same listeners, and the time of each step.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))

from meta_select import _cpu, derive_corpus  # noqa: E402

METHODS = ["consensus", "meta-finetune", "meta"]
METRICS = ["macro_f1_sklearn", "macro_f1", "micro_f1"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("/tmp/perser-meta-demo"))
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--k", default="5,10,20")
    args = ap.parse_args()

    from scipy.stats import wilcoxon

    from perser.config import load_config, recipe_path
    from perser.evaluate import evaluate
    from perser.evaluate.demo import build_corpus

    t0, c0 = time.perf_counter(), _cpu()
    corpus = derive_corpus(build_corpus(args.out), args.out / "multilabel", seen_only=False)
    recipe = load_config(recipe_path("meta-perser-iemocap"), {"corpus": "x", "features": "egemaps"})
    cfg = load_config(overrides={
        "name": "meta-perser-recipe-on-demo", "corpus": str(corpus), "format": "table", "space": "emotion",
        "features": "egemaps", "feature_cache": str(args.out / "features"), "methods": METHODS,
        "method_params": {m: dict(recipe.method_params[m]) for m in METHODS},
        "k": [int(k) for k in args.k.split(",")], "seeds": [int(s) for s in args.seeds.split(",")],
        "n_folds": 3, "unseen_column": "new", "scenarios": ["unseen"], "enroll_from": "train",
        "threshold": recipe.threshold, "min_test": recipe.min_test,
        "out": str(args.out / "run"), "overwrite": True, "progress": False,
    })
    run = evaluate(cfg, console=False)
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    print(f"total wall {wall:.0f} s, CPU {cpu:.0f} s; load {os.getloadavg()[0]:.1f}")
    for m, t in run.output.timings.items():
        print(f"  {m}: fit {t['fit_s']:.0f} s ({t['n_fit']} fits), enroll {t['enroll_s']:.1f} s, "
              f"predict {t['predict_s']:.1f} s")
    s = run.summary
    s = s[s["scenario"] == "unseen"]
    res = run.results
    res = res[(res["scenario"] == "unseen") & res["annotator"].notna()]
    print("\n### new listeners: mean over listeners [95% bootstrap CI], p: Wilcoxon vs consensus; "
          "p(meta vs meta-finetune): Wilcoxon on the same listeners\n")
    print("| method | K | " + " | ".join(METRICS) + " | p(meta vs meta-finetune), macro_f1_sklearn |\n|---|---|"
          + "---|" * (len(METRICS) + 1))
    for k in sorted(set(s["k"])):
        for m in METHODS:
            g = s[(s["method"] == m) & (s["k"] == k)]
            cells = []
            for metric in METRICS:
                r = g[g["metric"] == metric]
                if r.empty:
                    cells.append("")
                    continue
                r = r.iloc[0]
                p = r["p_vs_consensus"]
                ptxt = "" if not np.isfinite(p) else (f", p={p:.1e}" if p < 1e-3 else f", p={p:.3f}")
                cells.append(f"{r['mean']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]{ptxt}")
            extra = ""
            if m == "meta":
                a = res[(res["method"] == "meta") & (res["k"] == k) & (res["metric"] == "macro_f1_sklearn")]
                b = res[(res["method"] == "meta-finetune") & (res["k"] == k) & (res["metric"] == "macro_f1_sklearn")]
                both = pd.merge(a, b, on="annotator", suffixes=("_m", "_f"))
                d = both["value_m"] - both["value_f"]
                if len(both) and (d != 0).any():
                    extra = f"{d.mean():+.3f} (n={len(both)}), p={wilcoxon(both['value_m'], both['value_f']).pvalue:.2g}"
            print(f"| {m} | {k} | " + " | ".join(cells) + f" | {extra} |")
    n = res.groupby("k")["annotator"].nunique().to_dict()
    print(f"\nnew listeners per K: {n}")


if __name__ == "__main__":
    main()
