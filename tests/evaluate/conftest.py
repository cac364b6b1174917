"""Fixtures: a small in-memory corpus with two perception styles and toy methods."""

from __future__ import annotations

import sys
import types

import numpy as np
import pandas as pd
import pytest

from perser.corpus.model import Corpus, LabelSpace, make_clips, make_ratings
from perser.methods import base as mbase
from perser.methods.base import Personalizer, Predictions, Profile

CLASSES = ("a", "b", "c", "d")


def toy_corpus(n_speakers: int = 10, clips_per_speaker: int = 24, n_listeners: int = 30, n_new: int = 10,
               per_listener: int = 90, seed: int = 0) -> tuple[Corpus, np.ndarray, np.ndarray]:
    """Clips whose features reveal a true class; listeners of style "literal" say the true class,
    listeners of style "shifted" say the next class (both with 15% random labels)."""
    rng = np.random.default_rng(seed)
    n = n_speakers * clips_per_speaker
    ids = [f"c{i:04d}" for i in range(n)]
    speakers = [f"s{i // clips_per_speaker:02d}" for i in range(n)]
    truth = rng.integers(0, 4, n)
    latent = rng.normal(size=(n, 2))
    X = np.concatenate([np.eye(4)[truth] * 2.0, latent], axis=1) + rng.normal(scale=0.6, size=(n, 6))
    clips = make_clips({"clip_id": ids, "path": [f"/nowhere/{c}.wav" for c in ids], "speaker": speakers})
    rows = []
    styles = {}
    for j in range(n_listeners):
        a = f"L{j:02d}"
        style = "literal" if j % 2 == 0 else "shifted"
        styles[a] = style
        for i in rng.choice(n, size=per_listener, replace=False):
            t = truth[i] if style == "literal" else (truth[i] + 1) % 4
            if rng.random() < 0.15:
                t = rng.integers(0, 4)
            gain = 1.0 if style == "literal" else -1.0
            rows.append({"clip_id": ids[i], "annotator_id": a, "emotion": CLASSES[t],
                         "arousal": float(np.clip(np.round(3 + latent[i, 0] + rng.normal(scale=0.4)), 1, 5)),
                         "valence": float(np.clip(np.round(3 + gain * latent[i, 1] + rng.normal(scale=0.4)), 1, 5))})
    ratings = make_ratings(rows)
    ann = pd.DataFrame({"annotator_id": list(styles), "style": list(styles.values()),
                        "new": [j >= n_listeners - n_new for j in range(n_listeners)]}).set_index("annotator_id")
    spaces = {"emotion": LabelSpace("emotion", "categorical", classes=CLASSES),
              "avd": LabelSpace("avd", "dimensional", dimensions=("arousal", "valence"), scale=(1, 5))}
    corpus = Corpus("toy", clips, ratings, spaces, annotators=ann)
    return corpus, X.astype(np.float32), np.asarray(ids, dtype=object)


class ToyConsensus(Personalizer):
    """Logistic / ridge regression on every seen rating; ignores the profile."""

    kinds = ("categorical", "dimensional")
    personalized = False

    def __init__(self, seed: int = 0):
        self.seed = seed

    def fit(self, train, valid=None):
        from sklearn.linear_model import LogisticRegression, Ridge

        self.space_ = train.space
        X = train.X[train.clip_index]
        if train.space.kind == "categorical":
            self.model_ = LogisticRegression(max_iter=500).fit(X, train.y)
        else:
            self.model_ = Ridge(alpha=1.0).fit(X, train.y)
        return self

    def base(self, X):
        if self.space_.kind == "categorical":
            p = np.zeros((len(X), len(self.space_.classes)))
            p[:, self.model_.classes_] = self.model_.predict_proba(X)
            return p
        return self.model_.predict(X)

    def enroll(self, X, y, annotator=None):
        return Profile(self.name, annotator)

    def predict(self, profile, X):
        if self.space_.kind == "categorical":
            return Predictions(self.space_, proba=self.base(X))
        return Predictions(self.space_, values=self.base(X))


class ToySimilar(ToyConsensus):
    """Per seen listener a confusion matrix (or linear map) on top of the consensus model;
    enrollment picks the seen listener whose matrix best explains the support labels."""

    personalized = True

    def fit(self, train, valid=None):
        super().fit(train, valid)
        X = train.X[train.clip_index]
        base = self.base(X)
        self.heads_ = {}
        for a in train.annotators:
            m = train.annotator_ids == a
            if self.space_.kind == "categorical":
                C = len(self.space_.classes)
                M = np.full((C, C), 0.5)
                np.add.at(M, (base[m].argmax(1), train.y[m]), 1.0)
                self.heads_[a] = M / M.sum(1, keepdims=True)
            else:
                coefs = []
                for d in range(base.shape[1]):
                    b, c = np.polyfit(base[m][:, d], train.y[m][:, d], 1)
                    coefs.append((b, c))
                self.heads_[a] = np.array(coefs)
        return self

    def _apply(self, head, base):
        if self.space_.kind == "categorical":
            return base @ head
        return base * head[:, 0] + head[:, 1]

    def enroll(self, X, y, annotator=None):
        base = self.base(X)
        scores = {}
        for a, h in self.heads_.items():
            p = self._apply(h, base)
            if self.space_.kind == "categorical":
                scores[a] = float(np.log(p[np.arange(len(y)), y] + 1e-9).sum())
            else:
                scores[a] = float(-((p - y) ** 2).sum())
        best = max(sorted(scores), key=scores.get)
        ranking = sorted(scores, key=lambda a: -scores[a])[:5]
        return Profile(self.name, annotator, data={"heads": [best], "weights": [1.0], "score": scores[best],
                                                   "ranking": [[a, scores[a]] for a in ranking]},
                       tensors={"head": np.asarray(self.heads_[best], dtype=np.float32)})

    def predict(self, profile, X):
        p = self._apply(profile.tensors["head"], self.base(X))
        if self.space_.kind == "categorical":
            return Predictions(self.space_, proba=p)
        return Predictions(self.space_, values=p)


_mod = types.ModuleType("perser_toy_methods")
_mod.ToyConsensus = ToyConsensus
_mod.ToySimilar = ToySimilar
sys.modules["perser_toy_methods"] = _mod


@pytest.fixture
def toy_methods(monkeypatch):
    """Registry with only the toy methods, named like the real ones."""
    reg = {"consensus": "perser_toy_methods:ToyConsensus", "similar": "perser_toy_methods:ToySimilar"}
    monkeypatch.setattr(mbase, "_REGISTRY", dict(reg))
    return reg


@pytest.fixture(scope="session")
def toy():
    return toy_corpus()


@pytest.fixture(scope="session")
def make_toy():
    """The toy corpus builder, for tests that need variants."""
    return toy_corpus
