"""Validation of a :class:`~perser.corpus.model.Corpus`.

Every check raises :class:`~perser.errors.CorpusError` naming the culprit
(clip id, annotator id, column, value) rather than letting bad data through.
When the tables were just read from files (the table format), pass ``sources``
(``{"clips": path, "ratings": path, "annotators": path}``, or ``(path, lines)`` pairs
giving each row's line number): a culprit in row *i* is then named as ``file:line``
(by default line ``i + 2``, after the header).

The checks are vectorised; their speed on a corpus the size of MSP-Podcast is
recorded in ``benchmarks/corpus/RESULTS.md``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from perser.corpus.consensus import class_indicator
from perser.corpus.model import Corpus, LabelSpace
from perser.errors import CorpusError, SkipLog


def _first(mask: pd.Series | np.ndarray, values: pd.Series) -> object:
    idx = np.flatnonzero(np.asarray(mask))[0]
    return values.iloc[idx]


def _source(sources: dict | None, table: str) -> tuple[object, np.ndarray | None]:
    v = (sources or {}).get(table)
    if isinstance(v, tuple):
        return v[0], v[1]
    return v, None


def _line_no(sources: dict | None, table: str, row: int) -> int:
    _, lines = _source(sources, table)
    return int(lines[int(row)]) if lines is not None else int(row) + 2


def _at(name: str, sources: dict | None, table: str, row: int | None) -> str:
    """Message prefix: ``file:line: `` when the table came from a file, else ``name: ``."""
    src, _ = _source(sources, table)
    if src is not None and row is not None:
        return f"{src}:{_line_no(sources, table, row)}: "
    return f"{name}: "


def _line(sources: dict | None, table: str, row: int) -> str:
    src, _ = _source(sources, table)
    return f"line {_line_no(sources, table, row)}" if src is not None else f"row {int(row)}"


def _blank(s: pd.Series) -> np.ndarray:
    """Missing or whitespace-only entries (``"nan"`` counts as missing)."""
    st = s.astype("str")
    return (s.isna() | (st.str.strip() == "") | (st == "nan")).to_numpy()


def validate_clips(clips: pd.DataFrame, name: str = "corpus", check_audio: bool = False,
                   sources: dict | None = None) -> None:
    """Clip ids unique and non-empty; ``path`` and ``speaker`` present; audio exists if asked."""
    for col in ("path", "speaker"):
        if col not in clips.columns:
            raise CorpusError(f"{name}: clips table lacks column {col!r}")
    empty = _blank(clips.index.to_series())
    if empty.any():
        i = int(np.flatnonzero(empty)[0])
        raise CorpusError(f"{_at(name, sources, 'clips', i)}empty clip id at clips {_line(sources, 'clips', i)}")
    dup = clips.index.duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        first = int(np.flatnonzero(clips.index == clips.index[i])[0])
        raise CorpusError(
            f"{_at(name, sources, 'clips', i)}duplicate clip id {clips.index[i]!r} (first at {_line(sources, 'clips', first)})"
        )
    nospk = _blank(clips["speaker"])
    if nospk.any():
        i = int(np.flatnonzero(nospk)[0])
        raise CorpusError(f"{_at(name, sources, 'clips', i)}clip {clips.index[i]!r} has no speaker")
    if check_audio:
        paths = clips["path"]
        uniq = pd.unique(paths.dropna().to_numpy(dtype=object))
        exists = dict(zip(uniq, _isfiles(uniq)))
        ok = np.fromiter((exists.get(p, False) if isinstance(p, str) else False for p in paths.to_numpy(dtype=object)),
                         dtype=bool, count=len(paths))
        if not ok.all():
            missing = clips.index[~ok]
            raise CorpusError(
                f"{name}: {len(missing)} clip(s) have no audio file, e.g. {missing[0]!r} "
                f"({clips.at[missing[0], 'path']})"
            )


def _isfiles(paths: np.ndarray, threads_from: int = 20_000) -> list[bool]:
    """``os.path.isfile`` of many paths, in a few threads (stat calls release the GIL,
    which matters on network file systems)."""
    if len(paths) < threads_from:
        return [os.path.isfile(p) for p in paths]
    from concurrent.futures import ThreadPoolExecutor

    chunks = np.array_split(np.asarray(paths, dtype=object), 16)
    with ThreadPoolExecutor(max_workers=4) as ex:
        parts = list(ex.map(lambda ch: [os.path.isfile(p) for p in ch], chunks))
    return [x for part in parts for x in part]


def _who(ratings: pd.DataFrame, i: int) -> str:
    return f"clip {ratings['clip_id'].iloc[i]!r} by annotator {ratings['annotator_id'].iloc[i]!r}"


def validate_space_values(ratings: pd.DataFrame, space: LabelSpace, name: str = "corpus",
                          sources: dict | None = None) -> None:
    """Every present value of ``space`` is in its classes / on its scale."""
    for col in space.columns:
        if col not in ratings.columns:
            raise CorpusError(f"{name}: ratings lack column {col!r} of label space {space.name!r}")
    if space.is_class:
        col = ratings[space.name]
        codes, uniques, ind, unknown = class_indicator(col, space)
        if unknown:
            bad_codes = [u for u, _ in unknown]
            i = int(np.flatnonzero(np.isin(codes, bad_codes))[0])
            label = next(c for u, c in unknown if u == codes[i])
            raise CorpusError(
                f"{_at(name, sources, 'ratings', i)}label {label!r} of {_who(ratings, i)} "
                f"is not one of {list(space.classes)} (space {space.name!r})"
            )
        if space.kind == "multilabel":
            # a value made of separators only (";", " ; ") names no class; blank means no rating
            hollow_u = ~ind.any(axis=1) & np.array([u.strip() != "" for u in uniques], dtype=bool)
            hollow = np.zeros(len(col), dtype=bool)
            ok = codes >= 0
            hollow[ok] = hollow_u[codes[ok]]
            if hollow.any():
                i = int(np.flatnonzero(hollow)[0])
                raise CorpusError(
                    f"{_at(name, sources, 'ratings', i)}{space.name} value {col.iloc[i]!r} of {_who(ratings, i)} names no class"
                )
    else:
        lo, hi = space.scale  # type: ignore[misc]
        for d in space.dimensions:
            col = pd.to_numeric(ratings[d], errors="coerce")
            nonnum = (col.isna() & ratings[d].notna()).to_numpy()
            if nonnum.any():
                i = int(np.flatnonzero(nonnum)[0])
                raise CorpusError(
                    f"{_at(name, sources, 'ratings', i)}non-numeric {d} value {ratings[d].iloc[i]!r} for {_who(ratings, i)}"
                )
            v = col.to_numpy(dtype=np.float64)
            off = ~np.isnan(v) & ((v < lo) | (v > hi) | ~np.isfinite(v))
            if off.any():
                i = int(np.flatnonzero(off)[0])
                raise CorpusError(
                    f"{_at(name, sources, 'ratings', i)}{d} value {v[i]:g} of {_who(ratings, i)} "
                    f"is off the scale {lo:g}–{hi:g}"
                )


def validate_ratings(ratings: pd.DataFrame, clips: pd.DataFrame, spaces: dict[str, LabelSpace], name: str = "corpus",
                     sources: dict | None = None) -> None:
    """Ratings refer to known clips, have non-empty annotator ids, valid values, no duplicates.

    Also: every rating carries a value in at least one label space, and a dimensional
    rating carries all of its space's dimensions or none.
    """
    for col in ("clip_id", "annotator_id"):
        if col not in ratings.columns:
            raise CorpusError(f"{name}: ratings table lacks column {col!r}")
    empty = _blank(ratings["annotator_id"])
    if empty.any():
        i = int(np.flatnonzero(empty)[0])
        raise CorpusError(f"{_at(name, sources, 'ratings', i)}empty annotator id in the rating of clip {ratings['clip_id'].iloc[i]!r}")
    # unknown clips: factorise once, look up the distinct ids only
    codes, uniq = pd.factorize(ratings["clip_id"], sort=False)
    known = clips.index.unique().get_indexer(pd.Index(uniq)) >= 0  # hash look-up (isin is slow on arrow strings)
    unknown = ~known[codes] if len(codes) else np.zeros(0, dtype=bool)
    if unknown.any():
        i = int(np.flatnonzero(unknown)[0])
        raise CorpusError(
            f"{_at(name, sources, 'ratings', i)}{int(unknown.sum())} rating(s) for clip(s) not in the clips table, "
            f"e.g. clip {ratings['clip_id'].iloc[i]!r} by annotator {ratings['annotator_id'].iloc[i]!r}"
        )
    any_value = np.zeros(len(ratings), dtype=bool)
    acodes = None
    for space in spaces.values():
        validate_space_values(ratings, space, name, sources)
        notna = ratings[space.columns].notna().to_numpy()
        present = notna.any(axis=1)
        if space.kind == "dimensional":
            partial = present & ~notna.all(axis=1)
            if partial.any():
                i = int(np.flatnonzero(partial)[0])
                has = [d for d, x in zip(space.dimensions, notna[i]) if x]
                lacks = [d for d, x in zip(space.dimensions, notna[i]) if not x]
                raise CorpusError(
                    f"{_at(name, sources, 'ratings', i)}the rating of {_who(ratings, i)} has {', '.join(has)} "
                    f"but lacks {', '.join(lacks)} (space {space.name!r})"
                )
        elif space.kind == "multilabel":
            present &= (ratings[space.name].astype("str").str.strip() != "").to_numpy()
        any_value |= present
        if acodes is None:
            acodes = pd.factorize(ratings["annotator_id"], sort=False)[0].astype(np.int64)
        key = pd.Series(codes.astype(np.int64)[present] * (int(acodes.max()) + 1 if len(acodes) else 1) + acodes[present])
        dup = key.duplicated().to_numpy()
        if dup.any():
            rows = np.flatnonzero(present)
            i = int(rows[np.flatnonzero(dup)[0]])
            first = int(rows[np.flatnonzero((key == key.iloc[int(np.flatnonzero(dup)[0])]).to_numpy())[0]])
            raise CorpusError(
                f"{_at(name, sources, 'ratings', i)}annotator {ratings['annotator_id'].iloc[i]!r} rated clip "
                f"{ratings['clip_id'].iloc[i]!r} more than once in space {space.name!r} (first at {_line(sources, 'ratings', first)})"
            )
    if spaces and not any_value.all():
        i = int(np.flatnonzero(~any_value)[0])
        raise CorpusError(f"{_at(name, sources, 'ratings', i)}the rating of {_who(ratings, i)} has no value in any label space")


def validate_annotators(annotators: pd.DataFrame, ratings: pd.DataFrame, name: str = "corpus",
                        sources: dict | None = None) -> None:
    """Annotator table: unique, non-empty ids; a counted warning for raters it does not list."""
    ids = annotators.index.to_series()
    empty = _blank(ids)
    if empty.any():
        i = int(np.flatnonzero(empty)[0])
        raise CorpusError(f"{_at(name, sources, 'annotators', i)}empty annotator id in the annotator table")
    dup = annotators.index.duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        first = int(np.flatnonzero(annotators.index == annotators.index[i])[0])
        raise CorpusError(
            f"{_at(name, sources, 'annotators', i)}duplicate annotator id {annotators.index[i]!r} "
            f"(first at {_line(sources, 'annotators', first)})"
        )
    raters = pd.Index(pd.unique(ratings["annotator_id"]))
    missing = raters[~raters.isin(annotators.index)]
    if len(missing):
        src, _ = _source(sources, "annotators")
        table = Path(str(src)).name if src is not None else "the annotator table"
        log = SkipLog(name)
        reason = f"annotator(s) rate clips but are not in {table}"
        log.add(reason, "", n=len(missing))
        for a in sorted(missing.astype(str))[: log.max_examples]:
            log.add(reason, a, n=0)
        log.emit(stacklevel=3)


def validate_corpus(corpus: Corpus, check_audio: bool = False, sources: dict | None = None) -> None:
    """Run every check on ``corpus``.

    ``sources`` optionally maps ``"clips"``, ``"ratings"`` and ``"annotators"`` to the
    files the tables were read from (row *i* being line *i + 2*), or to ``(file,
    line_numbers)`` pairs; errors then cite ``file:line``.
    """
    if not corpus.label_spaces:
        raise CorpusError(f"{corpus.name}: no label space declared")
    cols: dict[str, str] = {}
    for s in corpus.label_spaces.values():
        for c in s.columns:
            if c in cols or c in ("clip_id", "annotator_id"):
                raise CorpusError(f"{corpus.name}: column {c!r} is claimed by label spaces {cols.get(c)!r} and {s.name!r}")
            cols[c] = s.name
    validate_clips(corpus.clips, corpus.name, check_audio=check_audio, sources=sources)
    validate_ratings(corpus.ratings, corpus.clips, corpus.label_spaces, corpus.name, sources=sources)
    if corpus.annotators is not None:
        validate_annotators(corpus.annotators, corpus.ratings, corpus.name, sources=sources)
