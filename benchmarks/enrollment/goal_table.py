"""Active enrollment on the demo corpus: does active selection with K clips reach what
random selection reaches with 2K?

    python benchmarks/enrollment/goal_table.py --demo DEMO_DIR --space emotion --mode tune
    python benchmarks/enrollment/goal_table.py --demo DEMO_DIR --space emotion --mode goal \
        --strategies "random;active"

``DEMO_DIR`` is a folder made by ``perser demo --out DEMO_DIR`` (corpus and eGeMAPS
feature cache; the demo's own run is not used). The protocol is the demo's (3
speaker-independent folds x 2 seeds, K = 5, 10, 20, enrollment from the training
folds, the demo's method settings), restricted to the unseen-listener scenario and to
``--methods``.

* ``--mode tune`` never looks at the corpus's *new* listeners: it drops them and holds
  out a seeded third of the *seen* listeners as pseudo-new ones. Settings of the
  strategies are chosen here.
* ``--mode goal`` is the claim: the 60 new listeners, with the strategies as chosen.

Printed (and written as CSV to ``--out``): per method x strategy x K the mean over
listeners of each listener's metric (averaged over seeds and folds), with a 95%
bootstrap CI; and the goal comparisons, paired on the same listeners: active at K vs
random at K (never worse?), active at 5 vs random at 10, active at 10 vs random at
20 -- the mean paired difference, its 95% bootstrap CI and the Wilcoxon signed-rank
p-value.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import wilcoxon

METRICS = {"emotion": ["accuracy_argmax", "retrieval"], "avd": ["ccc/mean", "retrieval"]}


def load(demo: Path, space: str, mode: str, methods: list[str], strategies: list[str], params: dict, seeds):
    from perser.evaluate import make_plan, plan_settings
    from perser.evaluate.data import load_eval_data
    from perser.evaluate.demo import demo_config
    from perser.evaluate.protocol import EvalData

    cfg = demo_config(demo, space=space, seeds=seeds)
    cfg = cfg.model_copy(update={"methods": methods, "scenarios": ["unseen"], "progress": False, "report": False,
                                 "enroll_strategy": strategies, "enroll_strategy_params": params,
                                 "n_bootstrap": 200})
    data = load_eval_data(cfg)
    if mode == "tune":
        ann = data.annotators.copy()
        new = ann["new"].astype(str).str.lower().isin(["true", "1", "yes"])
        seen = sorted(ann.index[~new].astype(str))
        rng = np.random.default_rng(12)
        pseudo = set(np.asarray(seen, dtype=object)[rng.permutation(len(seen))[: len(seen) // 3]].tolist())
        ann = ann.loc[~new.to_numpy()].copy()
        ann["pseudo_new"] = [a in pseudo for a in ann.index.astype(str)]
        r = data.ratings
        keep = r["annotator_id"].isin(set(seen)).to_numpy()
        data = EvalData(data.space, data.clips, r.loc[keep].reset_index(drop=True), data.X, data.clip_ids,
                        annotators=ann)
        cfg = cfg.model_copy(update={"unseen_column": "pseudo_new"})
    plan = make_plan(data, plan_settings(cfg))
    return cfg, data, plan


def per_listener(results: pd.DataFrame, metric: str) -> pd.DataFrame:
    r = results[(results["scenario"] == "unseen") & (results["metric"] == metric)]
    return r.groupby(["method", "k", "annotator"])["value"].mean().unstack("annotator")


def boot_ci(v: np.ndarray, n: int = 2000, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    m = rng.choice(v, size=(n, len(v)), replace=True).mean(axis=1)
    return float(np.quantile(m, 0.025)), float(np.quantile(m, 0.975))


def paired(a: pd.Series, b: pd.Series) -> dict:
    both = pd.concat([a, b], axis=1).dropna()
    d = (both.iloc[:, 0] - both.iloc[:, 1]).to_numpy()
    lo, hi = boot_ci(d)
    p = float(wilcoxon(d).pvalue) if np.any(d != 0) else 1.0
    return {"n": len(d), "diff": float(d.mean()), "diff_lo": lo, "diff_hi": hi, "p": p}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--demo", type=Path, required=True)
    ap.add_argument("--space", default="emotion", choices=["emotion", "avd"])
    ap.add_argument("--mode", default="goal", choices=["tune", "goal"])
    ap.add_argument("--methods", default="similar,finetune,meta")
    ap.add_argument("--strategies", default="random;active", help="strategy specs separated by ;")
    ap.add_argument("--param", action="append", default=[], help="STRATEGY.KEY=VALUE")
    ap.add_argument("--method-param", action="append", default=[],
                    help="METHOD.KEY=VALUE over the demo's method settings (e.g. similar.combine=posterior)")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    import yaml

    from perser.enroll.protocol import StrategyPlan
    from perser.evaluate.runner import run_plan
    from perser.evaluate.scoring import score_blocks

    params: dict = {}
    for item in args.param:
        key, _, value = item.partition("=")
        strat, _, name = key.rpartition(".")
        params.setdefault(strat, {})[name] = yaml.safe_load(value)
    mparams: dict = {}
    for item in args.method_param:
        key, _, value = item.partition("=")
        meth, _, name = key.partition(".")
        mparams.setdefault(meth, {})[name] = yaml.safe_load(value)
    methods = args.methods.split(",")
    strategies = args.strategies.split(";")
    cfg, data, plan = load(args.demo, args.space, args.mode, ["consensus", *methods], strategies, params,
                           [int(s) for s in args.seeds.split(",")])
    n_list = len({a.annotator for s in plan for a in s.assignments["unseen"]})
    t0 = time.perf_counter()
    out = run_plan(data, plan, {m: {**cfg.method_params.get(m, {}), **mparams.get(m, {})} for m in methods},
                   progress=False,
                   strategies=StrategyPlan(strategies, params))
    secs = time.perf_counter() - t0
    res = score_blocks(out.blocks, data, style_column="style")
    print(f"# {args.mode} mode, space {args.space}, {n_list} listeners, methods {methods}, strategies {strategies} "
          f"{params or ''} {mparams or ''}; run {secs:.0f} s")
    rows, goals = [], []
    for metric in METRICS[args.space]:
        pl = per_listener(res, metric)
        if pl.empty:
            continue
        for (method, k), v in pl.iterrows():
            v = v.dropna().to_numpy()
            lo, hi = boot_ci(v)
            rows.append({"metric": metric, "method": method, "k": k, "n": len(v), "mean": v.mean(), "lo": lo, "hi": hi})
        for m in methods:
            for s in strategies:
                if s == "random":
                    continue
                ms = f"{m}+{s}"
                pairs = [(k, k) for k in (5, 10, 20)] + [(5, 10), (10, 20)]
                for ka, kr in pairs:
                    if (ms, ka) in pl.index and (m, kr) in pl.index:
                        goals.append({"metric": metric, "method": m, "strategy": s, "active_k": ka, "random_k": kr,
                                      **paired(pl.loc[(ms, ka)], pl.loc[(m, kr)])})
    table = pd.DataFrame(rows)
    gt = pd.DataFrame(goals)
    with pd.option_context("display.width", 200, "display.max_rows", 500, "display.float_format", "{:.4f}".format):
        print(table.to_string(index=False))
        print()
        print(gt.to_string(index=False))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.out / f"{args.mode}-{args.space}-table.csv", index=False)
        gt.to_csv(args.out / f"{args.mode}-{args.space}-goals.csv", index=False)


if __name__ == "__main__":
    main()
