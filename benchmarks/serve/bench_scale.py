"""Scale: a store of 10,000 and 100,000 listeners (4 rated clips and a ready profile each).

The store is filled straight through the database layer in bulk (one transaction), then
``perser serve`` is started on it and timed: start-up (process start to the first
/health answer), ``GET /listeners`` pages (the first, and one deep in the list),
``POST /predict`` for random listeners (one clip, sequential), ``GET /models`` (which
counts every listener's profile state) and ``GET /health``.

    python benchmarks/serve/bench_scale.py --listeners 10000 100000
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import D, Client, Server, make_model, pct, ratings  # noqa: E402


def fill(store: str, model: Path, n: int, k: int = 4) -> float:
    from perser.methods import load_model
    from perser.serve import db as dbm
    from perser.serve.service import encode_labels, profile_row

    t0 = time.perf_counter()
    database = dbm.Database(store)
    m = load_model(model)
    fkey = dbm.feature_key(m.feature_spec, m.input_shape_)
    mid = database.register_model(dbm.model_identity(model), m.name, m.space_.to_dict(), fkey, m.feature_spec, str(model))
    r = ratings(k, 0)
    X = np.array([x["features"] for x in r], dtype=np.float32)
    y = encode_labels(m.space_, [x["label"] for x in r], [x["id"] for x in r])
    row = profile_row(m.enroll(X, y), k)
    now = dbm.now()
    step = 5000
    with database.write() as conn:
        for s in range(0, n, step):
            names = [f"listener-{i:07d}" for i in range(s, min(n, s + step))]
            ids = conn.execute(dbm.listeners.insert().returning(dbm.listeners.c.id, sort_by_parameter_order=True),
                               [{"name": nm, "revision": 1, "created_at": now, "updated_at": now} for nm in names]).scalars().all()
            rids = conn.execute(dbm.ratings.insert().returning(dbm.ratings.c.id, sort_by_parameter_order=True),
                                [{"listener_id": lid, "clip_id": x["id"], "label": x["label"], "created_at": now}
                                 for lid in ids for x in r]).scalars().all()
            conn.execute(dbm.rating_features.insert(), [{"rating_id": rid, "feature_key": fkey, "shape": [D],
                                                         "data": X[j % k].tobytes()} for j, rid in enumerate(rids)])
            conn.execute(dbm.profiles.insert(), [{"listener_id": lid, "model_id": mid, "revision": 1, "updated_at": now, **row}
                                                 for lid in ids])
    return time.perf_counter() - t0


def timed(c: Client, method: str, path: str, body=None, n: int = 20) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        status, _ = c.call(method, path, body)
        assert status == 200, (path, status)
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--listeners", type=int, nargs="+", default=[10000, 100000])
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="perser-bench-scale-"))
    model = make_model(tmp / "model")
    rows = []
    for n in args.listeners:
        store = str(tmp / f"s{n}.db")
        fill_s = fill(store, model, n)
        srv = Server([str(model)], store, log=tmp / "server.log")
        try:
            c = Client(srv.url)
            first = timed(c, "GET", "/listeners?limit=100")
            deep = timed(c, "GET", f"/listeners?limit=100&after=listener-{n - 150:07d}")
            rng = np.random.default_rng(0)
            pred = []
            for i in rng.integers(0, n, 200):
                pred += timed(c, "POST", "/predict", {"listener": f"listener-{i:07d}", "clips": [{"features": [0.1] * D}]}, n=1)
            models = timed(c, "GET", "/models", n=5)
            health = timed(c, "GET", "/health", n=50)
        finally:
            srv.stop()
        row = {"listeners": n, "fill_s": round(fill_s, 1), "startup_s": round(srv.startup_s, 2),
               "page_first_p50_ms": pct(first, 50), "page_deep_p50_ms": pct(deep, 50), "predict_p50_ms": pct(pred, 50),
               "predict_p95_ms": pct(pred, 95), "models_p50_ms": pct(models, 50), "health_p50_ms": pct(health, 50),
               "db_mb": Path(store).stat().st_size / 2**20}
        print(json.dumps(row), flush=True)
        rows.append(row)
    print("| listeners | fill s | start-up s | /listeners first page p50 ms | deep page p50 ms | /predict p50 / p95 ms | /models p50 ms | /health p50 ms | database MiB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['listeners']:,} | {r['fill_s']} | {r['startup_s']} | {r['page_first_p50_ms']:.1f} | {r['page_deep_p50_ms']:.1f} | "
              f"{r['predict_p50_ms']:.1f} / {r['predict_p95_ms']:.1f} | {r['models_p50_ms']:.0f} | {r['health_p50_ms']:.1f} | {r['db_mb']:.0f} |")


if __name__ == "__main__":
    main()
