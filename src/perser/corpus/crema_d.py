"""CREMA-D: per-rater perceptual ratings from ``finishedResponses.csv``.

Layout read (``path`` is the release / repository root)::

    finishedResponses.csv       one row per rater response (R write.csv output)
    finishedEmoResponses.csv    first-click times (only for ``max_first_click_s``)
    VideoDemographics.csv       actors' sex (optional, for ``gender``)
    AudioWAV/1001_DFA_ANG_XX.wav

``finishedResponses.csv`` starts with an unnamed index column (R row names; pandas
``Unnamed: 0``) holding the original, non-contiguous row numbers; its columns are
``localid, pos, ans, ttr, queryType, numTries, clipNum, questNum, subType, clipName,
sessionNums, respEmo, respLevel, dispEmo, dispVal, dispLevel``. Columns are selected by
name; quoting is left to the CSV reader. (The release README swaps ``dispVal`` and
``dispLevel``: on disk ``dispVal`` is 20/50/80 and ``dispLevel`` the letter L/M/H/X.)

Modality: ``queryType`` 1 = voice only, 2 = face only, 3 = audio-visual. Speech emotion
recognition uses the voice-only ratings, the default (``modality="voice"``);
``"face"`` or ``"audio-visual"`` load the others.

Label spaces
------------
``emotion`` (categorical)
    ``respEmo``: anger (A), disgust (D), fear (F), happy (H), neutral (N), sad (S).
``intensity`` (dimensional)
    ``respLevel``: the intensity slider for the chosen emotion, 1–100 (native scale).

Annotators are ``localid`` (``SSI_…``); speakers are the actors (``1001``…``1091``),
with ``gender`` from ``VideoDemographics.csv`` when present; clips also carry the
intended ``sentence``, ``intended_emotion`` and ``intended_level`` from the name. There is
no official split (folds by actor).

Quirks handled (counted in warnings and ``meta["skipped"]``): practice items
(``clipNum`` 7443/7444) skipped; non-numeric ``respLevel`` set to NaN; a rater answering
a clip twice (exact copies dropped; otherwise ``duplicates``); rated clips without a
wav (e.g. ``1076_MTI_SAD_XX``; ``missing_audio``). Git LFS pointer files in place of the
CSV or the wavs (a clone without ``git lfs``) raise a clear error. The authors'
filter dropping responses whose first click took over 10 s is available as
``max_first_click_s=10`` (removed count reported), off by default.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from perser.corpus import _release as rel
from perser.corpus.model import Corpus, LabelSpace, make_clips
from perser.errors import ConfigError, CorpusError, SkipLog, where

NAME = "crema-d"
CLASSES = ("anger", "disgust", "fear", "happy", "neutral", "sad")
LETTERS = dict(zip("ADFHNS", CLASSES))
INTENSITY_SCALE = (1, 100)
PRACTICE_CLIPS = (7443, 7444)
MODALITIES = {"voice": 1, "face": 2, "audio-visual": 3}
_MODALITY_ALIASES = {"audio": "voice", "audiovisual": "audio-visual", "av": "audio-visual", "video": "face",
                     "1": "voice", "2": "face", "3": "audio-visual"}
REQUIRED = ("localid", "queryType", "clipNum", "clipName", "respEmo", "respLevel")
RATING_COLUMNS = ["clip_id", "annotator_id", "emotion", "intensity"]
_EMOS = {"ANG": "anger", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}


def detect(path: Path) -> bool:
    """True when ``path`` holds ``finishedResponses.csv``."""
    return (Path(path) / "finishedResponses.csv").is_file()


def _modality(m) -> str:
    key = str(m).strip().lower()
    key = _MODALITY_ALIASES.get(key, key)
    if key not in MODALITIES:
        raise ConfigError(f"modality={m!r} is not one of voice, face, audio-visual")
    return key


def _read(f: Path, **kw) -> pd.DataFrame:
    if not f.is_file():
        raise CorpusError(f"missing file {f}")
    rel.check_lfs(f, "the CREMA-D repository keeps its data in Git LFS: install git-lfs and run `git lfs pull`")
    return rel.read_csv(f, **kw)


def load(
    path: Path,
    modality: str = "voice",
    max_first_click_s: float | None = None,
    duplicates: str = "first",
    missing_audio: str = "drop",
    durations: bool = False,
) -> Corpus:
    """Load CREMA-D's per-rater ratings from ``path``.

    Parameters
    ----------
    modality:
        ``"voice"`` (queryType 1, the default), ``"face"`` (2) or ``"audio-visual"`` (3).
    max_first_click_s:
        Drop responses whose first click (``finishedEmoResponses.csv`` ``ttr``) took longer
        than this many seconds; the authors used 10. ``None`` (default) keeps all.
    duplicates:
        A rater answering a clip twice with different answers: keep the ``"first"``
        (default), the ``"last"``, or average the intensity (``"mean"``). Exact copies
        are always dropped. Counted.
    missing_audio:
        ``"drop"`` rated clips without a wav (counted warning), ``"keep"`` them, or ``"error"``.
    durations:
        Read each wav's header for ``duration``.
    """
    mod = _modality(modality)
    rel.check_choice("duplicates", duplicates, rel.DUPLICATES)
    rel.check_choice("missing_audio", missing_audio, rel.MISSING_AUDIO)
    path = Path(path)
    f = path / "finishedResponses.csv"
    log = SkipLog(NAME)
    df = _read(f, dtype=str, keep_default_na=False)
    first = df.columns[0]
    if first == "" or first.startswith("Unnamed") or first in ("X", '""'):
        df = df.rename(columns={first: "_row"})
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise CorpusError(f"{f}: missing column(s) {missing} (has {list(df.columns)})")
    df["_line"] = np.arange(2, len(df) + 2)
    qt = pd.to_numeric(df["queryType"], errors="coerce")
    if qt.isna().any() or not qt.isin([1, 2, 3]).all():
        i = int(np.flatnonzero((qt.isna() | ~qt.isin([1, 2, 3])).to_numpy())[0])
        raise CorpusError(f"{where(f, i + 2)}: queryType {df['queryType'].iloc[i]!r} is not 1, 2 or 3")
    df = df.loc[qt == MODALITIES[mod]]
    n_other = int((qt != MODALITIES[mod]).sum())
    clipnum = pd.to_numeric(df["clipNum"], errors="coerce")
    practice = clipnum.isin(PRACTICE_CLIPS) | df["clipName"].str.contains("practice", case=False)
    if practice.any():
        log.add("practice responses (clipNum 7443/7444) skipped", df.loc[practice, "clipName"].iloc[0],
                int(practice.sum()))
        df = df.loc[~practice]
    if df.empty:
        raise CorpusError(f"{f}: no {mod} responses (queryType {MODALITIES[mod]})")

    emo = df["respEmo"].str.strip().str.upper()
    bad = ~emo.isin(list(LETTERS))
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise CorpusError(
            f"{where(f, int(df['_line'].iloc[i]))}: respEmo {df['respEmo'].iloc[i]!r} is not one of A D F H N S"
        )
    level = pd.to_numeric(df["respLevel"].str.strip(), errors="coerce")
    nonnum = level.isna()
    if nonnum.any():
        i = int(np.flatnonzero(nonnum.to_numpy())[0])
        log.add("responses with a non-numeric respLevel (intensity set to NaN)",
                f"{df['respLevel'].iloc[i]!r} at {where(f, int(df['_line'].iloc[i]))}", int(nonnum.sum()))
    off = level.notna() & ((level < INTENSITY_SCALE[0]) | (level > INTENSITY_SCALE[1]))
    if off.any():
        i = int(np.flatnonzero(off.to_numpy())[0])
        log.add("respLevel values off the 1-100 scale (intensity set to NaN)",
                f"{level.iloc[i]:g} at {where(f, int(df['_line'].iloc[i]))}", int(off.sum()))
        level = level.where(~off)
    ann = df["localid"].str.strip()
    if (ann == "").any():
        i = int(np.flatnonzero((ann == "").to_numpy())[0])
        raise CorpusError(f"{where(f, int(df['_line'].iloc[i]))}: empty localid (rater id)")
    names = df["clipName"].str.strip()
    badname = ~names.str.fullmatch(r"\d{4}_[A-Z]{3}_[A-Z]{3}_[A-Z]{2}")
    if badname.any():
        i = int(np.flatnonzero(badname.to_numpy())[0])
        raise CorpusError(
            f"{where(f, int(df['_line'].iloc[i]))}: clipName {names.iloc[i]!r} is not like 1001_DFA_ANG_XX"
        )
    ratings = pd.DataFrame(
        {
            "clip_id": names.to_numpy(),
            "annotator_id": ann.to_numpy(),
            "emotion": emo.map(LETTERS).to_numpy(),
            "intensity": level.astype(float).to_numpy(),
        }
    )
    if max_first_click_s is not None:
        ratings = _first_click_filter(path, df, ratings, float(max_first_click_s), mod, log)
    ratings = rel.resolve_duplicates(ratings, duplicates, log, ["intensity"], what="response")

    clip_ids = pd.unique(ratings["clip_id"])
    sex = _actor_sex(path)
    clips = make_clips(
        [
            {
                "clip_id": c,
                "path": str(path / "AudioWAV" / f"{c}.wav"),
                "speaker": c.split("_")[0],
                "gender": sex.get(c.split("_")[0]),
                "sentence": c.split("_")[1],
                "intended_emotion": _EMOS.get(c.split("_")[2]),
                "intended_level": c.split("_")[3],
            }
            for c in clip_ids
        ]
    )
    clips, ratings = rel.check_audio(clips, ratings, missing_audio, log, f"{NAME} at {path}", lfs_check=True)
    if durations:
        clips["duration"] = rel.read_durations(clips)
    spaces = [
        LabelSpace("emotion", "categorical", classes=CLASSES),
        LabelSpace("intensity", "dimensional", dimensions=("intensity",), scale=INTENSITY_SCALE),
    ]
    meta = {
        "format": NAME,
        "modality": mod,
        "query_type": MODALITIES[mod],
        "responses_of_other_modalities": n_other,
        "max_first_click_s": max_first_click_s,
        "duplicates": duplicates,
        "scales": {"intensity": "respLevel slider 1-100 for the chosen emotion"},
        "license": "Open Database License 1.0 / Database Contents License 1.0",
        "citation": "Cao et al. (2014), CREMA-D: Crowd-sourced emotional multimodal actors dataset",
    }
    return rel.finish(NAME, clips, ratings, spaces, log, path, meta, RATING_COLUMNS)


def _first_click_filter(path: Path, df: pd.DataFrame, ratings: pd.DataFrame, limit_s: float, mod: str,
                        log: SkipLog) -> pd.DataFrame:
    """The authors' filter: drop responses whose first click took longer than ``limit_s``."""
    ef = path / "finishedEmoResponses.csv"
    if not ef.is_file():
        raise ConfigError(f"max_first_click_s needs {ef}, which is missing")
    emo = _read(ef, dtype=str, keep_default_na=False)
    need = ("sessionNums", "queryType", "questNum", "ttr")
    missing = [c for c in need if c not in emo.columns] + [c for c in need[:3] if c not in df.columns]
    if missing:
        raise CorpusError(f"{ef} / finishedResponses.csv: missing column(s) {sorted(set(missing))} for the join")

    def key(t: pd.DataFrame) -> pd.Series:
        k = [pd.to_numeric(t[c], errors="coerce") for c in need[:3]]
        return k[0] * 1000 + k[1] * 100 + k[2]

    ttr = pd.to_numeric(emo["ttr"], errors="coerce")
    first_click = pd.Series(ttr.to_numpy(), index=key(emo).to_numpy())
    first_click = first_click[~first_click.index.duplicated()]
    k = key(df).to_numpy()
    t = first_click.reindex(k).to_numpy()
    unknown = np.isnan(t)
    if unknown.any():
        log.add("responses without a first-click time in finishedEmoResponses.csv (kept)", "", int(unknown.sum()))
    slow = t > limit_s * 1000.0
    if slow.any():
        log.add(f"{mod} responses whose first click took over {limit_s:g} s removed (max_first_click_s)",
                ratings["clip_id"].iloc[int(np.flatnonzero(slow)[0])], int(slow.sum()))
    return ratings.loc[~slow].reset_index(drop=True)


def _actor_sex(path: Path) -> dict[str, str | None]:
    f = path / "VideoDemographics.csv"
    if not f.is_file():
        return {}
    d = _read(f, dtype=str, keep_default_na=False)
    if "ActorID" not in d.columns or "Sex" not in d.columns:
        return {}
    return {str(a).strip(): rel.gender(s) for a, s in zip(d["ActorID"], d["Sex"])}
