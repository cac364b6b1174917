"""One fit shared by the methods built on the same multi-annotator network."""

import numpy as np
import pytest
import torch

from perser.config import load_config
from perser.evaluate import make_plan, plan_settings
from perser.evaluate.data import load_eval_data
from perser.evaluate.runner import _train_set, run_plan

def _cfg(tmp_path, **over):
    base = {"corpus": "toy", "space": "emotion", "k": [5], "seeds": [0], "n_folds": 2, "unseen_column": "new",
            "out": str(tmp_path / "run"), "progress": False, "report": False, "min_test": 5}
    return load_config(overrides={**base, **over})


def _data(cfg, toy):
    corpus, X, ids = toy
    return load_eval_data(cfg, corpora={"train": corpus}, features={"eval": (X, ids)})


SMALL = {"hidden": [16], "epochs": 3, "batch_size": 128, "patience": 0, "dropout": 0.1}
METHODS = {"random-annotator": dict(SMALL), "mean-annotator": dict(SMALL), "similar": dict(SMALL),
           "finetune": {**SMALL, "steps": 3}}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, toy):
    torch.set_num_threads(1)
    cfg = _cfg(tmp_path_factory.mktemp("shared"), k=[5, 10], n_folds=2)
    data = _data(cfg, toy)
    plan = make_plan(data, plan_settings(cfg))
    shared = run_plan(data, plan, METHODS, progress=False, share_fits=True)
    separate = run_plan(data, plan, METHODS, progress=False, share_fits=False)
    return shared, separate


def test_shared_fit_gives_the_numbers_of_separate_fits(runs):
    shared, separate = runs
    assert len(shared.blocks) == len(separate.blocks) > 0
    for a, b in zip(shared.blocks, separate.blocks):
        assert (a.method, a.scenario, a.k, a.fold, a.annotator) == (b.method, b.scenario, b.k, b.fold, b.annotator)
        np.testing.assert_array_equal(a.proba, b.proba)
        assert a.profile == b.profile


def test_one_fit_per_split(runs):
    shared, separate = runs
    n_splits = separate.timings["similar"]["n_fit"]
    assert n_splits == 2
    assert sum(t["n_fit"] for t in shared.timings.values()) == n_splits
    assert sum(t["n_shared_fit"] for t in shared.timings.values()) == 3 * n_splits
    assert all(t["n_shared_fit"] == 0 for t in separate.timings.values())


def test_different_settings_are_not_shared(tmp_path, toy):
    cfg = _cfg(tmp_path, k=[5], n_folds=2)
    data = _data(cfg, toy)
    plan = make_plan(data, plan_settings(cfg))[:1]
    out = run_plan(data, plan, {"similar": dict(SMALL), "mean-annotator": {**SMALL, "epochs": 2}}, progress=False)
    assert out.timings["similar"]["n_fit"] == 1 and out.timings["mean-annotator"]["n_fit"] == 1


def test_adopt_fit_refuses_other_settings_or_data(tmp_path, toy):
    from perser.errors import ConfigError
    from perser.methods import make_method

    cfg = _cfg(tmp_path, k=[5], n_folds=2)
    data = _data(cfg, toy)
    plan = make_plan(data, plan_settings(cfg))
    train0, train1 = _train_set(data, plan[0]), _train_set(data, plan[1])
    fitted = make_method("similar", progress=False, **SMALL).fit(train0)
    with pytest.raises(ConfigError, match="epochs"):
        make_method("mean-annotator", progress=False, **{**SMALL, "epochs": 2}).adopt_fit(fitted, train0)
    with pytest.raises(ConfigError, match="other training data"):
        make_method("mean-annotator", progress=False, **SMALL).adopt_fit(fitted, train1)
    m = make_method("finetune", progress=False, **SMALL).adopt_fit(fitted, train0)
    assert m.net_ is not fitted.net_  # a copy: adapting one model cannot change the other
    assert all(torch.equal(p, q) for p, q in zip(m.net_.parameters(), fitted.net_.parameters()))


def test_counted_fit_warnings_are_reported_once_per_run(tmp_path, toy, monkeypatch):
    import warnings

    import perser_toy_methods as tm
    from perser.errors import PerserWarning, SkipLog
    from perser.methods import base as mbase

    class Warns(tm.ToyConsensus):
        def fit(self, train, valid=None):
            log = SkipLog("toy")
            for a in sorted(set(train.annotator_ids))[:2]:
                log.add("annotators left out", a)
            log.emit()
            warnings.warn("something else", PerserWarning)
            return super().fit(train, valid)

    tm.Warns = Warns
    monkeypatch.setattr(mbase, "_REGISTRY", {"consensus": "perser_toy_methods:Warns"})
    cfg = _cfg(tmp_path, n_folds=3)
    data = _data(cfg, toy)
    plan = make_plan(data, plan_settings(cfg))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_plan(data, plan, {"consensus": {}}, progress=False)
    msgs = [str(w.message) for w in caught if issubclass(w.category, PerserWarning)]
    counted = [m for m in msgs if "annotators left out" in m]
    assert len(counted) == 1 and counted[0].startswith("toy: 6 annotators left out in 3 fits"), counted
    other = sorted(m for m in msgs if m.startswith("something else"))
    assert other == [f"something else (seed 0, fold {s.fold})" for s in plan]
