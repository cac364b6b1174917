"""The built-in demo corpus: synthetic emotional speech rated by simulated listeners.

Three modules make it: :mod:`.latent` (classes, speakers, latent emotions),
:mod:`.speech` (audio synthesis) and :mod:`.listeners` (listener simulation); this one
writes the corpus.

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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from perser._io import atomic_dir
from perser.corpus.model import Corpus, LabelSpace, make_clips
from perser.corpus.synthetic.latent import (
    CLASS_TAU,
    CLASSES,
    DIMENSIONS,
    GENERATOR_VERSION,
    MIN_RATINGS_PER_ANNOTATOR,
    N_SPEAKERS,
    RATINGS_PER_CLIP,
    SCALE,
    SCALE_GAIN,
)
from perser.corpus.synthetic.listeners import (
    STYLES,
    PerceptionStyle,
    _check_arguments,
    _simulate,
    simulated_ratings,
)
from perser.corpus.synthetic.speech import (
    BATCH,
    _prosody,
    _synthesise_batch,
    _write_wav,
)
from perser.errors import CorpusError

__all__ = ["make_demo", "simulated_ratings", "PerceptionStyle", "STYLES", "CLASSES", "DIMENSIONS", "GENERATOR_VERSION"]


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
        "SYNTHETIC demo corpus made by perser (perser.corpus.synthetic.make_demo); no real speech or real "
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
            "name": "perser.corpus.synthetic.make_demo",
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
