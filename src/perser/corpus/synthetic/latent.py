"""The demo corpus's ground truth: its classes and dimensions, its speakers and each clip's
latent emotion (an intended class with an intensity, a point in arousal/valence/dominance)."""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Bumped whenever the generator's output for a given seed changes.
GENERATOR_VERSION = 1

CLASSES: tuple[str, ...] = ("angry", "happy", "neutral", "sad")
DIMENSIONS: tuple[str, ...] = ("arousal", "valence", "dominance")
SCALE: tuple[int, int] = (1, 5)

#: Latent (arousal, valence, dominance) of each class at full intensity.
PROTOTYPES = np.array(
    [
        [0.95, -0.75, 0.65],  # angry
        [0.60, 0.85, 0.30],  # happy
        [0.00, 0.00, 0.00],  # neutral
        [-0.80, -0.65, -0.50],  # sad
    ]
)
CLASS_PRIOR = np.array([0.23, 0.23, 0.31, 0.23])

#: Latent units per rating-scale step: rating = 3 + SCALE_GAIN * perceived latent.
SCALE_GAIN = 1.5
#: Width of the class-likelihood kernel around each prototype (latent units).
CLASS_TAU = 0.37
N_SPEAKERS = 12
#: Mean ratings per clip aimed at (CREMA-D voice-only: about 9.2).
RATINGS_PER_CLIP = 9.2
MIN_RATINGS_PER_ANNOTATOR = 24


# ====================================================================== latent emotion
def _speakers(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Speaker voices: gender, F0, vocal-tract length, rate, level and voice quality."""
    gender = np.array(["female" if i % 2 == 0 else "male" for i in range(n)])
    female = gender == "female"
    return pd.DataFrame(
        {
            "speaker": [f"spk{i + 1:02d}" for i in range(n)],
            "gender": gender,
            "f0": np.where(female, 205.0, 115.0) * 2 ** (rng.normal(0, 1.6, n) / 12),
            "vtl": np.where(female, 1.16, 1.0) * np.exp(rng.normal(0, 0.04, n)),
            "rate": 4.2 * np.exp(rng.normal(0, 0.12, n)),
            "level_db": rng.normal(0, 2.5, n),
            "tilt_db": rng.normal(0, 1.5, n),
            "jitter": 0.010 * np.exp(rng.normal(0, 0.25, n)),
            "shimmer": 0.05 * np.exp(rng.normal(0, 0.25, n)),
            "breath": 0.12 * np.exp(rng.normal(0, 0.3, n)),
        }
    )


def _latent(rng: np.random.Generator, n_clips: int, n_speakers: int) -> pd.DataFrame:
    """Each clip's speaker, intended class, intensity and latent arousal/valence/dominance."""
    speaker = np.arange(n_clips) % n_speakers
    rng.shuffle(speaker)
    cls = rng.choice(len(CLASSES), size=n_clips, p=CLASS_PRIOR)
    intensity = 0.35 + 0.85 * rng.beta(2.2, 1.6, n_clips)
    z = intensity[:, None] * PROTOTYPES[cls] + rng.normal(0, 0.22, (n_clips, 3))
    return pd.DataFrame(
        {
            "speaker_idx": speaker,
            "emotion": np.array(CLASSES)[cls],
            "class_idx": cls,
            "intensity": intensity,
            "arousal": z[:, 0],
            "valence": z[:, 1],
            "dominance": z[:, 2],
        }
    )
