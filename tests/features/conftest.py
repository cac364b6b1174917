"""Fixtures for feature tests: generated speech-like audio and tiny random SSL models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from perser.testing.ssl import TINY, save_tiny_model  # noqa: F401  (used by the tests here)

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def voice(seconds: float, sr: int = 16000, f0: float = 140.0, seed: int = 0) -> np.ndarray:
    """A voiced, speech-like signal: harmonics of a wandering f0, syllable-rate amplitude, breath noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f = f0 * (1 + 0.08 * np.sin(2 * np.pi * 3.1 * t + seed))
    phase = 2 * np.pi * np.cumsum(f) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 8))
    env = 0.55 + 0.45 * np.sin(2 * np.pi * 4.0 * t + seed) ** 2
    x = 0.2 * env * x + 0.005 * rng.standard_normal(len(t))
    return x.astype(np.float32)


def write_voices(folder: Path, n: int, seconds=(1.0, 2.0), sr: int = 16000) -> list[Path]:
    """``n`` distinct WAV files of varying length."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    lengths = np.linspace(seconds[0], seconds[1], n)
    for i in range(n):
        p = folder / f"clip{i:03d}.wav"
        sf.write(p, voice(float(lengths[i]), sr, f0=110 + 9 * i, seed=i), sr, subtype="PCM_16")
        paths.append(p)
    return paths


@pytest.fixture
def voices(tmp_path) -> list[Path]:
    return write_voices(tmp_path / "audio", 4)


@pytest.fixture
def emodb_original() -> list[Path]:
    d = SHARED / "emodb-original"
    files = sorted(d.glob("*.wav")) if d.is_dir() else []
    if not files:
        pytest.skip("../shared/data/emodb-original is absent")
    return files

