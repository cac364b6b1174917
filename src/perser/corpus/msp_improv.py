"""MSP-IMPROV (UTD Lab-MSP): per-rater labels from ``Evaluation.txt``.

Layout read (``path`` is the release root)::

    Evaluation.txt
    session{1..6}/<S##E>/<scenario>/MSP-IMPROV-S01A-F01-P-FM01.wav   (or under Audio/)

``Evaluation.txt`` holds blocks separated by blank lines: an utterance line naming the
*video* and giving the released means, then one line per rater::

    UTD-IMPROV-S01A-F01-P-FM01.avi; A; A:2.600000; V:1.800000; D:3.200000 ; N:4.000000;
    <raterID>; Angry; Frustrated,Angry; A:2.000000; V:2.000000; D:3.000000; N:4.000000;

``UTD-IMPROV-….avi`` is mapped to the audio ``MSP-IMPROV-….wav`` (clip id
``MSP-IMPROV-S01A-F01-P-FM01``).

Scales and the arousal flip
---------------------------
All dimensions are on a 1–5 scale. **On disk arousal is inverted (1 = high)**; with
``flip_arousal=True`` (the default) this loader stores ``6 - A`` for every rater and
for the released mean, so that ``arousal`` runs 1 = calm … 5 = excited like the other
corpora; ``corpus.meta["arousal_flipped"]`` records it. ``valence`` runs 1 = negative
… 5 = positive, ``dominance`` 1 = weak … 5 = strong. Naturalness ``N`` (1–5) is an
extra dimensional space ``naturalness`` with ``naturalness=True``.

Label spaces
------------
``emotion`` (categorical)
    The rater's primary answer: angry, happy, sad, neutral, other. Secondary answers
    from the vocabulary of 10 are kept ``;``-joined in ``secondary``; free text there
    (the description of an ``Other`` answer) goes to ``other_text``.
``emotions`` (multilabel, only with ``secondary=True``)
    Primary and secondary answers together, over :data:`SECONDARY` + ``other``.
``avd`` (dimensional)
    ``arousal`` (flipped, see above), ``valence``, ``dominance``.

Clips carry ``speaker`` (gender + session, ``F01``), ``gender``, ``session``
(``session1``), ``fold`` (1–6), ``scenario`` (the raw letter P/R/S/T; thought to be
natural interaction / target read / other-improvised / target improvised) and
the released means (``release_emotion``, ``release_arousal``, … flipped the same way).

Quirks handled (counted in warnings and ``meta["skipped"]``): rater lines repeated in a
block (exact copies dropped; differing repeats resolved by ``duplicates``), ``NaN``
dominance (the line's A/V/D are dropped, its emotion kept; ``dominance=False`` keeps
arousal and valence) or naturalness (NaN), an utterance described in two blocks (merged),
missing audio (``missing_audio``). A line that fits neither form raises
:class:`~perser.errors.CorpusError` naming the file and line.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from perser.corpus import _release as rel
from perser.corpus.model import Corpus, LabelSpace, make_clips
from perser.errors import CorpusError, SkipLog, where

NAME = "msp-improv"
PRIMARY = ("angry", "happy", "sad", "neutral", "other")
SECONDARY = ("depressed", "frustrated", "angry", "sad", "disgust", "excited", "fear", "neutral", "surprise", "happy")
MULTILABEL = (*SECONDARY, "other")
DIMENSIONS = ("arousal", "valence", "dominance")
SCALE = (1, 5)
CONSENSUS_CODES = {"A": "angry", "H": "happy", "S": "sad", "N": "neutral", "O": "other", "X": None}

_PRIMARY_VOCAB = rel.Vocabulary({**{c: c for c in PRIMARY}, "anger": "angry", "happiness": "happy", "sadness": "sad"})
_SECONDARY_VOCAB = rel.Vocabulary({**{c: c for c in SECONDARY}, "surprised": "surprise", "disgusted": "disgust"},
                                  other=None)
_V = r"\s*:\s*([^;]*?)\s*;"
_UTT = re.compile(rf"^UTD-IMPROV-([A-Za-z0-9-]+)\.avi\s*;\s*([A-Za-z])\s*;\s*A{_V}\s*V{_V}\s*D{_V}\s*N{_V}\s*$")
_RATER = re.compile(rf"^([^;\s][^;]*?)\s*;\s*([^;]*?)\s*;\s*(.*?)\s*;\s*A{_V}\s*V{_V}\s*D{_V}\s*N{_V}\s*$")
_NAME = re.compile(r"^S(\d\d)([A-Z])-([FM])(\d\d)-([A-Z])-(\w+)$")
RATING_COLUMNS = ["clip_id", "annotator_id", "emotion", "emotions", "secondary", "other_text", *DIMENSIONS,
                  "naturalness"]


def detect(path: Path) -> bool:
    """True when ``path`` holds ``Evaluation.txt``."""
    return (Path(path) / "Evaluation.txt").is_file()


def _audio_index(root: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for pattern in ("session*/*/*/*.wav", "Audio/session*/*/*/*.wav", "Audio/session*/*/*.wav", "session*/*/*.wav"):
        for p in root.glob(pattern):
            found.setdefault(p.stem, p)
    return found


def load(
    path: Path,
    flip_arousal: bool = True,
    secondary: bool = False,
    naturalness: bool = False,
    dominance: bool = True,
    duplicates: str = "first",
    missing_audio: str = "drop",
    unknown_labels: str = "error",
    durations: bool = False,
) -> Corpus:
    """Load MSP-IMPROV from its release root ``path``.

    Parameters
    ----------
    flip_arousal:
        Store arousal as ``6 - A`` (1 = calm … 5 = excited; the default). ``False``
        keeps the inverted on-disk values.
    secondary:
        Add the ``emotions`` multilabel space (primary + secondary answers).
    naturalness:
        Add a dimensional space ``naturalness`` (1–5) from the ``N`` values.
    dominance:
        Include ``dominance`` in the ``avd`` space (default). A dimensional rating
        carries all of its space's values or none, so a rater line with ``D:NaN`` loses
        its arousal and valence too (counted); ``dominance=False`` gives an arousal and
        valence space that keeps them.
    duplicates:
        A rater line repeated with different values: keep the ``"first"`` (default),
        the ``"last"``, or average (``"mean"``). Exact copies are always dropped. Counted.
    missing_audio:
        ``"drop"`` clips without a wav (counted warning), ``"keep"`` them, or ``"error"``.
    unknown_labels:
        A primary answer outside angry/happy/sad/neutral/other raises (``"error"``) or
        its line is skipped with a counted warning (``"skip"``).
    durations:
        Read each wav's header for ``duration``.
    """
    rel.check_choice("duplicates", duplicates, rel.DUPLICATES)
    rel.check_choice("missing_audio", missing_audio, rel.MISSING_AUDIO)
    rel.check_choice("unknown_labels", unknown_labels, rel.UNKNOWN)
    path = Path(path)
    f = path / "Evaluation.txt"
    log = SkipLog(NAME)
    audio = _audio_index(path)
    clips: dict[str, dict] = {}
    rows: list[dict] = []
    current: str | None = None
    flip = (lambda x: 6.0 - x) if flip_arousal else (lambda x: x)
    for i, line in enumerate(rel.read_lines(f), start=1):
        s = line.strip()
        if not s:
            current = None
            continue
        at = where(f, i)
        if s.startswith("UTD-IMPROV-"):
            m = _UTT.match(s)
            if not m:
                raise CorpusError(
                    f"{at}: malformed utterance line {s!r}; expected "
                    "'UTD-IMPROV-<name>.avi; <code>; A:x; V:x; D:x ; N:x;'"
                )
            stem, code, a, v, d, n = m.groups()
            nm = _NAME.match(stem)
            if not nm:
                raise CorpusError(f"{at}: utterance name {stem!r} does not look like S01A-F01-P-FM01")
            cid = f"MSP-IMPROV-{stem}"
            if code.upper() not in CONSENSUS_CODES:
                raise CorpusError(f"{at}: consensus code {code!r} is not one of {sorted(CONSENSUS_CODES)}")
            if cid in clips:
                log.add("utterances described in more than one block (blocks merged)", f"{cid} at {at}")
            else:
                sess = int(nm.group(4))
                target, scen = nm.group(1) + nm.group(2), nm.group(5)
                wav = audio.get(cid, path / f"session{sess}" / f"S{target}" / scen / f"{cid}.wav")
                clips[cid] = {
                    "clip_id": cid,
                    "path": str(wav),
                    "speaker": f"{nm.group(3)}{nm.group(4)}",
                    "gender": rel.gender(nm.group(3)),
                    "session": f"session{sess}",
                    "fold": sess,
                    "scenario": scen,
                    "release_emotion": CONSENSUS_CODES[code.upper()],
                    "release_arousal": flip(_num(a, "A", at)),
                    "release_valence": _num(v, "V", at),
                    "release_dominance": _num(d, "D", at),
                    "release_naturalness": _num(n, "N", at),
                }
            current = cid
            continue
        m = _RATER.match(s)
        if not m:
            raise CorpusError(f"{at}: cannot parse line {s!r} (neither an utterance line nor a rater line)")
        if current is None:
            raise CorpusError(f"{at}: rater line {s!r} is not inside an utterance block")
        rid, primary, second, a, v, d, n = m.groups()
        cls, text = _PRIMARY_VOCAB.match(primary)
        if cls is None:
            rel.unknown_label(unknown_labels, log, "primary emotion", primary, at, PRIMARY)
            continue
        texts = [text] if text else []
        sec: list[str] = []
        for tok in second.split(","):
            tok = tok.strip()
            if not tok:
                continue
            c, _ = _SECONDARY_VOCAB.match(tok)
            if c is None:
                texts.append(tok)  # free text (the description of an "Other" answer)
            elif c not in sec:
                sec.append(c)
        vals = {"arousal": _num(a, "A", at), "valence": _num(v, "V", at), "dominance": _num(d, "D", at),
                "naturalness": _num(n, "N", at)}
        for key, x in vals.items():
            if np.isnan(x):
                log.add(f"rater lines with {key} NaN", at)
            elif not SCALE[0] <= x <= SCALE[1]:
                log.add(f"{key} values off the 1-5 scale set to NaN", f"{x:g} at {at}")
                vals[key] = np.nan
        vals["arousal"] = flip(vals["arousal"])
        rows.append(
            {
                "clip_id": current,
                "annotator_id": rid,
                "emotion": cls,
                "emotions": ";".join([cls] + [c for c in sec if c != cls]),
                "secondary": ";".join(sec) or None,
                "other_text": "; ".join(texts) or None,
                **vals,
            }
        )
    if not clips:
        raise CorpusError(f"{f}: no utterance found")
    clips_df = make_clips(list(clips.values()))
    ratings = pd.DataFrame(rows, columns=RATING_COLUMNS)
    dims = list(DIMENSIONS) if dominance else ["arousal", "valence"]
    partial = ratings[dims].isna().any(axis=1) & ratings[dims].notna().any(axis=1)
    if partial.any():
        ex = ratings.loc[partial].iloc[0]
        log.add(f"rater lines missing one of {'/'.join(dims)} (dimensions dropped, emotion kept)",
                f"{ex['annotator_id']} on {ex['clip_id']}", int(partial.sum()))
        ratings.loc[partial, dims] = np.nan
    if not dominance:
        ratings = ratings.drop(columns="dominance")
    ratings = rel.resolve_duplicates(ratings, duplicates, log, [*DIMENSIONS, "naturalness"], what="rater")
    clips_df, ratings = rel.check_audio(clips_df, ratings, missing_audio, log, f"{NAME} at {path}")
    if durations:
        clips_df["duration"] = rel.read_durations(clips_df)
    spaces = [LabelSpace("emotion", "categorical", classes=PRIMARY)]
    if secondary:
        spaces.append(LabelSpace("emotions", "multilabel", classes=MULTILABEL))
    spaces.append(LabelSpace("avd", "dimensional", dimensions=tuple(dims), scale=SCALE))
    if naturalness:
        spaces.append(LabelSpace("naturalness", "dimensional", dimensions=("naturalness",), scale=SCALE))
    columns = [c for c in RATING_COLUMNS if (secondary or c != "emotions") and (dominance or c != "dominance")]
    meta = {
        "format": NAME,
        "arousal_flipped": bool(flip_arousal),
        "scales": {
            "avd": (
                "1-5; arousal stored as 6 - A (on disk 1 = high): 1 = calm ... 5 = excited"
                if flip_arousal
                else "1-5; arousal as on disk (inverted: 1 = high arousal)"
            ),
            "naturalness": "N, 1-5",
        },
        "duplicates": duplicates,
        "license": "MSP-IMPROV academic licence (UTD Lab-MSP)",
        "citation": "Busso et al. (2017), MSP-IMPROV: An emotional audiovisual database that controls "
        "for lexical content and emotional expressiveness",
    }
    return rel.finish(NAME, clips_df, ratings, spaces, log, path, meta, columns)


def _num(text: str, key: str, at: str) -> float:
    try:
        return rel.to_float(text)
    except ValueError:
        raise CorpusError(f"{at}: {key} value {text!r} is not a number") from None
