"""enroll_strategy in the evaluation protocol: same listeners and test sets, honest pools."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from perser.config import load_config
from perser.enroll.protocol import StrategyPlan
from perser.errors import ConfigError
from perser.evaluate import evaluate_data, make_plan, plan_settings
from perser.evaluate.data import load_eval_data
from perser.evaluate.runner import run_plan

TINY = {"hidden": [8], "epochs": 2, "batch_size": 256, "patience": 0}
METHODS = {"consensus": dict(TINY), "similar": {**TINY, "min_ratings": 5},
           "meta": {**TINY, "meta_epochs": 1, "iters_per_epoch": 1, "n_inner_steps": 1, "meta_batch_size": 2,
                    "k_support": 3, "k_query": 3}}


@pytest.fixture(scope="module")
def small(make_toy):
    return make_toy(n_speakers=6, clips_per_speaker=12, n_listeners=12, n_new=4, per_listener=40)


def _cfg(tmp_path, **kw):
    return load_config(overrides={"corpus": "toy", "space": "emotion", "k": [2, 4], "seeds": [0], "n_folds": 2,
                                  "unseen_column": "new", "out": str(tmp_path / "run"), "progress": False,
                                  "report": False, "min_test": 3, **kw})


def test_strategies_share_listeners_and_tests_and_random_is_unchanged(tmp_path, small):
    torch.set_num_threads(1)
    corpus, X, ids = small
    cfg = _cfg(tmp_path)
    data = load_eval_data(cfg, corpora={"train": corpus}, features={"eval": (X, ids)})
    plan = make_plan(data, plan_settings(cfg))[:1]
    sp = StrategyPlan(["random", "active", "diverse"])
    out = run_plan(data, plan, METHODS, progress=False, strategies=sp)
    base = run_plan(data, plan, METHODS, progress=False)
    names = {b.method for b in out.blocks}
    assert names == {"consensus", "similar", "similar+active", "similar+diverse", "meta", "meta+active",
                     "meta+diverse"}
    # random keeps the protocol's numbers
    key = lambda b: (b.method, b.scenario, b.k, b.annotator)  # noqa: E731
    ref = {key(b): b for b in base.blocks}
    for b in out.blocks:
        if "+" not in b.method:
            np.testing.assert_allclose(b.proba, ref[key(b)].proba)
    # strategies: unseen listeners only, the same listeners, K and test clips as random
    by = {}
    for b in out.blocks:
        by.setdefault(b.method, {})[(b.scenario, b.k, b.annotator)] = b
    for m in ("similar+active", "similar+diverse", "meta+active"):
        assert {s for s, _, _ in by[m]} == {"unseen"}
        plain = {k: v for k, v in by[m.split("+")[0]].items() if k[0] == "unseen"}
        assert set(by[m]) == set(plain)
        for k, b in by[m].items():
            assert list(b.clip_ids) == list(plain[k].clip_ids)
    # the chosen clips come from the listener's pool, nested over K, and differ from random's
    split = plan[0]
    rows_of = {}
    for i, (c, a) in enumerate(zip(data.ratings["clip_id"], data.ratings["annotator_id"])):
        rows_of.setdefault(a, {})[c] = i
    differs = 0
    from perser.evaluate.runner import _instantiate, _train_set

    train = _train_set(data, split)
    sim = _instantiate("similar", METHODS["similar"], split.seed).fit(train)
    for a in split.assignments["unseen"]:
        sets = dict()
        for name, enr in sp.enrollments("similar", sim, "unseen", a, data, rows_of[a.annotator], lambda: train,
                                        split.seed, split.fold):
            sets.setdefault(name, []).append(enr)
        act = sets["similar+active"]
        assert [len(e) for e in act] == a.ks
        assert act[0] == act[1][: len(act[0])]
        assert set(act[-1]) <= set(a.pool) and not set(act[-1]) & set(a.test)
        differs += sets["similar"][-1] != act[-1]
    assert differs > 0


def test_enroll_strategy_config_key_reaches_the_summary(tmp_path, small):
    torch.set_num_threads(1)
    corpus, X, ids = small
    cfg = _cfg(tmp_path, methods=["consensus", "similar"], method_params=METHODS, enroll_strategy=["random", "active"],
               enroll_strategy_params={"active": {"criterion": "head"}}, n_bootstrap=100, report=True)
    data = load_eval_data(cfg, corpora={"train": corpus}, features={"eval": (X, ids)})
    run = evaluate_data(cfg, data, write=True, console=False)
    s = run.summary
    assert {"similar", "similar+active"} <= set(s["method"])
    assert set(s.loc[s["method"] == "similar+active", "scenario"]) == {"unseen"}
    # paired tests between strategies: same K, and active at K against random at 2K
    t = run.strategy_tests
    acc = t[t["metric"] == "accuracy_argmax"]
    assert sorted(zip(acc["k"], acc["random_k"])) == [(2, 2), (2, 4), (4, 4)]
    assert set(acc["strategy"]) == {"active"} and (acc["n"] > 0).all()
    # the gain is the paired mean difference of the two methods' per-listener values
    res = run.results[(run.results["metric"] == "accuracy_argmax") & (run.results["scenario"] == "unseen")]
    per = res.groupby(["method", "k", "annotator"])["value"].mean()
    row = acc[(acc["k"] == 2) & (acc["random_k"] == 4)].iloc[0]
    d = (per.loc[("similar+active", 2)] - per.loc[("similar", 4)]).mean()
    assert row["gain"] == pytest.approx(d)
    assert (run.folder / "strategies.csv").is_file()
    assert "Enrollment strategies against random" in (run.folder / "report.html").read_text()


def test_bad_strategy_settings_fail_before_any_fit():
    with pytest.raises(ConfigError, match="unknown enrollment strategy 'clever'"):
        StrategyPlan(["random", "clever"])
    with pytest.raises(ConfigError, match="twice"):
        StrategyPlan(["active", "active"])
    with pytest.raises(ConfigError, match="not in enroll_strategy"):
        StrategyPlan(["random"], {"active": {"criterion": "head"}})
    with pytest.raises(ConfigError, match="criterion"):
        StrategyPlan(["active"], {"active": {"criterion": "nope"}})
