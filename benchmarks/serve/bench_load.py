"""Load on `perser serve` from 8 concurrent clients on 127.0.0.1 (bounded runs).

Scenarios, each run in three equal rounds in a row (a p50 that grows round over round
is the decay this benchmark watches for):

- ``features-1`` / ``features-32``: POST /predict with one / 32 clips as features;
- ``audio-cached``: POST /predict with the same 3-s WAV every time;
- ``audio-unique``: POST /predict with a different 3-s WAV every time.

Meanwhile one more client, in a process of its own, asks GET /health every 20 ms (its
p99 is reported), and the
server's resident memory is read before and after every round. Last, ``--memory N``
feature requests are sent and the memory read every N/10 requests.

    python benchmarks/serve/bench_load.py [--workers 1] [--n 600] [--n-audio 150] [--memory 10000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import Client, Server, make_model, pct, ratings, wav_b64  # noqa: E402

import numpy as np  # noqa: E402


def poll_health(url: str, stop, queue) -> None:
    """GET /health every 20 ms until ``stop``; the latencies go to ``queue``."""
    c = Client(url)
    out = []
    while not stop.is_set():
        t = time.perf_counter()
        c.call("GET", "/health")
        out.append(time.perf_counter() - t)
        stop.wait(0.02)
    queue.put(out)


def run_round(url: str, bodies, n: int, clients: int) -> dict:
    lat: list[float] = []
    codes: dict[int, int] = {}
    lock = threading.Lock()
    counter = iter(range(n))

    def worker():
        c = Client(url)
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            t = time.perf_counter()
            status, _ = c.call("POST", "/predict", bodies(i))
            dt = time.perf_counter() - t
            with lock:
                lat.append(dt)
                codes[status] = codes.get(status, 0) + 1

    import multiprocessing as mp

    ctx = mp.get_context("fork")
    queue, stop_p = ctx.Queue(), ctx.Event()
    hp = ctx.Process(target=poll_health, args=(url, stop_p, queue))  # its own process: the clients' lock does not delay it
    hp.start()
    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    stop_p.set()
    health = queue.get(timeout=60)
    hp.join()
    return {"n": n, "codes": codes, "p50_ms": pct(lat, 50), "p95_ms": pct(lat, 95), "p99_ms": pct(lat, 99),
            "rps": n / wall, "health_p50_ms": pct(health, 50), "health_p99_ms": pct(health, 99), "health_n": len(health)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--n", type=int, default=600, help="requests per round, feature scenarios")
    ap.add_argument("--n-audio", type=int, default=150, help="requests per round, audio scenarios")
    ap.add_argument("--memory", type=int, default=10000, help="feature requests of the memory run")
    ap.add_argument("--scenarios", default="features-1,features-32,audio-cached,audio-unique")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="perser-bench-load-"))
    model = make_model(tmp / "model")
    srv = Server([str(model)], str(tmp / "s.db"), "--workers", str(args.workers), log=tmp / "server.log")
    results: dict = {"workers": args.workers, "clients": args.clients, "startup_s": srv.startup_s, "rounds": {}}
    try:
        c = Client(srv.url)
        assert c.call("POST", "/listeners/bench/ratings", {"ratings": ratings(8, 0)})[0] == 200
        rng = np.random.default_rng(1)
        one = [{"listener": "bench", "clips": [{"id": "x", "features": rng.standard_normal(88).tolist()}]}]
        many = {"listener": "bench", "clips": [{"id": f"x{i}", "features": rng.standard_normal(88).tolist()} for i in range(32)]}
        cached = {"listener": "bench", "clips": [{"id": "a", "audio": wav_b64(3.0, seed=0)}]}
        unique = [{"listener": "bench", "clips": [{"id": "u", "audio": wav_b64(3.0, seed=1000 + i)}]} for i in range(3 * args.n_audio)]
        scen = {
            "features-1": (lambda i: one[0], args.n),
            "features-32": (lambda i: many, args.n),
            "audio-cached": (lambda i: cached, args.n_audio),
        }
        for name in args.scenarios.split(","):
            rounds = []
            for r in range(3):
                if name == "audio-unique":
                    body, n = (lambda i, r=r: unique[r * args.n_audio + i]), args.n_audio
                else:
                    body, n = scen[name]
                before = srv.rss_mb()
                out = run_round(srv.url, body, n, args.clients)
                out.update(rss_before_mb=before, rss_after_mb=srv.rss_mb())
                rounds.append(out)
                print(name, r + 1, json.dumps(out), flush=True)
            results["rounds"][name] = rounds
        if args.memory:
            mem = [(0, srv.rss_mb())]
            step = max(1, args.memory // 10)
            for k in range(10):
                run_round(srv.url, lambda i: one[0], step, args.clients)
                mem.append(((k + 1) * step, srv.rss_mb()))
            results["memory"] = mem
            print("memory", json.dumps(mem), flush=True)
    finally:
        srv.stop()
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))
    print("| scenario | round | n | p50 ms | p95 ms | p99 ms | req/s | /health p99 ms | RSS before → after MiB | codes |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, rounds in results["rounds"].items():
        for i, r in enumerate(rounds):
            print(f"| {name} | {i + 1} | {r['n']} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['p99_ms']:.1f} | {r['rps']:.1f} | "
                  f"{r['health_p99_ms']:.1f} | {r['rss_before_mb']:.0f} → {r['rss_after_mb']:.0f} | {r['codes']} |")


if __name__ == "__main__":
    main()
