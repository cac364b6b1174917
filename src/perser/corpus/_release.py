"""Shared plumbing for the loaders of released corpora (IEMOCAP, MSP-Podcast, MSP-IMPROV, CREMA-D).

Private: reading text and CSV files with clear errors, matching labels to a vocabulary,
resolving duplicate raters, checking audio files, and finishing a corpus (counted
warnings, ``meta["skipped"]``, validation).
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping

import numpy as np
import pandas as pd

from perser.corpus.model import Corpus, LabelSpace, make_clips, make_ratings
from perser.errors import ConfigError, CorpusError, SkipLog, where

MISSING_AUDIO = ("drop", "keep", "error")
DUPLICATES = ("first", "last", "mean")
UNKNOWN = ("error", "skip")

LFS_MAGIC = b"version https://git-lfs"


def check_choice(name: str, value, choices: Iterable) -> None:
    """Raise :class:`ConfigError` when an option is not one of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        raise ConfigError(f"option {name}={value!r} is not one of {', '.join(map(repr, choices))}")


def check_lfs(path: Path, advice: str = "fetch it with `git lfs pull`") -> None:
    """Raise :class:`CorpusError` when ``path`` is a Git LFS pointer, not the file itself.

    ``advice`` ends the message (how to fetch the real file).
    """
    with open(path, "rb") as fh:
        if fh.read(len(LFS_MAGIC)) == LFS_MAGIC:
            raise CorpusError(f"{path} is a Git LFS pointer, not the file itself; {advice}")


def read_csv(path: Path, **kw) -> pd.DataFrame:
    """``pandas.read_csv`` (``kw`` passed on) whose errors raise :class:`CorpusError` naming the file.

    A missing file, undecodable text (with the line and byte offset), a malformed CSV
    line (``file:line: malformed CSV line: expected N fields, saw M``) and an empty file
    each get their own message. The one CSV reader of every loader (the table format too).
    """
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"missing file {path}")
    try:
        df = pd.read_csv(path, **kw)
    except UnicodeDecodeError:
        raise CorpusError(decode_message(path)) from None
    except pd.errors.ParserError as e:
        raise CorpusError(parser_message(path, str(e))) from None
    except pd.errors.EmptyDataError:
        raise CorpusError(f"{path}: the file is empty") from None
    if not _SPLITTING_OPTIONS & set(kw):
        check_short_rows(path)
    return df


#: ``read_csv`` options that change how lines split into fields (the short-row check
#: assumes the defaults: comma, double quotes, the first line is the header)
_SPLITTING_OPTIONS = {"sep", "delimiter", "header", "names", "skiprows", "comment", "quotechar", "quoting",
                      "escapechar", "lineterminator", "encoding", "engine", "nrows"}


def check_short_rows(path: Path) -> None:
    """Raise :class:`CorpusError` at the first data line with fewer fields than the header.

    pandas fills the missing trailing fields of such a line with NaN, which would pass
    for empty cells (a rating without dimensions, say): a truncated line would be read
    as data. Blank lines are not short rows. Lines with *more* fields are pandas' to
    judge (an error, or R's unnamed index column). A fast pyarrow pass finds whether
    there is one; only then is the file read again to name the line.
    """
    import pyarrow.csv as pacsv

    found: list = []

    def handler(row) -> str:
        if row.actual_columns < row.expected_columns:
            found.append(row)
        return "skip"

    try:
        with open(path, "rb") as f:
            first = f.readline().decode("utf-8-sig").rstrip("\r\n")
        if not first:
            return
        pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(use_threads=True),
            parse_options=pacsv.ParseOptions(invalid_row_handler=handler, newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(include_columns=[], include_missing_columns=False),
        )
    except Exception:  # pyarrow refuses what pandas read (an odd header, say): nothing to add
        return
    if not found:
        return
    import csv

    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        try:
            header = next(reader, [])
            for row in reader:
                if 0 < len(row) < len(header):
                    raise CorpusError(
                        f"{where(path, reader.line_num)}: malformed CSV line: expected {len(header)} fields, "
                        f"saw {len(row)} ({','.join(row)[:80]!r})"
                    )
        except csv.Error:  # what pandas read, Python's csv module may not: nothing to add
            return


def decode_message(path: Path, encoding: str = "utf-8") -> str:
    """``file:line: not UTF-8 text (byte 0x.. at offset N)`` for a file that fails to decode.

    pandas reports offsets within its read buffer, so the file is decoded again here to
    find the true offset and line (only on this error path).
    """
    data = Path(path).read_bytes()
    try:
        data.decode(encoding)
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        return (f"{where(path, line)}: not {encoding.upper()} text (byte 0x{data[e.start]:02x} at offset "
                f"{e.start}); re-save it as {encoding.upper()}")
    return f"{path}: not {encoding.upper()} text; re-save it as {encoding.upper()}"


def parser_message(path: Path, msg: str) -> str:
    """Turn a pandas parser error into ``file:line: what is wrong``."""
    m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", msg)
    if m:
        return f"{path}:{m.group(2)}: malformed CSV line: expected {m.group(1)} fields, saw {m.group(3)}"
    m = re.search(r"EOF inside string starting at row (\d+)", msg)
    if m:  # pandas counts rows from 0, header included
        return f"{path}:{int(m.group(1)) + 1}: malformed CSV: a quoted field starting on this line is never closed"
    return f"{path}: malformed CSV: {msg}"


def read_lines(path: Path, encoding: str = "utf-8") -> list[str]:
    """Lines of a text file with trailing whitespace (and CR of CRLF) removed.

    Raises :class:`CorpusError` naming the file when it is missing, a Git LFS
    pointer, or not decodable (with the byte offset and line number).
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CorpusError(f"missing file {path}") from None
    except OSError as e:
        raise CorpusError(f"{path}: cannot read ({e.strerror})") from None
    if data.startswith(LFS_MAGIC):
        raise CorpusError(f"{path} is a Git LFS pointer, not the file itself; fetch it with `git lfs pull`")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise CorpusError(
            f"{where(path, line)}: not {encoding} text (byte 0x{data[e.start]:02x} at offset {e.start})"
        ) from None
    return [ln.rstrip() for ln in text.splitlines()]


def to_float(text: str | None) -> float:
    """``float(text)``, NaN for empty/``NaN`` text; raises ``ValueError`` on anything else."""
    if text is None:
        return float("nan")
    t = text.strip()
    if t == "" or t.lower() in ("nan", "na", "none"):
        return float("nan")
    return float(t)


class Vocabulary:
    """Case-insensitive mapping of the labels on disk to a label space's class names.

    Parameters
    ----------
    mapping:
        Disk label (any case) -> class name.
    other:
        Class name for ``Other`` answers; a label ``Other``, ``Other-<text>`` or
        ``Other:<text>`` maps to it and its text is returned separately.
    """

    def __init__(self, mapping: Mapping[str, str], other: str | None = "other") -> None:
        self.mapping = {k.strip().lower(): v for k, v in mapping.items()}
        self.other = other

    def match(self, label: str) -> tuple[str | None, str]:
        """``(class or None if unknown, other-text)`` for one label on disk."""
        t = label.strip()
        low = t.lower()
        if low in self.mapping:
            return self.mapping[low], ""
        if self.other is not None and low.startswith("other"):
            rest = t[5:].lstrip(" -:_").strip()
            return self.other, rest
        return None, ""


def unknown_label(
    policy: str, log: SkipLog, what: str, label: str, at: str, allowed: Iterable[str], n: int = 1
) -> None:
    """Raise (``policy="error"``) or count ``n`` ratings with a label outside the vocabulary."""
    if policy == "error":
        raise CorpusError(
            f"{at}: {what} {label!r} is not one of {sorted(set(allowed))}; "
            "pass unknown_labels='skip' to skip such ratings with a counted warning"
        )
    log.add(f"ratings with an unknown {what} skipped", f"{label!r} at {at}", n)


def resolve_duplicates(
    ratings: pd.DataFrame, policy: str, log: SkipLog, value_columns: list[str], what: str = "rating"
) -> pd.DataFrame:
    """Resolve several rows for the same (clip, annotator) within one task.

    Exact copies are dropped. Rows that differ are resolved by ``policy``:
    ``"first"``/``"last"`` keep one row, ``"mean"`` averages the numeric
    ``value_columns`` (class columns from the first row). Both counts go to ``log``.
    """
    if ratings.empty:
        return ratings
    keys = ["clip_id", "annotator_id"]
    dup_any = ratings.duplicated(keys, keep=False)
    if not dup_any.any():
        return ratings
    cols = [c for c in ratings.columns if c not in ("_line",)]
    exact = ratings.duplicated(cols, keep="first")
    n_exact = int(exact.sum())
    if n_exact:
        ex = ratings.loc[exact].iloc[0]
        log.add(f"exact duplicate {what} rows dropped", f"{ex['annotator_id']} on {ex['clip_id']}", n_exact)
        ratings = ratings.loc[~exact]
    dup_any = ratings.duplicated(keys, keep=False)
    if not dup_any.any():
        return ratings.reset_index(drop=True)
    n_extra = int(ratings.duplicated(keys, keep="first").sum())
    ex = ratings.loc[dup_any].iloc[0]
    log.add(
        f"conflicting duplicate {what} rows for one (clip, annotator) resolved by duplicates={policy!r}",
        f"{ex['annotator_id']} on {ex['clip_id']}",
        n_extra,
    )
    if policy in ("first", "last"):
        return ratings.loc[~ratings.duplicated(keys, keep=policy)].reset_index(drop=True)
    # mean: average numeric values over the duplicates, other columns from the first row
    num = [c for c in value_columns if c in ratings.columns]
    first = ratings.loc[~ratings.duplicated(keys, keep="first")].set_index(keys)
    if num:
        means = ratings.groupby(keys, sort=False)[num].mean()
        first.loc[means.index, num] = means.to_numpy()
    return first.reset_index()[ratings.columns]


def check_audio(
    clips: pd.DataFrame,
    ratings: pd.DataFrame,
    policy: str,
    log: SkipLog,
    source: str,
    lfs_check: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Handle clips whose audio file is missing, by ``policy``.

    ``"drop"`` removes them and their ratings (counted warning), ``"keep"`` keeps
    them (counted warning), ``"error"`` raises :class:`CorpusError`. When no clip has
    its audio at all, ``"drop"`` raises instead of returning an empty corpus.
    With ``lfs_check``, audio files that are Git LFS pointers raise a clear error.
    """
    paths = clips["path"].tolist()
    exists = np.fromiter((p is not None and os.path.isfile(p) for p in paths), dtype=bool, count=len(paths))
    if lfs_check and exists.any():
        pointers = []
        for p, ok in zip(paths, exists):
            if ok and os.path.getsize(p) < 1024:
                with open(p, "rb") as fh:
                    if fh.read(len(LFS_MAGIC)) == LFS_MAGIC:
                        pointers.append(p)
        if pointers:
            raise CorpusError(
                f"{source}: {len(pointers)} audio file(s) are Git LFS pointers, not audio, e.g. {pointers[0]}; "
                "fetch the media with `git lfs pull` (the CREMA-D GitHub repository keeps audio in Git LFS)"
            )
    missing = ~exists
    n = int(missing.sum())
    if not n:
        return clips, ratings
    example = f"{clips.index[missing][0]} ({paths[int(np.flatnonzero(missing)[0])]})"
    if policy == "error":
        raise CorpusError(f"{source}: {n} clip(s) have no audio file, e.g. {example}")
    if policy == "keep":
        log.add("clips without an audio file kept (missing_audio='keep')", example, n)
        return clips, ratings
    if n == len(clips):
        raise CorpusError(
            f"{source}: none of the {n} clips has its audio file (e.g. {example}); check the layout, "
            "or pass missing_audio='keep' to load the labels alone"
        )
    gone = clips.index[missing]
    n_r = int(ratings["clip_id"].isin(gone).sum())
    log.add(f"clips without an audio file dropped with their {n_r} rating(s)", example, n)
    return clips.loc[~missing], ratings.loc[~ratings["clip_id"].isin(gone)].reset_index(drop=True)


def read_durations(clips: pd.DataFrame) -> pd.Series:
    """Durations in seconds from the audio headers (NaN where unreadable)."""
    import soundfile as sf

    out = []
    for p in clips["path"]:
        try:
            info = sf.info(p)
            out.append(info.frames / info.samplerate)
        except Exception:  # unreadable audio is reported by the audio layer when it is read
            out.append(np.nan)
    return pd.Series(out, index=clips.index, dtype=float)


def gender(value) -> str | None:
    """``"female"``/``"male"`` from F/M/Female/Male (any case); None otherwise."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    v = str(value).strip().lower()
    if v in ("f", "female", "w", "woman"):
        return "female"
    if v in ("m", "male", "man"):
        return "male"
    return None


def finish(
    name: str,
    clips: pd.DataFrame | list[dict],
    ratings: pd.DataFrame | list[dict],
    spaces: list[LabelSpace],
    log: SkipLog,
    root: Path,
    meta: dict,
    rating_columns: list[str],
) -> Corpus:
    """Build, report and validate the corpus.

    Emits one counted warning per skip reason, stores the counts in
    ``meta["skipped"]`` and calls :meth:`Corpus.validate`.
    """
    if not isinstance(clips, pd.DataFrame) or "clip_id" in clips.columns:
        clips = make_clips(clips)
    if isinstance(ratings, list):
        ratings = pd.DataFrame(ratings, columns=rating_columns)
    ratings = ratings[[c for c in rating_columns if c in ratings.columns]]
    ratings = make_ratings(ratings)
    for s in spaces:
        if s.is_class:
            col = ratings[s.name]
            ratings[s.name] = col.astype(object).where(col.notna(), None)
        else:
            for d in s.dimensions:
                ratings[d] = pd.to_numeric(ratings[d], errors="coerce").astype(float)
    if "is_self" in ratings.columns:
        ratings["is_self"] = ratings["is_self"].fillna(False).astype(bool)
    meta = dict(meta)
    meta["skipped"] = log.counts()
    meta["skipped_messages"] = log.messages()
    corpus = Corpus(
        name=name,
        clips=clips,
        ratings=ratings.reset_index(drop=True),
        label_spaces={s.name: s for s in spaces},
        meta=meta,
        root=Path(root),
    )
    log.emit(stacklevel=3)
    return corpus.validate()


@contextmanager
def progress(name: str, total: int) -> Iterator[Callable[[str], None]]:
    """A transient rich progress bar on a terminal (silent otherwise); yields ``step(description)``."""
    from rich.console import Console

    from perser._io import progress_bar

    console = Console(stderr=True)
    with progress_bar(console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task(name, total=total)

        def step(description: str) -> None:
            bar.update(task, advance=1, description=f"{name}: {description}")

        yield step
