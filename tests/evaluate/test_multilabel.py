"""Multilabel runs: the decision threshold is in results.csv, summary.csv, the terminal table and the report."""

import sys
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from perser.config import load_config
from perser.corpus.model import LabelSpace
from perser.evaluate import evaluate_data
from perser.evaluate.data import load_eval_data
from perser.evaluate.metrics import multilabel_metrics
from perser.evaluate.protocol import stable_int
from perser.evaluate.report import print_summary
from perser.methods import base as mbase
from perser.methods.base import Personalizer, Predictions, Profile


class ToyMultilabel(Personalizer):
    """One logistic regression per class on every seen rating; a fixed threshold."""

    kinds = ("multilabel",)
    personalized = False

    def __init__(self, seed: int = 0, threshold: float = 0.5):
        self.seed, self.threshold = seed, threshold

    def fit(self, train, valid=None):
        from sklearn.linear_model import LogisticRegression

        self.space_ = train.space
        X, Y = train.X[train.clip_index], np.asarray(train.y) > 0.5
        self.models_ = [LogisticRegression(max_iter=300).fit(X, Y[:, j]) for j in range(Y.shape[1])]
        return self

    def enroll(self, X, y, annotator=None):
        return Profile(self.name, annotator)

    def predict(self, profile, X):
        p = np.stack([m.predict_proba(X)[:, 1] for m in self.models_], axis=1)
        return Predictions(self.space_, proba=p, threshold=self.threshold)


class ToyPerListenerThreshold(ToyMultilabel):
    """The same model, with a threshold of 0.3 or 0.6 chosen per listener at enrollment."""

    personalized = True

    def enroll(self, X, y, annotator=None):
        return Profile(self.name, annotator, data={"threshold": 0.3 if stable_int(str(annotator)) % 2 else 0.6})

    def predict(self, profile, X):
        pred = super().predict(profile, X)
        pred.threshold = profile.data["threshold"]
        return pred


sys.modules["perser_toy_multilabel"] = sys.modules[__name__]


@pytest.fixture(scope="module")
def ml_run(tmp_path_factory, toy):
    saved = dict(mbase._REGISTRY)
    mbase._REGISTRY.clear()
    mbase._REGISTRY.update({"consensus": f"{__name__}:ToyMultilabel", "similar": f"{__name__}:ToyPerListenerThreshold"})
    try:
        corpus, X, ids = toy
        r = corpus.ratings.copy()
        r["emotions"] = r["emotion"]          # one ticked class per rating: a valid multilabel value
        spaces = {**corpus.label_spaces, "emotions": LabelSpace("emotions", "multilabel", classes=("a", "b", "c", "d"))}
        ml = replace(corpus, ratings=r, label_spaces=spaces)
        out = tmp_path_factory.mktemp("ml") / "run"
        cfg = load_config(overrides={"corpus": "toy", "space": "emotions", "k": [5, 10], "seeds": [0], "n_folds": 3,
                                     "unseen_column": "new", "out": str(out), "progress": False, "n_bootstrap": 100,
                                     "scenarios": ["unseen"]})
        data = load_eval_data(cfg, corpora={"train": ml}, features={"eval": (X, ids)})
        yield evaluate_data(cfg, data, console=False)
    finally:
        mbase._REGISTRY.clear()
        mbase._REGISTRY.update(saved)


def test_threshold_rows_and_f1_use_the_listeners_threshold(ml_run):
    res = ml_run.results
    thr = res[res["metric"] == "threshold"].set_index(["method", "k", "annotator"])["value"]
    assert set(thr.xs("consensus", level="method")) == {0.5}
    assert set(thr.xs("similar", level="method")) == {0.3, 0.6}
    # a listener's macro-F1 is that of their own threshold
    b = [x for x in ml_run.blocks if x.method == "similar" and x.k == 5]
    a = b[0].annotator
    mine = [x for x in b if x.annotator == a]
    y, p = np.concatenate([x.y for x in mine]), np.concatenate([x.proba for x in mine])
    want = multilabel_metrics(y, p, thr[("similar", 5, a)])["macro_f1"]
    got = res.query("method == 'similar' and k == 5 and annotator == @a and metric == 'macro_f1'")["value"]
    assert got.iloc[0] == pytest.approx(want)


def test_summary_names_the_threshold(ml_run):
    s = ml_run.summary.set_index(["method", "k", "metric"])
    assert "threshold" not in set(ml_run.summary["metric"])          # not a metric with a CI
    assert s.loc[("consensus", 10, "macro_f1"), "decision"] == "threshold 0.5"
    assert s.loc[("similar", 10, "macro_f1"), "decision"] == "threshold 0.3-0.6 (range over listeners)"
    assert s.loc[("similar", 10, "micro_f1"), "decision"] == s.loc[("similar", 10, "macro_f1"), "decision"]
    on_disk = pd.read_csv(ml_run.folder / "summary.csv")
    assert set(on_disk["decision"]) == {"threshold 0.5", "threshold 0.3-0.6 (range over listeners)"}


def test_terminal_and_report_show_the_threshold(ml_run):
    from rich.console import Console

    console = Console(record=True, width=250)
    print_summary(ml_run.summary, "multilabel", console=console)
    text = console.export_text()
    rows = [[c.strip() for c in ln.strip("│ ").split("│")] for ln in text.splitlines() if ln.startswith("│")]
    header = [c.strip() for c in next(ln for ln in text.splitlines() if "threshold" in ln and "┃" in ln).strip("┃ ").split("┃")]
    col = header.index("threshold")
    assert len(rows) == 4 and {r[0]: r[col] for r in rows} == {"consensus": "0.5", "similar": "0.3-0.6"}
    assert "threshold" in text and "macro_f1 threshold 0.5 (consensus); threshold 0.3-0.6" in text
    page = (ml_run.folder / "report.html").read_text()
    assert "<th>threshold</th>" in page and "<td>0.3-0.6</td>" in page and "0.3-0.6 (range over listeners)" in page
    assert "decision: threshold 0.5 (consensus)" in page


def test_pooled_folds_with_different_thresholds_decide_each_fold_with_its_own():
    from perser.evaluate.runner import Block
    from perser.evaluate.scoring import score_blocks

    space = LabelSpace("emotions", "multilabel", classes=("a", "b"))
    y = np.array([[1, 0], [0, 1], [1, 1], [0, 1]], dtype=float)
    p = np.array([[0.4, 0.2], [0.2, 0.4], [0.7, 0.7], [0.1, 0.7]])
    blocks = [Block("m", "unseen", 5, 0, "1", "L0", np.array(["c0", "c1"], dtype=object), y[:2], p[:2], threshold=0.3),
              Block("m", "unseen", 5, 0, "2", "L0", np.array(["c2", "c3"], dtype=object), y[2:], p[2:], threshold=0.8)]
    data = type("D", (), {"space": space, "annotators": None})()
    res = score_blocks(blocks, data).set_index("metric")["value"]
    decided = np.concatenate([p[:2] >= 0.3, p[2:] >= 0.8]).astype(float)
    assert res["macro_f1"] == pytest.approx(multilabel_metrics(y, decided, 0.5)["macro_f1"])
    assert res["macro_f1"] != pytest.approx(multilabel_metrics(y, p, 0.3)["macro_f1"])
    assert res["threshold"] == 0.3 and res["threshold_max"] == 0.8
