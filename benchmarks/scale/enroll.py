"""Enrollment of a new listener against many seen heads (``similar``, categorical space,
log-likelihood score): time of :meth:`SimilarAnnotator.enroll` against the exhaustive
scoring it replaced, measured in one process with the calls alternating, so that a load
from other work on the machine falls on both alike.

* ``exhaustive``: every head's logits over all classes (one matrix product
  ``[K, in] x [in, C * H]``), log-softmax over the classes, the label's term, the mean over
  clips, a full sort of the heads (the scoring before the relative-logit form);
* ``enroll``: ``SimilarAnnotator.enroll`` as shipped (logits relative to class 0:
  ``C - 1`` classes in the product, biases through ``addmm``, in-place log-sum-exp, a
  partial sort of the best heads).

The model is fitted on a small synthetic set (:mod:`synth`) and its head bank is then
replaced by ``--heads`` random heads, or (``--trained N``) fitted for one epoch on ``N``
ratings of the full-size synthetic corpus and kept with its trained heads. The
exhaustive scoring's cost depends on the shapes only; the two-stage search's second stage
depends on how alike the heads predict (its bound is tight for heads close to the mean
head), so the trained heads are the realistic case. Both give the same ten best heads
(checked on every run; the script fails otherwise).

Usage::

    python benchmarks/scale/enroll.py --heads 12000 --k 30 --calls 60
    PERSER_BENCH_THREADS=1 python benchmarks/scale/enroll.py
    python benchmarks/scale/enroll.py --trained 1000000 --annotators 12000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from synth import synthetic  # noqa: E402


def exhaustive_ranking(m, X: np.ndarray, y: np.ndarray, n: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` best heads and their scores by the exhaustive scoring (see the module doc)."""
    X, y = m._check_support(X, y)
    out = m.head_outputs(X, activated=False)  # [K, H, C]
    K = len(X)
    yt = torch.from_numpy(y.astype(np.int64))
    picked = out.gather(2, yt[:, None, None].expand(K, out.shape[1], 1))[..., 0]
    s = (picked - torch.logsumexp(out, dim=-1)).mean(dim=0).numpy().astype(np.float64)
    order = np.lexsort((np.zeros_like(s), -s))[:n]
    return order, s[order]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--heads", type=int, default=12_000)
    p.add_argument("--k", type=int, default=30, help="enrollment clips")
    p.add_argument("--calls", type=int, default=60, help="timed calls of each")
    p.add_argument("--dim", type=int, default=768)
    p.add_argument("--cache", default="/tmp/perser-scale")
    p.add_argument("--trained", type=int, default=0, metavar="RATINGS",
                   help="keep the trained heads of a fit on this many ratings of --annotators annotators "
                        "(150k clips) instead of random heads")
    p.add_argument("--annotators", type=int, default=12_000)
    p.add_argument("--json", help="append the result line here")
    a = p.parse_args()
    from perser.methods import make_method
    from perser.methods.nets import MultiHead

    if a.trained:
        rs = synthetic(n_clips=150_000, dim=a.dim, n_annotators=a.annotators, n_ratings=a.trained, folder=a.cache)
        m = make_method("similar", epochs=1, progress=False).fit(rs)
    else:
        rs = synthetic(n_clips=2000, dim=a.dim, n_annotators=10, n_ratings=1000, folder=a.cache)
        m = make_method("similar", epochs=1, progress=False).fit(rs)
        m.net_.head = MultiHead(m.net_.head.in_dim, a.heads + 1, m.net_.head.n_out)
        m.head_annotators_ = [f"h{i:05d}" for i in range(a.heads)]
        m._index = {h: i for i, h in enumerate(m.head_annotators_)}
    rows = np.random.default_rng(0).choice(len(rs), size=a.k, replace=False)
    X, y = np.asarray(rs.X[rs.clip_index[rows]]), rs.y[rows]

    import perser.methods.similar as similar

    scored: list[int] = []
    exact = similar._loglik

    def counting(model, z, y_, heads):  # how many heads each exact stage scores (one call)
        scored.append(model.net_.head.n_heads - 1 if heads is None else len(heads))
        return exact(model, z, y_, heads)

    similar._loglik = counting
    m.enroll(X, y)
    similar._loglik = exact
    ref, ref_s = exhaustive_ranking(m, X, y)
    got = m.enroll(X, y).data["ranking"]
    same = [m.head_annotators_[h] for h in ref] == [h for h, _ in got]
    max_diff = float(np.max(np.abs(ref_s - np.array([v for _, v in got]))))
    runs = {"exhaustive": lambda: exhaustive_ranking(m, X, y), "enroll": lambda: m.enroll(X, y)}
    for f in runs.values():
        for _ in range(3):
            f()
    wall = {k: [] for k in runs}
    cpu = {k: [] for k in runs}
    load0 = os.getloadavg()
    for _ in range(a.calls):
        for k, f in runs.items():
            t0, c0 = time.perf_counter(), time.process_time()
            f()
            wall[k].append(time.perf_counter() - t0)
            cpu[k].append(time.process_time() - c0)
    res = {"heads": len(m.head_annotators_), "trained": a.trained, "k": a.k, "threads": torch.get_num_threads(), "calls": a.calls,
           "load_before": [round(v, 2) for v in load0], "load_after": [round(v, 2) for v in os.getloadavg()],
           "same_top10": same, "max_score_diff": max_diff, "exactly_scored_per_stage": scored}
    for k in runs:
        res[f"{k}_wall_ms"] = round(1000 * float(np.median(wall[k])), 2)
        res[f"{k}_cpu_ms"] = round(1000 * float(np.median(cpu[k])), 2)
        res[f"{k}_wall_ms_min"] = round(1000 * float(np.min(wall[k])), 2)
    print(json.dumps(res))
    if a.json:
        with open(a.json, "a") as fh:
            fh.write(json.dumps(res) + "\n")
    if not same:
        raise SystemExit("enroll and the exhaustive scoring disagree on the ten best heads")


if __name__ == "__main__":
    torch.set_num_threads(int(os.environ.get("PERSER_BENCH_THREADS", torch.get_num_threads())))
    main()
