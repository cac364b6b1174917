"""The demo as a benchmark: its wall-clock time, its summary, and a check of why
personalization does (not) beat consensus on it.

    python benchmarks/demo/run_demo.py [--out /tmp/perser-demo-bench] [--skip-timing]

1. Runs ``perser demo`` from scratch (corpus synthesis, eGeMAPS extraction, every
   method over the K sweep, report) and records wall-clock and CPU time.
2. Prints the unseen- and seen-listener summaries as markdown.
3. Re-runs the same protocol on the same corpus and features with two references that
   isolate the data from the methods: ``lr-consensus`` (standardised eGeMAPS +
   logistic regression on every seen rating) and ``style-oracle`` (the same model
   trained only on the seen listeners of the listener's *true* perception style, read
   from ``annotators.csv``: the most that recovering a listener's style can give), and two
   variants of ``similar`` that test whether its heads are the limit: averaging the 5
   best-matching heads (``similar-top5``) and training 30 instead of 8 epochs
   (``similar-30ep``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from perser.methods.base import Personalizer, Predictions, Profile

STYLES: dict[str, str] = {}


class LRConsensus(Personalizer):
    """Standardised features + multinomial logistic regression on every seen rating."""

    kinds = ("categorical",)
    personalized = False

    def __init__(self, C: float = 1.0, seed: int = 0):
        self.C = C
        self.seed = seed

    def _lr(self, X, y):
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        return make_pipeline(StandardScaler(), LogisticRegression(C=self.C, max_iter=2000)).fit(X, y)

    def _proba(self, model, X):
        p = np.zeros((len(X), len(self.space_.classes)))
        p[:, model.classes_] = model.predict_proba(X)
        return p

    def fit(self, train, valid=None):
        self.space_ = train.space
        self.model_ = self._lr(train.X[train.clip_index], train.y)
        return self

    def enroll(self, X, y, annotator=None):
        return Profile(self.name, annotator)

    def predict(self, profile, X):
        return Predictions(self.space_, proba=self._proba(self.model_, X))


class StyleOracle(LRConsensus):
    """One model per perception style; a listener is predicted by their true style's model."""

    personalized = True

    def fit(self, train, valid=None):
        self.space_ = train.space
        styles = np.array([STYLES[a] for a in train.annotator_ids])
        self.models_ = {s: self._lr(train.X[train.clip_index[styles == s]], train.y[styles == s])
                        for s in sorted(set(styles))}
        return self

    def enroll(self, X, y, annotator=None):
        return Profile(self.name, annotator, data={"style": STYLES[annotator]})

    def predict(self, profile, X):
        return Predictions(self.space_, proba=self._proba(self.models_[profile.data["style"]], X))


def _cpu() -> float:
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def md_table(summary: pd.DataFrame, scenario: str, metrics: list[str]) -> str:
    s = summary[(summary["scenario"] == scenario) & summary["metric"].isin(metrics)]
    lines = ["| method | K | " + " | ".join(metrics) + " |", "|---|---|" + "---|" * len(metrics)]
    for (m, k), g in s.groupby(["method", "k"]):
        cells = []
        for metric in metrics:
            r = g[g["metric"] == metric]
            if r.empty:
                cells.append("")
                continue
            r = r.iloc[0]
            p = r["p_vs_baseline"]
            ptxt = "" if not np.isfinite(p) else (f", p={p:.1e}" if p < 1e-3 else f", p={p:.3f}")
            cells.append(f"{r['mean']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]{ptxt}")
        lines.append(f"| {m} | {k} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("/tmp/perser-demo-bench"))
    ap.add_argument("--skip-timing", action="store_true", help="reuse an existing demo folder")
    args = ap.parse_args()
    from perser.evaluate.demo import demo_config, run_demo

    metrics = ["accuracy_argmax", "uar_balanced", "log_loss", "retrieval"]
    if not args.skip_timing:
        shutil.rmtree(args.out, ignore_errors=True)
        load0 = os.getloadavg()
        c0, t0 = _cpu(), time.perf_counter()
        run, _ = run_demo(args.out, console=False)
        wall, cpu = time.perf_counter() - t0, _cpu() - c0
        print(f"## perser demo: wall {wall:.0f} s, CPU {cpu:.0f} s, load average before {load0[0]:.1f}, "
              f"after {os.getloadavg()[0]:.1f} (2 cores)\n")
        summary = run.summary
    else:
        summary = pd.read_csv(args.out / "run" / "summary.csv")
    print(json.dumps({"chance_retrieval": json.loads((args.out / "run" / "run.json").read_text())["chance_retrieval"]}))
    for scen in ("unseen", "seen"):
        print(f"\n### {scen} listeners\n")
        print(md_table(summary, scen, metrics))

    # ---- references that separate the data from the methods
    from perser.corpus import load_corpus
    from perser.evaluate import evaluate
    from perser.methods import register

    corpus = load_corpus(args.out / "corpus")
    STYLES.update(corpus.annotators["style"].astype(str).to_dict())
    register("lr-consensus", "__main__:LRConsensus")
    register("style-oracle", "__main__:StyleOracle")
    register("similar-top5", "perser.methods.similar:SimilarAnnotator")
    register("similar-30ep", "perser.methods.similar:SimilarAnnotator")
    cfg = demo_config(args.out, overwrite=True)
    mp = dict(cfg.method_params)
    mp["similar-top5"] = {**mp["similar"], "top_k": 5, "temperature": 1.0}
    mp["similar-30ep"] = {**mp["similar"], "epochs": 30, "patience": 5}
    cfg.method_params = mp
    cfg.methods = ["consensus", "similar", "similar-top5", "similar-30ep", "lr-consensus", "style-oracle"]
    cfg.out = args.out / "run-references"
    cfg.progress = False
    ref = evaluate(cfg, console=False)
    for scen in ("unseen", "seen"):
        print(f"\n### references, {scen} listeners\n")
        print(md_table(ref.summary, scen, metrics))
    s = ref.summary.set_index(["method", "scenario", "k", "metric"])["mean"]
    k = max(cfg.k)
    print(f"\nstyle-oracle - lr-consensus accuracy (unseen, K={k}): "
          f"{s[('style-oracle', 'unseen', k, 'accuracy_argmax')] - s[('lr-consensus', 'unseen', k, 'accuracy_argmax')]:+.3f}")


if __name__ == "__main__":
    main()
