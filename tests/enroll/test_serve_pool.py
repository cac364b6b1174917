"""``perser serve MODEL --pool POOL``: the next clips and the page over real HTTP."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_perser_serve_with_a_pool(tmp_path, pagekit):
    model_dir, pool_csv, feats, X, W = pagekit.build(tmp_path)
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-c", "from perser.cli import main; main()", "serve", str(model_dir),
                             "--store", str(tmp_path / "s.db"), "--port", str(port), "--pool", str(pool_csv),
                             "--pool-features", str(feats), "--strategy", "diverse"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        doc = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(url + "/listeners/ann/next?n=2", timeout=2) as r:
                    doc = json.loads(r.read())
                break
            except OSError:
                time.sleep(0.2)
        assert doc is not None, proc.stderr.read1().decode() if proc.poll() is not None else "no answer"
        assert doc["strategy"] == "diverse" and len(doc["clips"]) == 2 and doc["answered"] == 0
        with urllib.request.urlopen(url + "/", timeout=5) as r:
            assert b"listener key" in r.read()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
