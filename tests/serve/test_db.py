"""The database: migrations match the tables, concurrent writes, the old folder store's migration."""

from __future__ import annotations

import json
import threading
from urllib.parse import quote

import numpy as np
import pytest

from perser.serve import Database, RatingsRequest, Service
from perser.serve.db import engine_url, metadata

from .conftest import D, ratings_json


def test_migrated_schema_equals_the_tables(store):
    """Alembic's revisions build exactly the tables the code uses (a missing migration fails here)."""
    from alembic.migration import MigrationContext
    from alembic.autogenerate import compare_metadata

    db = Database(store)
    Database(store)  # a second start (another worker) finds the schema current
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_store_argument(tmp_path):
    assert engine_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert engine_url(tmp_path / "x.db").startswith("sqlite:///")
    (tmp_path / "old").mkdir()
    with pytest.raises(Exception, match="is a folder"):
        engine_url(tmp_path / "old")
    with pytest.raises(Exception, match="unsupported database URL scheme 'mysql'"):
        engine_url("mysql://x")


def test_concurrent_writes_to_one_listener_are_serialised(trained, store):
    """Writers race on one listener while readers predict: every acknowledged write is kept,
    the last one's profile is the stored one, and no reader sees a missing profile."""
    m1, _, rs, W, label = trained
    s = Service([m1], store)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, D)).astype(np.float32)
    s.add_ratings("race", RatingsRequest(ratings=ratings_json(X[:4], label(X[:4], W["a0"]), prefix="base")))
    errors, acked = [], []

    def writer(t):
        try:
            for j in range(3):
                i = 4 + t * 3 + j
                out = s.add_ratings("race", RatingsRequest(ratings=ratings_json(X[i:i + 1], label(X[i:i + 1], W["a1"]), prefix=f"w{i}-")))
                acked.append(out["revision"])
        except Exception as e:  # pragma: no cover - the failure this test looks for
            errors.append(repr(e))

    def reader():
        from perser.serve import PredictRequest

        try:
            for _ in range(15):
                s.predict(PredictRequest(listener="race", clips=[{"features": X[0].tolist()}]))
        except Exception as e:  # pragma: no cover
            errors.append(repr(e))

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)] + [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(acked) == list(range(2, 14))  # twelve writes, each its own revision
    info = s.listener_info("race")
    assert info["revision"] == 13 and info["ratings"] == 16
    prof = info["profiles"][m1.name]
    assert prof["status"] == "ready" and prof["k"] == 16 and not prof["stale"]


def test_the_old_profile_folder_is_migrated(trained, tmp_path):
    from typer.testing import CliRunner

    from perser.cli import serve_cmd
    from perser.serve.legacy import _old_fingerprint
    from perser.testing.cli import command_app

    m1, m2, rs, W, label = trained
    s = Service([m1], tmp_path / "scratch.db")
    model = s.models[m1.name].model
    X = np.random.default_rng(0).standard_normal((8, D)).astype(np.float32)
    old = tmp_path / "profiles"
    (old / "profiles").mkdir(parents=True)
    (old / "store.json").write_text(json.dumps({"fingerprint": _old_fingerprint(m1), "method": "similar"}))
    heads = {}
    for who, head in (("msp-podcast/W1", "a1"), ("bo", "a2")):
        p = model.enroll(X, label(X, W[head]), annotator=who)
        p.save(old / "profiles" / quote(who, safe="-_.@+=~"))
        heads[who] = p.data["heads"]
    runner = CliRunner()
    app = command_app(serve_cmd)
    r = runner.invoke(app, ["serve-migrate", str(old), str(m2), "--store", str(tmp_path / "new.db")])
    assert r.exit_code != 0 and "made for another model folder" in str(r.exception)
    r = runner.invoke(app, ["serve-migrate", str(old), str(m1), "--store", str(tmp_path / "new.db")])
    assert r.exit_code == 0 and "migrated 2 listener(s)" in r.output, r.output
    s2 = Service([m1, m2], tmp_path / "new.db")
    info = s2.listener_info("msp-podcast/W1")
    assert info["profiles"][m1.name]["profile"]["heads"] == heads["msp-podcast/W1"]
    s2.reenroll_all()
    after = s2.listener_info("msp-podcast/W1")["profiles"][m2.name]
    assert after["status"] == "failed" and "0 rating(s)" in after["error"]  # no ratings were kept: said, not dropped
    r = runner.invoke(app, ["serve-migrate", str(old), str(m1), "--store", str(tmp_path / "new.db")])
    assert "migrated 0" in r.output and "already in the database" in r.output
