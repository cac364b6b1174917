"""The demo as a benchmark: its wall-clock time, its summary, and references that say
where the gains of personalization come from.

    python benchmarks/demo/run_demo.py [--out /tmp/perser-demo-bench] [--skip-timing]

1. Runs ``perser demo`` from scratch (corpus synthesis, eGeMAPS extraction, every
   method over the K sweep, report) with a fresh feature cache and records wall-clock
   and CPU time; then the same for ``perser demo --space avd`` (dimensional).
2. Prints the unseen- and seen-listener summaries as markdown and writes
   ``k_curve.png`` (unseen listeners, categorical space) beside this script.
3. Re-runs the same protocol on the same corpus and features with references:
   ``consensus-head`` (the shared multi-annotator network's consensus head, i.e.
   ``finetune`` without enrollment: the non-personalized part of the personalized
   methods), ``similar-paper`` (independent heads, ``head_shrinkage=0``; not the authors'
   set-up, see docs/papers.md), ``similar-top5`` (5 best heads weighted by score),
   ``finetune-plain`` (no L2-SP prior), ``lr-consensus`` (standardised eGeMAPS +
   logistic regression on every seen rating) and ``style-oracle`` (the same model
   trained only on the seen listeners of the listener's *true* perception style, read
   from ``annotators.csv``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from perser.methods import register
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


def _timed(out: Path, space: str):
    from perser.evaluate.demo import run_demo

    shutil.rmtree(out, ignore_errors=True)
    cache = tempfile.mkdtemp(prefix="perser-cache-")
    old = os.environ.get("PERSER_CACHE")
    os.environ["PERSER_CACHE"] = cache
    try:
        load0 = os.getloadavg()
        c0, t0 = _cpu(), time.perf_counter()
        run, _ = run_demo(out, space=space, console=False)
        wall, cpu = time.perf_counter() - t0, _cpu() - c0
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        if old is None:
            os.environ.pop("PERSER_CACHE", None)
        else:
            os.environ["PERSER_CACHE"] = old
    print(f"## perser demo --space {space}: wall {wall:.0f} s, CPU {cpu:.0f} s, load average before {load0[0]:.1f}, "
          f"after {os.getloadavg()[0]:.1f} (2 cores)\n")
    return run.summary


def _k_curve(summary: pd.DataFrame, path: Path) -> None:
    import base64

    from perser.evaluate.report import plot_k_curves

    png = plot_k_curves(summary, ["accuracy_argmax", "log_loss"], "unseen")
    path.write_bytes(base64.b64decode(png))


def _references(out: Path, space: str, metrics: list[str]) -> None:
    from perser.evaluate import evaluate
    from perser.evaluate.demo import demo_config

    cfg = demo_config(out, space=space, overwrite=True)
    mp = dict(cfg.method_params)
    refs = {
        "consensus-head": ("perser.methods.finetune:FineTune", {**mp["finetune"], "steps": 0}),
        "similar-paper": ("perser.methods.similar:SimilarAnnotator", {**mp["similar"], "head_shrinkage": 0.0}),
        "similar-top5": ("perser.methods.similar:SimilarAnnotator", {**mp["similar"], "top_k": 5, "temperature": 1.0}),
        "finetune-plain": ("perser.methods.finetune:FineTune", {**mp["finetune"], "l2sp": 0.0}),
    }
    names = ["consensus", "finetune", "similar", *refs]
    if space == "emotion":
        register("lr-consensus", "__main__:LRConsensus")
        register("style-oracle", "__main__:StyleOracle")
        names += ["lr-consensus", "style-oracle"]
    for name, (target, params) in refs.items():
        register(name, target)
        mp[name] = params
    cfg.method_params = mp
    cfg.methods = names
    cfg.out = out / "run-references"
    cfg.progress = False
    ref = evaluate(cfg, console=False)
    for scen in ("unseen", "seen"):
        print(f"\n### references, {space}, {scen} listeners\n")
        print(md_table(ref.summary, scen, metrics))
    # personalization proper: the personalized methods against the same network without enrollment
    from perser.evaluate.scoring import summarize

    keep = ref.results["method"].isin(["consensus-head", "finetune", "similar", "similar-top5"])
    own = summarize(ref.results[keep], baseline="consensus-head", n_boot=cfg.n_bootstrap, seed=min(cfg.seeds))
    print(f"\n### {space}, unseen listeners, p against consensus-head\n")
    print(md_table(own, "unseen", [m for m in metrics if m != "retrieval"]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("/tmp/perser-demo-bench"))
    ap.add_argument("--skip-timing", action="store_true", help="reuse existing demo folders")
    args = ap.parse_args()
    from perser.corpus import load_corpus

    metrics = {"emotion": ["accuracy_argmax", "uar_balanced", "log_loss", "retrieval"],
               "avd": ["ccc/mean", "ccc/arousal", "ccc/valence", "ccc/dominance", "ccc_con/mean", "retrieval"]}
    # time both demos before any reference method is registered (the demo runs every registered method)
    summaries = {space: _timed(args.out / space, space) if not args.skip_timing
                 else pd.read_csv(args.out / space / "run" / "summary.csv") for space in ("emotion", "avd")}
    for space, summary in summaries.items():
        out = args.out / space
        print(json.dumps({"chance_retrieval": json.loads((out / "run" / "run.json").read_text())["chance_retrieval"]}))
        for scen in ("unseen", "seen"):
            print(f"\n### {space}, {scen} listeners\n")
            print(md_table(summary, scen, metrics[space]))
        if space == "emotion":
            _k_curve(summary, Path(__file__).with_name("k_curve.png"))
        STYLES.update(load_corpus(out / "corpus").annotators["style"].astype(str).to_dict())
        _references(out, space, metrics[space])


if __name__ == "__main__":
    main()
