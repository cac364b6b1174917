"""``perser select``: the next clips to ask, with the same CSV conventions as ``perser enroll``."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from perser.cli import method_cmd, select_cmd
from perser.enroll import make_strategy
from perser.methods import load_model
from perser.testing.cli import command_app


def _methods_cli_module():
    path = Path(__file__).resolve().parents[1] / "methods" / "test_cli.py"
    spec = importlib.util.spec_from_file_location("perser_tests_methods_cli", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    mc = _methods_cli_module()
    root = tmp_path_factory.mktemp("select")
    X, ids, W = mc.write_corpus(root / "toy")
    feats = str(root / "toy" / "feats.npz")
    app = command_app(method_cmd, select_cmd)
    r = CliRunner().invoke(app, ["train", str(root / "toy"), "--features", feats, "--method", "similar",
                                 "--out", str(root / "model"), "--split", "train", "-p", "min_ratings=50", *mc.TRAIN])
    assert r.exit_code == 0, r.output
    return app, root, feats, X, ids, W, mc.CLASSES


def _run(app, args):
    r = CliRunner().invoke(app, ["select", *args])
    return r


def test_select_prints_the_strategies_choice(trained):
    app, root, feats, X, ids, W, classes = trained
    pool_ids = ids[:60]
    pd.DataFrame({"clip_id": pool_ids}).to_csv(root / "pool.csv", index=False)
    answered = pool_ids[:3]
    labels = [classes[int(np.argmax(X[int(c[1:])] @ W["w2"]))] for c in answered]
    pd.DataFrame({"clip_id": answered, "emotion": labels}).to_csv(root / "so_far.csv", index=False)
    r = _run(app, [str(root / "model"), "--pool", str(root / "pool.csv"), "--ratings", str(root / "so_far.csv"),
                   "--k", "4", "--features", feats, "-p", "criterion=head", "-p", "noise=0.1"])
    assert r.exit_code == 0, r.output
    df = pd.read_csv(io.StringIO(r.stdout), dtype={"clip_id": str})
    assert list(df.columns) == ["rank", "clip_id", "expected_gain"]
    assert len(df) == 4 and not set(df["clip_id"]) & set(answered)
    # the same choice through the Python API
    model = load_model(root / "model")
    y = np.array([classes.index(v) for v in labels])
    sel = make_strategy("active", criterion="head", noise=0.1).fit(model).select(X[:60], 4, rated=[0, 1, 2], y=y)
    assert df["clip_id"].tolist() == [pool_ids[i] for i in sel.indices]
    np.testing.assert_allclose(df["expected_gain"], sel.gains, atol=1e-5)
    # the answers so far matter: other answers, other next clip (for at least one answer set)
    firsts = set()
    for w in W.values():  # answers like each seen listener in turn
        alt = [classes[int(np.argmax(X[int(c[1:])] @ w))] for c in pool_ids[:2]]
        pd.DataFrame({"clip_id": pool_ids[:2], "emotion": alt}).to_csv(root / "alt.csv", index=False)
        r = _run(app, [str(root / "model"), "--pool", str(root / "pool.csv"), "--ratings", str(root / "alt.csv"),
                       "--features", feats, "-p", "criterion=head"])
        assert r.exit_code == 0, r.output
        firsts.add(pd.read_csv(io.StringIO(r.stdout), dtype={"clip_id": str})["clip_id"][0])
    assert len(firsts) > 1


def test_select_random_and_answers_outside_the_pool(trained):
    app, root, feats, X, ids, W, classes = trained
    pd.DataFrame({"clip_id": ids[:30]}).to_csv(root / "pool30.csv", index=False)
    r = _run(app, [str(root / "model"), "--pool", str(root / "pool30.csv"), "--strategy", "random", "--seed", "3",
                   "--k", "5", "--features", feats])
    assert r.exit_code == 0, r.output
    got = pd.read_csv(io.StringIO(r.stdout), dtype={"clip_id": str})["clip_id"].tolist()
    assert got == [ids[i] for i in np.random.default_rng(3).permutation(30)[:5]]
    # a rated clip outside the pool informs the choice without being in it
    pd.DataFrame({"clip_id": [ids[50]], "emotion": [classes[0]]}).to_csv(root / "out.csv", index=False)
    r = _run(app, [str(root / "model"), "--pool", str(root / "pool30.csv"), "--ratings", str(root / "out.csv"),
                   "--k", "30", "--features", feats, "--strategy", "diverse"])
    assert r.exit_code == 0, r.output
    assert len(pd.read_csv(io.StringIO(r.stdout))) == 30


def test_select_errors_name_the_culprit(trained):
    app, root, feats, *_ = trained
    pd.DataFrame({"clip": ["c000"]}).to_csv(root / "badpool.csv", index=False)
    r = _run(app, [str(root / "model"), "--pool", str(root / "badpool.csv"), "--features", feats])
    assert r.exit_code != 0 and "needs a 'clip_id' or 'path' column" in str(r.exception)
    pd.DataFrame({"clip_id": ["c000", "c000"]}).to_csv(root / "dup.csv", index=False)
    r = _run(app, [str(root / "model"), "--pool", str(root / "dup.csv"), "--features", feats])
    assert "listed twice" in str(r.exception)
    pd.DataFrame({"clip_id": ["c000", "nope"]}).to_csv(root / "unknown.csv", index=False)
    r = _run(app, [str(root / "model"), "--pool", str(root / "unknown.csv"), "--features", feats])
    assert "nope" in str(r.exception)
    r = _run(app, [str(root / "model"), "--pool", str(root / "dup.csv"), "--features", feats, "--strategy", "best"])
    assert "unknown enrollment strategy 'best'" in str(r.exception)


def test_select_uses_the_noise_fitted_at_training_time(trained):
    app, root, feats, X, ids, W, classes = trained
    model = load_model(root / "model")
    assert model.listener_noise_ is not None  # stored in the model folder by `perser train`
    pd.DataFrame({"clip_id": ids[:40]}).to_csv(root / "pool40.csv", index=False)
    pd.DataFrame({"clip_id": ids[:2], "emotion": [classes[0], classes[1]]}).to_csv(root / "two.csv", index=False)
    r = _run(app, [str(root / "model"), "--pool", str(root / "pool40.csv"), "--ratings", str(root / "two.csv"),
                   "--k", "3", "--features", feats, "-p", "criterion=head"])
    assert r.exit_code == 0, r.output
    gains = pd.read_csv(io.StringIO(r.stdout))["expected_gain"].to_numpy()
    y = np.array([0, 1])
    fitted = make_strategy("active", criterion="head", noise=model.listener_noise_[0]).fit(model)
    np.testing.assert_allclose(gains, fitted.select(X[:40], 3, rated=[0, 1], y=y).gains, atol=1e-5)
    assert model.listener_noise_[0] != 0.1  # the toy listeners are noisier than the default, and it shows
    default = make_strategy("active", criterion="head", noise=0.1).fit(model)
    assert not np.allclose(gains, default.select(X[:40], 3, rated=[0, 1], y=y).gains, atol=1e-5)
