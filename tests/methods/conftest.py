"""Small constructed data sets with a planted signal for the method tests.

Each annotator ``a`` labels clip features ``x`` through their own weight matrix
``W[a]`` (``d x n_out``): dimensional ratings ``tanh(x W)`` on the 1-5 scale,
categorical ratings the argmax of ``x W``, multilabel ratings ``x W > 0.5``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from perser.corpus.model import LabelSpace
from perser.methods.base import RatingSet

# tiny networks: one thread avoids oversubscribing a shared CPU
torch.set_num_threads(1)

SPACES = {
    "categorical": LabelSpace("emotion", "categorical", classes=("ang", "hap", "neu", "sad")),
    "multilabel": LabelSpace("tags", "multilabel", classes=("ang", "hap", "neu", "sad")),
    "dimensional": LabelSpace("avd", "dimensional", dimensions=("arousal", "valence"), scale=(1, 5)),
}


def label(space: LabelSpace, X: np.ndarray, W: np.ndarray, rng: np.random.Generator, noise: float = 0.1) -> np.ndarray:
    """Labels of features ``X`` by an annotator with weights ``W``, encoded as ``space.encode`` does."""
    s = X @ W + noise * rng.standard_normal((len(X), W.shape[1]))
    if space.kind == "categorical":
        return s.argmax(1).astype(np.int64)
    if space.kind == "multilabel":
        return (s > 0.5).astype(np.float32)
    lo, hi = space.scale
    return ((np.tanh(s / 2) + 1) / 2 * (hi - lo) + lo).astype(np.float32)


class Synth:
    """A constructed rating set plus the means to make new listeners."""

    def __init__(self, kind: str, n_clips: int = 240, d: int = 6, weights: dict | None = None, n_annotators: int = 5,
                 seed: int = 0, noise: float = 0.1, x_shape: tuple | None = None):
        self.space = SPACES[kind]
        self.rng = np.random.default_rng(seed)
        self.d = d
        k = self.space.n_outputs
        if weights is None:
            weights = {f"a{i}": self.rng.standard_normal((d, k)) * 1.5 for i in range(n_annotators)}
        self.W = weights
        self.noise = noise
        self.X = self.rng.standard_normal((n_clips, d)).astype(np.float32)
        rows = []
        for a, W in weights.items():
            rows.append((a, label(self.space, self.X, W, self.rng, noise)))
        self.train = RatingSet(
            X=self.X,
            clip_ids=np.array([f"c{i:04d}" for i in range(n_clips)], dtype=object),
            clip_index=np.concatenate([np.arange(n_clips)] * len(rows)),
            annotator_ids=np.concatenate([[a] * n_clips for a, _ in rows]).astype(object),
            y=np.concatenate([y for _, y in rows]),
            space=self.space,
        )

    def listener(self, W: np.ndarray, n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """``n`` fresh clips labelled by a listener with weights ``W``."""
        rng = np.random.default_rng(seed)
        X = rng.standard_normal((n, self.d)).astype(np.float32)
        return X, label(self.space, X, W, rng, self.noise)


@pytest.fixture
def synth():
    return Synth


FAST = dict(hidden=(32,), dropout=0.0, epochs=30, batch_size=64, lr=3e-3, patience=0, progress=False, seed=0)


@pytest.fixture
def fast():
    return dict(FAST)


def three_rater_corpus(n: int = 30, classes=("a", "b", "c"), arousal: bool = False):
    """``(corpus, X, clip_ids)``: ``n`` clips of one speaker, rated by three annotators
    ``w0..w2`` who each label ``argmax(x[:3] + a)`` (and arousal ``3 + x[0]`` on 1-5)."""
    from perser.corpus.model import Corpus, make_clips, make_ratings

    rng = np.random.default_rng(0)
    ids = [f"c{i:02d}" for i in range(n)]
    X = rng.standard_normal((n, 4)).astype(np.float32)
    clips = make_clips({"clip_id": ids, "path": [f"/x/{c}.wav" for c in ids], "speaker": ["s"] * n})
    rows = [{"clip_id": c, "annotator_id": f"w{a}", "emotion": classes[int(np.argmax(X[i, :3] + a))],
             **({"arousal": float(np.clip(3 + X[i, 0], 1, 5))} if arousal else {})}
            for a in range(3) for i, c in enumerate(ids)]
    spaces = {"emotion": LabelSpace("emotion", "categorical", classes=tuple(classes))}
    if arousal:
        spaces["avd"] = LabelSpace("avd", "dimensional", dimensions=("arousal",), scale=(1, 5))
    return Corpus("t", clips, make_ratings(rows), spaces), X, np.asarray(ids, dtype=object)
