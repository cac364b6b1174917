"""A served `similar` model with an enrollment pool of real WAV files, for the page tests."""

from __future__ import annotations

import numpy as np
import soundfile as sf

from perser.corpus.model import LabelSpace
from perser.methods import RatingSet, make_method

D = 88  # eGeMAPS-sized, so an uploaded recording goes through real openSMILE extraction
CAT = LabelSpace("emotion", "categorical", classes=("ang", "hap", "neu", "sad"))
DIM = LabelSpace("avd", "dimensional", dimensions=("arousal", "valence"), scale=(1, 5))
FAST = dict(hidden=(16,), dropout=0.0, epochs=15, batch_size=64, lr=3e-3, patience=0, progress=False, seed=0,
            min_ratings=10)


def label(space, X, w):
    s = X @ w / np.sqrt(D) * 2
    if space.kind == "categorical":
        return s.argmax(1).astype(np.int64)
    return (3 + 2 * np.tanh(s)).astype(np.float32)


def tone(path, f0: float, seconds: float = 0.5, sr: int = 16000) -> None:
    t = np.arange(int(seconds * sr)) / sr
    sf.write(path, (0.3 * np.sin(2 * np.pi * f0 * t) * np.hanning(len(t))).astype(np.float32), sr)


def build(root, space=CAT, n_clips: int = 150, n_ann: int = 4, n_pool: int = 40, seed: int = 0):
    """``(model_dir, pool_csv, features_npz, X, W)``: a saved model, a pool CSV of WAV
    files with clip ids, and the clips' features (the model's inputs)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_clips, D)).astype(np.float32)
    W = {f"a{i}": rng.standard_normal((D, space.n_outputs)) for i in range(n_ann)}
    rs = RatingSet(X=X, clip_ids=np.array([f"c{i:03d}" for i in range(n_clips)], dtype=object),
                   clip_index=np.concatenate([np.arange(n_clips)] * n_ann),
                   annotator_ids=np.concatenate([[a] * n_clips for a in W]).astype(object),
                   y=np.concatenate([label(space, X, w) for w in W.values()]), space=space)
    model = make_method("similar", **FAST).fit(rs)
    model.feature_spec = {"spec": "egemaps", "shape": [D]}
    model.save(root / "model")
    (root / "wav").mkdir(parents=True, exist_ok=True)
    ids = [f"c{i:03d}" for i in range(n_pool)]
    for i, c in enumerate(ids):
        tone(root / "wav" / f"{c}.wav", 150 + 7 * i)
    (root / "pool.csv").write_text("clip_id,path\n" + "".join(f"{c},wav/{c}.wav\n" for c in ids), encoding="utf-8")
    np.savez(root / "feats.npz", X=X[:n_pool], clip_ids=np.array(ids), spec=np.array("egemaps"))
    return root / "model", root / "pool.csv", root / "feats.npz", X, W
