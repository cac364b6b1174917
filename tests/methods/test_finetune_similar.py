"""``finetune`` starting from the similar head: its ``similar_score`` is checked like
``similar``'s ``score`` (an unknown score, or one of the other kind of space, used to fall
through to another criterion silently)."""

from __future__ import annotations

import pytest
import torch

from perser.errors import ConfigError
from perser.methods import RatingSet, make_method

from .conftest import three_rater_corpus

CLASSES = ("a", "b", "c")


@pytest.fixture(scope="module")
def corpus():
    return three_rater_corpus(n=30, classes=CLASSES, arousal=True)


def _fit(corpus, space, **params):
    torch.set_num_threads(1)
    c, X, ids = corpus
    rs = RatingSet.from_corpus(c, X, space, clip_ids=ids)
    m = make_method("finetune", hidden=[8], epochs=1, min_ratings=5, init="similar", steps=1, progress=False,
                    patience=0, **params)
    return m, rs


@pytest.mark.parametrize("space,score,why", [
    ("emotion", "ccc", "needs a dimensional space"), ("emotion", "mae", "needs a dimensional space"),
    ("avd", "loglik", "needs a class space"), ("avd", "f1", "needs a class space"),
    ("emotion", "bogus", "unknown similar_score"), ("avd", "bogus", "unknown similar_score"),
])
def test_similar_score_that_does_not_fit_the_space_is_refused(corpus, space, score, why):
    m, rs = _fit(corpus, space, similar_score=score)
    with pytest.raises(ConfigError, match=f"similar_score '{score}' {why}|{why} '{score}'"):
        m.fit(rs)


@pytest.mark.parametrize("space,score", [("emotion", "f1"), ("emotion", "loglik"), ("avd", "mae"), ("avd", "ccc")])
def test_similar_score_of_the_space_picks_the_head_similar_picks(corpus, space, score):
    m, rs = _fit(corpus, space, similar_score=score)
    m.fit(rs)
    sim = make_method("similar", **{**{k: v for k, v in m.get_params().items() if k in make_method("similar").get_params()},
                                    "score": score}).adopt_fit(m, rs)
    X, y = rs.of("w1")
    assert m.enroll(X[:6], y[:6]).data["init"] == sim.enroll(X[:6], y[:6]).data["heads"][0]


def test_a_loaded_model_with_a_bad_similar_score_refuses_to_enroll(corpus, tmp_path):
    from perser.methods import load_model

    m, rs = _fit(corpus, "emotion")
    m.fit(rs).save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    loaded.similar_score = "ccc"
    X, y = rs.of("w1")
    with pytest.raises(ConfigError, match="similar_score 'ccc' needs a dimensional space"):
        loaded.enroll(X[:4], y[:4])
