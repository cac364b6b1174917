"""The Tavernor & Mower Provost recipe's set-up on the demo corpus's dimensional space.

The real corpora (MSP-Podcast, IEMOCAP, MSP-IMPROV, MuSE) are not on this machine, so the
recipe's methods and settings (``perser/recipes/tavernor-iemocap.yaml``: the authors'
network and head training, their consensus baseline (``consensus``), ``similar`` with the
authors' CCC, the authors' fine-tuning after the copy and of the baseline
(``similar-finetuned``, ``consensus-finetuned``), paper-mode metrics) run on
the synthetic demo corpus instead: its seen listeners train, its new listeners are
enrolled with K ratings of training-fold clips and tested on clips of unseen speakers.
``similar-perser`` is perser's default ``similar`` network on the same splits, for
comparison. Prints the paper-mode table (mean ± std over seed × fold runs, paired t-test
against ``consensus``), perser's per-listener table, and the time of each step.

    python benchmarks/papers/recipes_demo.py --out /tmp/perser-papers
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd


def _cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("/tmp/perser-papers"))
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--k", default="5,10,20")
    args = ap.parse_args()

    from perser.config import load_config, recipe_path
    from perser.evaluate import evaluate
    from perser.evaluate.demo import build_corpus
    from perser.methods.base import register

    t0, c0 = time.perf_counter(), _cpu()
    corpus = build_corpus(args.out)
    t_corpus = time.perf_counter() - t0
    recipe = load_config(recipe_path("tavernor-iemocap"), {"corpus": "x", "eval_corpus": "y", "features": "egemaps"})
    mp = {m: dict(p) for m, p in recipe.method_params.items()}
    register("similar-perser", "perser.methods.similar:SimilarAnnotator")
    mp["similar-perser"] = {"score": "ccc_tavernor"}  # perser's default network, the authors' head choice
    cfg = load_config(overrides={
        "name": "tavernor-recipe-on-demo", "corpus": str(corpus), "format": "table", "space": "avd",
        "dimensions": ["arousal", "valence"], "features": "egemaps", "feature_cache": str(args.out / "features"),
        "methods": [*recipe.methods, "similar-perser"], "method_params": mp,
        "k": [int(k) for k in args.k.split(",")], "seeds": [int(s) for s in args.seeds.split(",")],
        "n_folds": 3, "unseen_column": "new", "scenarios": ["unseen"], "enroll_from": "train",
        "min_train_ratings": recipe.min_train_ratings, "min_test": recipe.min_test,
        "out": str(args.out / "run"), "overwrite": True, "progress": False,
    })
    t1 = time.perf_counter()
    run = evaluate(cfg, console=False)
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    print(f"corpus: {t_corpus:.0f} s; features + evaluation: {time.perf_counter() - t1:.0f} s; "
          f"total wall {wall:.0f} s, CPU {cpu:.0f} s; load {os.getloadavg()[0]:.1f}")
    print("timings per method (s):")
    for m, t in run.output.timings.items():
        print(f"  {m}: " + ", ".join(f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in t.items()))
    paper = run.paper["paper_summary.csv"]
    metrics = ["paper_ccc_ind/arousal", "paper_ccc_ind/valence", "paper_ccc_con/arousal", "paper_ccc_con/valence"]
    print("\n### paper mode: mean ± std over seed x fold runs; * higher, † lower than consensus (paired t-test, p < 0.05)\n")
    print("| method | K | " + " | ".join(metrics) + " |\n|---|---|" + "---|" * len(metrics))
    for (m, k), g in paper.groupby(["method", "k"]):
        cells = []
        for metric in metrics:
            r = g[g["metric"] == metric].iloc[0]
            cells.append(f"{r['mean']:.3f} ± {r['std']:.3f}{r['mark']}")
        print(f"| {m} | {k} | " + " | ".join(cells) + " |")
    s = run.summary
    pm = ["ccc/arousal", "ccc/valence", "ccc_con/arousal", "ccc_con/valence"]
    print("\n### perser's per-listener view: mean [95% bootstrap CI over listeners], p: Wilcoxon vs consensus\n")
    print("| method | K | " + " | ".join(pm) + " |\n|---|---|" + "---|" * len(pm))
    for (m, k), g in s[s["scenario"] == "unseen"].groupby(["method", "k"]):
        cells = []
        for metric in pm:
            r = g[g["metric"] == metric]
            if r.empty:
                cells.append("")
                continue
            r = r.iloc[0]
            p = r["p_vs_consensus"]
            ptxt = "" if not np.isfinite(p) else (f", p={p:.1e}" if p < 1e-3 else f", p={p:.3f}")
            cells.append(f"{r['mean']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]{ptxt}")
        print(f"| {m} | {k} | " + " | ".join(cells) + " |")
    hist = pd.read_csv(run.folder / "paper_runs.csv")
    print(f"\nruns: {hist.groupby(['seed', 'fold']).ngroups} seed x fold; listeners per run (CCC_ind): "
          f"{int(hist[hist.metric == 'paper_ccc_ind/arousal']['n_listeners'].min())}-"
          f"{int(hist[hist.metric == 'paper_ccc_ind/arousal']['n_listeners'].max())}")


if __name__ == "__main__":
    main()
