"""Reading speech audio: decode, downmix, resample and validate.

Every function raises :class:`perser.errors.FeatureError` naming the file when the
audio cannot be used: unreadable or truncated files, empty, silent or non-finite
signals, and clips longer than an optional maximum duration.

>>> x = read_audio("clip.flac", sample_rate=16000)   # doctest: +SKIP
>>> x.dtype, x.ndim
(dtype('float32'), 1)
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from perser.errors import FeatureError

__all__ = ["AudioInfo", "audio_info", "read_audio", "resample", "to_mono", "check_signal", "split_chunks"]

#: Default peak amplitude at or below which a signal counts as silent (-100 dBFS).
SILENCE_PEAK = 1e-5


@dataclass(frozen=True)
class AudioInfo:
    """Header facts about an audio file.

    Attributes
    ----------
    path : str
        The file.
    sample_rate : int
        Native sampling rate in Hz.
    frames : int
        Number of samples per channel.
    channels : int
        Number of channels.
    """

    path: str
    sample_rate: int
    frames: int
    channels: int

    @property
    def duration(self) -> float:
        """Duration in seconds."""
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """Read the header of ``path`` (cheap: no samples are decoded).

    Raises
    ------
    FeatureError
        If the file is missing or no reader recognises it.
    """
    p = str(path)
    if not os.path.isfile(p):
        raise FeatureError(f"{p}: audio file not found")
    try:
        info = sf.info(p)
    except Exception as e:  # soundfile raises LibsndfileError / RuntimeError / TypeError
        raise FeatureError(f"{p}: unreadable audio ({_reason(e)})") from None
    return AudioInfo(p, int(info.samplerate), int(info.frames), int(info.channels))


def _reason(e: BaseException) -> str:
    msg = str(e).strip()
    return msg.split(": ", 1)[-1] if msg.startswith("Error") else (msg or type(e).__name__)


def _wav_missing_bytes(path: str) -> int:
    """Bytes a RIFF/WAVE file's ``data`` chunk declares but the file lacks (0 if intact or not WAV).

    libsndfile silently reads a truncated WAV up to where it ends; this header check
    catches what it hides.
    """
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
                return 0
            endian = "<" if head[:4] == b"RIFF" else ">"
            pos = 12
            while pos + 8 <= size:
                f.seek(pos)
                cid, clen = struct.unpack(endian + "4sI", f.read(8))
                if cid == b"data":
                    if clen in (0, 0xFFFFFFFF):  # streaming writers leave the size unset
                        return 0
                    return max(0, pos + 8 + clen - size)
                pos += 8 + clen + (clen & 1)
    except OSError:
        return 0
    return 0


def to_mono(x: np.ndarray) -> np.ndarray:
    """Average the channels of a ``[frames, channels]`` signal (1-D input is returned as is)."""
    x = np.asarray(x)
    if x.ndim == 1:
        return x
    if x.shape[1] == 1:
        return x[:, 0]
    return x.mean(axis=1, dtype=np.float32)


def resample(x: np.ndarray, sr_in: int, sr_out: int, quality: str = "HQ") -> np.ndarray:
    """Resample a mono signal with the SoX resampler (``soxr``); no-op when the rates agree."""
    if int(sr_in) == int(sr_out):
        return np.asarray(x, dtype=np.float32)
    import soxr

    return soxr.resample(np.asarray(x, dtype=np.float32), int(sr_in), int(sr_out), quality=quality).astype(
        np.float32, copy=False
    )


def check_signal(x: np.ndarray, name: str = "signal", silence_peak: float = SILENCE_PEAK) -> np.ndarray:
    """Reject empty, non-finite or silent signals with a :class:`FeatureError` naming ``name``."""
    if x.size == 0:
        raise FeatureError(f"{name}: empty audio (0 samples)")
    finite = np.isfinite(x)
    if not finite.all():
        bad = int(x.size - finite.sum())
        raise FeatureError(f"{name}: {bad} NaN/inf sample(s), first at sample {int(np.argmin(finite.reshape(-1)))}")
    peak = float(np.max(np.abs(x)))
    if peak <= silence_peak:
        raise FeatureError(f"{name}: silent audio (peak amplitude {peak:.3g} <= {silence_peak:g})")
    return x


def read_audio(
    path: str | os.PathLike,
    sample_rate: int | None = None,
    *,
    max_duration: float | None = None,
    silence_peak: float = SILENCE_PEAK,
    return_rate: bool = False,
):
    """Read an audio file as a validated mono float32 signal.

    Parameters
    ----------
    path : str or path-like
        Any file that ``soundfile`` (libsndfile) reads: WAV, FLAC, OGG, MP3, AIFF ...
    sample_rate : int, optional
        Resample to this rate (soxr, high quality); ``None`` keeps the native rate.
    max_duration : float, optional
        Reject files longer than this many seconds (checked from the header, before decoding).
    silence_peak : float
        A signal whose peak absolute amplitude is at most this is rejected as silent.
    return_rate : bool
        Also return the rate of the returned signal.

    Returns
    -------
    numpy.ndarray or (numpy.ndarray, int)
        ``float32 [samples]`` in [-1, 1] (and its sampling rate).

    Raises
    ------
    FeatureError
        Missing, unreadable, truncated, empty, silent, NaN/inf or too long audio.
    """
    p = str(path)
    info = audio_info(p)
    if max_duration is not None and info.duration > max_duration:
        raise FeatureError(f"{p}: {info.duration:.1f} s is longer than the maximum duration {max_duration:g} s")
    missing = _wav_missing_bytes(p)
    if missing:
        raise FeatureError(f"{p}: truncated WAV file ({missing} bytes of audio data missing)")
    try:
        x, sr = sf.read(p, dtype="float32", always_2d=True)
    except Exception as e:
        raise FeatureError(f"{p}: unreadable audio ({_reason(e)})") from None
    if info.frames and x.shape[0] < info.frames:
        raise FeatureError(f"{p}: truncated audio ({x.shape[0]} of {info.frames} samples decoded)")
    x = check_signal(to_mono(x), p, silence_peak)
    if sample_rate is not None and int(sample_rate) != sr:
        x = resample(x, sr, int(sample_rate))
        sr = int(sample_rate)
    x = np.ascontiguousarray(x, dtype=np.float32)
    return (x, int(sr)) if return_rate else x


def split_chunks(x: np.ndarray, max_samples: int) -> list[np.ndarray]:
    """Split ``x`` into the fewest near-equal consecutive pieces of at most ``max_samples``.

    Near-equal pieces avoid a tiny tail chunk that a model could not encode.
    """
    if max_samples <= 0:
        raise ValueError("max_samples must be positive")
    n = int(np.ceil(len(x) / max_samples)) if len(x) else 1
    if n <= 1:
        return [x]
    return list(np.array_split(x, n))


def list_audio_files(root: str | os.PathLike, suffixes: tuple[str, ...] | None = None) -> list[Path]:
    """Audio files under ``root`` (recursively), sorted; suffixes default to what libsndfile reads."""
    if suffixes is None:
        suffixes = tuple("." + ext.lower() for ext in sf.available_formats()) + (".oga", ".opus")
    suffixes = tuple(s.lower() for s in suffixes)
    root = Path(root)
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
