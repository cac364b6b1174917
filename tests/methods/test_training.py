"""The training loop: seeding, early stopping, checkpoints and resume, data parallelism."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from perser.errors import ConfigError
from perser.methods import load_model
from perser.methods.training import TrainConfig, batch_plan, fit_model

torch.set_num_threads(1)


def problem(init_seed: int = 0):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(50, 4, generator=g)
    y = X @ torch.randn(4, 1, generator=g)
    torch.manual_seed(init_seed)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.2), nn.Linear(8, 1))

    def batch_loss(module, rows):
        r = torch.from_numpy(rows)
        return ((module(X[r]) - y[r]) ** 2).mean()

    return model, batch_loss


def weights(model):
    return [p.detach().clone() for p in model.parameters()]


def test_batch_plan_is_seeded_and_merges_a_short_last_batch():
    b = batch_plan(9, 4, seed=1, epoch=0)
    assert [len(x) for x in b] == [4, 5]  # the last batch of 1 joined the one before
    assert [len(x) for x in batch_plan(10, 4, seed=1, epoch=0)] == [4, 4, 2]  # half a batch stays
    assert sorted(np.concatenate(b).tolist()) == list(range(9))
    assert all(np.array_equal(x, y) for x, y in zip(b, batch_plan(9, 4, seed=1, epoch=0)))
    assert not np.array_equal(np.concatenate(b), np.concatenate(batch_plan(10, 4, seed=1, epoch=1)))


def test_same_seed_same_weights_and_caller_rng_untouched():
    cfg = TrainConfig(epochs=3, batch_size=8, lr=1e-2, progress=False, seed=4)
    m1, f1 = problem()
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    fit_model(m1, 50, f1, config=cfg)
    assert torch.equal(torch.random.get_rng_state(), before)
    m2, f2 = problem()
    fit_model(m2, 50, f2, config=cfg)
    assert all(torch.equal(a, b) for a, b in zip(weights(m1), weights(m2)))


def test_early_stopping_restores_the_best_epoch():
    model, f = problem()
    scores = iter([3.0, 2.0, 1.0, 1.5, 2.5, 0.1, 0.0])
    snapshots = []

    def valid_loss(m):
        snapshots.append(weights(m))
        return next(scores)

    res = fit_model(model, 50, f, valid_loss, TrainConfig(epochs=7, batch_size=16, patience=2, progress=False))
    assert res.stopped_early and res.epochs_run == 5 and res.best_epoch == 2 and res.best_score == 1.0
    assert all(torch.equal(a, b) for a, b in zip(weights(model), snapshots[2]))
    assert [h["valid_loss"] for h in res.history] == [3.0, 2.0, 1.0, 1.5, 2.5]


class Killed(Exception):
    pass


def test_resume_after_a_kill_reproduces_the_uninterrupted_run(tmp_path):
    cfg = dict(epochs=6, batch_size=8, lr=1e-2, progress=False, seed=2, patience=3)
    ref, f = problem()
    X = torch.randn(20, 4, generator=torch.Generator().manual_seed(9))

    def vl(m):
        return float(m(X).pow(2).mean())

    full = fit_model(ref, 50, f, vl, TrainConfig(**cfg, checkpoint_dir=tmp_path / "a"))

    model, f2 = problem()
    calls = {"n": 0}

    def dying(module, rows):
        calls["n"] += 1
        if calls["n"] == 3 * 6 + 2:  # in the 4th epoch (6 batches per epoch)
            raise Killed
        return f2(module, rows)

    with pytest.raises(Killed):
        fit_model(model, 50, dying, vl, TrainConfig(**cfg, checkpoint_dir=tmp_path / "b"))
    fresh, f3 = problem(init_seed=1)  # different start: everything must come from the checkpoint
    res = fit_model(fresh, 50, f3, vl, TrainConfig(**cfg, checkpoint_dir=tmp_path / "b"))
    assert res.resumed_from == 3
    assert res.history == full.history
    assert all(torch.allclose(a, b, atol=0, rtol=0) for a, b in zip(weights(fresh), weights(ref)))
    # a finished run resumes to its result without training
    again, f4 = problem(init_seed=1)
    res2 = fit_model(again, 50, f4, vl, TrainConfig(**cfg, checkpoint_dir=tmp_path / "b"))
    assert res2.epochs_run == len(full.history) and all(torch.equal(a, b) for a, b in zip(weights(again), weights(ref)))


def test_checkpoint_of_other_settings_is_refused(tmp_path):
    m, f = problem()
    fit_model(m, 50, f, config=TrainConfig(epochs=1, progress=False, checkpoint_dir=tmp_path))
    m, f = problem()
    with pytest.raises(ConfigError, match="other settings"):
        fit_model(m, 50, f, config=TrainConfig(epochs=1, lr=0.5, progress=False, checkpoint_dir=tmp_path))


def test_bad_settings_are_named():
    with pytest.raises(ConfigError, match="epochs"):
        TrainConfig(epochs=0)
    m, f = problem()
    with pytest.raises(ConfigError, match="empty"):
        fit_model(m, 0, f, config=TrainConfig(progress=False))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_ddp_matches_single_process(tmp_path):
    worker = Path(__file__).with_name("ddp_worker.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    subprocess.run([sys.executable, str(worker), str(tmp_path / "single")], check=True, env=env, timeout=300)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--nnodes", "1",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), str(worker), str(tmp_path / "ddp")]
    p = subprocess.run(cmd, env=env, timeout=300, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-3000:]
    a, b = load_model(tmp_path / "single"), load_model(tmp_path / "ddp")
    for (k, x), (_, y) in zip(a.net_.state_dict().items(), b.net_.state_dict().items()):
        assert torch.allclose(x, y, atol=1e-5), k
    # training moved the weights away from their (seeded) start: the check is not vacuous
    start = a._make_net(1)
    assert not torch.allclose(start.head.weight, b.net_.head.weight, atol=1e-2)
    X = np.random.default_rng(1).standard_normal((7, 5)).astype(np.float32)
    assert np.allclose(a.predict(None, X).proba, b.predict(None, X).proba, atol=1e-5)


@pytest.mark.slow
def test_two_process_sparse_heads_match_single_process(tmp_path):
    """Heads outside DDP, their row-sparse gradients summed over the rows any rank touched."""
    worker = Path(__file__).with_name("ddp_worker.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    subprocess.run([sys.executable, str(worker), str(tmp_path / "single"), "similar"], check=True, env=env, timeout=300)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--nnodes", "1",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), str(worker), str(tmp_path / "ddp"), "similar"]
    p = subprocess.run(cmd, env=env, timeout=300, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-3000:]
    a, b = load_model(tmp_path / "single"), load_model(tmp_path / "ddp")
    assert a.head_updates == "sparse" and len(a.head_annotators_) == 9
    for (k, x), (_, y) in zip(a.net_.state_dict().items(), b.net_.state_dict().items()):
        assert torch.allclose(x, y, atol=1e-5), k
    start = a._make_net(a.net_.head.n_heads)
    assert not torch.allclose(start.head.weight, b.net_.head.weight, atol=1e-3)


def test_more_epochs_continue_a_finished_run(tmp_path):
    cfg = dict(batch_size=8, lr=1e-2, progress=False, seed=2, patience=0)
    ref, f = problem()
    fit_model(ref, 50, f, config=TrainConfig(epochs=5, **cfg))
    m, f = problem()
    fit_model(m, 50, f, config=TrainConfig(epochs=3, checkpoint_dir=tmp_path, **cfg))
    m2, f2 = problem(init_seed=7)
    res = fit_model(m2, 50, f2, config=TrainConfig(epochs=5, checkpoint_dir=tmp_path, **cfg))
    assert res.resumed_from == 3 and res.epochs_run == 5
    assert all(torch.equal(a, b) for a, b in zip(weights(m2), weights(ref)))


def test_method_fit_resumes_from_its_checkpoint_folder(tmp_path):
    from perser.corpus.model import LabelSpace
    from perser.methods import RatingSet, make_method

    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    rs = RatingSet(X, np.arange(60).astype(str), np.arange(60), np.array(["r"] * 60, dtype=object), y,
                   LabelSpace("e", "categorical", classes=("n", "p")))
    params = dict(hidden=(8,), epochs=4, batch_size=16, progress=False, checkpoint_dir=str(tmp_path), patience=0)
    a = make_method("consensus", **params).fit(rs)
    assert (tmp_path / "last" / "state.json").is_file()
    b = make_method("consensus", **params).fit(rs)
    assert b.history_.resumed_from == 4 and b.history_.history == a.history_.history
    assert all(torch.equal(x, z) for x, z in zip(a.net_.state_dict().values(), b.net_.state_dict().values()))
