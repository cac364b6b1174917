"""A small, format-faithful copy of CREMA-D (see :mod:`perser.testing.corpora`)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from perser.testing.corpora._sim import (
    _PROTO,
    Fixture,
    _annotators,
    _choose,
    _rate_class,
    _tone,
    _write_wav,
)

_CREMA_SENTENCES = ("IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS", "TSI", "WSI")
_CREMA_EMOS = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")
_CREMA_LETTER = {"ANG": "A", "DIS": "D", "FEA": "F", "HAP": "H", "NEU": "N", "SAD": "S"}
_CREMA_CLASS = {"A": "anger", "D": "disgust", "F": "fear", "H": "happy", "N": "neutral", "S": "sad"}
_CREMA_FAMILY = {"anger": "angry", "happy": "happy", "neutral": "neutral", "sad": "sad", "fear": "fear",
                 "disgust": "disgust"}
_CREMA_LEVEL = {"LO": ("L", 20.0), "MD": ("M", 50.0), "HI": ("H", 80.0), "XX": ("X", 50.0)}
_CREMA_HEADER = ["", "localid", "pos", "ans", "ttr", "queryType", "numTries", "clipNum", "questNum", "subType",
                 "clipName", "sessionNums", "respEmo", "respLevel", "dispEmo", "dispVal", "dispLevel"]
_CREMA_EMO_HEADER = ["", "localid", "sessionNums", "queryType", "questNum", "pos", "ttr", "numTries", "clipNum",
                     "clipName"]


def _write_r_csv(path: Path, header: list[str], rows: list[list], quoting: str, crlf: bool = False) -> None:
    """Write like R's ``write.csv`` (``"r"``), with only the header's ``""`` quoted (``"header"``), or as pandas does."""
    nl = "\r\n" if crlf else "\n"

    def cell(v, quote_strings: bool) -> str:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return "NA"
        if isinstance(v, str):
            return '"' + v.replace('"', '""') + '"' if quote_strings else v
        if isinstance(v, float):
            return repr(v)
        return str(v)

    out = []
    if quoting == "r":
        out.append(",".join(f'"{h}"' for h in header))
        for r in rows:
            out.append(",".join(cell(v, True) for v in r))
    elif quoting == "header":
        out.append('"",' + ",".join(header[1:]))
        for r in rows:
            out.append(",".join(cell(v, False) for v in r))
    elif quoting == "pandas":
        df = pd.DataFrame([r[1:] for r in rows], columns=header[1:], index=[r[0] for r in rows])
        path.parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(path, lineterminator=nl)
        return
    else:
        raise ValueError(f"quoting must be 'r', 'header' or 'pandas', not {quoting!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(nl.join(out) + nl)


def write_crema_d(
    root: str | Path,
    n_actors: int = 4,
    n_clips_per_actor: int = 6,
    n_annotators: int = 20,
    ratings_per_clip: int = 6,
    seed: int = 0,
    modalities: Sequence[int] = (1, 2, 3),
    practice: int = 2,
    non_numeric_level: int = 1,
    duplicate_responses: int = 1,
    slow_first_click: int = 2,
    missing_audio: int = 0,
    lfs_pointers: bool = False,
    quoting: str = "header",
    crlf: bool = False,
) -> Fixture:
    """Write a CREMA-D tree under ``root``; return the :class:`Fixture`.

    Writes ``finishedResponses.csv`` (leading unnamed index column, non-contiguous row
    numbers), ``finishedEmoResponses.csv`` (first-click times), ``SentenceFilenames.csv``,
    ``VideoDemographics.csv`` and ``AudioWAV/*.wav``. :attr:`Fixture.ratings` holds the
    voice-only (``queryType == 1``) ratings the loader returns by default.

    Parameters
    ----------
    n_actors, n_clips_per_actor:
        Actors ``1001…`` and clips per actor (sentence × emotion × level).
    n_annotators, ratings_per_clip:
        Rater pool (``SSI_…`` ids) and raters per clip and modality.
    modalities:
        Query types written: 1 voice, 2 face, 3 audio-visual.
    practice:
        Practice responses (``clipNum`` 7443/7444) written (the loader skips them).
    non_numeric_level:
        Voice responses whose ``respLevel`` is not a number (``NA``, ``high``).
    duplicate_responses:
        Voice responses repeated with a new row number (the loader keeps the first).
    slow_first_click:
        Voice responses whose first click in ``finishedEmoResponses.csv`` took > 10 s.
    missing_audio:
        Clips rated but without a wav (like ``1076_MTI_SAD_XX``).
    lfs_pointers:
        Write Git LFS pointer text files instead of wavs (the loader must refuse them).
    quoting:
        ``"header"`` (the verified header ``"",localid,…`` with unquoted rows), ``"r"``
        (R ``write.csv``: every string quoted) or ``"pandas"``.
    """
    rng = np.random.default_rng(seed)
    base = Path(root)
    classes = tuple(_CREMA_CLASS.values())
    raters = _annotators(rng, n_annotators, len(classes))
    rater_ids = [f"SSI_{1000000000 + 7919 * i * 1013}" for i in range(n_annotators)]
    rater_session = [100 + 3 * i for i in range(n_annotators)]
    quirks = dict.fromkeys(
        ["practice", "non_numeric_level", "duplicate_responses", "slow_first_click", "missing_audio", "other_modality"],
        0,
    )
    clips, names = [], []
    for ai in range(n_actors):
        actor = 1001 + ai
        for j in range(n_clips_per_actor):
            sent = _CREMA_SENTENCES[(ai + j) % len(_CREMA_SENTENCES)]
            emo = _CREMA_EMOS[j % len(_CREMA_EMOS)]
            level = ("LO", "MD", "HI")[j % 3] if sent == "IEO" else "XX"
            names.append(f"{actor}_{sent}_{emo}_{level}")
    sentence_rows = [[str(i + 1), i + 1, nm] for i, nm in enumerate(names)]
    _write_r_csv(base / "SentenceFilenames.csv", ["", "Stimulus_Number", "Filename"], sentence_rows, "r", crlf)
    demo = [[str(i + 1), 1001 + i, 20 + 3 * i, "Female" if i % 2 else "Male", "Caucasian", "Not Hispanic"]
            for i in range(n_actors)]
    _write_r_csv(base / "VideoDemographics.csv", ["", "ActorID", "Age", "Sex", "Race", "Ethnicity"], demo, "r", crlf)
    resp, emo_rows, truth = [], [], []
    quest = {(r, q): 0 for r in range(n_annotators) for q in (1, 2, 3)}
    pos = dict.fromkeys(range(n_annotators), 0)
    row_id = 1300
    latents = {}
    for ci, nm in enumerate(names):
        actor, sent, emo, level = nm.split("_")
        intended = _CREMA_LETTER[emo]
        k = classes.index(_CREMA_CLASS[intended]) if rng.random() < 0.85 else int(rng.integers(0, len(classes)))
        proto = np.array(_PROTO[_CREMA_FAMILY[classes[k]]])
        avd = np.clip(proto + rng.normal(0, 0.08, 3), 0.02, 0.98)
        latents[nm] = (k, avd)
        has_audio = not (quirks["missing_audio"] < missing_audio and ci % 5 == 2)
        if not has_audio:
            quirks["missing_audio"] += 1
        else:
            p = base / "AudioWAV" / f"{nm}.wav"
            if lfs_pointers:
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_text(
                    "version https://git-lfs.github.com/spec/v1\n"
                    f"oid sha256:{'%064x' % (ci + 1)}\nsize 72862\n", encoding="ascii"
                )
            else:
                _write_wav(p, _tone(rng, avd, float(rng.uniform(0.6, 1.0)), 1.6 if int(actor) % 2 == 0 else 1.0))
        clips.append(dict(clip_id=nm, speaker=actor, latent=classes[k], arousal=avd[0], audio=has_audio))
        dlet, dval = _CREMA_LEVEL[level]
        for q in modalities:
            for r in _choose(rng, n_annotators, ratings_per_clip):
                c = _rate_class(rng, raters[r], k)
                letter = "ADFHNS"[c]
                felt = np.clip(avd[0] + raters[r].bias[0] + rng.normal(0, 0.15), 0, 1)
                lvl = int(np.clip(np.rint(100 * felt), 1, 100))
                quest[(r, q)] += 1
                pos[r] += 1
                ttr = int(rng.integers(900, 9000))
                row_id += int(rng.integers(1, 400))
                level_cell: object = lvl
                rating = dict(clip_id=nm, annotator_id=rater_ids[r], emotion=_CREMA_CLASS[letter],
                              intensity=float(lvl))
                if q == 1 and quirks["non_numeric_level"] < non_numeric_level and ci % 3 == 1:
                    level_cell = ("NA", "high")[quirks["non_numeric_level"] % 2]
                    rating["intensity"] = np.nan
                    quirks["non_numeric_level"] += 1
                first_click = int(rng.integers(500, 6000))
                if q == 1 and quirks["slow_first_click"] < slow_first_click and ci % 4 == 3:
                    first_click = int(rng.integers(10001, 30000))
                    quirks["slow_first_click"] += 1
                    rating["slow"] = True
                row = [str(row_id), rater_ids[r], pos[r], f"{letter}_{level_cell}", ttr, q, int(rng.random() < 0.1),
                       ci + 1, quest[(r, q)], 4, nm, rater_session[r], letter, level_cell, intended, dval, dlet]
                if level_cell == "NA":
                    row[3] = f"{letter}_NA"
                    row[13] = None
                resp.append(row)
                emo_rows.append([str(row_id), rater_ids[r], rater_session[r], q, quest[(r, q)], pos[r],
                                 first_click, 0, ci + 1, nm])
                if q == 1:
                    truth.append(rating)
                    if quirks["duplicate_responses"] < duplicate_responses and ci % 4 == 2:
                        row_id += 1
                        resp.append([str(row_id)] + row[1:])
                        quirks["duplicate_responses"] += 1
                else:
                    quirks["other_modality"] += 1
    for i in range(practice):
        r = i % n_annotators
        row_id += 1
        pname = ("ANG_HI_practice", "SAD_MD_practice")[i % 2]
        resp.append([str(row_id), rater_ids[r], 0, "A_50", 3000, 1, 0, 7443 + i % 2, 0, 4, pname, rater_session[r],
                     "A", 50, "A", 80.0, "H"])
        quirks["practice"] += 1
    _write_r_csv(base / "finishedResponses.csv", _CREMA_HEADER, resp, quoting, crlf)
    _write_r_csv(base / "finishedEmoResponses.csv", _CREMA_EMO_HEADER, emo_rows, quoting, crlf)
    clips_df = pd.DataFrame(clips).set_index("clip_id")
    ratings = pd.DataFrame(truth)
    if "slow" not in ratings.columns:
        ratings["slow"] = False
    ratings["slow"] = ratings["slow"].fillna(False).astype(bool)
    ratings = ratings[ratings["clip_id"].isin(set(clips_df.index[clips_df["audio"]]))].reset_index(drop=True)
    return Fixture(root=base, clips=clips_df, ratings=ratings, quirks=quirks)
