"""A synthetic corpus of MSP-Podcast's shape, for speed and memory benchmarks.

MSP-Podcast (Lotfian & Busso 2019; release 1.11) has about 150k clips, over 10k
annotators and about a million categorical ratings; the number of ratings per
annotator is heavy-tailed (a few annotators rate thousands of clips, most rate a few
dozen). This module builds a :class:`~perser.methods.base.RatingSet` of that shape
without audio:

* features: ``n_clips x dim`` standard-normal values (``dim = 768``: one WavLM-base
  layer, mean-pooled), written to a ``.npy`` file and opened memory-mapped when a
  folder is given;
* annotators: ``n_annotators`` with rating counts proportional to ``(rank + 10)^-alpha``
  (a Zipf-like tail; ``alpha = 1.1`` gives a largest count of a few thousand at 1M
  ratings), at least one each, at most ``n_clips``;
* ratings: each annotator rates distinct random clips; the label is the argmax over
  ``n_classes`` of a clip signal (the first ``n_classes`` features), an annotator bias
  and Gumbel noise, so annotators agree in part and differ in part.

The numbers carry no emotion: they exist to load the training loop as real data would.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from perser.corpus.model import LabelSpace
from perser.methods.base import RatingSet

CLASSES = ("angry", "sad", "happy", "surprise", "fear", "disgust", "neutral")


def rating_counts(n_ratings: int, n_annotators: int, n_clips: int, alpha: float = 1.1) -> np.ndarray:
    """Heavy-tailed ratings per annotator summing to ``n_ratings`` (each in ``1..n_clips``)."""
    if n_annotators > n_ratings:
        raise ValueError(f"{n_annotators} annotators cannot share {n_ratings} ratings")
    w = (np.arange(n_annotators) + 10.0) ** -alpha
    c = np.maximum(1, np.floor(w / w.sum() * n_ratings)).astype(np.int64)
    c = np.minimum(c, n_clips)
    short = n_ratings - int(c.sum())
    i = 0
    while short > 0:  # hand out the rounding remainder from the top, within n_clips
        add = min(short, n_clips - int(c[i % n_annotators]))
        c[i % n_annotators] += add
        short -= add
        i += 1
    return c


def synthetic(n_clips: int = 150_000, dim: int = 768, n_annotators: int = 12_000, n_ratings: int = 1_000_000,
              n_classes: int = 7, seed: int = 0, folder: str | Path | None = None) -> RatingSet:
    """A categorical :class:`RatingSet` of the shape above (features memory-mapped from
    ``folder/features.npy`` when ``folder`` is given)."""
    rng = np.random.default_rng(seed)
    if folder is not None:
        f = Path(folder) / f"features-{n_clips}x{dim}-{seed}.npy"
        if not f.is_file():
            f.parent.mkdir(parents=True, exist_ok=True)
            X = np.lib.format.open_memmap(f.with_suffix(".part.npy"), mode="w+", dtype=np.float32, shape=(n_clips, dim))
            for a in range(0, n_clips, 10_000):
                X[a : a + 10_000] = rng.standard_normal((min(10_000, n_clips - a), dim), dtype=np.float32)
            X.flush()
            del X
            f.with_suffix(".part.npy").rename(f)
        X = np.load(f, mmap_mode="r")
    else:
        X = rng.standard_normal((n_clips, dim), dtype=np.float32)
    counts = rating_counts(n_ratings, n_annotators, n_clips)
    ann = np.repeat(np.arange(n_annotators), counts)
    # distinct clips per annotator: a random key per (annotator, clip) draw, re-drawn on collision
    clip = rng.integers(0, n_clips, size=len(ann))
    for _ in range(20):
        key = ann * n_clips + clip
        _, first = np.unique(key, return_index=True)
        dup = np.ones(len(key), dtype=bool)
        dup[first] = False
        if not dup.any():
            break
        clip[dup] = rng.integers(0, n_clips, size=int(dup.sum()))
    signal = 2.0 * np.asarray(X[:, :n_classes], dtype=np.float32)
    bias = rng.normal(0.0, 0.7, size=(n_annotators, n_classes)).astype(np.float32)
    logits = signal[clip] + bias[ann] + rng.gumbel(size=(len(ann), n_classes)).astype(np.float32)
    space = LabelSpace("emotion", "categorical", classes=CLASSES[:n_classes] if n_classes <= 7 else
                       tuple(f"c{i}" for i in range(n_classes)))
    names = np.array([f"w{i:05d}" for i in range(n_annotators)], dtype=object)
    return RatingSet(X=X, clip_ids=np.array([f"clip{i:06d}" for i in range(n_clips)], dtype=object),
                     clip_index=clip, annotator_ids=names[ann], y=logits.argmax(1).astype(np.int64), space=space)
