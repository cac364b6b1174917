"""Speed of ``meta`` (Meta-PerSER): enrollment, and one meta-training step with
``torch.func`` (vmap over tasks) against the common per-task loop that deep-copies the model.

Run from the repository root::

    python benchmarks/methods/meta_bench.py                 # both parts, one torch thread
    python benchmarks/methods/meta_bench.py --threads 2 --repeats 30

Enrollment: a fitted ``meta`` model on 88-dimensional features (the size of eGeMAPS)
with the default trunk (256, 256); K=10 clips, 5 inner steps; the time of one
``enroll`` call (standardisation, frozen trunk, learned inner loop, profile) from
cached features. Goal: under 100 ms on CPU.

Meta-training step: the meta-gradient of a meta-batch plus the outer Adam step. The
torch.func version (:class:`perser.methods.maml.MAMLPlusPlus`) runs every task of the
meta-batch in one ``vmap``; the baseline deep-copies the head per task, takes the
inner SGD steps on the copy with ``torch.autograd.grad`` and accumulates the
first-order query gradient into the original (the usual first-order implementation;
a copy cannot carry second-order gradients). Both use the same per-layer per-step
learning rates and the final-step query loss, and the script checks that they give
the same meta-gradient. Second order is reported against a per-task loop of
``torch.autograd.grad(create_graph=True)`` without copies. Goal: 3x or more.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import time

import numpy as np
import torch

from perser.corpus.model import LabelSpace
from perser.methods.base import RatingSet, make_method
from perser.methods.losses import soft_cross_entropy
from perser.methods.maml import MAMLPlusPlus, TaskBatch, meta_gradients, module_fn, msl_weights
from perser.methods.meta import AdaptedHead


def timeit(fn, repeats: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def paired(fa, fb, repeats: int, warmup: int = 3) -> tuple[list[float], list[float]]:
    """Alternate runs of ``fa`` and ``fb`` so both see the same machine load."""
    for _ in range(warmup):
        fa()
        fb()
    ta, tb = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        fa()
        ta.append(time.perf_counter() - t)
        t = time.perf_counter()
        fb()
        tb.append(time.perf_counter() - t)
    return ta, tb


def fmt(ts: list[float]) -> str:
    return f"median {1e3 * statistics.median(ts):8.2f} ms  (min {1e3 * min(ts):.2f}, n={len(ts)})"


# ------------------------------------------------------------------ enrollment
def bench_enroll(repeats: int) -> None:
    rng = np.random.default_rng(0)
    space = LabelSpace("emotion", "categorical", classes=("ang", "hap", "neu", "sad"))
    n_clips, n_ann, d = 400, 20, 88
    X = rng.standard_normal((n_clips, d)).astype(np.float32)
    W = rng.standard_normal((n_ann, d, 4))
    ci = np.tile(np.arange(n_clips), n_ann)
    ann = np.repeat([f"a{i}" for i in range(n_ann)], n_clips).astype(object)
    y = np.concatenate([(X @ W[i]).argmax(1) for i in range(n_ann)])
    rs = RatingSet(X, np.array([f"c{i}" for i in range(n_clips)], dtype=object), ci, ann, y, space)
    print("\n== enrollment (meta, K=10, 5 inner steps, features 88-d, trunk (256, 256), 4 classes)")
    for adapt_layers in (0, 1):
        m = make_method("meta", epochs=1, progress=False, meta_epochs=1, iters_per_epoch=2, adapt_layers=adapt_layers,
                        n_inner_steps=5, k_support=10, k_query=10)
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m.fit(rs)
        Xe = rng.standard_normal((10, d)).astype(np.float32)
        ye = rng.integers(0, 4, 10)
        n_params = sum(v.numel() for v in m.theta_.values())
        ts = timeit(lambda: m.enroll(Xe, ye, annotator="new"), repeats)
        print(f"adapt_layers={adapt_layers} ({n_params:>6} adapted parameters): {fmt(ts)}")


# --------------------------------------------------------- meta-training step
def deepcopy_first_order_grads(head, lrs, batch: TaskBatch, loss_fn, n_steps: int) -> dict[str, torch.Tensor]:
    """The common implementation: per task, copy the model, adapt the copy, and
    accumulate the first-order query gradient into the original."""
    names = [k for k, _ in head.named_parameters()]
    acc = {k: torch.zeros_like(p) for k, p in head.named_parameters()}
    T = len(batch)
    for t in range(T):
        fast = copy.deepcopy(head)
        params = list(fast.parameters())
        for s in range(n_steps):
            loss = loss_fn(fast(batch.xs[t]), batch.ys[t])
            grads = torch.autograd.grad(loss, params)
            with torch.no_grad():
                for k, p, g in zip(names, params, grads):
                    p.sub_(lrs[k][s] * g)
        q = loss_fn(fast(batch.xq[t]), batch.yq[t])
        grads = torch.autograd.grad(q, params)
        for k, g in zip(names, grads):
            acc[k] += g / T
    return acc


def deepcopy_step(head, opt, lrs, batch, loss_fn, n_steps) -> None:
    g = deepcopy_first_order_grads(head, lrs, batch, loss_fn, n_steps)
    for k, p in head.named_parameters():
        p.grad = g[k]
    opt.step()
    opt.zero_grad(set_to_none=True)


def second_order_loop_step(head, opt, lrs, batch, loss_fn, n_steps) -> None:
    """Per-task loop without copies: functional parameters, ``create_graph=True``."""
    from torch.func import functional_call

    P = dict(head.named_parameters())
    total = 0.0
    for t in range(len(batch)):
        p = P
        for s in range(n_steps):
            loss = loss_fn(functional_call(head, p, (batch.xs[t],)), batch.ys[t])
            g = torch.autograd.grad(loss, list(p.values()), create_graph=True)
            p = {k: p[k] - lrs[k][s] * gk for k, gk in zip(p, g)}
        total = total + loss_fn(functional_call(head, p, (batch.xq[t],)), batch.yq[t])
    (total / len(batch)).backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def make_batch(T: int, n: int, d: int, C: int, seed: int = 0) -> TaskBatch:
    g = torch.Generator().manual_seed(seed)
    x = torch.relu(torch.randn(T, n, d, generator=g))
    y = torch.nn.functional.one_hot(torch.randint(0, C, (T, n), generator=g), C).float()
    return TaskBatch(x, y, x, y)  # combined-set meta-training: support = query


def bench_meta_step(repeats: int, meta_batch: int, k: int, steps: int) -> None:
    C = 4
    print(f"\n== meta-training step (meta-batch {meta_batch} tasks, {2 * k} clips per task as support = query "
          f"(combined, K={k} + Q={k}), {steps} inner steps, {C} classes, soft cross-entropy; Adam outer step included)")
    for dims in ((256,), (256, 256)):
        torch.manual_seed(0)
        head = AdaptedHead(dims, C)
        batch = make_batch(meta_batch, 2 * k, dims[0], C)
        n_params = sum(p.numel() for p in head.parameters())
        label = f"head {'→'.join(map(str, dims))}→{C} ({n_params} params)"
        lrs = {kk: torch.full((steps,), 0.1) for kk, _ in head.named_parameters()}
        last_only = msl_weights(steps, 0, 0)
        # same meta-gradient?
        p0 = {kk: v.detach() for kk, v in head.named_parameters()}
        _, gp, _ = meta_gradients(module_fn(head), soft_cross_entropy, p0, lrs, batch, steps, True, last_only)
        ref = deepcopy_first_order_grads(head, lrs, batch, soft_cross_entropy, steps)
        err = max(float((gp[kk] - ref[kk]).abs().max()) for kk in gp)
        for order, fo_epochs in (("first", 10**9), ("second", 0)):
            learner = MAMLPlusPlus(module_fn(head), soft_cross_entropy, dict(head.named_parameters()), n_inner_steps=steps,
                                   inner_lr=0.1, first_order_epochs=fo_epochs, msl_epochs=0, meta_lr=1e-4)
            base = copy.deepcopy(head)
            opt = torch.optim.Adam(base.parameters(), lr=1e-4)
            if order == "first":
                step_b = lambda: deepcopy_step(base, opt, lrs, batch, soft_cross_entropy, steps)  # noqa: E731
                what = "per-task deep-copy loop"
            else:
                step_b = lambda: second_order_loop_step(base, opt, lrs, batch, soft_cross_entropy, steps)  # noqa: E731
                what = "per-task autograd loop (create_graph)"
            t_vmap, t_base = paired(lambda: learner.step(batch), step_b, repeats)
            pair = statistics.median(b / a for a, b in zip(t_vmap, t_base))
            print(f"{label}, {order} order")
            print(f"   torch.func vmap (+ LSLR grads): {fmt(t_vmap)}")
            print(f"   {what:<37} {fmt(t_base)}")
            print(f"   speed-up: {pair:.1f}x (median of paired runs), {min(t_base) / min(t_vmap):.1f}x (ratio of minima)")
        print(f"   max |meta-gradient difference| vmap vs deep-copy loop (first order): {err:.2e}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--meta-batch", type=int, default=16)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--only", choices=["enroll", "step"], default=None)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(f"torch {torch.__version__}, {a.threads} thread(s), {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
          f"load average {load[0]:.1f}" if load else "")
    if a.only in (None, "enroll"):
        bench_enroll(a.repeats)
    if a.only in (None, "step"):
        bench_meta_step(a.repeats, a.meta_batch, a.k, a.steps)
    if load:
        print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    sys.exit(main())
