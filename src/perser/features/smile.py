"""openSMILE functionals: eGeMAPSv02 (88 values) and ComParE_2016 (6373 values).

Eyben et al. (2016), "The Geneva Minimalistic Acoustic Parameter Set (GeMAPS) for Voice
Research and Affective Computing", IEEE Trans. Affective Computing; Schuller et al. (2016),
"The INTERSPEECH 2016 Computational Paralinguistics Challenge".

Files are processed at their native sampling rate (as ``opensmile.Smile.process_file``
does) unless ``sample_rate`` is given. With ``workers > 1`` the files are spread over
worker processes, each of which builds one ``Smile`` object and reads its own audio.
"""

from __future__ import annotations

import multiprocessing as mp

import numpy as np

from perser.audio import SILENCE_PEAK, read_audio
from perser.errors import FeatureError
from perser._io import package_versions
from perser.features.base import Extractor, Job, Sink

__all__ = ["OpenSmileExtractor", "FEATURE_SETS"]

#: perser's name -> openSMILE feature set.
FEATURE_SETS = {"egemaps": "eGeMAPSv02", "compare": "ComParE_2016"}


def _make_smile(feature_set: str):
    import opensmile

    return opensmile.Smile(
        feature_set=getattr(opensmile.FeatureSet, feature_set),
        feature_level=opensmile.FeatureLevel.Functionals,
    )


def _compute(smile, path: str, sample_rate, max_duration, silence_peak):
    """Features of one file, or an error message naming it."""
    try:
        x, sr = read_audio(path, sample_rate, max_duration=max_duration, silence_peak=silence_peak, return_rate=True)
    except FeatureError as e:
        return None, str(e)
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Segment too short": reported below as an error
            y = np.asarray(smile(x[None, :], sr), dtype=np.float32).reshape(-1)
    except Exception as e:  # openSMILE's own failures
        return None, f"{path}: openSMILE failed ({type(e).__name__}: {e})"
    if y.size != smile.num_features or not np.isfinite(y).all():
        return None, f"{path}: openSMILE returned non-finite features (clip too short? {len(x) / sr:.3f} s)"
    return y, None


_WORKER: dict = {}


def _mp_context():
    """``fork`` on Linux (fast, and works from scripts without a ``__main__`` guard and from stdin);
    ``spawn`` elsewhere. Workers only read audio and run openSMILE, never torch."""
    import sys

    return mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")


def _init_worker(feature_set, sample_rate, max_duration, silence_peak) -> None:
    _WORKER.update(smile=_make_smile(feature_set), args=(sample_rate, max_duration, silence_peak))


def _work(job: tuple[str, str]):
    digest, path = job
    y, err = _compute(_WORKER["smile"], path, *_WORKER["args"])
    return digest, y, err


class OpenSmileExtractor(Extractor):
    """openSMILE functionals of a whole clip.

    Parameters
    ----------
    name : {"egemaps", "compare"}
        eGeMAPSv02 or ComParE_2016 functionals.
    sample_rate : int, optional
        Resample every file to this rate first (soxr); ``None`` keeps each file's rate.
    max_duration : float, optional
        Files longer than this many seconds fail with an error.
    silence_peak : float
        Peak amplitude at or below which a file is rejected as silent.
    """

    def __init__(
        self,
        name: str = "egemaps",
        sample_rate: int | None = None,
        max_duration: float | None = None,
        silence_peak: float = SILENCE_PEAK,
    ) -> None:
        if name not in FEATURE_SETS:
            raise FeatureError(f"unknown openSMILE feature set {name!r}; expected one of {sorted(FEATURE_SETS)}")
        self.name = name
        self.spec = name
        self.feature_set = FEATURE_SETS[name]
        self.sample_rate = sample_rate
        self.max_duration = max_duration
        self.silence_peak = silence_peak
        self._smile = None

    def settings(self) -> dict:
        # max_duration and silence_peak decide which files fail, not the numbers of those that do not
        return {
            "extractor": "opensmile",
            "feature_set": self.feature_set,
            "level": "functionals",
            **package_versions("opensmile"),
            "sample_rate": self.sample_rate,
        }

    @property
    def smile(self):
        if self._smile is None:
            self._smile = _make_smile(self.feature_set)
        return self._smile

    def feature_names(self) -> list[str]:
        return list(self.smile.feature_names)

    def run(self, jobs: list[Job], sink: Sink, workers: int = 1) -> None:
        args = (self.sample_rate, self.max_duration, self.silence_peak)
        if workers <= 1 or len(jobs) <= 1:
            for job in jobs:
                y, err = _compute(self.smile, job.path, *args)
                sink(job.digest, y, err)
            return
        workers = min(workers, len(jobs))
        chunksize = max(1, min(16, len(jobs) // (workers * 8)))
        ctx = _mp_context()
        pool = ctx.Pool(workers, initializer=_init_worker, initargs=(self.feature_set, *args))
        try:
            for digest, y, err in pool.imap_unordered(_work, [(j.digest, j.path) for j in jobs], chunksize):
                sink(digest, y, err)
            pool.close()
        finally:
            pool.terminate()
            pool.join()
