"""A training checkpoint belongs to one training set and one set of fit settings: another
fit of the same size in the same folder is refused instead of silently resumed (it used to
take the other data's weights)."""

from __future__ import annotations

import pytest
import torch

from perser.errors import ConfigError
from perser.methods import RatingSet, make_method

from .conftest import three_rater_corpus

CLASSES = ("a", "b", "c")
PARAMS = {
    "consensus": {},
    "similar": {"min_ratings": 5},
    "meta": {"k_support": 3, "k_query": 3, "meta_epochs": 2, "iters_per_epoch": 1, "n_inner_steps": 1},
}


@pytest.fixture(scope="module")
def sets():
    corpus, X, ids = three_rater_corpus(n=24, classes=CLASSES)
    a = RatingSet.from_corpus(corpus, X, "emotion", clip_ids=ids)
    # the same size and shapes, other features and labels
    b = RatingSet(-a.X[::-1].copy(), a.clip_ids, a.clip_index, a.annotator_ids, (a.y + 1) % len(CLASSES), a.space)
    return a, b


def _model(method, ck, **over):
    torch.set_num_threads(1)
    base = {"hidden": [8], "epochs": 2, "patience": 0, "progress": False, "checkpoint_dir": str(ck)}
    return make_method(method, **{**base, **PARAMS[method], **over})


def _weights(m):
    if hasattr(m, "theta_"):
        return [v.clone() for v in m.theta_.values()]
    return [p.detach().clone() for p in m.net_.parameters()]


@pytest.mark.parametrize("method", list(PARAMS))
def test_checkpoint_of_other_data_is_refused(tmp_path, sets, method):
    a, b = sets
    first = _model(method, tmp_path / "ck").fit(a)
    again = _model(method, tmp_path / "ck").fit(a)  # the same data resumes the finished run
    assert all(torch.equal(x, y) for x, y in zip(_weights(first), _weights(again)))
    with pytest.raises(ConfigError, match="other settings or data"):
        _model(method, tmp_path / "ck").fit(b)


@pytest.mark.parametrize("method", ["consensus", "similar"])
def test_checkpoint_of_other_fit_settings_is_refused(tmp_path, sets, method):
    a, _ = sets
    _model(method, tmp_path / "ck", dropout=0.0).fit(a)
    with pytest.raises(ConfigError, match="other settings or data"):
        _model(method, tmp_path / "ck", dropout=0.5).fit(a)


def test_more_epochs_still_continue_a_finished_checkpoint(tmp_path, sets):
    a, _ = sets
    _model("consensus", tmp_path / "ck").fit(a)
    longer = _model("consensus", tmp_path / "ck", epochs=3).fit(a)
    assert longer.history_.resumed_from == 2 and longer.history_.epochs_run == 3
