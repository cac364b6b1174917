from dataclasses import replace

import pandas as pd
import pytest

from perser.config import LabelMapping, load_config
from perser.corpus.model import LabelSpace
from perser.errors import ConfigError, PerserWarning, SkipLog
from perser.evaluate import evaluate_data, make_plan, plan_settings
from perser.evaluate.data import load_eval_data, map_ratings



def _pair(toy_corpus):
    a, Xa, ia = toy_corpus(seed=1)
    b, Xb, ib = toy_corpus(seed=2, n_speakers=6, n_listeners=12, n_new=0)
    a = replace(a, name="alpha")
    # the evaluation corpus names its classes differently and rates on 1-7
    ren = {"a": "w", "b": "x", "c": "y", "d": "z"}
    r = b.ratings.copy()
    r["emotion"] = r["emotion"].map(ren)
    r["arousal"] = 1 + (r["arousal"] - 1) * 1.5
    r["valence"] = 1 + (r["valence"] - 1) * 1.5
    spaces = {"emotion": LabelSpace("emotion", "categorical", classes=("w", "x", "y", "z")),
              "avd": LabelSpace("avd", "dimensional", dimensions=("arousal", "valence"), scale=(1, 7))}
    b = replace(b, name="beta", ratings=r, label_spaces=spaces)
    return (a, Xa, ia), (b, Xb, ib)


def _cfg(tmp_path, **over):
    base = {"corpus": "a", "eval_corpus": "b", "k": [5, 10], "seeds": [0], "n_folds": 3, "progress": False,
            "report": False, "n_bootstrap": 200, "out": str(tmp_path / "run")}
    base.update(over)
    return load_config(overrides=base)


def _load(cfg, toy_corpus):
    (a, Xa, ia), (b, Xb, ib) = _pair(toy_corpus)
    return load_eval_data(cfg, corpora={"train": a, "eval": b}, features={"train": (Xa, ia), "eval": (Xb, ib)})


def test_refuses_without_a_mapping(tmp_path, make_toy):
    with pytest.raises(ConfigError, match=r"classes \['a', 'b', 'c', 'd'\].*train_mapping"):
        _load(_cfg(tmp_path, space="emotion"), make_toy)
    with pytest.raises(ConfigError, match="scale"):
        _load(_cfg(tmp_path, space="avd"), make_toy)


def test_class_mapping_and_cross_corpus_run(tmp_path, toy_methods, make_toy):
    cfg = _cfg(tmp_path, space="emotion", train_mapping={"classes": {"a": "w", "b": "x", "c": "y", "d": None}})
    with pytest.warns(PerserWarning, match="ratings of class 'd' dropped by the mapping"):
        data = _load(cfg, make_toy)
    assert data.cross_corpus and any("label mapping" in n for n in data.notes)
    assert any("'d'" in n and "dropped" in n for n in data.notes)          # counted, not silent
    tr = data.ratings[data.clips.loc[data.ratings["clip_id"], "origin"].to_numpy() == "train"]
    assert set(tr["emotion"]) == {"w", "x", "y"}
    assert tr["annotator_id"].str.startswith("alpha/").all()
    plan = make_plan(data, plan_settings(cfg))
    for s in plan:
        assert all(c.startswith("alpha/") for c in s.train_clips)
        assert all(c.startswith("beta/") for c in s.test_clips)
        assert set(s.assignments) == {"unseen"}                       # no seen listeners across corpora
        assert all(a.annotator.startswith("beta/") for a in s.assignments["unseen"])
        assert all(c.startswith("beta/") and c not in s.test_clips for a in s.assignments["unseen"]
                   for c in a.enroll_order)
    assert len({s.fit_key for s in plan}) == 1                        # one model per seed, reused by every fold
    run = evaluate_data(cfg, data, write=False, console=False)
    assert set(run.results["scenario"]) == {"unseen"}
    assert any("seen listeners" in n for n in data.notes)


def test_mapping_errors_name_the_class(tmp_path, make_toy):
    with pytest.raises(ConfigError, match=r"\['d'\] occur in the ratings but have no mapping"):
        _load(_cfg(tmp_path, space="emotion", train_mapping={"classes": {"a": "w", "b": "x", "c": "y"}}), make_toy)
    with pytest.raises(ConfigError, match=r"targets \['q'\]"):
        _load(_cfg(tmp_path, space="emotion", train_mapping={"classes": {"a": "q", "b": "x", "c": "y", "d": "z"}}), make_toy)


def test_linear_rescaling():
    src = LabelSpace("avd", "dimensional", dimensions=("act", "val"), scale=(1, 5))
    tgt = LabelSpace("avd", "dimensional", dimensions=("arousal", "valence"), scale=(1, 7))
    r = pd.DataFrame({"clip_id": ["c1", "c2", "c3"], "annotator_id": ["x"] * 3, "act": [1.0, 3.0, 5.0],
                      "val": [5.0, 2.0, 1.0]})
    m = LabelMapping(dimensions={"arousal": "act", "valence": "val"})
    out = map_ratings(r, src, tgt, m, SkipLog(), "train_mapping")
    assert out["arousal"].tolist() == [1.0, 4.0, 7.0]
    assert out["valence"].tolist() == [7.0, 2.5, 1.0]
    with pytest.raises(ConfigError, match="dimensions"):
        map_ratings(r, src, tgt, None, SkipLog(), "train_mapping")


def test_dimensional_cross_corpus_with_rescaling(tmp_path, toy_methods, make_toy):
    cfg = _cfg(tmp_path, space="avd", train_mapping={"scale": [1, 5]})
    data = _load(cfg, make_toy)
    tr = data.ratings[data.ratings["clip_id"].str.startswith("alpha/")]
    assert tr["arousal"].max() <= 7 and tr["arousal"].min() >= 1 and tr["arousal"].max() > 5
    assert any("rescaled linearly" in n for n in data.notes)
    run = evaluate_data(cfg, data, write=False, console=False)
    assert {"ccc/arousal", "ccc_con/mean"} <= set(run.results["metric"])


def test_multilabel_mapping():
    src = LabelSpace("emotions", "multilabel", classes=("ang", "hap", "exc", "oth"))
    tgt = LabelSpace("emotions", "multilabel", classes=("anger", "happy"))
    r = pd.DataFrame({"clip_id": ["c1", "c2", "c3"], "annotator_id": ["x"] * 3,
                      "emotions": ["ang;exc", "hap;exc", "oth"]})
    log = SkipLog()
    out = map_ratings(r, src, tgt, LabelMapping(classes={"ang": "anger", "hap": "happy", "exc": "happy", "oth": None}),
                      log, "mapping")
    assert out["emotions"].tolist() == ["anger;happy", "happy"]
    assert sum(log.counts().values()) == 1
