"""Time to choose the next clip: a pool of 1,000 clips, a ``similar`` model with 1,000 seen heads.

    python benchmarks/enrollment/timing.py [--pool 1000] [--heads 1000] [--repeat 20]

A ``similar`` model (eGeMAPS-sized 88-value features, trunk [64], one output head per
seen listener, 4 classes; or 3 dimensions with ``--space avd``) is fitted for one epoch
on random ratings (the weights do not matter for the time). Then, with 5 answers so
far, the next clip is chosen from the pool with each criterion:

* ``cold``: a new session (every head's output for the 1,000 pool clips) plus the choice;
* ``warm``: the choice on an existing session (what ``perser serve`` does: the pool's
  head outputs are computed once per model).

Printed: the median and the 90th percentile over ``--repeat`` runs, in milliseconds,
with one torch thread.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from perser.corpus.model import LabelSpace
from perser.enroll import make_strategy
from perser.methods import make_method
from perser.methods.base import RatingSet


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pool", type=int, default=1000)
    ap.add_argument("--heads", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--space", default="emotion", choices=["emotion", "avd"])
    args = ap.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    if args.space == "emotion":
        space = LabelSpace("emotion", "categorical", classes=("angry", "happy", "neutral", "sad"))
    else:
        space = LabelSpace("avd", "dimensional", dimensions=("arousal", "valence", "dominance"), scale=(1, 5))
    n_clips, per = 2000, 12
    X = rng.standard_normal((n_clips, 88)).astype(np.float32)
    ann = np.repeat([f"L{i:04d}" for i in range(args.heads)], per).astype(object)
    clip = rng.integers(0, n_clips, len(ann))
    y = rng.integers(0, 4, len(ann)) if space.is_class else rng.uniform(1, 5, (len(ann), 3)).astype(np.float32)
    train = RatingSet(X, np.array([f"c{i}" for i in range(n_clips)], dtype=object), clip, ann, y, space)
    model = make_method("similar", hidden=[64], epochs=1, batch_size=512, min_ratings=per, progress=False).fit(train)
    assert len(model.head_annotators_) == args.heads
    pool = rng.standard_normal((args.pool, 88)).astype(np.float32)
    rated = np.arange(5)
    y5 = y[:5]
    print(f"pool {args.pool} clips, {args.heads} heads, space {space.name}, 1 torch thread")
    for crit in ("head", "target"):
        s = make_strategy("active", criterion=crit).fit(model)
        cold, warm = [], []
        sess = s.session(pool)
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            s.session(pool).select(1, rated=rated, y=y5)
            cold.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            sess.select(1, rated=rated, y=y5)
            warm.append(time.perf_counter() - t0)
        for name, v in (("cold", cold), ("warm", warm)):
            v = np.asarray(v) * 1000
            print(f"criterion {crit:6s} {name}: median {np.median(v):6.1f} ms, p90 {np.quantile(v, 0.9):6.1f} ms")


if __name__ == "__main__":
    main()
