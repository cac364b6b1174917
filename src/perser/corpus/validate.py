"""Validation of a :class:`~perser.corpus.model.Corpus`.

Every check raises :class:`~perser.errors.CorpusError` naming the culprit
(clip id, annotator id, column, value) rather than letting bad data through.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from perser.corpus.model import Corpus, LabelSpace, split_multilabel
from perser.errors import CorpusError


def _first(mask: pd.Series | np.ndarray, values: pd.Series) -> object:
    idx = np.flatnonzero(np.asarray(mask))[0]
    return values.iloc[idx]


def validate_clips(clips: pd.DataFrame, name: str = "corpus", check_audio: bool = False) -> None:
    """Clip ids unique and non-empty; ``path`` and ``speaker`` present; audio exists if asked."""
    for col in ("path", "speaker"):
        if col not in clips.columns:
            raise CorpusError(f"{name}: clips table lacks column {col!r}")
    ids = clips.index.to_series()
    empty = ids.isna() | (ids.astype(str).str.strip() == "")
    if empty.any():
        raise CorpusError(f"{name}: empty clip id at clips row {int(np.flatnonzero(empty)[0])}")
    dup = clips.index.duplicated()
    if dup.any():
        raise CorpusError(f"{name}: duplicate clip id {clips.index[dup][0]!r}")
    nospk = clips["speaker"].isna() | (clips["speaker"].astype(str).str.strip() == "")
    if nospk.any():
        raise CorpusError(f"{name}: clip {clips.index[nospk.to_numpy()][0]!r} has no speaker")
    if check_audio:
        missing = [cid for cid, p in clips["path"].items() if p is None or not Path(p).is_file()]
        if missing:
            raise CorpusError(
                f"{name}: {len(missing)} clip(s) have no audio file, e.g. {missing[0]!r} "
                f"({clips.at[missing[0], 'path']})"
            )


def validate_space_values(ratings: pd.DataFrame, space: LabelSpace, name: str = "corpus") -> None:
    """Every present value of ``space`` is in its classes / on its scale."""
    for col in space.columns:
        if col not in ratings.columns:
            raise CorpusError(f"{name}: ratings lack column {col!r} of label space {space.name!r}")
    if space.kind == "categorical":
        col = ratings[space.name]
        bad = col.notna() & ~col.isin(space.classes)
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise CorpusError(
                f"{name}: label {col.iloc[i]!r} of clip {ratings['clip_id'].iloc[i]!r} by annotator "
                f"{ratings['annotator_id'].iloc[i]!r} is not one of {list(space.classes)} (space {space.name!r})"
            )
    elif space.kind == "multilabel":
        allowed = set(space.classes)
        col = ratings[space.name]
        for i, v in enumerate(col.to_numpy()):
            for c in split_multilabel(v):
                if c not in allowed:
                    raise CorpusError(
                        f"{name}: label {c!r} of clip {ratings['clip_id'].iloc[i]!r} by annotator "
                        f"{ratings['annotator_id'].iloc[i]!r} is not one of {list(space.classes)} (space {space.name!r})"
                    )
    else:
        lo, hi = space.scale  # type: ignore[misc]
        for d in space.dimensions:
            col = pd.to_numeric(ratings[d], errors="coerce")
            nonnum = col.isna() & ratings[d].notna()
            if nonnum.any():
                i = int(np.flatnonzero(nonnum.to_numpy())[0])
                raise CorpusError(
                    f"{name}: non-numeric {d} value {ratings[d].iloc[i]!r} for clip "
                    f"{ratings['clip_id'].iloc[i]!r} by annotator {ratings['annotator_id'].iloc[i]!r}"
                )
            off = col.notna() & ((col < lo) | (col > hi))
            if off.any():
                i = int(np.flatnonzero(off.to_numpy())[0])
                raise CorpusError(
                    f"{name}: {d} value {col.iloc[i]} of clip {ratings['clip_id'].iloc[i]!r} by annotator "
                    f"{ratings['annotator_id'].iloc[i]!r} is off the scale {lo:g}–{hi:g}"
                )


def validate_ratings(ratings: pd.DataFrame, clips: pd.DataFrame, spaces: dict[str, LabelSpace], name: str = "corpus") -> None:
    """Ratings refer to known clips, have non-empty annotator ids, valid values, no duplicates."""
    for col in ("clip_id", "annotator_id"):
        if col not in ratings.columns:
            raise CorpusError(f"{name}: ratings table lacks column {col!r}")
    ann = ratings["annotator_id"]
    empty = ann.isna() | (ann.astype(str).str.strip() == "") | (ann.astype(str) == "nan")
    if empty.any():
        i = int(np.flatnonzero(empty.to_numpy())[0])
        raise CorpusError(f"{name}: empty annotator id in the rating of clip {ratings['clip_id'].iloc[i]!r}")
    unknown = ~ratings["clip_id"].isin(clips.index)
    if unknown.any():
        n = int(unknown.sum())
        raise CorpusError(
            f"{name}: {n} rating(s) for clip(s) not in the clips table, e.g. clip "
            f"{_first(unknown, ratings['clip_id'])!r} by annotator {_first(unknown, ratings['annotator_id'])!r}"
        )
    for space in spaces.values():
        validate_space_values(ratings, space, name)
        present = ratings[space.columns].notna().any(axis=1)
        sub = ratings.loc[present, ["clip_id", "annotator_id"]]
        dup = sub.duplicated()
        if dup.any():
            i = int(np.flatnonzero(dup.to_numpy())[0])
            raise CorpusError(
                f"{name}: annotator {sub['annotator_id'].iloc[i]!r} rated clip {sub['clip_id'].iloc[i]!r} "
                f"more than once in space {space.name!r}"
            )


def validate_corpus(corpus: Corpus, check_audio: bool = False) -> None:
    """Run every check on ``corpus``."""
    if not corpus.label_spaces:
        raise CorpusError(f"{corpus.name}: no label space declared")
    cols: dict[str, str] = {}
    for s in corpus.label_spaces.values():
        for c in s.columns:
            if c in cols or c in ("clip_id", "annotator_id"):
                raise CorpusError(f"{corpus.name}: column {c!r} is claimed by label spaces {cols.get(c)!r} and {s.name!r}")
            cols[c] = s.name
    validate_clips(corpus.clips, corpus.name, check_audio=check_audio)
    validate_ratings(corpus.ratings, corpus.clips, corpus.label_spaces, corpus.name)
