"""Shared pieces of the service benchmarks: a small model, a server in a child process on
127.0.0.1, keep-alive HTTP clients, percentiles and the server's resident memory."""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

D = 88
CLASSES = ("ang", "hap", "neu", "sad")


def make_model(folder: Path, seed: int = 0, n_annotators: int = 20) -> Path:
    """A `similar` model over eGeMAPS-shaped features (88), trained briefly on a planted signal."""
    import torch

    from perser.corpus.model import LabelSpace
    from perser.methods import RatingSet, make_method

    torch.set_num_threads(1)
    if (folder / "config.json").is_file():
        return folder
    space = LabelSpace("emotion", "categorical", classes=CLASSES)
    rng = np.random.default_rng(seed)
    n = 300
    X = rng.standard_normal((n, D)).astype(np.float32)
    W = [rng.standard_normal((D, 4)) for _ in range(n_annotators)]
    rs = RatingSet(X=X, clip_ids=np.array([f"c{i}" for i in range(n)], dtype=object),
                   clip_index=np.concatenate([np.arange(n)] * n_annotators),
                   annotator_ids=np.concatenate([[f"a{j}"] * n for j in range(n_annotators)]).astype(object),
                   y=np.concatenate([(X @ w).argmax(1) for w in W]), space=space)
    m = make_method("similar", hidden=(64,), dropout=0.0, epochs=5, batch_size=256, progress=False, seed=seed).fit(rs)
    m.feature_spec = {"spec": "egemaps", "shape": [D]}
    return m.save(folder)


def ratings(k: int, seed: int, prefix: str = "c") -> list[dict]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((k, D)).astype(np.float32)
    return [{"id": f"{prefix}{i}", "features": x.tolist(), "label": CLASSES[i % 4]} for i, x in enumerate(X)]


def wav_b64(seconds: float = 3.0, seed: int = 0, sr: int = 16000) -> str:
    import soundfile as sf

    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 100 + 80 * rng.random()
    x = 0.2 * sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6)) + 0.01 * rng.standard_normal(len(t))
    buf = io.BytesIO()
    sf.write(buf, x.astype(np.float32), sr, format="WAV", subtype="PCM_16")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``perser serve`` in a child process on 127.0.0.1 (its own process group, so kill -9 reaches the workers)."""

    def __init__(self, models: list[str], store: str, *extra: str, port: int | None = None, log: Path | None = None):
        self.port = port or free_port()
        self.url = f"127.0.0.1:{self.port}"
        self.log = open(log or os.devnull, "ab")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "perser", "serve", *models, "--store", store, "--port", str(self.port), "--log-level", "warning", *extra],
            stdout=self.log, stderr=self.log, start_new_session=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        self.wait()
        self.startup_s = time.monotonic() - t0

    def wait(self, seconds: float = 180) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}")
            try:
                c = http.client.HTTPConnection(self.url, timeout=2)
                c.request("GET", "/health")
                if c.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("server did not answer")

    def pids(self) -> list[int]:
        out = [self.proc.pid]
        try:
            out += [int(p) for p in subprocess.run(["pgrep", "-g", str(self.proc.pid)], capture_output=True, text=True).stdout.split()]
        except FileNotFoundError:  # pragma: no cover
            pass
        return sorted(set(out))

    def rss_mb(self) -> float:
        """Resident memory of the server and its workers (MiB)."""
        total = 0
        for pid in self.pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except OSError:
                pass
        return total / 1024

    def kill9(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


class Client:
    """One keep-alive connection."""

    def __init__(self, url: str, key: str | None = None):
        self.url, self.key = url, key
        self.conn = http.client.HTTPConnection(url, timeout=120)

    def call(self, method: str, path: str, body=None) -> tuple[int, dict]:
        headers = {"content-type": "application/json"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=data, headers=headers)
                r = self.conn.getresponse()
                raw = r.read()
                return r.status, (json.loads(raw) if raw and r.getheader("content-type", "").startswith("application/json") else {})
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.url, timeout=120)
                if attempt:
                    raise
        raise AssertionError("unreachable")


def pct(xs, q) -> float:
    return float(np.percentile(np.asarray(xs) * 1000, q)) if len(xs) else float("nan")


@__import__("contextlib").contextmanager
def pg_server():
    """A throw-away PostgreSQL server on a Unix socket (Debian's binaries; as root, run as 'postgres')."""
    import glob
    import shutil

    bindir = sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1]
    root = tempfile_dir = __import__("tempfile").mkdtemp(prefix="perser-pg-")
    as_user = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data = os.path.join(root, "data")
    subprocess.run(as_user + [f"{bindir}/initdb", "-D", data, "-A", "trust", "-U", "perser"], check=True, capture_output=True)
    subprocess.run(as_user + [f"{bindir}/pg_ctl", "-D", data, "-w", "-l", os.path.join(root, "log"),
                              "-o", f"-k {root} -c listen_addresses='' -c max_connections=200", "start"], check=True, capture_output=True)
    try:
        yield f"postgresql://perser@/postgres?host={tempfile_dir}"
    finally:
        subprocess.run(as_user + [f"{bindir}/pg_ctl", "-D", data, "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
