"""The built-in demo corpus: synthetic emotional speech rated by simulated listeners.

:func:`make_demo` writes, with numpy alone and nothing downloaded, a table-format
corpus (see :mod:`perser.corpus.table`) that exercises every part of perser:

**Clips.** Each clip has a latent emotion: an intended class (``angry``, ``happy``,
``neutral``, ``sad``) expressed with a random intensity, giving a point in
arousal/valence/dominance space (latent units, roughly -1.5..1.5). A source-filter
synthesiser turns it into speech-like audio: a Rosenberg glottal-pulse train
following an F0 contour (declination, per-syllable accents, cycle-to-cycle jitter and
shimmer), aspiration noise (breathiness), syllable-rate amplitude envelope with
fricative onsets, five formants that move from vowel to vowel and are scaled by the
speaker's vocal-tract length, and a spectral tilt. The prosody depends on the latent
emotion (arousal raises pitch level and range, loudness, rate and flattens the
spectral tilt; low valence adds jitter and breathiness; dominance lowers pitch and
raises loudness) and on the speaker's voice, with clip-level nuisance variation, so
acoustic features carry the emotion, imperfectly.

**Listeners.** Each simulated listener belongs to one of four *perception styles*
(:data:`STYLES`): a style maps the latent emotion to a perceived one with a gain and a
bias per dimension, and then confuses classes through its own confusion matrix. Each
listener adds personal variation (bias, gain and noise per dimension; a perturbed
confusion matrix). A rating is one noisy percept: its dimensions are rounded to the
integer 1..5 scale, its class is drawn from the listener's class probabilities.
Listeners rate a long-tailed number of clips each; ``n_new`` of them are held out as
"new" listeners of the same styles. ``annotators.csv`` records every listener's
``style`` and ``new`` flag, and ``latent.csv`` the clips' latent emotions (the
generator's ground truth, not used by perser's loaders).

With the defaults the agreement is close to the voice-only ratings of CREMA-D
(about 9.2 ratings per clip, Fleiss' kappa near 0.28, plurality share near 0.64).
"""

from __future__ import annotations

import os
import sys
import wave
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from perser._io import atomic_dir
from perser.corpus.model import Corpus, LabelSpace, make_clips, make_ratings
from perser.errors import ConfigError, CorpusError

__all__ = ["make_demo", "simulated_ratings", "PerceptionStyle", "STYLES", "CLASSES", "DIMENSIONS", "GENERATOR_VERSION"]

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


@dataclass(frozen=True)
class PerceptionStyle:
    """How a group of listeners hears emotion.

    Parameters
    ----------
    name, description:
        Identifier (written to ``annotators.csv``) and a one-line account.
    gain, bias:
        Perceived latent = ``gain * latent + bias`` per (arousal, valence, dominance).
    confusion:
        Row-stochastic ``[C, C]`` matrix: probability of answering column class when the
        percept points at row class.
    share:
        Expected share of listeners with this style.
    """

    name: str
    description: str
    gain: tuple[float, float, float]
    bias: tuple[float, float, float]
    confusion: tuple[tuple[float, ...], ...]
    share: float

    def confusion_matrix(self) -> np.ndarray:
        m = np.asarray(self.confusion, dtype=float)
        return m / m.sum(axis=1, keepdims=True)


#: The perception styles (rows/columns of the confusion matrices follow :data:`CLASSES`).
STYLES: tuple[PerceptionStyle, ...] = (
    PerceptionStyle(
        name="literal",
        description="hears the expressed emotion as it is; few confusions",
        gain=(1.0, 1.0, 1.0),
        bias=(0.0, 0.0, 0.0),
        confusion=(
            (0.92, 0.03, 0.04, 0.01),
            (0.03, 0.92, 0.04, 0.01),
            (0.02, 0.02, 0.93, 0.03),
            (0.01, 0.01, 0.05, 0.93),
        ),
        share=0.28,
    ),
    PerceptionStyle(
        name="gloomy",
        description="hears valence and dominance lower; neutral often sounds sad, happy sounds neutral",
        gain=(1.0, 0.9, 1.0),
        bias=(-0.05, -0.45, -0.25),
        confusion=(
            (0.85, 0.01, 0.06, 0.08),
            (0.04, 0.70, 0.22, 0.04),
            (0.02, 0.01, 0.75, 0.22),
            (0.02, 0.00, 0.04, 0.94),
        ),
        share=0.24,
    ),
    PerceptionStyle(
        name="excitable",
        description="hears more arousal (inflated, stretched); neutral sounds happy or angry, happy and angry get mixed",
        gain=(1.35, 1.1, 1.1),
        bias=(0.40, 0.10, 0.10),
        confusion=(
            (0.78, 0.16, 0.04, 0.02),
            (0.14, 0.80, 0.04, 0.02),
            (0.08, 0.10, 0.78, 0.04),
            (0.04, 0.02, 0.10, 0.84),
        ),
        share=0.24,
    ),
    PerceptionStyle(
        name="reserved",
        description="hears emotion as weaker: compressed ratings near the middle, much labelled neutral",
        gain=(0.6, 0.6, 0.6),
        bias=(-0.05, 0.05, 0.0),
        confusion=(
            (0.80, 0.02, 0.16, 0.02),
            (0.02, 0.80, 0.16, 0.02),
            (0.02, 0.02, 0.94, 0.02),
            (0.02, 0.02, 0.18, 0.78),
        ),
        share=0.24,
    ),
)


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


def _prosody(rng: np.random.Generator, lat: pd.DataFrame, spk: pd.DataFrame, sr: int) -> pd.DataFrame:
    """Per-clip synthesis parameters from the latent emotion, the speaker and nuisance noise."""
    n = len(lat)
    s = spk.iloc[lat["speaker_idx"].to_numpy()].reset_index(drop=True)
    a, v, d = (lat[k].to_numpy() for k in DIMENSIONS)
    nrm = lambda sd: rng.normal(0, sd, n)  # noqa: E731
    dur = rng.uniform(1.0, 2.0, n)
    return pd.DataFrame(
        {
            "n_samples": np.round(dur * sr).astype(np.int64),
            "lead": rng.uniform(0.05, 0.15, n),
            "trail": rng.uniform(0.05, 0.15, n),
            # pitch level (semitones re the speaker), range of accents, declination, final rise
            "f0": s["f0"].to_numpy() * 2 ** ((3.5 * a + 0.8 * v - 1.0 * d + nrm(1.8)) / 12),
            "f0_range": np.clip(3.0 + 2.5 * a + 1.8 * v + nrm(1.0), 0.5, 12.0),
            "decl": -np.clip(1.5 - 0.8 * v + nrm(1.0), -1.0, 5.0),
            "rise": np.clip(1.5 * v * (v > 0) + nrm(0.8), 0.0, 4.0),
            "level_db": s["level_db"].to_numpy() + 6.0 * a + 2.0 * d + nrm(3.0),
            "rate": s["rate"].to_numpy() * np.exp(0.16 * a + 0.04 * v + 0.04 * d + nrm(0.08)),
            "tilt_db": s["tilt_db"].to_numpy() + 3.0 * a + 1.0 * d + nrm(1.5),
            "closing": np.clip(0.17 - 0.06 * a + nrm(0.015), 0.06, 0.32),
            "jitter": s["jitter"].to_numpy() * np.exp(-0.6 * v + 0.15 * np.abs(a) + nrm(0.2)),
            "shimmer": s["shimmer"].to_numpy() * np.exp(-0.4 * v + nrm(0.2)),
            "breath": np.clip(s["breath"].to_numpy() * np.exp(-0.7 * a - 0.4 * v + nrm(0.25)), 0.02, 0.4),
            "vtl": s["vtl"].to_numpy() * (1.0 + 0.05 * v + 0.02 * a),
            "phase0": rng.uniform(0.0, 0.4, n),
        }
    )


# ========================================================================= synthesis
#: Vowel formants F1..F3 (Hz, adult male); F4, F5 fixed relative to the vocal-tract length.
VOWELS = np.array(
    [
        [730, 1090, 2440],  # a
        [530, 1840, 2480],  # e
        [270, 2290, 3010],  # i
        [570, 840, 2410],  # o
        [300, 870, 2240],  # u
        [500, 1500, 2500],  # schwa
    ],
    dtype=float,
)
BANDWIDTHS = np.array([80.0, 100.0, 140.0, 200.0, 250.0])
FRAME, HOP, NFFT = 512, 256, 1024
MAX_SYLLABLES = 24
MAX_CYCLES = 1200
BATCH = 16


def _rosenberg(phi: np.ndarray, closing: np.ndarray, opening: float = 0.42) -> np.ndarray:
    """Rosenberg glottal flow at cycle phase ``phi`` in [0, 1); ``closing`` as a cycle fraction."""
    rise = 0.5 * (1.0 - np.cos(np.pi * np.minimum(phi / opening, 1.0)))
    fall_x = np.clip((phi - opening) / closing, 0.0, 1.0)
    fall = np.cos(0.5 * np.pi * fall_x)
    return np.where(phi < opening, rise, np.where(fall_x < 1.0, fall, 0.0))


def _resonances(freqs: np.ndarray, formants: np.ndarray) -> np.ndarray:
    """Magnitude of a cascade of second-order resonances, unity gain at 0 Hz.

    ``freqs`` is ``[F]`` Hz; ``formants`` ``[..., 5]`` Hz; returns ``[..., F]``.
    """
    f2 = freqs**2
    mag = np.ones(formants.shape[:-1] + freqs.shape, dtype=np.result_type(freqs, formants))
    for k in range(formants.shape[-1]):
        fk = formants[..., k, None]
        mag *= fk**2 / np.sqrt((fk**2 - f2) ** 2 + (freqs * BANDWIDTHS[k]) ** 2)
    return mag


def _synthesise_batch(p: pd.DataFrame, rng: np.random.Generator, sr: int) -> list[np.ndarray]:
    """Synthesise the clips in ``p`` (one row each); returns int16 arrays.

    Every signal is a ``[clips, samples]`` float32 array, so a batch is synthesised
    at once; clips of similar length should share a batch (little padding).
    """
    f32 = np.float32
    b = len(p)
    col = lambda k: p[k].to_numpy(dtype=f32)[:, None]  # noqa: E731
    normal = lambda *shape: rng.standard_normal(shape, dtype=f32)  # noqa: E731
    n_samples = p["n_samples"].to_numpy()
    t_len = int(-(-n_samples.max() // HOP) * HOP + FRAME)
    t = (np.arange(t_len, dtype=f32) / f32(sr))[None, :]
    start = col("lead")
    end = (n_samples[:, None] / sr).astype(f32) - col("trail")
    u = np.maximum(t - start, f32(0))
    x = np.clip(u / (end - start), f32(0), f32(1))  # position in the utterance, 0..1
    edge = np.clip(np.minimum(t - start, end - t) * f32(50.0), f32(0), f32(1))  # 20 ms ramps; 0 outside

    # syllables: a phase advancing at the speaking rate with a slow wobble
    wob = rng.uniform(0, 2 * np.pi, (b, 1)).astype(f32)
    psi = col("rate") * u + f32(0.12) * np.sin(f32(2 * np.pi * 0.8) * u + wob) + col("phase0")
    k = np.minimum(psi.astype(np.int64), MAX_SYLLABLES - 1)
    frac = psi - np.floor(psi)
    # per-syllable stress (one syllable fully stressed), fricative onset strength, pitch drift
    syl = np.empty((b, MAX_SYLLABLES, 3), dtype=f32)
    syl[:, :, 0] = rng.uniform(0.3, 1.0, (b, MAX_SYLLABLES))
    syl[np.arange(b), rng.integers(0, 3, b), 0] = 1.0
    syl[:, :, 1] = rng.uniform(0.0, 1.0, (b, MAX_SYLLABLES)) * (rng.random((b, MAX_SYLLABLES)) < 0.6)
    syl[:, :, 2] = np.cumsum(normal(b, MAX_SYLLABLES) * f32(0.35), axis=1)
    syl[:, :, 2] -= syl[:, :, 2].mean(axis=1, keepdims=True)
    at = syl.reshape(-1, 3)[(k + (MAX_SYLLABLES * np.arange(b))[:, None]).ravel()].reshape(b, t_len, 3)
    stress_t, onset_t, drift = at[:, :, 0], at[:, :, 1], at[:, :, 2]
    voiced = np.maximum(np.sin(f32(np.pi) * np.clip((frac - f32(0.18)) * f32(1 / 0.74), f32(0), f32(1))), f32(0))
    voiced **= f32(0.6)
    voiced *= (f32(0.55) + f32(0.45) * stress_t) * edge
    cons_env = np.sin(f32(np.pi) * np.clip(frac * f32(1 / 0.17), f32(0), f32(1)))
    cons_env *= onset_t * edge

    # F0 contour (semitones re the clip's level): declination, accents, final rise, drift
    st = (col("decl") * x + col("f0_range") * (np.sin(f32(np.pi) * frac) * stress_t - f32(0.5))
          + col("rise") * np.clip((x - f32(0.8)) * f32(5.0), f32(0), f32(1)) ** 2 + drift)
    f0 = col("f0") / f32(sr) * np.exp2(st / f32(12))
    theta = np.cumsum(f0, axis=1, dtype=np.float64)
    cyc = np.minimum(theta.astype(np.int64), MAX_CYCLES - 1)
    jit = np.take_along_axis(normal(b, MAX_CYCLES), cyc, axis=1)
    theta = np.cumsum(f0 * (f32(1) + col("jitter") * jit), axis=1, dtype=np.float64)
    cyc = np.minimum(theta.astype(np.int64), MAX_CYCLES - 1)
    shim = f32(1) + col("shimmer") * np.take_along_axis(normal(b, MAX_CYCLES), cyc, axis=1)
    flow = _rosenberg((theta - np.floor(theta)).astype(f32), col("closing"))
    dflow = np.diff(flow, axis=1, prepend=flow[:, :1]) * shim
    dflow /= np.sqrt(np.mean(dflow**2, axis=1, keepdims=True)) + f32(1e-12)
    source = (dflow + normal(b, t_len) * (f32(0.25) + flow) * (f32(2) * col("breath"))) * voiced
    # frication: white noise differenced three times (+18 dB/octave: energy near 4-8 kHz)
    hiss = np.diff(normal(b, t_len + 3), n=3, axis=1)
    frication = hiss * cons_env * f32(0.35 / np.sqrt(20.0))

    # short-time filtering: per-frame formant envelope x tilt, overlap-added
    n_frames = (t_len - FRAME) // HOP + 1
    idx = np.arange(FRAME)[None, :] + HOP * np.arange(n_frames)[:, None]
    win = np.hanning(FRAME + 1)[:-1].astype(f32)
    freqs = np.fft.rfftfreq(NFFT, 1.0 / sr).astype(f32)
    # vowel formants per syllable (scaled by the vocal-tract length), cross-faded between frames
    vowel = VOWELS[rng.integers(0, len(VOWELS), (b, MAX_SYLLABLES))]  # [b, syllables, 3]
    fmt = np.concatenate([vowel, np.broadcast_to([3500.0, 4500.0], vowel.shape[:2] + (2,))], axis=2)
    fmt = np.minimum(fmt * p["vtl"].to_numpy()[:, None, None], 0.45 * sr * np.array([1, 1, 1, 1, 1.05]))
    f_safe = np.maximum(freqs, f32(100.0))
    tilt = np.exp2(col("tilt_db")[:, :, None] * (np.log2(f_safe / f32(500.0)) / f32(6.0206))[None, None, :])
    env_syl = _resonances(freqs, fmt.astype(f32)) * tilt  # [b, syllables, F]
    k_fr = k[:, idx[:, FRAME // 2]]  # syllable at each frame centre, [b, frames]
    env = np.take_along_axis(env_syl, k_fr[:, :, None], axis=1)
    env = f32(0.5) * env + f32(0.25) * (np.roll(env, 1, axis=1) + np.roll(env, -1, axis=1))
    frames = np.fft.irfft(np.fft.rfft(source[:, idx] * win, n=NFFT, axis=2) * env, n=NFFT, axis=2)
    # overlap-add (a Hann window at 50% overlap sums to one): frames g, g+4, ... do not overlap
    step = NFFT // HOP
    y = np.zeros((b, (n_frames + step) * HOP + NFFT), dtype=f32)
    for g in range(step):
        part = frames[:, g::step].reshape(b, -1)
        y[:, g * HOP : g * HOP + part.shape[1]] += part
    y = y[:, :t_len] + frication

    out = []
    levels = 10 ** (p["level_db"].to_numpy() / 20) * 0.035  # -29 dBFS at 0 dB
    for j in range(b):
        m = n_samples[j]
        sig = y[j, :m].astype(np.float64)
        active = voiced[j, :m] > 0.1
        rms = np.sqrt(np.mean(sig[active] ** 2)) if active.any() else 1.0
        sig = sig * (levels[j] / (rms + 1e-12)) + rng.standard_normal(m) * 10 ** (-62 / 20)
        out.append(np.round(np.clip(sig, -1.0, 1.0) * 32767.0).astype(np.int16))
    return out


def _write_wav(path: Path, samples: np.ndarray, sr: int) -> None:
    """Write mono int16 ``samples`` as a 16-bit PCM wav file."""
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(sr)
        f.writeframes(samples.astype("<i2").tobytes())


# ========================================================================= listeners
def _listeners(rng: np.random.Generator, n_seen: int, n_new: int) -> tuple[pd.DataFrame, dict]:
    """Listener table (id, style, new) and each listener's personal perception parameters."""
    n = n_seen + n_new
    shares = np.array([s.share for s in STYLES])
    shares = shares / shares.sum()

    def draw(m: int) -> np.ndarray:
        # every style present when there is room; then by share
        base = np.arange(min(m, len(STYLES)))
        rest = rng.choice(len(STYLES), size=m - len(base), p=shares)
        st = np.concatenate([base, rest])
        rng.shuffle(st)
        return st

    style = np.concatenate([draw(n_seen), draw(n_new)])
    new = np.r_[np.zeros(n_seen, bool), np.ones(n_new, bool)]
    order = rng.permutation(n)  # interleave seen and new ids
    ids = np.empty(n, dtype=object)
    ids[order] = [f"L{i + 1:04d}" for i in range(n)]
    gain = np.array([STYLES[s].gain for s in style]) * np.exp(rng.normal(0, 0.12, (n, 3)))
    bias = np.array([STYLES[s].bias for s in style]) + rng.normal(0, 0.12, (n, 3))
    noise = 0.30 * np.exp(rng.normal(0, 0.25, (n, 3)))
    conf = np.stack([STYLES[s].confusion_matrix() for s in style]) * np.exp(rng.normal(0, 0.35, (n, 4, 4)))
    conf /= conf.sum(axis=2, keepdims=True)
    table = pd.DataFrame(
        {"annotator_id": ids, "style": [STYLES[s].name for s in style], "new": new}
    )
    return table, {"style": style, "gain": gain, "bias": bias, "noise": noise, "confusion": conf}


def _assign(rng: np.random.Generator, n_listeners: int, n_clips: int) -> tuple[np.ndarray, np.ndarray]:
    """Which listener rates which clip: long-tailed counts per listener, balanced per clip.

    Every listener rates at least ``MIN_RATINGS_PER_ANNOTATOR`` clips (all of them in a
    tiny corpus), plus a log-normal share of the remaining ratings, so that the clips get
    ``RATINGS_PER_CLIP`` ratings on average; where the minimum alone would exceed that,
    the long tail is kept and the clips get more ratings.
    """
    raw = np.exp(rng.normal(0.0, 0.9, n_listeners))
    lo = min(MIN_RATINGS_PER_ANNOTATOR, n_clips)
    target = RATINGS_PER_CLIP * n_clips
    extra = max(target - lo * n_listeners, 1.5 * lo * n_listeners)
    counts = np.minimum(lo + np.floor(raw / raw.sum() * extra).astype(int), n_clips)
    load = np.zeros(n_clips)
    lis, clp = [], []
    for j in rng.permutation(n_listeners):
        w = np.exp(-0.7 * (load - load.mean()))
        chosen = rng.choice(n_clips, size=counts[j], replace=False, p=w / w.sum())
        load[chosen] += 1
        lis.append(np.full(counts[j], j))
        clp.append(np.sort(chosen))
    return np.concatenate(lis), np.concatenate(clp)


def _rate(rng: np.random.Generator, z: np.ndarray, lis: np.ndarray, clp: np.ndarray, par: dict) -> tuple[np.ndarray, np.ndarray]:
    """Class indices and 1..5 dimensional ratings for the (listener, clip) pairs."""
    n = len(lis)
    percept = par["gain"][lis] * z[clp] + par["bias"][lis] + rng.normal(0, 1, (n, 3)) * par["noise"][lis]
    d2 = ((percept[:, None, :] - PROTOTYPES[None, :, :]) ** 2).sum(axis=2)
    logit = -d2 / (2 * CLASS_TAU**2) + np.log(CLASS_PRIOR)[None, :]
    heard = np.exp(logit - logit.max(axis=1, keepdims=True))
    heard /= heard.sum(axis=1, keepdims=True)
    answer = np.einsum("nc,ncd->nd", heard, par["confusion"][lis])
    cum = np.cumsum(answer, axis=1)
    cls = np.minimum((rng.random((n, 1)) * cum[:, -1:] > cum).sum(axis=1), len(CLASSES) - 1)
    dims = np.clip(np.round(3.0 + SCALE_GAIN * percept), SCALE[0], SCALE[1]).astype(np.int64)
    return cls, dims


# ======================================================================== simulation
@dataclass
class _Simulation:
    """Everything of the demo but its audio: speakers, latent emotions, listeners, ratings."""

    speakers: pd.DataFrame
    latent: pd.DataFrame
    listeners: pd.DataFrame
    lis: np.ndarray
    clp: np.ndarray
    cls: np.ndarray
    dims: np.ndarray
    clip_ids: list
    rng: dict  # the generators not used yet: "prosody" and "audio"

    def ratings(self) -> pd.DataFrame:
        """The ratings table, sorted by clip then annotator id (as ``ratings.csv``)."""
        ids = self.listeners["annotator_id"].to_numpy()
        order = np.lexsort((ids[self.lis].astype(str), self.clp))
        return make_ratings(
            {
                "clip_id": np.array(self.clip_ids, dtype=object)[self.clp[order]],
                "annotator_id": ids[self.lis[order]],
                "emotion": np.array(CLASSES, dtype=object)[self.cls[order]],
                **{d: self.dims[order, i] for i, d in enumerate(DIMENSIONS)},
            }
        )


def _simulate(n_clips: int, n_annotators: int, n_new: int, seed: int) -> _Simulation:
    """The demo's clips, listeners and ratings for these arguments (no audio synthesised).

    Each part draws from its own generator spawned from ``seed``, so the ratings do not
    depend on the audio settings, and :func:`make_demo` writes exactly these ratings.
    """
    ss = np.random.SeedSequence([int(seed), GENERATOR_VERSION])
    r_spk, r_lat, r_pros, r_lis, r_assign, r_rate, r_audio = (np.random.default_rng(s) for s in ss.spawn(7))
    spk = _speakers(r_spk, N_SPEAKERS)
    lat = _latent(r_lat, n_clips, N_SPEAKERS)
    clip_ids = [f"demo{i + 1:05d}" for i in range(n_clips)]
    ann, par = _listeners(r_lis, n_annotators, n_new)
    lis, clp = _assign(r_assign, len(ann), n_clips)
    z = lat[list(DIMENSIONS)].to_numpy()
    cls, dims = _rate(r_rate, z, lis, clp, par)
    return _Simulation(spk, lat, ann, lis, clp, cls, dims, clip_ids, {"prosody": r_pros, "audio": r_audio})


def simulated_ratings(n_clips: int = 1500, n_annotators: int = 120, n_new: int = 40, seed: int = 0) -> pd.DataFrame:
    """The ratings :func:`make_demo` writes for these arguments, without synthesising audio.

    Long format (``clip_id``, ``annotator_id``, ``emotion``, ``arousal``, ``valence``,
    ``dominance``), seen and new listeners together; fast enough to check the demo's
    agreement at its full default size.
    """
    _check_arguments("simulated_ratings", n_clips=n_clips, n_annotators=n_annotators, n_new=n_new, seed=seed)
    return _simulate(n_clips, n_annotators, n_new, seed).ratings()


def _check_arguments(caller: str, **values) -> None:
    """:class:`ConfigError` naming the first argument that is not an integer at or above its minimum."""
    lows = {"n_clips": 1, "n_annotators": 1, "n_new": 0, "sample_rate": 8000}
    for name, value in values.items():
        if name == "seed":
            continue
        low = lows[name]
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
            raise ConfigError(f"{caller}: {name} must be an integer >= {low}, got {value!r}")
    seed = values["seed"]
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"{caller}: seed must be a non-negative integer, got {seed!r}")


# ============================================================================= public
def _progress():
    from perser._io import progress_bar

    return progress_bar(eta=True, transient=True, disable=not sys.stderr.isatty())


def make_demo(out: str | Path, n_clips: int = 1500, n_annotators: int = 120, n_new: int = 40,
              seed: int = 0, overwrite: bool = False, sample_rate: int = 16000) -> Path:
    """Synthesise the demo corpus into folder `out` in perser's table format; returns out.

    Parameters
    ----------
    out:
        Folder to create. It is built in a temporary sibling and renamed into place.
    n_clips:
        Number of clips (1.0–2.0 s each, 12 speakers).
    n_annotators:
        Number of *seen* listeners (``new = False`` in ``annotators.csv``).
    n_new:
        Number of additional *new* listeners (``new = True``), of the same styles,
        held out for enrollment experiments.
    seed:
        Random seed; the same seed and arguments give the same bytes.
    overwrite:
        Replace ``out`` if it exists (otherwise :class:`~perser.errors.CorpusError`).
    sample_rate:
        Audio sample rate in Hz (16-bit mono wav files under ``out/audio/``).

    Returns
    -------
    Path
        ``out``; load it with :func:`perser.load_corpus`.
    """
    _check_arguments("make_demo", n_clips=n_clips, n_annotators=n_annotators, n_new=n_new, seed=seed,
                     sample_rate=sample_rate)
    out = Path(out)
    if out.exists() and not overwrite:
        raise CorpusError(f"{out} exists; pass overwrite=True (--overwrite) to replace it")

    sim = _simulate(n_clips, n_annotators, n_new, seed)
    spk, lat, ann, lis, clip_ids = sim.speakers, sim.latent, sim.listeners, sim.lis, sim.clip_ids
    pros = _prosody(sim.rng["prosody"], lat, spk, sample_rate)
    r_audio = sim.rng["audio"]

    with atomic_dir(out) as tmp:
        audio = tmp / "audio"
        audio.mkdir()
        by_length = np.argsort(pros["n_samples"].to_numpy(), kind="stable")  # little padding per batch
        batches = [by_length[lo : lo + BATCH] for lo in range(0, n_clips, BATCH)]
        batch_seeds = r_audio.integers(0, 2**63 - 1, size=len(batches))

        def synthesise(i: int) -> None:
            rows = batches[i]
            waves = _synthesise_batch(pros.iloc[rows], np.random.default_rng(batch_seeds[i]), sample_rate)
            for r, w in zip(rows, waves):
                _write_wav(audio / f"{clip_ids[r]}.wav", w, sample_rate)

        # numpy releases the GIL in its array work: two threads use two cores; each batch
        # has its own seed, so the bytes do not depend on the thread schedule
        pool = ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1))
        try:
            with _progress() as prog:
                task = prog.add_task("synthesising demo audio", total=n_clips)
                for i in pool.map(lambda i: synthesise(i) or i, range(len(batches))):
                    prog.update(task, advance=len(batches[i]))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

        spk_of = spk.iloc[lat["speaker_idx"].to_numpy()]
        clips = make_clips(
            {
                "clip_id": clip_ids,
                "path": [f"audio/{c}.wav" for c in clip_ids],
                "speaker": spk_of["speaker"].to_numpy(),
                "gender": spk_of["gender"].to_numpy(),
                "duration": pros["n_samples"].to_numpy() / sample_rate,
            }
        )
        ratings = sim.ratings()
        annotators = ann.set_index("annotator_id").sort_index()
        annotators["n_ratings"] = pd.Series(ann["annotator_id"].to_numpy()[lis]).value_counts().reindex(
            annotators.index).fillna(0).astype(int)
        corpus = Corpus(
            name="perser-demo",
            clips=clips,
            ratings=ratings,
            label_spaces={
                "emotion": LabelSpace("emotion", "categorical", classes=CLASSES),
                "avd": LabelSpace("avd", "dimensional", dimensions=DIMENSIONS, scale=SCALE),
            },
            annotators=annotators,
            meta=_meta(n_clips, n_annotators, n_new, seed, sample_rate),
        )
        corpus.validate()
        _write_tables(corpus, tmp)
        latent = pd.DataFrame(
            {"clip_id": clip_ids, "emotion": lat["emotion"], "intensity": lat["intensity"].round(4),
             **{d: lat[d].round(4) for d in DIMENSIONS}}
        )
        latent.to_csv(tmp / "latent.csv", index=False)
    return out


def _meta(n_clips: int, n_annotators: int, n_new: int, seed: int, sample_rate: int) -> dict:
    description = (
        "SYNTHETIC demo corpus made by perser (perser.corpus.demo.make_demo); no real speech or real "
        f"listeners. {n_clips} clips of 1.0-2.0 s speech-like audio from {N_SPEAKERS} synthetic speakers: "
        "a glottal-pulse source with an F0 contour, jitter, shimmer and breathiness, syllable-rate "
        "envelope, formant filtering and spectral tilt, whose prosody follows each clip's latent emotion "
        "(class and arousal/valence/dominance) and the speaker's voice. "
        f"{n_annotators + n_new} simulated listeners ({n_new} marked new in annotators.csv) perceive it "
        f"through {len(STYLES)} perception styles ({', '.join(s.name for s in STYLES)}) plus personal "
        "variation and rate a long-tailed number of clips each, in a categorical space 'emotion' and "
        "a dimensional space 'avd' (1-5). latent.csv holds the generator's latent emotions."
    )
    return {
        "description": description,
        "license": "CC0-1.0 (synthetic)",
        "generator": {
            "name": "perser.corpus.demo.make_demo",
            "version": GENERATOR_VERSION,
            "n_clips": n_clips,
            "n_annotators": n_annotators,
            "n_new": n_new,
            "seed": seed,
            "sample_rate": sample_rate,
            "n_speakers": N_SPEAKERS,
            "ratings_per_clip_target": RATINGS_PER_CLIP,
            "min_ratings_per_annotator": MIN_RATINGS_PER_ANNOTATOR,
            "class_tau": CLASS_TAU,
            "scale_gain": SCALE_GAIN,
        },
        "styles": [
            {"name": s.name, "description": s.description, "gain": list(s.gain), "bias": list(s.bias),
             "confusion": [list(r) for r in s.confusion], "share": s.share}
            for s in STYLES
        ],
    }


def _write_tables(corpus: Corpus, folder: Path) -> None:
    """Write the table files of ``corpus`` into ``folder`` (as :func:`perser.corpus.table.write` does)."""
    from perser.corpus import table

    staged = table.write(corpus, folder / ".tables", relative_paths=False)
    for f in staged.iterdir():
        f.rename(folder / f.name)
    staged.rmdir()

