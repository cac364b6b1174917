"""Audio synthesis of the demo corpus: speech-like sound whose prosody follows each clip's
latent emotion and its speaker's voice (source-filter model; see :mod:`perser.corpus.synthetic`)."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pandas as pd

from perser.corpus.synthetic.latent import DIMENSIONS


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
