"""SSL feature extraction throughput with a WavLM-base-sized encoder (random weights).

WavLM Base shape (12 transformer layers, hidden size 768, 7 conv layers of 512 channels;
Chen et al. 2022), randomly initialised: the weights do not change the arithmetic. The
clips are synthetic (amplitude-modulated noise, 2–10 s at 16 kHz, seeded), written as
WAV files, so the run needs no corpus. For each precision, extraction runs into an empty
feature store (hashing, reading, the model and pooling included) and reports clips per
second and the real-time factor (processing seconds / audio seconds).

    python benchmarks/scale/ssl_throughput.py --device cuda --n 400 --precision fp16 fp32
    python benchmarks/scale/ssl_throughput.py --tiny --n 6          # a CPU smoke test
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def write_clips(folder: Path, n: int, sr: int = 16000, seed: int = 0) -> float:
    """``n`` synthetic clips in ``folder``; returns their total duration in seconds."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    total = 0.0
    for i in range(n):
        dur = float(rng.uniform(2.0, 10.0))
        t = np.arange(int(dur * sr)) / sr
        env = 0.5 * (1 + np.sin(2 * np.pi * rng.uniform(2, 6) * t))
        sf.write(folder / f"clip{i:05d}.wav", (0.1 * env * rng.standard_normal(len(t))).astype(np.float32), sr)
        total += len(t) / sr
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--precision", nargs="+", default=["fp16", "fp32"])
    ap.add_argument("--tiny", action="store_true", help="a tiny random WavLM instead of the base size (smoke test)")
    ap.add_argument("--json", help="append one JSON line per precision to this file")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    a = ap.parse_args()
    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    from transformers import AutoModel, Wav2Vec2FeatureExtractor, WavLMConfig

    import perser.features as pf

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "wav").mkdir()
        audio_s = write_clips(tmp / "wav", a.n)
        model_dir = tmp / "model"
        if a.tiny:
            from perser.testing.ssl import save_tiny_model

            save_tiny_model(model_dir, "wavlm")
        else:
            AutoModel.from_config(WavLMConfig()).save_pretrained(model_dir)  # WavLM Base shape
            Wav2Vec2FeatureExtractor(return_attention_mask=True).save_pretrained(model_dir)
        files = sorted((tmp / "wav").glob("*.wav"))
        for prec in a.precision:
            store = tmp / f"store-{prec}"
            t0 = time.perf_counter()
            feats = pf.extract(files, f"ssl:{model_dir}", cache_dir=store, device=a.device, precision=prec,
                               batch_size=a.batch_size, progress=False)
            if a.device.startswith("cuda"):
                torch.cuda.synchronize()
            dt = time.perf_counter() - t0
            res = {"what": "ssl", "model": "tiny-wavlm" if a.tiny else "wavlm-base (random)", "device": a.device,
                   "precision": prec, "clips": len(files), "audio_s": round(audio_s, 1), "seconds": round(dt, 2),
                   "clips_per_s": round(len(files) / dt, 2), "rtf": round(dt / audio_s, 5),
                   "shape": list(np.asarray(feats.X).shape)}
            print(json.dumps(res), flush=True)
            if a.json:
                with open(a.json, "a") as f:
                    f.write(json.dumps(res) + "\n")


if __name__ == "__main__":
    main()
