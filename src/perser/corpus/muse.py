"""MuSE (Multimodal Stressed Emotion, University of Michigan): per-rater activation and valence.

The release's crowd-sourcing file (``SurveyInformation/Emotion data from crowdsourcing
(C is when annotators had access to all previous sentences).csv``) holds each clip's
ratings as ``;``-separated integers **without rater ids**, so it cannot give listeners.
Rater ids exist only in a *derived* file, ``muse_annotators.csv``, made by a public
parser (Tavernor & Mower Provost's experiments read it as a separate, restricted file)::

    FileName,soft_act_labels,soft_val_labels,annotators
    01_DR-100_0097_1_sentence_1,"[5, 6, 4]","[6, 6, 5]","['A2JP9IKRHNLRPI', 'A3…', 'self_report_01']"

This loader reads that file (``annotators_file``; default ``<root>/muse_annotators.csv``).
Without it there is nothing to attribute, and the loader raises
:class:`~perser.errors.CorpusError` saying so rather than guessing ids.

Layout read (``path`` is the release root)::

    muse_annotators.csv                                     (or annotators_file=)
    NotStressed/Audio/Non Stressed Question Monologue Audio*/<FileName>.wav
    Stressed/Audio/Stressed Question Monologue Audio/<FileName>.wav

Lists in the derived file may be written as Python/JSON lists (``[5, 6]``,
``['A1', 'A2']``) or ``;``-separated (``5;6``); the three lists of a line must have the
same length (else an error naming the line).

Scale
-----
Activation and valence are integers seen on 1–9; the range is not documented
[uncertain], so it is the option ``scale`` (default ``(1, 9)``): a value outside it is
an error naming the line, never clipped. ``activation`` is stored as ``arousal``.

Label space: ``avd`` (dimensional: ``arousal``, ``valence``; named like the other
corpora's dimensional space so that cross-corpus recipes can ask for ``avd`` with
``dimensions: [arousal, valence]``; MuSE has no dominance).

Clips carry ``speaker`` (the two-digit prefix of the name, as the authors' folds use)
and ``stress`` (``stressed``/``not_stressed`` from the audio folder, when found).
Ratings of ids ``self_report_*`` are the speaker's own report: kept with
``is_self=True`` (``self_reports="drop"`` leaves them out, counted). Missing audio
follows ``missing_audio``; an annotator listed twice on one clip keeps the first
rating (counted).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pandas as pd

from perser.corpus import _release as rel
from perser.corpus.model import Corpus, LabelSpace, make_clips
from perser.errors import CorpusError, SkipLog, where

NAME = "muse"
DIMENSIONS = ("arousal", "valence")
DEFAULT_SCALE = (1, 9)
ANNOTATORS_FILE = "muse_annotators.csv"
COLUMNS = ("FileName", "soft_act_labels", "soft_val_labels", "annotators")
RATING_COLUMNS = ["clip_id", "annotator_id", *DIMENSIONS, "is_self"]
SELF = re.compile(r"^self[_-]?report", re.IGNORECASE)


def detect(path: Path) -> bool:
    """True when ``path`` holds ``muse_annotators.csv`` or MuSE's stressed/not-stressed audio folders."""
    path = Path(path)
    return (path / ANNOTATORS_FILE).is_file() or ((path / "Stressed").is_dir() and (path / "NotStressed").is_dir())


def _audio_index(root: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for pattern in ("Stressed/Audio/*/*.wav", "NotStressed/Audio/*/*.wav", "Audio/*.wav", "*.wav"):
        for p in sorted(root.glob(pattern)):
            found.setdefault(p.stem, p)
    return found


def _split_list(text, what: str, at: str) -> list[str]:
    s = "" if text is None or (isinstance(text, float) and np.isnan(text)) else str(text).strip()
    if not s:
        raise CorpusError(f"{at}: empty {what}")
    if s.startswith("["):
        try:
            items = ast.literal_eval(s)
        except (ValueError, SyntaxError):
            raise CorpusError(f"{at}: {what} {s!r} is not a list") from None
        return [str(x).strip() for x in items]
    return [x.strip().strip("'\"") for x in re.split(r"[;,]", s) if x.strip()]


def load(
    path: Path,
    annotators_file: str | None = None,
    scale: tuple[float, float] = DEFAULT_SCALE,
    self_reports: str = "keep",
    missing_audio: str = "drop",
    durations: bool = False,
) -> Corpus:
    """Load MuSE from its release root ``path`` and the derived per-annotator file.

    Parameters
    ----------
    annotators_file:
        The derived ``muse_annotators.csv`` (absolute, or relative to ``path``);
        default ``<path>/muse_annotators.csv``.
    scale:
        ``(low, high)`` of the ratings (default ``(1, 9)``, see the module docstring).
    self_reports:
        ``"keep"`` the ``self_report_*`` ratings with ``is_self=True`` or ``"drop"`` them (counted).
    missing_audio:
        ``"drop"`` clips without a wav (counted warning), ``"keep"`` them, or ``"error"``.
    durations:
        Read each wav's header for ``duration``.
    """
    rel.check_choice("missing_audio", missing_audio, rel.MISSING_AUDIO)
    rel.check_choice("self_reports", self_reports, ("keep", "drop"))
    path = Path(path)
    lo, hi = (float(x) for x in scale)
    f = Path(annotators_file) if annotators_file else path / ANNOTATORS_FILE
    if not f.is_absolute() and annotators_file:
        f = path / f
    if not f.is_file():
        raise CorpusError(
            f"MuSE: no per-annotator file at {f}. The release's crowd-sourcing CSV has ratings without rater "
            f"ids, so listeners cannot be told apart; pass annotators_file= the derived {ANNOTATORS_FILE} "
            f"(columns {', '.join(COLUMNS)})")
    df = rel.read_csv(f, dtype=str, keep_default_na=False)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise CorpusError(f"{f}: missing column(s) {', '.join(missing)}; expected {', '.join(COLUMNS)}")
    log = SkipLog(NAME)
    audio = _audio_index(path)
    clips: dict[str, dict] = {}
    rows: list[dict] = []
    for i, r in enumerate(df.itertuples(index=False), start=2):
        at = where(f, i)
        cid = re.sub(r"\.wav$", "", str(r.FileName).strip())
        if not cid:
            raise CorpusError(f"{at}: empty FileName")
        act = _split_list(r.soft_act_labels, "soft_act_labels", at)
        val = _split_list(r.soft_val_labels, "soft_val_labels", at)
        ann = _split_list(r.annotators, "annotators", at)
        if not len(act) == len(val) == len(ann):
            raise CorpusError(f"{at}: {len(act)} activation, {len(val)} valence ratings and {len(ann)} annotators "
                              f"for {cid}; the three lists must be equally long")
        if cid in clips:
            log.add("clips listed on more than one line (lines merged)", f"{cid} at {at}")
        else:
            wav = audio.get(cid, path / f"{cid}.wav")
            stress = None
            if cid in audio:
                top = audio[cid].relative_to(path).parts[0]
                stress = {"Stressed": "stressed", "NotStressed": "not_stressed"}.get(top)
            clips[cid] = {"clip_id": cid, "path": str(wav), "speaker": cid[:2], "stress": stress}
        for a, v, who in zip(act, val, ann):
            try:
                av = (float(a), float(v))
            except ValueError:
                raise CorpusError(f"{at}: rating {a!r}/{v!r} of {who} on {cid} is not a number") from None
            for name, x in zip(DIMENSIONS, av):
                if not lo <= x <= hi:
                    raise CorpusError(f"{at}: {name} {x:g} of {who} on {cid} is outside the scale {lo:g}-{hi:g} "
                                      f"(option scale=)")
            is_self = bool(SELF.match(who))
            if is_self and self_reports == "drop":
                log.add("self-report ratings dropped (self_reports='drop')", f"{who} on {cid}")
                continue
            rows.append({"clip_id": cid, "annotator_id": who, "arousal": av[0], "valence": av[1], "is_self": is_self})
    if not clips:
        raise CorpusError(f"{f}: no clip found")
    ratings = pd.DataFrame(rows, columns=RATING_COLUMNS)
    dup = ratings.duplicated(["clip_id", "annotator_id"], keep="first")
    if dup.any():
        ex = ratings.loc[dup].iloc[0]
        log.add("an annotator listed twice on a clip (first rating kept)", f"{ex['annotator_id']} on {ex['clip_id']}",
                int(dup.sum()))
        ratings = ratings.loc[~dup].reset_index(drop=True)
    clips_df = make_clips(list(clips.values()))
    clips_df, ratings = rel.check_audio(clips_df, ratings, missing_audio, log, f"{NAME} at {path}")
    if durations:
        clips_df["duration"] = rel.read_durations(clips_df)
    spaces = [LabelSpace("avd", "dimensional", dimensions=DIMENSIONS, scale=(lo, hi))]
    meta = {
        "format": NAME,
        "annotators_file": str(f),
        "scales": {"avd": f"activation (stored as arousal) and valence, {lo:g}-{hi:g} (range uncertain; option scale)"},
        "self_reports": self_reports,
        "license": "MuSE (University of Michigan) research licence",
        "citation": "Jaiswal et al. (2020), MuSE: a Multimodal Dataset of Stressed Emotion",
    }
    return rel.finish(NAME, clips_df, ratings, spaces, log, path, meta, RATING_COLUMNS)
