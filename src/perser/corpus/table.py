"""The plain table format: perser's own on-disk corpus format.

A folder with

``corpus.yaml``
    ``name``, ``label_spaces`` (a list of ``{name, kind, classes}`` or
    ``{name, kind: dimensional, dimensions, scale: [low, high]}``), optional
    ``license``, ``citation``, ``description`` and ``meta`` (a mapping).
``clips.csv``
    ``clip_id,path,speaker`` and optional ``split``, ``session``, ``fold``,
    ``duration``, ``gender``; paths relative to the folder (absolute paths are kept).
``ratings.csv``
    ``clip_id,annotator_id`` and, per label space, a column named after a class space
    (multilabel: classes joined by ``;``) or one numeric column per dimension; optional
    ``is_self``, ``secondary``, ``other_text``.
``annotators.csv`` (optional)
    ``annotator_id`` and any per-annotator columns (the demo records perception styles).

:func:`write` writes any :class:`~perser.corpus.model.Corpus` in this format, atomically.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from perser.corpus.model import Corpus, LabelSpace, make_clips, make_ratings
from perser.errors import CorpusError

FILES = ("corpus.yaml", "clips.csv", "ratings.csv")
RESERVED_RATING_COLUMNS = {"clip_id", "annotator_id", "is_self", "secondary", "other_text"}


def detect(path: Path) -> bool:
    return path.is_dir() and all((path / f).is_file() for f in FILES)


def read_csv(path: Path, **kw) -> pd.DataFrame:
    """``pandas.read_csv`` whose errors name the file (and line, where pandas knows it)."""
    if not path.is_file():
        raise CorpusError(f"missing file {path}")
    try:
        return pd.read_csv(path, **kw)
    except UnicodeDecodeError as e:
        raise CorpusError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); re-save it as UTF-8") from None
    except pd.errors.ParserError as e:
        raise CorpusError(f"{path}: malformed CSV: {e}") from None
    except pd.errors.EmptyDataError:
        raise CorpusError(f"{path}: the file is empty") from None


def read_spec(path: Path) -> dict:
    """Read and check ``corpus.yaml``."""
    f = path / "corpus.yaml"
    try:
        spec = yaml.safe_load(f.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise CorpusError(f"{f}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except yaml.YAMLError as e:
        raise CorpusError(f"{f}: malformed YAML: {e}") from None
    if not isinstance(spec, dict):
        raise CorpusError(f"{f}: expected a mapping with name and label_spaces")
    if not spec.get("label_spaces"):
        raise CorpusError(f"{f}: no label_spaces declared")
    return spec


def load(path: Path, check_audio: bool = True) -> Corpus:
    """Load a table-format corpus from ``path`` and validate it.

    ``check_audio`` (default True) checks that every clip's audio file exists.
    """
    path = Path(path)
    spec = read_spec(path)
    try:
        spaces = {d["name"]: LabelSpace.from_dict(d) for d in spec["label_spaces"]}
    except (KeyError, TypeError) as e:
        raise CorpusError(f"{path / 'corpus.yaml'}: malformed label space ({e})") from None
    clips = read_csv(path / "clips.csv", dtype={"clip_id": str, "path": str, "speaker": str, "split": str,
                                                 "session": str, "gender": str})
    for col in ("clip_id", "path", "speaker"):
        if col not in clips.columns:
            raise CorpusError(f"{path / 'clips.csv'}: missing column {col!r} (has {list(clips.columns)})")
    clips = make_clips(clips)
    nopath = clips["path"].isna()
    if nopath.any():
        raise CorpusError(f"{path / 'clips.csv'}: clip {clips.index[nopath.to_numpy()][0]!r} has no path")
    root = str(path.resolve())
    clips["path"] = [p if os.path.isabs(p) else os.path.normpath(os.path.join(root, p)) for p in clips["path"]]

    dtypes: dict = {"clip_id": str, "annotator_id": str}
    for s in spaces.values():
        if s.is_class:
            dtypes[s.name] = str
    ratings = read_csv(path / "ratings.csv", dtype=dtypes, keep_default_na=False, na_values=[""])
    for col in ("clip_id", "annotator_id"):
        if col not in ratings.columns:
            raise CorpusError(f"{path / 'ratings.csv'}: missing column {col!r} (has {list(ratings.columns)})")
    for s in spaces.values():
        for c in s.columns:
            if c not in ratings.columns:
                raise CorpusError(
                    f"{path / 'ratings.csv'}: label space {s.name!r} needs column {c!r} (has {list(ratings.columns)})"
                )
    ratings = make_ratings(ratings)
    if "is_self" in ratings.columns:
        ratings["is_self"] = ratings["is_self"].astype(str).str.lower().isin(["true", "1", "yes"])
    annotators = None
    if (path / "annotators.csv").is_file():
        annotators = read_csv(path / "annotators.csv", dtype={"annotator_id": str})
        if "annotator_id" not in annotators.columns:
            raise CorpusError(f"{path / 'annotators.csv'}: missing column 'annotator_id'")
        annotators = annotators.set_index("annotator_id")
    meta = dict(spec.get("meta") or {})
    for key in ("license", "citation", "description"):
        if spec.get(key):
            meta[key] = spec[key]
    corpus = Corpus(
        name=str(spec.get("name") or path.name),
        clips=clips,
        ratings=ratings,
        label_spaces=spaces,
        annotators=annotators,
        meta=meta,
        root=path,
    )
    return corpus.validate(check_audio=check_audio)


def _jsonable(v):
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, Path):
        return str(v)
    return v


def write(corpus: Corpus, out: str | Path, overwrite: bool = False, relative_paths: bool = True) -> Path:
    """Write ``corpus`` as a table-format folder ``out``; returns ``out``.

    The folder is written to a temporary sibling and renamed into place, so a
    crash never leaves a half-written corpus. Audio is not copied: ``path`` is
    written relative to ``out`` (``relative_paths=True``) or absolute.
    """
    out = Path(out)
    if out.exists():
        if not overwrite:
            raise CorpusError(f"{out} exists; pass overwrite=True (--overwrite) to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        spec = {
            "name": corpus.name,
            "label_spaces": [s.to_dict() for s in corpus.label_spaces.values()],
        }
        meta = {k: v for k, v in corpus.meta.items() if k not in ("license", "citation", "description")}
        for key in ("license", "citation", "description"):
            if corpus.meta.get(key):
                spec[key] = corpus.meta[key]
        if meta:
            spec["meta"] = _jsonable(meta)
        (tmp / "corpus.yaml").write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True), encoding="utf-8")
        clips = corpus.clips.copy()
        if relative_paths:
            base = str(out.resolve())
            clips["path"] = [os.path.relpath(p, base) if p else p for p in clips["path"]]
        clips.reset_index().to_csv(tmp / "clips.csv", index=False)
        corpus.ratings.to_csv(tmp / "ratings.csv", index=False)
        if corpus.annotators is not None:
            corpus.annotators.reset_index().to_csv(tmp / "annotators.csv", index=False)
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            if old.exists():
                shutil.rmtree(old)
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
