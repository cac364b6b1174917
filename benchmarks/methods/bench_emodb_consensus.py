"""Sanity check of the networks on real speech: ``consensus`` on EmoDB, eGeMAPS,
leave-one-speaker-out over the 10 speakers, unweighted average recall (UAR).

EmoDB (Burkhardt et al. 2005, "A database of German emotional speech") has one acted
label per utterance and no per-listener labels, so only the consensus model applies.
The reference figure in ``../shared/data/README.md`` for these (degraded, 2-s) files is
an RBF SVM on the same features: UAR 0.589.

Run (features are computed once into the feature store)::

    python benchmarks/methods/bench_emodb_consensus.py [--epochs 100] [--cache DIR]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import recall_score

from perser.corpus.model import LabelSpace
from perser.features import extract
from perser.methods import RatingSet, make_method

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "emodb"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--cache", default=None)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    if not (DATA / "clips.csv").is_file():
        raise SystemExit(f"EmoDB not found at {DATA.resolve()}; nothing to do")
    torch.set_num_threads(args.threads)
    clips = pd.read_csv(DATA / "clips.csv", dtype=str).set_index("clip_id")
    paths = {c: str((DATA / p).resolve()) for c, p in clips["path"].items()}
    t = time.perf_counter()
    feats = extract(paths, "egemaps", cache_dir=args.cache, progress=True)
    print(f"# eGeMAPS for {len(feats)} clips in {time.perf_counter() - t:.1f} s "
          f"(computed {feats.n_computed}, reused {feats.n_reused}); load average {os.getloadavg()[0]:.2f}")
    classes = tuple(sorted(clips["emotion"].unique()))
    space = LabelSpace("emotion", "categorical", classes=classes)
    ids = feats.clip_ids
    y = np.array([classes.index(clips.loc[c, "emotion"]) for c in ids])
    spk = clips.loc[list(ids), "speaker"].to_numpy()
    pred = np.empty(len(ids), dtype=np.int64)
    t = time.perf_counter()
    for s in sorted(set(spk)):
        tr, te = spk != s, spk == s
        rs = RatingSet(feats.X[tr], ids[tr], np.arange(tr.sum()), np.array(["acted"] * tr.sum(), dtype=object), y[tr], space)
        m = make_method("consensus", epochs=args.epochs, patience=10, progress=False, seed=0).fit(rs)
        pred[te] = m.predict(None, feats.X[te]).proba.argmax(1)
    uar = recall_score(y, pred, average="macro")
    print(f"consensus (trunk 256-256, dropout 0.2, early stopping on 10% of the training clips), LOSO over "
          f"{len(set(spk))} speakers: UAR {uar:.3f}  ({time.perf_counter() - t:.0f} s for 10 folds)")


if __name__ == "__main__":
    main()
