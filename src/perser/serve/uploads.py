"""Uploaded audio: decoded in memory, checked, downmixed, resampled, featurised once per process.

:class:`Featurizer` holds the one feature extractor (and SSL encoder) a process uses for
one feature spec, made when first needed and reused for every request, and a bounded
in-memory cache of features keyed by the audio's SHA-256 (no feature store on disk grows
with uploads). :meth:`Featurizer.forget` drops the entries of a deleted listener's clips.
"""

from __future__ import annotations

import hashlib
import io
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Optional

import numpy as np

from perser.errors import ConfigError, FeatureError

#: the rate uploads are resampled to when a model's openSMILE features name none
DEFAULT_SAMPLE_RATE = 16000


def audio_digest(data: bytes) -> str:
    """SHA-256 (hex) of an uploaded file's bytes: the clip's content identity."""
    return hashlib.sha256(data).hexdigest()


class Featurizer:
    """Features of uploaded audio for models whose input is ``feature_spec``.

    Parameters
    ----------
    feature_spec:
        The model's ``feature_spec`` (``{"spec": "egemaps" | "ssl:<dir>", "settings": {...}}``).
    max_seconds:
        Longer clips are refused (from the header, before decoding).
    cache_entries:
        At most this many clips' features are kept in memory (least recently used go first).
    """

    def __init__(self, feature_spec: dict, max_seconds: float = 30.0, cache_entries: int = 4096):
        spec = (feature_spec or {}).get("spec")
        if not spec or str(spec).startswith("file:"):
            raise ConfigError("this model was trained on precomputed features of unknown origin; send 'features', not 'audio'")
        self.spec = str(spec)
        self.settings = dict((feature_spec or {}).get("settings") or {})
        self.max_seconds = float(max_seconds)
        self.cache_entries = int(cache_entries)
        self._cache: "OrderedDict[str, np.ndarray]" = OrderedDict()
        self._cache_lock = threading.Lock()
        self._lock = threading.Lock()  # one extraction at a time per process (extractors are not thread-safe)
        self._extractor = None

    @property
    def extractor(self):
        """The process's extractor, made on first use."""
        if self._extractor is None:
            with self._lock:
                if self._extractor is None:
                    from perser.features.extract import make_extractor

                    ex = make_extractor(self.spec, **self.settings)
                    if hasattr(ex, "model"):  # an SSL encoder: loaded now, once
                        ex.model
                    elif hasattr(ex, "smile"):
                        ex.smile
                    self._extractor = ex
        return self._extractor

    @property
    def sample_rate(self) -> int:
        """The rate uploads are resampled to: the SSL model's, the openSMILE setting's, or 16 kHz."""
        if self.spec.startswith("ssl:"):
            return int(self.extractor.sample_rate)
        return int(self.settings.get("sample_rate") or DEFAULT_SAMPLE_RATE)

    # ------------------------------------------------------------- decoding
    def decode(self, data: bytes, name: str) -> np.ndarray:
        """Mono float32 at :attr:`sample_rate`; :class:`FeatureError` naming ``name`` otherwise."""
        import soundfile as sf

        from perser.audio import check_signal, resample, to_mono

        if not data:
            raise FeatureError(f"{name}: 'audio' is empty")
        try:
            info = sf.info(io.BytesIO(data))
        except Exception:
            raise FeatureError(f"{name}: 'audio' is not a readable audio file (WAV, FLAC, OGG, MP3)") from None
        seconds = info.frames / info.samplerate if info.samplerate else 0.0
        if seconds > self.max_seconds:
            raise FeatureError(f"{name}: audio is {seconds:.1f} s long; at most {self.max_seconds:g} s per clip")
        try:
            x, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
        except Exception:
            raise FeatureError(f"{name}: 'audio' could not be decoded") from None
        if info.frames and x.shape[0] < info.frames:
            raise FeatureError(f"{name}: truncated audio ({x.shape[0]} of {info.frames} samples decoded)")
        x = check_signal(to_mono(x), name)
        return resample(x, int(sr), self.sample_rate)

    # ------------------------------------------------------------ features
    def features(self, clips: list[tuple[str, str, np.ndarray]]) -> list[np.ndarray]:
        """Features of decoded clips ``(name, digest, signal)``; cached by digest."""
        out: list[Optional[np.ndarray]] = [None] * len(clips)
        todo: dict[str, list[int]] = {}
        with self._cache_lock:
            for i, (_, digest, _) in enumerate(clips):
                hit = self._cache.get(digest)
                if hit is not None:
                    self._cache.move_to_end(digest)
                    out[i] = hit
                else:
                    todo.setdefault(digest, []).append(i)
        if todo:
            extractor = self.extractor
            with self._lock:  # one extraction at a time; a clip another request just extracted is not done twice
                with self._cache_lock:
                    for d in [d for d in todo if d in self._cache]:
                        for i in todo.pop(d):
                            out[i] = self._cache[d]
                got = self._extract(extractor, {d: clips[ix[0]] for d, ix in todo.items()}) if todo else {}
                with self._cache_lock:
                    for d, x in got.items():
                        for i in todo[d]:
                            out[i] = x
                        self._cache[d] = x
                        self._cache.move_to_end(d)
                    while len(self._cache) > self.cache_entries:
                        self._cache.popitem(last=False)
        return out  # type: ignore[return-value]

    def _extract(self, extractor, clips: dict[str, tuple[str, str, np.ndarray]]) -> dict[str, np.ndarray]:
        import soundfile as sf

        from perser.features.base import Job

        results: dict[str, np.ndarray] = {}
        errors: dict[str, str] = {}

        def sink(digest, y, err):
            if err is not None:
                errors[digest] = err
            else:
                results[digest] = np.asarray(y, dtype=np.float32)

        with tempfile.TemporaryDirectory(prefix="perser-serve-") as tmp:
            jobs, paths = [], {}
            for k, (digest, (_, _, x)) in enumerate(clips.items()):
                p = str(Path(tmp) / f"{k}.wav")
                sf.write(p, x, self.sample_rate, subtype="FLOAT")  # lossless: the extractor reads what we decoded
                jobs.append(Job(digest, p))
                paths[digest] = p
            extractor.run(jobs, sink)
        for digest, (name, _, _) in clips.items():
            if digest in errors:
                raise FeatureError(f"{name}: {errors[digest].replace(paths[digest], 'audio')}")
            if digest not in results:  # pragma: no cover - an extractor that forgot a job
                raise FeatureError(f"{name}: no features were computed")
        return results

    def forget(self, digests) -> int:
        """Drop cached features of these audio digests; how many were dropped."""
        n = 0
        with self._cache_lock:
            for d in digests:
                if self._cache.pop(d, None) is not None:
                    n += 1
        return n

    def __len__(self) -> int:
        return len(self._cache)
