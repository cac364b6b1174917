"""A method parameter the method does not accept fails before any method is fitted."""

import pytest

from perser.config import load_config
from perser.errors import ConfigError
from perser.evaluate import make_plan, plan_settings
from perser.evaluate.data import load_eval_data
from perser.evaluate.runner import run_plan
from perser.methods import get_method


def test_unknown_method_parameter_fails_before_any_fit(tmp_path, toy, monkeypatch):
    corpus, X, ids = toy
    cfg = load_config(overrides={"corpus": "toy", "space": "emotion", "k": [5], "seeds": [0], "n_folds": 2,
                                 "unseen_column": "new", "out": str(tmp_path / "run"), "progress": False,
                                 "report": False, "min_test": 5})
    data = load_eval_data(cfg, corpora={"train": corpus}, features={"eval": (X, ids)})
    plan = make_plan(data, plan_settings(cfg))
    def fit(self, *a, **k):
        raise AssertionError("a method was fitted before every method's parameters were checked")

    monkeypatch.setattr(get_method("consensus"), "fit", fit)
    with pytest.raises(ConfigError, match="method 'similar'.*min_ratingz"):
        run_plan(data, plan, {"consensus": {"hidden": [8]}, "similar": {"hidden": [8], "min_ratingz": 3}},
                 progress=False)
