"""Listener simulation of the demo corpus: perception styles, personal variation, who rates
which clip, and the ratings themselves (see :mod:`perser.corpus.synthetic`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from perser.corpus.model import make_ratings
from perser.corpus.synthetic.latent import (
    CLASS_PRIOR,
    CLASS_TAU,
    CLASSES,
    DIMENSIONS,
    GENERATOR_VERSION,
    MIN_RATINGS_PER_ANNOTATOR,
    N_SPEAKERS,
    PROTOTYPES,
    RATINGS_PER_CLIP,
    SCALE,
    SCALE_GAIN,
    _latent,
    _speakers,
)
from perser.errors import ConfigError


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
