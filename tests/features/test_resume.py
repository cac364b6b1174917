"""A killed extraction resumes without recomputing what it finished."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from perser.features import extract

from .conftest import write_voices

SCRIPT = textwrap.dedent(
    """
    import sys, time
    import perser.features.smile as smile
    real = smile._compute
    def slow(*a, **k):  # slow each file down so the parent can kill us part-way
        time.sleep(0.15)
        return real(*a, **k)
    smile._compute = slow
    from perser.features import extract
    extract(sys.argv[2:], "egemaps", cache_dir=sys.argv[1], progress=False)
    """
)


@pytest.mark.slow
def test_kill_and_resume(tmp_path):
    paths = [str(p) for p in write_voices(tmp_path / "a", 24, seconds=(0.5, 0.8))]
    store = tmp_path / "store"
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(store), *paths], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    done: list = []
    while time.monotonic() < deadline and proc.poll() is None:
        done = list(store.glob("egemaps-*/??/*.npy"))
        if len(done) >= 4:
            break
        time.sleep(0.02)
    assert proc.poll() is None, f"extraction ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in store.glob("egemaps-*/??/*.npy")}
    assert 4 <= len(finished) < len(paths)

    resumed = extract(paths, "egemaps", cache_dir=store, progress=False)
    assert resumed.n_reused == len(finished)
    assert resumed.n_computed == len(paths) - len(finished)
    assert not resumed.failures and resumed.X.shape == (len(paths), 88)
    for p, stamp in finished.items():  # finished entries were neither recomputed nor rewritten
        assert (p.stat().st_ino, p.stat().st_mtime_ns) == stamp
    # a killed write may leave a temporary file behind, but never a half-written entry that is read:
    fresh = extract(paths, "egemaps", cache_dir=tmp_path / "fresh", progress=False)
    np.testing.assert_array_equal(resumed.X, fresh.X)
