"""EmoDB: perser's `consensus` method against the classic eGeMAPS + RBF-SVM baseline.

Both on the same files (``../shared/data/emodb``, Burkhardt et al. 2005), the same
openSMILE eGeMAPSv02 functionals and the same leave-one-speaker-out folds (10
speakers). EmoDB has one *acted* label per clip and no per-listener labels, so the
benchmark builds a table-format corpus in a temporary folder with a single
pseudo-annotator, ``acted``, whose rating of every clip is its acted emotion; perser's
protocol then runs its "seen listeners on unseen clips" scenario for that one listener.

    python benchmarks/evaluate/emodb_uar.py [--cache DIR]

UAR is computed on the pooled leave-one-speaker-out predictions of all 535 clips
(also given: the mean of the per-speaker UARs).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[2]
EMODB = REPO.parent / "shared" / "data" / "emodb"
CODES = {"W": "anger", "L": "boredom", "E": "disgust", "A": "fear", "F": "happiness", "T": "sadness", "N": "neutral"}


def build_corpus(folder: Path) -> Path:
    from perser.corpus.model import Corpus, LabelSpace, make_clips, make_ratings
    from perser.corpus.table import write

    clips = pd.read_csv(EMODB / "clips.csv", dtype=str)
    clips["path"] = [str((EMODB / p).resolve()) for p in clips["path"]]
    emotion = clips["emotion"].map(lambda e: CODES.get(e, e))
    corpus = Corpus(
        name="emodb-acted",
        clips=make_clips(clips[["clip_id", "path", "speaker"]]),
        ratings=make_ratings(pd.DataFrame({"clip_id": clips["clip_id"], "annotator_id": "acted", "emotion": emotion})),
        label_spaces={"emotion": LabelSpace("emotion", "categorical", classes=tuple(sorted(set(emotion))))},
        meta={"description": "EmoDB (Burkhardt et al. 2005); the acted emotion as the rating of one pseudo-annotator"},
    )
    return write(corpus, folder / "emodb-acted", relative_paths=False)


def per_speaker_uar(y, pred, speakers):
    from sklearn.metrics import balanced_accuracy_score

    return float(np.mean([balanced_accuracy_score(y[speakers == s], pred[speakers == s]) for s in np.unique(speakers)]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", type=Path, default=None, help="feature store (default: a temporary folder)")
    args = ap.parse_args()
    if not (EMODB / "clips.csv").is_file():
        print(f"skipped: {EMODB} is absent")
        return
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import LeaveOneGroupOut, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    from perser.config import load_config
    from perser.corpus import load_corpus
    from perser.evaluate import evaluate
    from perser.features import extract

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cache = args.cache or tmp / "features"
        root = build_corpus(tmp)
        corpus = load_corpus(root)
        t0 = time.perf_counter()
        feats = extract(corpus, "egemaps", cache_dir=cache, workers=2)
        t_feat = time.perf_counter() - t0

        # the classic baseline: standardised eGeMAPS + RBF SVM (C=1, balanced), LOSO
        F = feats.frame()
        y = corpus.ratings.set_index("clip_id").loc[F.index, "emotion"].to_numpy()
        spk = corpus.clips.loc[F.index, "speaker"].to_numpy()
        svm = make_pipeline(StandardScaler(), SVC(C=1.0, kernel="rbf", class_weight="balanced"))
        pred = cross_val_predict(svm, F.to_numpy(), y, groups=spk, cv=LeaveOneGroupOut())
        svm_uar = balanced_accuracy_score(y, pred)
        svm_spk = per_speaker_uar(y, pred, spk)

        # perser: the consensus method through the evaluation protocol, one fold per speaker
        cfg = load_config(overrides={
            "name": "emodb-consensus", "corpus": str(root), "format": "table", "space": "emotion",
            "feature_cache": str(cache), "methods": ["consensus"], "scenarios": ["seen"], "unseen_fraction": 0,
            "seen_k": [1], "k": [1], "seeds": [0], "fold_by": "speaker", "n_folds": 10, "min_test": 1,
            "out": str(tmp / "run"), "report": False, "progress": False,
        })
        t0 = time.perf_counter()
        run = evaluate(cfg, console=False)
        t_eval = time.perf_counter() - t0
        r = run.results.set_index("metric")["value"]
        blocks = run.blocks
        ids = np.concatenate([b.clip_ids for b in blocks])
        p = np.concatenate([b.proba for b in blocks]).argmax(1)
        classes = run.data.space.classes
        cons_pred = pd.Series([classes[i] for i in p], index=ids).loc[F.index].to_numpy()
        out = {
            "clips": int(len(F)), "speakers": int(len(np.unique(spk))),
            "svm_uar_pooled": round(float(svm_uar), 4), "svm_uar_mean_per_speaker": round(svm_spk, 4),
            "consensus_uar_argmax_pooled": round(float(r["uar_argmax"]), 4),
            "consensus_uar_balanced_pooled": round(float(r["uar_balanced"]), 4),
            "consensus_uar_argmax_mean_per_speaker": round(per_speaker_uar(y, cons_pred, spk), 4),
            "consensus_accuracy": round(float(r["accuracy_argmax"]), 4),
            "consensus_params": "perser defaults (make_method('consensus'))",
            "versions": {k: v for k, v in __import__("perser.evaluate.report", fromlist=["x"]).package_versions().items()
                         if k in ("perser", "scikit-learn", "torch", "opensmile")},
            "seconds_features": round(t_feat, 1), "seconds_consensus_protocol": round(t_eval, 1),
        }
        print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
