"""``perser serve`` and ``perser keys`` from the command line."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from typer.testing import CliRunner

from perser.errors import ConfigError

from .conftest import D, ratings_json


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_keys_are_printed_once_and_stored_hashed(tmp_path):
    from perser.cli import keys_cmd
    from perser.testing.cli import command_app

    app = command_app(keys_cmd)
    store = str(tmp_path / "s.db")
    r = CliRunner().invoke(app, ["keys", "add", "ops", "--scope", "admin", "--store", store])
    assert r.exit_code == 0, r.output
    key = r.stdout.strip().splitlines()[0]
    assert key.startswith("perser_")
    dump = "\n".join(sqlite3.connect(store).iterdump())
    assert key not in dump and "ops" in dump
    r = CliRunner().invoke(app, ["keys", "add", "ops", "--scope", "admin", "--store", store])
    assert isinstance(r.exception, ConfigError) and "exists" in str(r.exception)
    r = CliRunner().invoke(app, ["keys", "add", "x", "--scope", "listener:", "--store", store])
    assert isinstance(r.exception, ConfigError)
    r = CliRunner().invoke(app, ["keys", "add", "x", "--scope", "root", "--store", store])
    assert isinstance(r.exception, ConfigError) and "admin' or 'listener:<id>'" in str(r.exception)
    r = CliRunner().invoke(app, ["keys", "list", "--store", store])
    assert "ops\tadmin" in r.stdout and key not in r.stdout
    assert CliRunner().invoke(app, ["keys", "revoke", "ops", "--store", store]).exit_code == 0
    assert "revoked" in CliRunner().invoke(app, ["keys", "list", "--store", store]).stdout


def test_serve_refuses_a_public_address_without_keys_and_without_the_extra(trained, tmp_path, monkeypatch):
    from perser.cli import serve_cmd
    from perser.testing.cli import command_app

    app = command_app(serve_cmd)
    r = CliRunner().invoke(app, ["serve", str(trained[0]), "--store", str(tmp_path / "s.db"), "--host", "0.0.0.0"])
    assert isinstance(r.exception, ConfigError) and "perser keys add" in str(r.exception)
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if `pip install perser` without [serve]
    r = CliRunner().invoke(app, ["serve", str(trained[0]), "--store", str(tmp_path / "t.db")])
    assert isinstance(r.exception, ConfigError) and "perser[serve]" in str(r.exception)
    assert not (tmp_path / "t.db").exists()  # refused before anything was made


def _wait(url: str, proc, seconds: float = 90):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                return json.loads(r.read())
        except OSError:
            time.sleep(0.2)
    raise AssertionError(proc.stderr.read().decode() if proc.poll() is not None else "no answer")


def _call(url, method="GET", body=None, key=None):
    headers = {"content-type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    req = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(), headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.mark.slow
def test_perser_serve_with_two_workers_shares_the_database(trained, tmp_path):
    """``perser serve --workers 2`` on the loopback address with a key; bounded waits, then stopped."""
    from perser.serve import Database
    from perser.serve.service import add_key

    m1, _, rs, W, label = trained
    store = str(tmp_path / "s.db")
    key = add_key(Database(store), "ops", "admin")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-c", "from perser.cli import main; main()", "serve", str(m1), "--store", store,
                             "--port", str(port), "--workers", "2", "--log-level", "warning"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        assert _wait(url, proc)["default"] == m1.name
        X = np.random.default_rng(4).standard_normal((8, D)).astype(np.float32)
        assert _call(url + "/listeners/fay/ratings", "POST", {"ratings": ratings_json(X, label(X, W["a0"]))})[0] == 401
        codes = [_call(url + f"/listeners/w{i}/ratings", "POST", {"ratings": ratings_json(X, label(X, W["a0"]))}, key)[0]
                 for i in range(6)]
        assert codes == [200] * 6
        status, page = _call(url + "/listeners?limit=100", key=key)
        assert status == 200 and [x["listener"] for x in page["listeners"]] == [f"w{i}" for i in range(6)]
        status, pred = _call(url + "/predict", "POST", {"listener": "w3", "clips": [{"features": X[0].tolist()}]}, key)
        assert status == 200 and pred["model"] == m1.name
        req = urllib.request.Request(url + "/metrics", headers={"Authorization": f"Bearer {key}"})
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read().decode()
        # both workers' counters summed (multiprocess mode): six ratings requests
        assert 'perser_requests_total{method="POST",route="/listeners/{listener}/ratings",status="200"} 6.0' in text
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    assert Database(store).count_listeners() == 6
