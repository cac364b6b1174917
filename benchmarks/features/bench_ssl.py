"""SSL extraction throughput: a base-size WavLM (random weights) on EmoDB clips.

WavLM Base shape (12 transformer layers, hidden size 768, 7 conv layers of 512 channels;
Chen et al. 2022, "WavLM: Large-Scale Self-Supervised Pre-Training for Full Stack Speech
Processing"), randomly initialised: the weights do not change the arithmetic, so the timing
is that of the real model. Reports clips per second and the real-time factor
(processing seconds / audio seconds) of a cold run into an empty store, and the speed of a
second run over the warm store.

    python benchmarks/features/bench_ssl.py [--n 48] [--batch-size 8] [--device cpu] [--precision auto]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "emodb"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=48)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = ap.parse_args()
    files = sorted((DATA / "wav").glob("*.wav"))[: args.n] if DATA.is_dir() else []
    if not files:
        print(f"{DATA} is absent; nothing to measure")
        return 0
    import torch
    from transformers import AutoModel, Wav2Vec2FeatureExtractor, WavLMConfig

    import perser.features as pf
    from perser.audio import audio_info

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    audio_s = sum(audio_info(f).duration for f in files)
    with tempfile.TemporaryDirectory() as model_dir, tempfile.TemporaryDirectory() as store:
        AutoModel.from_config(WavLMConfig()).save_pretrained(model_dir)  # WavLM Base shape
        Wav2Vec2FeatureExtractor(return_attention_mask=True).save_pretrained(model_dir)
        print(f"{len(files)} clips, {audio_s:.0f} s of audio; device {args.device}, batch size {args.batch_size}, "
              f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()}")
        t0 = time.perf_counter()
        ex = pf.make_extractor(f"ssl:{model_dir}", device=args.device, precision=args.precision, batch_size=args.batch_size)
        ex.model
        t_load = time.perf_counter() - t0
        print(f"model: {ex.config.model_type}, {ex.n_layers} pooled layers x {ex.dim}, precision {ex.precision}, "
              f"load {t_load:.1f} s")
        t0 = time.perf_counter()
        cold = pf.extract(files, f"ssl:{model_dir}", cache_dir=store, device=args.device, precision=args.precision,
                          batch_size=args.batch_size, progress=False)
        t_cold = time.perf_counter() - t0
        print(f"cold run: {t_cold:.1f} s, {len(files) / t_cold:.2f} clips/s, real-time factor {t_cold / audio_s:.3f} "
              f"(X {tuple(cold.X.shape)}; includes hashing, reading, model load)")
        t0 = time.perf_counter()
        warm = pf.extract(files, f"ssl:{model_dir}", cache_dir=store, device=args.device, precision=args.precision,
                          batch_size=args.batch_size, progress=False)
        t_warm = time.perf_counter() - t0
        assert warm.n_reused == len(files)
        print(f"warm run: {t_warm:.3f} s, {t_cold / t_warm:.0f}x faster")
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
