"""``perser train --checkpoint``: a training process killed with SIGKILL resumes to the
same model as an uninterrupted run when the same command is given again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from perser.methods import load_model

from .test_cli import write_corpus

# the child slows every optimiser step down so that the parent can kill it part-way
# and counts them (printed at exit), so that the test can tell a resumed run from a rerun
SLOW = textwrap.dedent(
    """
    import atexit, sys, time, torch
    step, n = torch.optim.Adam.step, [0]
    def slow(self, *a, **k):
        n[0] += 1
        time.sleep(0.01)
        return step(self, *a, **k)
    torch.optim.Adam.step = slow
    atexit.register(lambda: print(f"optimizer steps: {n[0]}", file=sys.stderr))
    from perser.cli import main
    sys.argv = ["perser", *sys.argv[1:]]
    main()
    """
)


def _train_args(root, out, ckpt):
    return ["train", str(root), "--features", str(root / "feats.npz"), "--method", "consensus", "--out", str(out),
            "--checkpoint", str(ckpt), "--no-progress", "--epochs", "12", "--batch-size", "16", "--seed", "3",
            "-p", "hidden=[16]", "-p", "dropout=0", "-p", "patience=0"]


@pytest.mark.slow
def test_sigkilled_training_resumes_to_the_uninterrupted_model(tmp_path):
    write_corpus(tmp_path / "toy", n_clips=200)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ref = subprocess.run([sys.executable, "-c", SLOW.replace("time.sleep(0.01)", "pass"),
                          *_train_args(tmp_path / "toy", tmp_path / "ref", tmp_path / "ck-ref")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert ref.returncode == 0, ref.stderr[-2000:]

    ckpt = tmp_path / "ck"
    args = _train_args(tmp_path / "toy", tmp_path / "model", ckpt)
    proc = subprocess.Popen([sys.executable, "-c", SLOW, *args], env=env, stderr=subprocess.PIPE)
    state = ckpt / "last" / "state.json"
    deadline, epoch = time.monotonic() + 240, -1
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            epoch = json.loads(state.read_text(encoding="utf-8"))["epoch"]
        except (OSError, ValueError, KeyError):
            epoch = -1
        if epoch >= 2:
            break
        time.sleep(0.02)
    assert proc.poll() is None, f"training ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "model").exists()  # nothing half-written where the model goes
    from perser.methods.training import _find_checkpoint  # a kill between atomic_dir's renames leaves .last.old

    killed_at = json.loads((_find_checkpoint(ckpt / "last") / "state.json").read_text(encoding="utf-8"))["epoch"]
    assert 2 <= killed_at < 11

    again = subprocess.run([sys.executable, "-c", SLOW.replace("time.sleep(0.01)", "pass"), *args],
                           env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    a, b = load_model(tmp_path / "ref"), load_model(tmp_path / "model")
    for (k, x), (_, y) in zip(a.net_.state_dict().items(), b.net_.state_dict().items()):
        assert np.array_equal(x.numpy(), y.numpy()), k
    # the second run resumed after the killed epoch rather than training again from the start
    steps = {name: int(p.stderr.rsplit("optimizer steps: ", 1)[1].split()[0]) for name, p in (("ref", ref), ("again", again))}
    per_epoch = steps["ref"] // 12
    assert steps["again"] == (12 - killed_at - 1) * per_epoch, steps


@pytest.mark.slow
def test_perser_train_under_torchrun_matches_one_process(tmp_path):
    """``torchrun --nproc_per_node 2 -m perser train ...``: DistributedDataParallel over two
    CPU processes (gloo) gives the model one process gives; only rank 0 writes it."""
    import socket

    write_corpus(tmp_path / "toy", n_clips=160)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    args = ["train", str(tmp_path / "toy"), "--features", str(tmp_path / "toy" / "feats.npz"), "--method", "consensus",
            "--no-progress", "--epochs", "4", "--batch-size", "32", "--seed", "1",
            "-p", "hidden=[16]", "-p", "dropout=0", "-p", "patience=0", "-p", "valid_fraction=0"]
    one = subprocess.run([sys.executable, "-m", "perser", *args, "--out", str(tmp_path / "one")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-2000:]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--nnodes", "1",
                          "--master_addr", "127.0.0.1", "--master_port", str(port), "-m", "perser", *args,
                          "--out", str(tmp_path / "two")], env=env, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("model written") == 1  # rank 0 alone writes and reports
    a, b = load_model(tmp_path / "one"), load_model(tmp_path / "two")
    start = a._make_net(1)
    for (k, x), (_, y) in zip(a.net_.state_dict().items(), b.net_.state_dict().items()):
        assert np.allclose(x.numpy(), y.numpy(), atol=1e-5), k
    assert not np.allclose(start.head.weight.detach().numpy(), b.net_.head.weight.detach().numpy(), atol=1e-2)
