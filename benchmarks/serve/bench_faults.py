"""Faults: kill -9 during bursts of enrollments; a model swap with many listeners.

``kill``: 8 clients send enrollments (POST /listeners/{id}/ratings, 6 rated clips each)
to ``perser serve``; after ``--kill-after`` seconds the server's whole process group is
killed with SIGKILL, then restarted on the same store. Every enrollment answered 200
before the kill must be there with a ready profile at the revision it was answered
with; nothing half-written (a listener without ratings, or ratings without a profile).
Run against SQLite and, with ``--pg URL``, PostgreSQL.

``swap``: ``--listeners`` listeners enrolled with model A; then A and a retrained model
B are served with B the default. While B re-enrolls everyone in the background,
predictions for every listener keep answering (by A until their B profile is ready);
at the end every listener has a ready B profile, none lost.

    python benchmarks/serve/bench_faults.py kill [--pg postgresql://...] [--rounds 3]
    python benchmarks/serve/bench_faults.py swap [--listeners 1000]
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
from _common import Client, Server, make_model, ratings  # noqa: E402


def kill_run(model: Path, store: str, workers: int, kill_after: float, rounds: int, tmp: Path) -> dict:
    from perser.serve import Database

    acked: dict[str, int] = {}
    sent = 0
    lock = threading.Lock()
    for rnd in range(rounds):
        srv = Server([str(model)], store, "--workers", str(workers), log=tmp / "server.log")
        stop = threading.Event()

        def client(c_id: int):
            nonlocal sent
            c = Client(srv.url)
            i = 0
            while not stop.is_set():
                name = f"r{rnd}-c{c_id}-{i}"
                i += 1
                with lock:
                    sent += 1
                try:
                    status, body = c.call("POST", f"/listeners/{name}/ratings", {"ratings": ratings(6, hash(name) % 10_000)})
                except Exception:  # the server died under us: this one was never acknowledged
                    return
                if status == 200:
                    with lock:
                        acked[name] = body["revision"]

        threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        time.sleep(kill_after)
        srv.kill9()
        stop.set()
        for t in threads:
            t.join()
    # restart once more and check every acknowledged enrollment
    srv = Server([str(model)], store, log=tmp / "server.log")
    try:
        db = Database(store)
        listeners = db.count_listeners()
        c = Client(srv.url)
        missing, bad = [], []
        for name, rev in acked.items():
            status, info = c.call("GET", f"/listeners/{name}")
            if status != 200:
                missing.append(name)
                continue
            prof = next(iter(info["profiles"].values()))
            if info["ratings"] != 6 or info["revision"] != rev or prof["status"] != "ready":
                bad.append(name)
        # nothing half-written: every stored listener has 6 ratings and a ready profile
        half = 0
        after = None
        while True:
            status, page = c.call("GET", "/listeners?limit=1000" + (f"&after={after}" if after else ""))
            for x in page["listeners"]:
                status, info = c.call("GET", f"/listeners/{x['listener']}")
                prof = next(iter(info["profiles"].values()))
                if info["ratings"] != 6 or prof["status"] != "ready":
                    half += 1
            after = page["next"]
            if after is None:
                break
    finally:
        srv.stop()
    return {"store": store.split("?")[0], "rounds": rounds, "sent": sent, "acknowledged": len(acked), "stored": listeners,
            "acknowledged_missing": len(missing), "acknowledged_wrong": len(bad), "half_written": half}


def swap_run(n: int, tmp: Path) -> dict:
    from perser.serve import Database

    a, b = make_model(tmp / "A", seed=0), make_model(tmp / "B", seed=1)
    store = str(tmp / "swap.db")
    srv = Server([f"A={a}"], store, log=tmp / "server.log")
    c = Client(srv.url)
    t0 = time.perf_counter()
    for i in range(n):
        assert c.call("POST", f"/listeners/s{i}/ratings", {"ratings": ratings(6, i)})[0] == 200
    enroll_s = time.perf_counter() - t0
    srv.stop()
    srv = Server([f"B={b}", f"A={a}"], store, "--default", "B", log=tmp / "server.log")
    c = Client(srv.url)
    answered = {"A": 0, "B": 0}
    errors = 0
    samples = []
    t0 = time.perf_counter()
    try:
        i = 0
        while True:
            status, body = c.call("POST", "/predict", {"listener": f"s{i % n}", "clips": [{"features": [0.1] * 88}]})
            if status != 200:
                errors += 1
            else:
                answered[body["model"]] += 1
            i += 1
            if i % 50 == 0:
                prog = c.call("GET", "/models")[1]["models"][0]["reenrollment"]
                samples.append((round(time.perf_counter() - t0, 1), prog["ready"], prog["pending"], prog["failed"]))
                if prog["pending"] == 0:
                    break
            if time.perf_counter() - t0 > 600:
                break
        took = time.perf_counter() - t0
        final = c.call("GET", "/models")[1]["models"][0]["reenrollment"]
    finally:
        srv.stop()
    db = Database(store)
    return {"listeners": n, "enroll_s": enroll_s, "reenroll_s": took, "final": final, "predictions_during": answered,
            "prediction_errors": errors, "progress_samples": samples[:: max(1, len(samples) // 8)],
            "listeners_in_db": db.count_listeners()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["kill", "swap"])
    ap.add_argument("--pg", default=None, help="also run 'kill' against this PostgreSQL URL (an empty database), or 'auto': a throw-away server")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--kill-after", type=float, default=4.0)
    ap.add_argument("--listeners", type=int, default=1000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="perser-bench-faults-"))
    if args.what == "kill":
        model = make_model(tmp / "model")
        print(json.dumps(kill_run(model, str(tmp / "k.db"), args.workers, args.kill_after, args.rounds, tmp)), flush=True)
        if args.pg == "auto":
            from _common import pg_server

            with pg_server() as url:
                print(json.dumps(kill_run(model, url, args.workers, args.kill_after, args.rounds, tmp)), flush=True)
        elif args.pg:
            print(json.dumps(kill_run(model, args.pg, args.workers, args.kill_after, args.rounds, tmp)), flush=True)
    else:
        print(json.dumps(swap_run(args.listeners, tmp)), flush=True)


if __name__ == "__main__":
    main()
