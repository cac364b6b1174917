"""Training at MSP-Podcast scale on this machine: one ``similar`` epoch over 100k–1M
ratings and 1k–12k annotators, a ``meta`` meta-training epoch, enrollment against 12k
heads, and the peak memory of each fit.

Every configuration runs in its own process (so ``ru_maxrss`` is that fit's peak) on
the synthetic corpus of :mod:`synth` (features memory-mapped from ``--cache``).
``similar`` and ``meta`` use their default hyper-parameters except ``epochs=1``
(``meta``: one meta-training epoch on a consensus model trained for one epoch) and no
progress bar.

Usage::

    python benchmarks/scale/bench.py                       # the table of RESULTS.md
    python benchmarks/scale/bench.py --quick               # tiny sizes (a smoke test)
    python benchmarks/scale/bench.py one similar --ratings 100000 --annotators 1000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from synth import synthetic  # noqa: E402


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_similar(a) -> dict:
    from perser.methods import make_method

    t0 = time.perf_counter()
    rs = synthetic(n_clips=a.clips, dim=a.dim, n_annotators=a.annotators, n_ratings=a.ratings, folder=a.cache)
    t_data = time.perf_counter() - t0
    m = make_method("similar", epochs=1, progress=False, device=a.device, precision=a.precision,
                    head_updates=a.head_updates)
    t0 = time.perf_counter()
    m.fit(rs)
    t_fit = time.perf_counter() - t0
    out = {"ratings": len(rs), "annotators": a.annotators, "heads": len(m.head_annotators_), "head_updates": a.head_updates,
           "device": a.device, "precision": a.precision,
           "epoch_s": m.history_.epoch_seconds[0], "epoch_cpu_s": m.history_.epoch_cpu_seconds[0], "fit_s": t_fit, "data_s": t_data, "peak_mb": peak_mb()}
    if a.enroll:
        out.update(enroll_bench(m, rs, a.enroll))
    return out


def enroll_bench(m, rs, n_heads: int, K: int = 30, calls: int = 50) -> dict:
    """Median enrollment time of a `similar` model whose head bank is resized to
    ``n_heads`` seen annotators (random head weights: the cost depends on shapes only)."""
    from perser.methods.nets import MultiHead

    head = MultiHead(m.net_.head.in_dim, n_heads + 1, m.net_.head.n_out)
    m.net_.head = head
    m.head_annotators_ = [f"h{i:05d}" for i in range(n_heads)]
    m._index = {a: i for i, a in enumerate(m.head_annotators_)}
    rng = np.random.default_rng(0)
    rows = rng.choice(len(rs), size=K, replace=False)
    X, y = np.asarray(rs.X[rs.clip_index[rows]]), rs.y[rows]
    for _ in range(3):
        m.enroll(X, y)
    ts, cs = [], []
    for _ in range(calls):
        t0, c0 = time.perf_counter(), time.process_time()
        m.enroll(X, y)
        ts.append(time.perf_counter() - t0)
        cs.append(time.process_time() - c0)
    return {"enroll_heads": n_heads, "enroll_k": K, "enroll_ms": 1000 * float(np.median(ts)),
            "enroll_cpu_ms": 1000 * float(np.median(cs))}


def run_meta(a) -> dict:
    from perser.methods import make_method

    rs = synthetic(n_clips=a.clips, dim=a.dim, n_annotators=a.annotators, n_ratings=a.ratings, folder=a.cache)
    cons = make_method("consensus", epochs=1, progress=False, device=a.device).fit(rs)
    m = make_method("meta", init_model=cons, meta_epochs=1, progress=False, device=a.device)
    t0 = time.perf_counter()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m.fit(rs)
    t_fit = time.perf_counter() - t0
    tasks = int(m.iters_per_epoch) * int(m.meta_batch_size)
    return {"ratings": len(rs), "annotators": a.annotators, "task_annotators": m.task_counts_["task_annotators"],
            "meta_epoch_s": m.meta_epoch_seconds_[0], "tasks_per_epoch": tasks,
            "ms_per_task": 1000 * m.meta_epoch_seconds_[0] / tasks, "meta_fit_s": t_fit, "peak_mb": peak_mb()}


def one(argv: list[str]) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["similar", "meta"])
    p.add_argument("--ratings", type=int, default=1_000_000)
    p.add_argument("--annotators", type=int, default=12_000)
    p.add_argument("--clips", type=int, default=150_000)
    p.add_argument("--dim", type=int, default=768)
    p.add_argument("--cache", default="/tmp/perser-scale")
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="auto")
    p.add_argument("--head-updates", default="sparse", choices=["sparse", "dense"])
    p.add_argument("--enroll", type=int, default=0, help="also time enrollment against this many heads")
    a = p.parse_args(argv)
    res = run_similar(a) if a.what == "similar" else run_meta(a)
    print("RESULT " + json.dumps(res))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes: check that everything runs")
    p.add_argument("--device", default="cpu")
    p.add_argument("--cache", default="/tmp/perser-scale")
    p.add_argument("--json", help="write the results here")
    a = p.parse_args()
    if a.quick:
        size = ["--clips", "3000", "--dim", "32"]
        runs = [["similar", "--ratings", "10000", "--annotators", "100", "--enroll", "500"],
                ["similar", "--ratings", "30000", "--annotators", "300"],
                ["meta", "--ratings", "10000", "--annotators", "100"]]
    else:
        size = []
        runs = [["similar", "--ratings", "100000", "--annotators", "1000"],
                ["similar", "--ratings", "100000", "--annotators", "12000"],
                ["similar", "--ratings", "300000", "--annotators", "12000"],
                ["similar", "--ratings", "1000000", "--annotators", "12000", "--enroll", "12000"],
                ["meta", "--ratings", "1000000", "--annotators", "1000"],
                ["meta", "--ratings", "1000000", "--annotators", "12000"]]
    results = []
    env = {**os.environ}
    for r in runs:
        cmd = [sys.executable, __file__, "one", *r, *size, "--device", a.device, "--cache", a.cache]
        t0 = time.perf_counter()
        p_ = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if p_.returncode != 0:
            print(p_.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"failed: {' '.join(r)}")
        res = json.loads([ln for ln in p_.stdout.splitlines() if ln.startswith("RESULT ")][-1][7:])
        res["what"], res["wall_s"] = r[0], time.perf_counter() - t0
        results.append(res)
        print(json.dumps(res), flush=True)
    print()
    print("| run | ratings | annotators | heads | one epoch, wall (s) | one epoch, CPU (s) | CPU s per 100k ratings | fit incl. setup, wall (s) | peak RSS (GB) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        if r["what"] == "similar":
            print(f"| similar | {r['ratings']:,} | {r['annotators']:,} | {r['heads']:,} | {r['epoch_s']:.1f} | "
                  f"{r['epoch_cpu_s']:.1f} | {r['epoch_cpu_s'] / r['ratings'] * 1e5:.2f} | {r['fit_s']:.1f} | "
                  f"{r['peak_mb'] / 1024:.2f} |")
    for r in results:
        if r["what"] == "meta":
            print(f"| meta | {r['ratings']:,} | {r['annotators']:,} ({r['task_annotators']:,} task annotators) | — | "
                  f"{r['meta_epoch_s']:.2f} ({r['tasks_per_epoch']} tasks, {r['ms_per_task']:.1f} ms/task) | — | — | "
                  f"{r['meta_fit_s']:.1f} | {r['peak_mb'] / 1024:.2f} |")
    for r in results:
        if "enroll_ms" in r:
            print(f"\nenrollment against {r['enroll_heads']:,} heads, K={r['enroll_k']}: {r['enroll_ms']:.1f} ms wall, "
                  f"{r['enroll_cpu_ms']:.1f} ms CPU (medians of 50)")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    torch.set_num_threads(int(os.environ.get("PERSER_BENCH_THREADS", torch.get_num_threads())))
    if len(sys.argv) > 1 and sys.argv[1] == "one":
        one(sys.argv[2:])
    else:
        main()
