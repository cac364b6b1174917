"""What the corpus fixtures share: the :class:`Fixture` record, the simulated listeners
(a latent emotion per clip; per annotator a personal accuracy, preference, bias and
noise), tone synthesis and file writing. Same seed, same bytes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

SR = 16000


@dataclass
class Fixture:
    """A corpus tree written to disk.

    Attributes
    ----------
    root:
        The directory to pass to :func:`perser.load_corpus`.
    clips:
        One row per clip (index ``clip_id``): ``speaker``, the latent emotion and its
        dimensions, and whether its audio was written.
    ratings:
        The ratings a loader must return with its default options (quirks resolved).
    quirks:
        How many of each injected quirk the tree holds.
    """

    root: Path
    clips: pd.DataFrame
    ratings: pd.DataFrame
    quirks: dict = field(default_factory=dict)

    def __fspath__(self) -> str:
        return str(self.root)


# ---------------------------------------------------------------- simulation
#: latent (arousal, valence, dominance) in 0..1 per emotion family
_PROTO = {
    "neutral": (0.40, 0.50, 0.50),
    "happy": (0.70, 0.85, 0.60),
    "sad": (0.20, 0.20, 0.30),
    "angry": (0.85, 0.15, 0.80),
    "surprise": (0.80, 0.60, 0.50),
    "fear": (0.75, 0.20, 0.20),
    "disgust": (0.55, 0.15, 0.55),
    "contempt": (0.45, 0.25, 0.70),
    "frustration": (0.65, 0.25, 0.45),
    "excited": (0.85, 0.80, 0.65),
    "other": (0.50, 0.45, 0.50),
}


def _latent(rng: np.random.Generator, classes: Sequence[str], family: dict[str, str], weights=None):
    """Draw a latent class and its (arousal, valence, dominance) in 0..1."""
    k = int(rng.choice(len(classes), p=weights))
    proto = np.array(_PROTO[family.get(classes[k], classes[k])])
    avd = np.clip(proto + rng.normal(0, 0.08, 3), 0.02, 0.98)
    return k, avd


@dataclass
class _Annotator:
    accuracy: float
    preference: np.ndarray
    bias: np.ndarray
    noise: float


def _annotators(rng: np.random.Generator, n: int, n_classes: int) -> list[_Annotator]:
    out = []
    for _ in range(n):
        out.append(
            _Annotator(
                accuracy=float(rng.uniform(0.45, 0.9)),
                preference=rng.dirichlet(np.full(n_classes, 0.7)),
                bias=rng.normal(0, 0.08, 3),
                noise=float(rng.uniform(0.04, 0.12)),
            )
        )
    return out


def _rate_class(rng: np.random.Generator, a: _Annotator, k: int) -> int:
    return k if rng.random() < a.accuracy else int(rng.choice(len(a.preference), p=a.preference))


def _rate_dims(rng: np.random.Generator, a: _Annotator, avd: np.ndarray, lo: int, hi: int) -> np.ndarray:
    x = np.clip(avd + a.bias + rng.normal(0, a.noise, 3), 0, 1)
    return np.clip(np.rint(lo + x * (hi - lo)), lo, hi).astype(int)


def _zipf_weights(n: int, s: float = 0.8) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1) ** s
    return w / w.sum()


def _choose(rng: np.random.Generator, n_pool: int, k: int, weights=None) -> list[int]:
    k = min(k, n_pool)
    return sorted(int(i) for i in rng.choice(n_pool, size=k, replace=False, p=weights))


def _tone(rng: np.random.Generator, avd: np.ndarray, seconds: float, voice: float = 1.0) -> np.ndarray:
    """A voiced-ish tone whose pitch and loudness follow arousal and valence."""
    n = max(int(round(seconds * SR)), 160)
    t = np.arange(n) / SR
    f0 = voice * (110 + 140 * avd[0] + 40 * avd[1]) * (1 + 0.05 * np.sin(2 * np.pi * (2 + 3 * avd[0]) * t))
    phase = 2 * np.pi * np.cumsum(f0) / SR
    sig = sum(np.sin(h * phase) / h for h in (1, 2, 3, 4))
    env = 0.5 * (1 - np.cos(2 * np.pi * np.minimum(t / max(seconds, 1e-3), 1)))  # rise and fall
    amp = 0.05 + 0.25 * avd[0]
    x = amp * env * sig / 2 + rng.normal(0, 0.01 + 0.01 * (1 - avd[1]), n)
    return np.clip(x, -0.99, 0.99).astype(np.float32)


def _write_wav(path: Path, x: np.ndarray) -> None:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, SR, subtype="PCM_16")


def _write_text(path: Path, lines: list[str], crlf: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nl = "\r\n" if crlf else "\n"
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(nl.join(lines) + nl)


def _plurality(values: list, none=None):
    if not values:
        return none
    u, c = np.unique(np.asarray(values), return_counts=True)
    top = np.flatnonzero(c == c.max())
    return u[top[0]] if len(top) == 1 else none
