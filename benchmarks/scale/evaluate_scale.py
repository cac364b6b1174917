"""``perser evaluate`` at MSP-Podcast's shape: wall, CPU and peak memory of the whole
run and of each stage (load, split, fit per method, enroll, predict, metrics, report).

Builds the synthetic corpus of :mod:`synth` on disk in perser's table format
(``corpus.yaml``, ``clips.csv`` with one speaker per ``--clips-per-speaker`` clips,
``ratings.csv``) with its features as a precomputed feature file (``features.npz``,
float32), then runs the command line ``perser evaluate`` on it in a child process
(so its peak RSS is that run's alone) and prints the run folder's ``timings.csv``.

Usage::

    python benchmarks/scale/evaluate_scale.py                                   # the full shape
    python benchmarks/scale/evaluate_scale.py --clips 15000 --annotators 1200 --ratings 100000
    python benchmarks/scale/evaluate_scale.py --quick                           # tiny (a smoke test)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from synth import synthetic  # noqa: E402


def write_corpus(folder: Path, n_clips: int, dim: int, n_annotators: int, n_ratings: int,
                 clips_per_speaker: int = 100) -> tuple[Path, Path]:
    """The synthetic corpus as a table-format folder and a feature file (skipped when present)."""
    import pandas as pd
    import yaml

    corpus = folder / f"corpus-{n_clips}-{n_annotators}-{n_ratings}"
    feats = folder / f"features-{n_clips}x{dim}.npz"
    if (corpus / "ratings.csv").is_file() and feats.is_file():
        return corpus, feats
    rs = synthetic(n_clips=n_clips, dim=dim, n_annotators=n_annotators, n_ratings=n_ratings, folder=folder)
    corpus.mkdir(parents=True, exist_ok=True)
    (corpus / "corpus.yaml").write_text(yaml.safe_dump({
        "name": "synthetic-msp-shape",
        "description": "synthetic ratings of MSP-Podcast's shape (benchmarks/scale/synth.py); no audio",
        "label_spaces": [{"name": "emotion", "kind": "categorical", "classes": list(rs.space.classes)}]}))
    ids = rs.clip_ids
    pd.DataFrame({"clip_id": ids, "path": [f"audio/{c}.wav" for c in ids],
                  "speaker": [f"spk{i // clips_per_speaker:05d}" for i in range(len(ids))]}).to_csv(
        corpus / "clips.csv", index=False)
    classes = np.asarray(rs.space.classes, dtype=object)
    pd.DataFrame({"clip_id": ids[rs.clip_index], "annotator_id": rs.annotator_ids,
                  "emotion": classes[rs.y]}).to_csv(corpus / "ratings.csv", index=False)
    if not feats.is_file():
        with open(feats.with_suffix(".part"), "wb") as f:
            np.savez(f, X=np.asarray(rs.X, dtype=np.float32), clip_ids=ids.astype(str))
        feats.with_suffix(".part").rename(feats)
    return corpus, feats


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clips", type=int, default=150_000)
    p.add_argument("--dim", type=int, default=768)
    p.add_argument("--annotators", type=int, default=12_000)
    p.add_argument("--ratings", type=int, default=1_000_000)
    p.add_argument("--clips-per-speaker", type=int, default=100)
    p.add_argument("--methods", default="consensus,similar")
    p.add_argument("--k", default="5,30")
    p.add_argument("--folds", default="0", help="folds to run (of 5)")
    p.add_argument("--epochs", type=int, default=1, help="epochs of every neural method")
    p.add_argument("--max-listeners", type=int, default=0, help="cap on unseen listeners (0: none)")
    p.add_argument("--folder", default="/tmp/perser-scale")
    p.add_argument("--quick", action="store_true", help="tiny sizes: check that everything runs")
    p.add_argument("--json", help="append the result line here")
    p.add_argument("extra", nargs="*", help="further `perser evaluate` flags")
    a = p.parse_args()
    if a.quick:
        a.clips, a.dim, a.annotators, a.ratings, a.clips_per_speaker = 3000, 32, 120, 20_000, 20
    folder = Path(a.folder)
    t0 = time.perf_counter()
    corpus, feats = write_corpus(folder, a.clips, a.dim, a.annotators, a.ratings, a.clips_per_speaker)
    t_write = time.perf_counter() - t0
    run_dir = folder / f"run-{a.clips}-{a.annotators}-{a.ratings}"
    cmd = [sys.executable, "-m", "perser", "evaluate", "--corpus", str(corpus), "--features", str(feats),
           "--methods", a.methods, "--k", a.k, "--seeds", "0", "--folds", a.folds, "--out", str(run_dir),
           "--overwrite", "true", "--progress", "false", "--n-bootstrap", "200",
           "--corpus-options.check_audio", "false"]
    for m in a.methods.split(","):
        if m not in ("consensus", "random-annotator", "mean-annotator", "similar", "finetune", "meta"):
            continue
        key = "meta-epochs" if m == "meta" else "epochs"
        cmd += [f"--method-params.{m}.{key}", str(a.epochs)]
    if a.max_listeners:
        cmd += ["--max-listeners", str(a.max_listeners)]
    cmd += a.extra
    print(" ".join(cmd), flush=True)
    c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env={**os.environ})
    wall = time.perf_counter() - t0
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"perser evaluate failed (exit {proc.returncode})")
    import pandas as pd

    stages = pd.read_csv(run_dir / "timings.csv", keep_default_na=False)
    print(stages.to_string(index=False))
    res = {"clips": a.clips, "dim": a.dim, "annotators": a.annotators, "ratings": a.ratings, "methods": a.methods,
           "k": a.k, "folds": a.folds, "epochs": a.epochs, "write_corpus_s": round(t_write, 1),
           "wall_s": round(wall, 1), "cpu_s": round((c1.ru_utime + c1.ru_stime) - (c0.ru_utime + c0.ru_stime), 1),
           "peak_rss_gb": round(c1.ru_maxrss / 1024**2, 2), "load": [round(v, 2) for v in os.getloadavg()],
           "stages": stages.to_dict(orient="records")}
    print("RESULT " + json.dumps(res))
    if a.json:
        with open(a.json, "a") as fh:
            fh.write(json.dumps(res) + "\n")


if __name__ == "__main__":
    main()
