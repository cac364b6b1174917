"""IEMOCAP (USC SAIL): the ``EmoEvaluation`` files of the full release.

Layout read (``path`` is ``IEMOCAP_full_release`` or its parent)::

    Session{1..5}/dialog/EmoEvaluation/<dialog>.txt      labels, one file per dialog
    Session{1..5}/sentences/wav/<dialog>/<utterance>.wav 16 kHz mono

Only the top-level ``EmoEvaluation/*.txt`` files are read (the ``Categorical/``,
``Attribute/`` and ``Self-evaluation/`` subfolders repeat them); macOS ``._*``
files are ignored. Each file holds blocks like::

    [6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5000, 2.5000, 2.5000]
    C-E2:<TAB>Neutral;<TAB>()
    C-F1:<TAB>Neutral;<TAB>(curious)
    A-E3:<TAB>val 3; act 2; dom  2;<TAB>()

Label spaces
------------
``emotion`` (categorical)
    The rater's first ticked label, one of :data:`CLASSES` (``Excited`` on disk is
    ``excited``; ``Other`` answers are ``other`` with their text in ``other_text``).
``emotions`` (multilabel)
    Every label the rater ticked (primary first), ``;``-joined.
``avd`` (dimensional)
    ``arousal`` (``act``), ``valence`` (``val``), ``dominance`` (``dom``): integers on
    the native 1–5 scale (1 = low arousal / negative valence / weak). The rater lines
    give ``val, act, dom``, the summary line ``[V, A, D]``; values are read by name.

Categorical (``C-``) and dimensional (``A-``) lines become separate rating rows: the
two rater sets differ and are never joined. Clips also carry the released
consensus of the summary line (``release_emotion``, ``release_valence``,
``release_arousal``, ``release_dominance``; ``xxx`` = no majority gives None) and
``duration`` = end − start.

Raters
------
``E1``, ``E2``, … are external evaluators, kept as raw ids by default
(``annotator_scope="raw"``); ``"session"`` (``Ses01/E3``) or ``"dialog"``
(``Ses01F_impro01/E3``) scope them instead. ``F1``/``M1`` are self-evaluations by
the dialog's female/male actor: kept with ``is_self=True`` (so
:meth:`~perser.corpus.model.Corpus.ratings_in` leaves them out by default) and
always scoped to the session (``Ses01/F1``), since each session has other actors.

Speakers are session + gender of the utterance's speaker (the *last* ``F``/``M`` of the
id): ``Ses01F_script01_1_M026`` → speaker ``Ses01M``, gender ``male``, session ``Ses01``,
fold 1. There is no official split (leave one session out).

Quirks handled (each counted in a warning and in ``meta["skipped"]``): dimensional
lines without ``dom`` or with a blank or off-scale value are skipped (a dimensional
rating carries all three values or none; the rater's categorical line is kept),
categorical lines without a label, repeated lines of one rater, missing audio files
(``missing_audio``). Lines that fit no known form raise
:class:`~perser.errors.CorpusError` naming the file and line number.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from perser.corpus import _release as rel
from perser.corpus.model import Corpus, LabelSpace, make_clips
from perser.errors import CorpusError, SkipLog, where

NAME = "iemocap"

#: Class names of the ``emotion``/``emotions`` spaces, in the release's order.
CLASSES = (
    "neutral",
    "happiness",
    "sadness",
    "anger",
    "surprise",
    "fear",
    "disgust",
    "frustration",
    "excited",
    "other",
)
DIMENSIONS = ("arousal", "valence", "dominance")
SCALE = (1, 5)

_VOCAB = rel.Vocabulary(
    {
        **{c: c for c in CLASSES},
        "neutral state": "neutral",
        "happy": "happiness",
        "sad": "sadness",
        "angry": "anger",
        "excitement": "excited",
        "frustrated": "frustration",
        "fearful": "fear",
        "surprised": "surprise",
        "disgusted": "disgust",
    }
)
#: Summary-line codes -> class names (``xxx``: no majority).
SUMMARY_CODES = {
    "neu": "neutral",
    "hap": "happiness",
    "sad": "sadness",
    "ang": "anger",
    "sur": "surprise",
    "fea": "fear",
    "dis": "disgust",
    "fru": "frustration",
    "exc": "excited",
    "oth": "other",
    "xxx": None,
}

_NUM = r"(\d+(?:\.\d*)?|nan|NaN)"
_SUMMARY = re.compile(
    rf"^\[\s*{_NUM}\s*-\s*{_NUM}\s*\]\s+(\S+)\s+(\S+)\s+\[\s*{_NUM}\s*,\s*{_NUM}\s*,\s*{_NUM}\s*\]$"
)
_RATER = re.compile(r"^([CA])-([A-Za-z]+\d*)\s*:(.*)$")
_DIM = re.compile(r"\b(val|act|dom)\b\s*:?\s*([^\s;]*)", re.IGNORECASE)
_UTT = re.compile(r"^Ses(\d+)([FM])_(.+)_([FM])[A-Z0-9]*\d$")
_DIM_NAMES = {"val": "valence", "act": "arousal", "dom": "dominance"}

RATING_COLUMNS = ["clip_id", "annotator_id", "emotion", "emotions", *DIMENSIONS, "is_self", "other_text"]


def _release_root(path: Path) -> Path | None:
    path = Path(path)
    for cand in (path, path / "IEMOCAP_full_release"):
        if cand.is_dir() and any(cand.glob("Session[0-9]*/dialog/EmoEvaluation")):
            return cand
    return None


def detect(path: Path) -> bool:
    """True when ``path`` (or ``path/IEMOCAP_full_release``) holds ``Session*/dialog/EmoEvaluation``."""
    return _release_root(path) is not None


def _session_dirs(root: Path) -> list[tuple[int, Path]]:
    out = []
    for d in root.iterdir():
        m = re.fullmatch(r"Session(\d+)", d.name)
        if m and d.is_dir():
            out.append((int(m.group(1)), d))
    return sorted(out)


def _scope(rater: str, session: str, dialog: str, scope: str, is_self: bool) -> str:
    if is_self or scope == "session":
        return f"{session}/{rater}"
    if scope == "dialog":
        return f"{dialog}/{rater}"
    return rater


def load(
    path: Path,
    annotator_scope: str = "raw",
    missing_audio: str = "drop",
    unknown_labels: str = "error",
    sessions: list[int] | None = None,
) -> Corpus:
    """Load IEMOCAP from ``path`` (``IEMOCAP_full_release`` or the folder holding it).

    Parameters
    ----------
    annotator_scope:
        ``"raw"`` (``E3``, the default, as public parsers do), ``"session"``
        (``Ses01/E3``) or ``"dialog"`` (``Ses01F_impro01/E3``) for external evaluators.
    missing_audio:
        ``"drop"`` clips whose wav is missing (counted warning), ``"keep"`` them (counted
        warning) or raise (``"error"``).
    unknown_labels:
        A categorical label outside :data:`CLASSES` raises (``"error"``) or its line is
        skipped with a counted warning (``"skip"``).
    sessions:
        Load only these session numbers (default: all found).

    Returns
    -------
    Corpus
        Spaces ``emotion`` (categorical), ``emotions`` (multilabel) and ``avd``
        (dimensional, 1–5); see the module docstring.
    """
    rel.check_choice("annotator_scope", annotator_scope, ("raw", "session", "dialog"))
    rel.check_choice("missing_audio", missing_audio, rel.MISSING_AUDIO)
    rel.check_choice("unknown_labels", unknown_labels, rel.UNKNOWN)
    path = Path(path)
    root = _release_root(path)
    if root is None:
        raise CorpusError(f"{path}: no IEMOCAP layout (Session*/dialog/EmoEvaluation/*.txt) found")
    log = SkipLog(NAME)
    clips: list[dict] = []
    rows: list[dict] = []
    seen_at: dict[str, str] = {}
    n_files = 0
    for n, sdir in _session_dirs(root):
        if sessions is not None and n not in sessions:
            continue
        evdir = sdir / "dialog" / "EmoEvaluation"
        if not evdir.is_dir():
            log.add("session folders without dialog/EmoEvaluation skipped", sdir.name)
            continue
        for f in sorted(evdir.glob("*.txt")):
            if f.name.startswith("._"):
                log.add("macOS '._*' resource files ignored", f.name)
                continue
            if not f.is_file():
                continue
            n_files += 1
            _parse_file(f, n, sdir, annotator_scope, unknown_labels, log, clips, rows, seen_at)
    if not n_files:
        raise CorpusError(f"{root}: no EmoEvaluation/*.txt file found")
    clips_df = make_clips(clips)
    ratings = pd.DataFrame(rows, columns=RATING_COLUMNS + ["_task"])
    parts = []
    for task, cols, what in (
        ("C", ["emotion", "emotions"], "categorical"),
        ("A", list(DIMENSIONS), "dimensional"),
    ):
        sub = ratings[ratings["_task"] == task]
        parts.append(rel.resolve_duplicates(sub, "first", log, cols, what=f"{what} rater"))
    ratings = pd.concat(parts, ignore_index=True).drop(columns="_task")
    clips_df, ratings = rel.check_audio(clips_df, ratings, missing_audio, log, f"{NAME} at {root}")
    spaces = [
        LabelSpace("emotion", "categorical", classes=CLASSES),
        LabelSpace("emotions", "multilabel", classes=CLASSES),
        LabelSpace("avd", "dimensional", dimensions=DIMENSIONS, scale=SCALE),
    ]
    meta = {
        "format": NAME,
        "annotator_scope": annotator_scope,
        "scales": {"avd": "integers 1-5 per rater; 1 = calm / negative / weak, 5 = excited / positive / strong"},
        "self_evaluations": "F1/M1 rows are the actors' own ratings: is_self=True, ids scoped per session",
        "license": "IEMOCAP EULA (USC SAIL)",
        "citation": "Busso et al. (2008), IEMOCAP: Interactive emotional dyadic motion capture database",
    }
    return rel.finish(NAME, clips_df, ratings, spaces, log, root, meta, RATING_COLUMNS)


def _parse_file(
    f: Path,
    session_no: int,
    sdir: Path,
    scope: str,
    unknown_labels: str,
    log: SkipLog,
    clips: list[dict],
    rows: list[dict],
    seen_at: dict[str, str],
) -> None:
    dialog = f.stem
    wavdir = sdir / "sentences" / "wav" / dialog
    current: str | None = None
    session = ""
    for i, line in enumerate(rel.read_lines(f), start=1):
        s = line.strip()
        if not s or s.startswith("%"):
            if not s:
                current = None
            continue
        if s.startswith("["):
            m = _SUMMARY.match(s)
            if not m:
                raise CorpusError(
                    f"{where(f, i)}: malformed summary line {s!r}; expected "
                    "'[START - END]<TAB>UTTERANCE<TAB>CODE<TAB>[V, A, D]'"
                )
            start, end, uid, code, v, a, d = m.groups()
            um = _UTT.match(uid)
            if not um:
                raise CorpusError(f"{where(f, i)}: utterance id {uid!r} does not look like an IEMOCAP id")
            if uid in seen_at:
                raise CorpusError(f"{where(f, i)}: utterance {uid!r} already described at {seen_at[uid]}")
            seen_at[uid] = where(f, i)
            if code.lower() not in SUMMARY_CODES:
                raise CorpusError(
                    f"{where(f, i)}: emotion code {code!r} is not one of {sorted(SUMMARY_CODES)}"
                )
            sess_no = int(um.group(1))
            session = f"Ses{sess_no:02d}"
            spk_gender = um.group(4)
            clips.append(
                {
                    "clip_id": uid,
                    "path": str(wavdir / f"{uid}.wav"),
                    "speaker": f"{session}{spk_gender}",
                    "session": session,
                    "fold": sess_no,
                    "gender": rel.gender(spk_gender),
                    "duration": round(rel.to_float(end) - rel.to_float(start), 4),
                    "release_emotion": SUMMARY_CODES[code.lower()],
                    "release_valence": rel.to_float(v),
                    "release_arousal": rel.to_float(a),
                    "release_dominance": rel.to_float(d),
                }
            )
            current = uid
            continue
        m = _RATER.match(s)
        if not m:
            raise CorpusError(f"{where(f, i)}: cannot parse line {s!r} (not a summary, C- or A- rater line)")
        if current is None:
            raise CorpusError(f"{where(f, i)}: rater line {s!r} is not inside an utterance block")
        task, rater, rest = m.groups()
        k = rest.find("(")  # the comment is the trailing "( ... )" field; labels hold no "("
        body, comment = (rest, "") if k < 0 else (rest[:k], rest[k + 1 :].strip().removesuffix(")").strip())
        is_self = rater[0] in "FM"
        if not (is_self or rater[0] == "E"):
            log.add("rater ids other than E*/F*/M* kept as external raters", f"{rater} at {where(f, i)}")
        ann = _scope(rater, session, dialog, scope, is_self)
        row = {"clip_id": current, "annotator_id": ann, "is_self": is_self, "_task": task}
        if task == "C":
            labels: list[str] = []
            texts: list[str] = []
            bad = None
            for tok in body.split(";"):
                tok = tok.strip()
                if not tok:
                    continue
                cls, text = _VOCAB.match(tok)
                if cls is None:
                    bad = tok
                    break
                if cls not in labels:
                    labels.append(cls)
                if text:
                    texts.append(text)
            if bad is not None:
                rel.unknown_label(unknown_labels, log, "categorical label", bad, where(f, i), CLASSES)
                continue
            if not labels:
                log.add("categorical lines without a label skipped", where(f, i))
                continue
            if "other" in labels and comment:
                texts.append(comment)
            row.update(emotion=labels[0], emotions=";".join(labels), other_text="; ".join(texts) or None)
        else:
            found = {k.lower(): v for k, v in _DIM.findall(body)}
            if not found:
                if body.strip(" ;\t"):
                    raise CorpusError(
                        f"{where(f, i)}: cannot parse dimensional line {s!r}; expected 'val N; act N; dom N;'"
                    )
                log.add("dimensional lines without any value skipped", where(f, i))
                continue
            vals = {}
            problem = None
            for key, dim in _DIM_NAMES.items():
                raw = found.get(key)
                if raw is None:
                    problem = problem or f"dimensional lines without '{key}' skipped"
                    continue
                try:
                    x = rel.to_float(raw)
                except ValueError:
                    raise CorpusError(f"{where(f, i)}: {key} value {raw!r} is not a number") from None
                if np.isnan(x):
                    problem = problem or f"dimensional lines with a blank '{key}' value skipped"
                elif not SCALE[0] <= x <= SCALE[1]:
                    problem = problem or f"dimensional lines with '{key}' off the 1-5 scale skipped"
                vals[dim] = x
            if problem is not None:
                # a dimensional rating carries all three values or none
                log.add(problem, f"{s!r} at {where(f, i)}")
                continue
            row.update(vals)
        rows.append(row)
