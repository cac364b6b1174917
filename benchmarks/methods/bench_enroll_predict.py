"""Enrollment and prediction speed of the methods, from cached features, on CPU.

Goals: enrollment with ``similar`` (1,000 seen heads, K = 30) under 20 ms; prediction
under 5 ms per clip.

A ``similar`` model with 1,000 seen annotators is trained for one epoch on constructed
eGeMAPS-sized features (88 values; 20 ratings per annotator), the default trunk (two
dense layers of 256). Timings are the median of repeated calls after a warm-up.

Run::

    python benchmarks/methods/bench_enroll_predict.py [--threads 1] [--heads 1000] [--k 30]
    python benchmarks/methods/bench_enroll_predict.py --layers 13 --d 768   # SSL-shaped features
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np
import torch

from perser.corpus.model import LabelSpace
from perser.methods import RatingSet, make_method

SPACES = {
    "dimensional": LabelSpace("avd", "dimensional", dimensions=("arousal", "valence", "dominance"), scale=(1, 7)),
    "categorical": LabelSpace("emotion", "categorical", classes=("A", "D", "F", "H", "N", "S")),
}


def data(space: LabelSpace, n_heads: int, per_head: int, shape: tuple, seed: int = 0) -> RatingSet:
    rng = np.random.default_rng(seed)
    n_clips = max(2000, n_heads * per_head // 6)
    X = rng.standard_normal((n_clips, *shape)).astype(np.float32)
    clip_index = np.concatenate([rng.choice(n_clips, per_head, replace=False) for _ in range(n_heads)])
    ann = np.repeat([f"w{i:04d}" for i in range(n_heads)], per_head).astype(object)
    if space.kind == "categorical":
        y = rng.integers(0, len(space.classes), len(clip_index))
    else:
        y = rng.uniform(1, 7, (len(clip_index), 3)).astype(np.float32)
    return RatingSet(X, np.array([f"c{i}" for i in range(n_clips)], dtype=object), clip_index, ann, y, space)


def median_ms(fn, repeat: int) -> float:
    for _ in range(5):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--heads", type=int, default=1000)
    ap.add_argument("--k", type=int, default=30)
    ap.add_argument("--d", type=int, default=88)
    ap.add_argument("--layers", type=int, default=0, help="SSL-shaped input [layers, d] when > 0")
    ap.add_argument("--repeat", type=int, default=200)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, threads {args.threads}, "
          f"load average {os.getloadavg()[0]:.2f}")
    for kind, space in SPACES.items():
        shape = (args.layers, args.d) if args.layers else (args.d,)
        rs = data(space, args.heads, 20, shape)
        t = time.perf_counter()
        fin = make_method("finetune", epochs=1, batch_size=256, min_ratings=10, progress=False, valid_fraction=0).fit(rs)
        fit_s = time.perf_counter() - t
        sim = make_method("similar", epochs=1, batch_size=256, min_ratings=10, progress=False, valid_fraction=0)
        # the same trained network, read as a `similar` model (enrollment differs, training is identical)
        for attr in ("space_", "input_shape_", "standardizer_", "seen_annotators_", "class_weights_", "net_",
                     "head_annotators_", "_index"):
            setattr(sim, attr, getattr(fin, attr))
        sim.name = "similar"
        rng = np.random.default_rng(1)
        Xs = rng.standard_normal((args.k, *shape)).astype(np.float32)
        ys = rs.y[: args.k]
        n_heads = len(sim.head_annotators_)
        enroll_ms = median_ms(lambda: sim.enroll(Xs, ys), args.repeat)
        prof = sim.enroll(Xs, ys)
        x1 = Xs[:1]
        pred1_ms = median_ms(lambda: sim.predict(prof, x1), args.repeat)
        Xb = rng.standard_normal((1000, *shape)).astype(np.float32)
        predb_ms = median_ms(lambda: sim.predict(prof, Xb), 20) / 1000
        ft_ms = median_ms(lambda: fin.enroll(Xs, ys), 20)
        fprof = fin.enroll(Xs, ys)
        fpred1_ms = median_ms(lambda: fin.predict(fprof, x1), args.repeat)
        print(f"{kind}: {n_heads} seen heads, trunk {tuple(fin.hidden)}, input {shape}, K={args.k} (1-epoch fit {fit_s:.1f} s)")
        print(f"  similar  enroll            {enroll_ms:8.2f} ms   (goal < 20 ms)")
        print(f"  similar  predict 1 clip    {pred1_ms:8.3f} ms   (goal < 5 ms per clip)")
        print(f"  similar  predict 1000 clips{predb_ms:8.4f} ms per clip")
        print(f"  finetune enroll (30 steps) {ft_ms:8.2f} ms")
        print(f"  finetune predict 1 clip    {fpred1_ms:8.3f} ms")


if __name__ == "__main__":
    main()
