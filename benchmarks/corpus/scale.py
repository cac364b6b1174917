"""Scale benchmark of the corpus layer at the size of MSP-Podcast.

Builds a table-format corpus with 150,000 clips, 12,000 annotators and 1,000,000
ratings (a 9-class categorical space and arousal/valence/dominance on 1–7, every
rating carrying both, like MSP-Podcast's detailed labels; long-tailed annotator
activity; 1,500 speakers), then, in a fresh process so that its peak memory is its
own, times:

* load: ``perser.load_corpus`` (read the CSVs, build the tables, **validate**,
  including the audio check: every clip has its own path, a symbolic link to one shared
  0.1 s wav, so the 150,000 existence checks are real file-system calls);
* consensus: plurality, soft, mean and EWE;
* agreement: Fleiss' kappa, Krippendorff's alpha (nominal and interval, per dimension);
* describe: the full ``perser corpus stats`` figures (which recompute agreement).

Usage::

    python benchmarks/corpus/scale.py [--dir /tmp/perser-scale] [--rebuild]

The corpus is cached in ``--dir``; the figures go to stdout as JSON (see RESULTS.md).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

N_CLIPS = 150_000
N_ANNOTATORS = 12_000
N_RATINGS = 1_000_000
N_SPEAKERS = 1_500
CLASSES = ["angry", "sad", "happy", "surprise", "fear", "disgust", "contempt", "neutral", "other"]
DIMS = ["arousal", "valence", "dominance"]


def build(out: Path, seed: int = 0) -> None:
    """Write the synthetic table-format corpus into ``out`` (about 60 MB of CSV)."""
    import soundfile as sf
    import yaml

    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    (out / "audio").mkdir(exist_ok=True)
    shared = out / "audio" / "shared.wav"
    sf.write(shared, np.zeros(1600, dtype=np.float32), 16000, subtype="PCM_16")
    spec = {
        "name": "scale-benchmark",
        "description": "synthetic, MSP-Podcast-sized; every clip points to one shared wav",
        "label_spaces": [
            {"name": "emotion", "kind": "categorical", "classes": CLASSES},
            {"name": "avd", "kind": "dimensional", "dimensions": DIMS, "scale": [1, 7]},
        ],
    }
    (out / "corpus.yaml").write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")

    clip_ids = np.array([f"MSP-PODCAST_{i // 1000:04d}_{i % 1000:04d}" for i in range(N_CLIPS)], dtype=object)
    speakers = rng.integers(0, N_SPEAKERS, N_CLIPS)
    split = np.where(speakers % 10 < 7, "Train", np.where(speakers % 10 < 8, "Development", "Test1"))
    # one directory entry per clip, each a symbolic link to the same 0.1 s wav (no disk space, real stat calls)
    for cid in clip_ids:
        link = out / "audio" / f"{cid}.wav"
        if not os.path.lexists(link):
            os.symlink(shared.name, link)
    pd.DataFrame({
        "clip_id": clip_ids,
        "path": [f"audio/{cid}.wav" for cid in clip_ids],
        "speaker": [f"spk{s:04d}" for s in speakers],
        "split": split,
        "duration": np.round(rng.uniform(2.75, 11.0, N_CLIPS), 2),
    }).to_csv(out / "clips.csv", index=False)

    # ratings per clip: at least 5 (MSP-Podcast's minimum), summing to N_RATINGS
    per_clip = np.full(N_CLIPS, 5)
    extra = rng.multinomial(N_RATINGS - per_clip.sum(), rng.dirichlet(np.full(N_CLIPS, 2.0)))
    per_clip += extra
    clip_of = np.repeat(np.arange(N_CLIPS), per_clip)
    # long-tailed annotator activity (a few workers rate thousands of clips, most rate a few)
    activity = rng.pareto(1.2, N_ANNOTATORS) + 0.05
    activity /= activity.sum()
    ann = rng.choice(N_ANNOTATORS, size=N_RATINGS, p=activity)
    ann[rng.choice(N_RATINGS, N_ANNOTATORS, replace=False)] = rng.permutation(N_ANNOTATORS)  # everyone rates
    for _ in range(100):  # redraw repeated (clip, annotator) pairs until none is left
        dup = pd.DataFrame({"c": clip_of, "a": ann}).duplicated().to_numpy()
        if not dup.any():
            break
        ann[dup] = rng.integers(0, N_ANNOTATORS, int(dup.sum()))
    else:
        raise RuntimeError("could not draw distinct annotators per clip")
    latent = rng.integers(0, len(CLASSES), N_CLIPS)
    agree = rng.random(N_RATINGS) < 0.55
    label = np.where(agree, latent[clip_of], rng.integers(0, len(CLASSES), N_RATINGS))
    truth = rng.uniform(2, 6, size=(N_CLIPS, 3))
    bias = rng.normal(0, 0.5, size=(N_ANNOTATORS, 3))
    dims = np.clip(np.rint(truth[clip_of] + bias[ann] + rng.normal(0, 1.0, (N_RATINGS, 3))), 1, 7).astype(np.int8)
    order = rng.permutation(N_RATINGS)  # rows in no particular order, as in a real export
    ratings = pd.DataFrame({
        "clip_id": clip_ids[clip_of[order]],
        "annotator_id": np.array([f"WORKER{a:05d}" for a in range(N_ANNOTATORS)], dtype=object)[ann[order]],
        "emotion": np.asarray(CLASSES, dtype=object)[label[order]],
        **{d: dims[order, j] for j, d in enumerate(DIMS)},
    })
    ratings.to_csv(out / "ratings.csv", index=False)


def measure(path: Path) -> dict:
    """Time load + validate + consensus + agreement + describe; report peak memory."""
    from perser import load_corpus
    from perser.corpus.agreement import agreement
    from perser.corpus.consensus import consensus
    from perser.corpus.stats import describe

    times: dict[str, float] = {}
    cpu: dict[str, float] = {}
    t0, c0 = time.perf_counter(), time.process_time()

    def lap(name: str) -> None:
        nonlocal t0, c0
        t, c = time.perf_counter(), time.process_time()
        times[name], cpu[name] = round(t - t0, 2), round(c - c0, 2)
        t0, c0 = t, c

    corpus = load_corpus(path, format="table")  # validates, with the audio check
    lap("load+validate")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        p = consensus(corpus, "emotion", method="plurality")
        lap("plurality")
        consensus(corpus, "emotion", method="soft")
        lap("soft")
        consensus(corpus, "avd", method="mean")
        lap("mean")
        consensus(corpus, "avd", method="ewe")
        lap("ewe")
    ag_cat = agreement(corpus, "emotion")
    ag_dim = agreement(corpus, "avd")
    lap("agreement")
    d = describe(corpus)
    lap("describe")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    return {
        "clips": len(corpus.clips),
        "ratings": len(corpus.ratings),
        "annotators": d["n_annotators"],
        "wall_seconds": times,
        "cpu_seconds": cpu,
        "total_wall_seconds": round(sum(times.values()), 2),
        "total_cpu_seconds": round(sum(cpu.values()), 2),
        "peak_rss_mb": round(peak_mb, 1),
        "ties": int(p["tie"].sum()),
        "warnings": [str(w.message) for w in caught],
        "fleiss_kappa": round(ag_cat["fleiss_kappa"], 4),
        "krippendorff_alpha": {"emotion": round(ag_cat["krippendorff_alpha"], 4),
                               **{k: round(v, 4) for k, v in ag_dim["krippendorff_alpha"].items()}},
        "cpu_count": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/perser-scale"), help="where the corpus is built/cached")
    ap.add_argument("--rebuild", action="store_true", help="rebuild the corpus even if cached")
    ap.add_argument("--measure-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure_only:
        print(json.dumps(measure(args.dir)))
        return
    if args.rebuild or not (args.dir / "ratings.csv").is_file():
        t = time.perf_counter()
        print(f"building {args.dir} ...", file=sys.stderr, flush=True)
        build(args.dir)
        print(f"built in {time.perf_counter() - t:.1f} s", file=sys.stderr, flush=True)
    res = subprocess.run([sys.executable, __file__, "--dir", str(args.dir), "--measure-only"],
                         check=True, capture_output=True, text=True)
    print(json.dumps(json.loads(res.stdout.strip().splitlines()[-1]), indent=2))


if __name__ == "__main__":
    main()
