"""Fixtures of the service's tests: small trained models, and a real PostgreSQL server.

The PostgreSQL server is Debian's ``postgresql`` package's ``initdb``/``pg_ctl``, started
once per test session in a temporary folder, listening on a Unix socket only (no TCP
port); as root it runs as the ``postgres`` user. Tests that need it skip, saying why,
only when the binaries are absent.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid

import numpy as np
import pytest
import torch

from perser.corpus.model import LabelSpace
from perser.methods import RatingSet, make_method

torch.set_num_threads(1)

D = 88  # eGeMAPS-sized features, so that uploaded audio goes through real openSMILE extraction
CAT = LabelSpace("emotion", "categorical", classes=("ang", "hap", "neu", "sad"))
DIM = LabelSpace("avd", "dimensional", dimensions=("arousal", "valence"), scale=(1, 5))
FAST = dict(hidden=(16,), dropout=0.0, epochs=15, batch_size=64, lr=3e-3, patience=0, progress=False, seed=0)


def make_data(space: LabelSpace, n_clips: int = 150, n_ann: int = 4, seed: int = 0):
    """Annotators who label features through their own weight matrices (a planted signal)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_clips, D)).astype(np.float32)
    W = {f"a{i}": rng.standard_normal((D, space.n_outputs)) for i in range(n_ann)}

    def label(x, w):
        s = x @ w / np.sqrt(D) * 2
        if space.kind == "categorical":
            return s.argmax(1).astype(np.int64)
        return (3 + 2 * np.tanh(s)).astype(np.float32)

    ys = [label(X, w) for w in W.values()]
    rs = RatingSet(X=X, clip_ids=np.array([f"c{i}" for i in range(n_clips)], dtype=object),
                   clip_index=np.concatenate([np.arange(n_clips)] * n_ann),
                   annotator_ids=np.concatenate([[a] * n_clips for a in W]).astype(object),
                   y=np.concatenate(ys), space=space)
    return rs, W, label


def ratings_json(X, y, space=CAT, prefix="e"):
    if space.kind == "categorical":
        return [{"id": f"{prefix}{i}", "features": x.tolist(), "label": space.classes[int(t)]} for i, (x, t) in enumerate(zip(X, y))]
    return [{"id": f"{prefix}{i}", "features": x.tolist(), "values": dict(zip(space.dimensions, map(float, t)))}
            for i, (x, t) in enumerate(zip(X, y))]


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """Two `similar` models (categorical, eGeMAPS-shaped input) trained with different seeds: (m1, m2, data)."""
    rs, W, label = make_data(CAT)
    root = tmp_path_factory.mktemp("models")
    paths = []
    for seed in (0, 1):
        model = make_method("similar", **{**FAST, "seed": seed}).fit(rs)
        model.feature_spec = {"spec": "egemaps", "shape": [D]}
        paths.append(model.save(root / f"similar-{seed}"))
    return paths[0], paths[1], rs, W, label


# ------------------------------------------------------------------ PostgreSQL
def _pg_bin() -> str | None:
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.isfile(os.path.join(d, "initdb")):
            return d
    found = shutil.which("initdb")
    return os.path.dirname(found) if found else None


@pytest.fixture(scope="session")
def pg_server():
    """``postgresql://`` URL (without database) of a throw-away server on a Unix socket."""
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql")
    root = tempfile.mkdtemp(prefix="perser-pg-")
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data = os.path.join(root, "data")
    subprocess.run(as_user + [f"{bindir}/initdb", "-D", data, "-A", "trust", "-U", "perser", "--no-sync"],
                   check=True, capture_output=True)
    subprocess.run(as_user + [f"{bindir}/pg_ctl", "-D", data, "-w", "-l", os.path.join(root, "log"),
                              "-o", f"-k {root} -c listen_addresses='' -c fsync=off -c max_connections=200", "start"],
                   check=True, capture_output=True)
    try:
        yield f"postgresql://perser@/{{db}}?host={root}"
    finally:
        subprocess.run(as_user + [f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_url(pg_server):
    """A fresh, empty database on the session's server."""
    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(pg_server.format(db="postgres"), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return pg_server.format(db=name)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    """A fresh store of each kind: a SQLite file, and a database on the PostgreSQL server."""
    if request.param == "sqlite":
        return str(tmp_path / "perser.db")
    return request.getfixturevalue("pg_url")
