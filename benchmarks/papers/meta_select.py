"""Choose the Meta-PerSER recipe's unstated values on the demo corpus's SEEN listeners only.

Shen et al. (2025) do not give the initial inner learning rate, the number of inner
steps (and several other values; ``docs/papers.md``). IEMOCAP was not available where they were chosen, so
they are chosen here on the built-in synthetic demo corpus (the corpus of ``perser
demo``) by cross-validation over its **seen** listeners; its new listeners are removed
before anything runs and are never looked at.

* The demo's categorical ratings (one class per rating) become a multilabel space
  ``emotion`` (each rating ticks exactly one class), because the paper's task and its
  metric are multilabel; the score is ``macro_f1_sklearn`` (scikit-learn's macro-F1
  over all classes, a class neither rated nor predicted counting 0), the recipe's
  paper-mode metric.
* The 60 seen listeners are split into ``--cv`` disjoint groups (seeded). For each group
  the other seen listeners train (consensus model, then meta-training) and the group's
  listeners are enrolled with K of their ratings of training-fold clips and tested on
  their ratings of clips of held-out speakers (``--folds`` speaker-independent folds).
* Every candidate is the recipe's ``meta`` (``perser/recipes/meta-perser-iemocap.yaml``)
  with the grid's values substituted; the candidate with the highest macro_f1_sklearn,
  averaged over the K values, the listener groups and the speaker folds, is chosen.

    python benchmarks/papers/meta_select.py --out /tmp/perser-meta-select

Prints a table per candidate (mean over listeners of every group and fold; the spread is
the std over the listener groups (each group's value: the mean over its listeners, speaker folds pooled)) and the chosen values.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

#: the grid: the values the paper does not give that matter most for a new listener's
#: adaptation (the inner loop is all that runs at enrollment)
GRID = {"inner_lr": [0.1, 0.03, 0.01], "n_inner_steps": [1, 5]}


def _cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def derive_corpus(demo: Path, out: Path, n_cv: int = 0, seed: int = 0, seen_only: bool = True) -> Path:
    """The demo corpus with ``emotion`` as a multilabel space (each rating ticks one class).

    ``seen_only``: the seen listeners only (the new ones and their ratings removed), with
    annotators.csv columns ``cv0``..``cv{n_cv-1}`` marking disjoint held-out groups; else
    every listener, with the demo's ``new`` column."""
    out.mkdir(parents=True, exist_ok=True)
    spec = yaml.safe_load((demo / "corpus.yaml").read_text(encoding="utf-8"))
    classes = next(s["classes"] for s in spec["label_spaces"] if s["name"] == "emotion")
    ann = pd.read_csv(demo / "annotators.csv", dtype={"annotator_id": str})
    is_new = ann["new"].astype(str).str.lower().isin(["true", "1", "yes"])
    keep = ann[~is_new] if seen_only else ann
    keep = keep.sort_values("annotator_id").reset_index(drop=True)
    if seen_only:
        group = np.random.default_rng([seed, 23]).permutation(len(keep)) % max(n_cv, 1)
        for g in range(n_cv):
            keep[f"cv{g}"] = group == g
        keep[["annotator_id", "style", *[f"cv{g}" for g in range(n_cv)]]].to_csv(out / "annotators.csv", index=False)
    else:
        keep[["annotator_id", "style", "new"]].to_csv(out / "annotators.csv", index=False)
    r = pd.read_csv(demo / "ratings.csv", dtype={"clip_id": str, "annotator_id": str})
    r = r[r["annotator_id"].isin(set(keep["annotator_id"]))]
    r[["clip_id", "annotator_id", "emotion"]].to_csv(out / "ratings.csv", index=False)
    clips = pd.read_csv(demo / "clips.csv", dtype={"clip_id": str})
    clips["path"] = [str((demo / p).resolve()) for p in clips["path"]]
    clips.to_csv(out / "clips.csv", index=False)
    who = "seen listeners only" if seen_only else "seen and new listeners"
    (out / "corpus.yaml").write_text(yaml.safe_dump({
        "name": "perser-demo-multilabel" + ("-seen" if seen_only else ""),
        "label_spaces": [{"name": "emotion", "kind": "multilabel", "classes": list(classes)}],
        "description": f"the SYNTHETIC perser demo corpus ({who}); each categorical rating as a multilabel "
                       "rating with one class ticked (benchmarks/papers)",
    }, sort_keys=False), encoding="utf-8")
    return out


def candidates(recipe_meta: dict, grid: dict[str, list]) -> dict[str, dict]:
    names = list(grid)
    out = {}
    for values in itertools.product(*(grid[n] for n in names)):
        over = dict(zip(names, values))
        tag = "-".join(f"{n}{v:g}" if isinstance(v, float) else f"{n}{v}" for n, v in over.items())
        out[f"meta-{tag}"] = {**recipe_meta, **over}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("/tmp/perser-meta-select"))
    ap.add_argument("--cv", type=int, default=3, help="disjoint groups of seen listeners")
    ap.add_argument("--folds", type=int, default=2, help="speaker-independent folds")
    ap.add_argument("--k", default="5,10")
    ap.add_argument("--groups", default=None, help="only these listener groups (e.g. 0,1; default all)")
    ap.add_argument("--tabulate", action="store_true",
                    help="only print the table from the run-cv* folders already under --out (groups that finished)")
    ap.add_argument("--grid", default=None, help='another grid as JSON, e.g. \'{"inner_lr": [0.01]}\'')
    args = ap.parse_args()

    from perser.config import load_config, recipe_path
    from perser.evaluate import evaluate
    from perser.evaluate.demo import build_corpus
    from perser.methods import register

    if args.tabulate:
        frames = []
        for f in sorted(args.out.glob("run-cv*/results.csv")):
            res = pd.read_csv(f)
            res["group"] = int(f.parent.name[len("run-cv"):])
            frames.append(res)
        if not frames:
            raise SystemExit(f"no run-cv*/results.csv under {args.out}")
        _table(pd.concat(frames, ignore_index=True), None)
        return
    t0, c0 = time.perf_counter(), _cpu()
    demo = build_corpus(args.out)
    corpus = derive_corpus(demo, args.out / "seen-multilabel", args.cv)
    recipe = load_config(recipe_path("meta-perser-iemocap"), {"corpus": "x", "features": "egemaps"})
    grid = json.loads(args.grid) if args.grid else GRID
    cands = candidates(dict(recipe.method_params["meta"]), grid)
    for name in cands:
        register(name, "perser.methods.meta:MetaPerSER")
    groups = range(args.cv) if args.groups is None else [int(g) for g in args.groups.split(",")]
    ks = [int(k) for k in args.k.split(",")]
    frames = []
    for g in groups:
        cfg = load_config(overrides={
            "name": f"meta-select-cv{g}", "corpus": str(corpus), "format": "table", "space": "emotion",
            "features": "egemaps", "feature_cache": str(args.out / "features"),
            "methods": ["consensus", *cands], "method_params": {"consensus": recipe.method_params["consensus"], **cands},
            "k": ks, "seeds": [0], "n_folds": args.folds, "unseen_column": f"cv{g}", "scenarios": ["unseen"],
            "threshold": recipe.threshold, "min_test": recipe.min_test,
            "out": str(args.out / f"run-cv{g}"), "overwrite": True, "progress": False, "report": False,
        })
        run = evaluate(cfg, console=False)
        res = pd.read_csv(run.folder / "results.csv")
        res["group"] = g
        frames.append(res)
        print(f"group cv{g} done: {time.perf_counter() - t0:.0f} s wall, load {os.getloadavg()[0]:.1f}", flush=True)
    print(f"\ntotal wall {time.perf_counter() - t0:.0f} s, CPU {_cpu() - c0:.0f} s, "
          f"load {os.getloadavg()[0]:.1f}\n")
    _table(pd.concat(frames, ignore_index=True), {m: {n: p[n] for n in grid} for m, p in cands.items()})


def _table(res: pd.DataFrame, cands: dict | None) -> None:
    """The selection table: macro_f1_sklearn per candidate and K, and the chosen candidate."""
    res = res[(res["metric"] == "macro_f1_sklearn") & (res["scenario"] == "unseen") & res["annotator"].notna()]
    ks = sorted(set(res["k"]))
    per_run = res.groupby(["method", "k", "group"])["value"].mean().reset_index()
    table = per_run.groupby(["method", "k"])["value"].agg(["mean", "std"]).unstack("k")
    overall = per_run.groupby("method")["value"].mean().rename("mean over K")
    groups = sorted(set(res["group"]))
    print(f"### macro_f1_sklearn of held-out seen listeners ({res['annotator'].nunique()} listeners in groups "
          f"{groups}): mean over groups (std over groups)\n")
    print("| candidate | " + " | ".join(f"K={k}" for k in ks) + " | mean over K |\n|---|" + "---|" * (len(ks) + 1))
    for m in overall.sort_values(ascending=False).index:
        cells = [f"{table.loc[m, ('mean', k)]:.4f} ({table.loc[m, ('std', k)]:.4f})" for k in ks]
        print(f"| {m} | " + " | ".join(cells) + f" | {overall[m]:.4f} |")
    best = overall.drop("consensus", errors="ignore").idxmax()
    print(f"\nchosen: {best}" + (": " + ", ".join(f"{n}={v}" for n, v in cands[best].items()) if cands else ""))


if __name__ == "__main__":
    main()
