"""The plain table format: perser's own on-disk corpus format.

A folder with

``corpus.yaml``
    ``name``, ``label_spaces`` (a list of ``{name, kind, classes}`` or
    ``{name, kind: dimensional, dimensions, scale: [low, high]}``; or the same as a
    mapping from name to the rest, ``{emotion: {kind: categorical, classes: [...]}}``), optional
    ``license`` (or ``licence``), ``citation``, ``description`` and ``meta`` (a
    mapping). Other keys are ignored with a counted warning naming them.
``clips.csv``
    ``clip_id,path,speaker`` and optional ``split``, ``session``, ``fold``,
    ``duration``, ``gender``; paths relative to the folder (absolute paths are kept).
``ratings.csv``
    ``clip_id,annotator_id`` and, per label space, a column named after a class space
    (multilabel: classes joined by ``;``) or one numeric column per dimension; optional
    ``is_self``, ``secondary``, ``other_text``. When the corpus has exactly one
    categorical or multilabel space, its column may instead be called ``label``.
``annotators.csv`` (optional)
    ``annotator_id`` and any per-annotator columns (the demo records perception styles).

:func:`write` writes any :class:`~perser.corpus.model.Corpus` in this format, atomically.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from perser._io import atomic_dir, jsonable
from perser.corpus._release import read_csv  # the shared CSV reader (perser.cli.method_cmd imports it from here)
from perser.corpus.model import Corpus, LabelSpace, make_clips, make_ratings
from perser.corpus.validate import validate_corpus
from perser.errors import CorpusError, SkipLog

FILES = ("corpus.yaml", "clips.csv", "ratings.csv")
RESERVED_RATING_COLUMNS = {"clip_id", "annotator_id", "is_self", "secondary", "other_text"}
#: the keys ``corpus.yaml`` may hold (``licence`` is read as ``license``)
SPEC_KEYS = ("name", "label_spaces", "license", "licence", "citation", "description", "meta")
#: the generic name of the class column in ``ratings.csv`` (for a corpus with one class space)
LABEL_COLUMN = "label"


def detect(path: Path) -> bool:
    return path.is_dir() and all((path / f).is_file() for f in FILES)


def read_rows(path: Path, **kw) -> tuple[pd.DataFrame, np.ndarray]:
    """Read a CSV whose rows are checked later: returns the frame (blank lines dropped,
    fresh ``RangeIndex``) and the file line number of each row, for error messages."""
    df = read_csv(path, skip_blank_lines=False, **kw)
    blank = df.isna().all(axis=1).to_numpy()
    lines = np.flatnonzero(~blank) + 2
    if blank.any():
        df = df.loc[~blank].reset_index(drop=True)
    return df, lines


def _header(path: Path) -> list[str]:
    """Column names of a CSV file (its first line only)."""
    return [str(c) for c in read_csv(path, nrows=0).columns]


#: a number written with leading zeros (``0001``, ``-007``): an id, not a quantity
_ZERO_PADDED = r"^\s*[+-]?0\d"


def infer_column(col: pd.Series) -> pd.Series:
    """A column read as text, typed as pandas would infer it, except that numbers written with
    leading zeros (``"0001"``, a podcast or speaker id) stay text: pandas would read them as
    ``1`` and a corpus written by :func:`write` would come back changed."""
    present = col.dropna()
    if present.empty:
        return pd.to_numeric(col)
    text = present.astype("str")
    if text.str.match(_ZERO_PADDED).any():
        return col
    if pd.to_numeric(text, errors="coerce").notna().all():
        return pd.to_numeric(col)
    low = text.str.strip().str.lower()
    if low.isin(["true", "false"]).all() and len(present) == len(col):
        return (col.astype("str").str.strip().str.lower() == "true").rename(col.name)
    return col


def _infer_columns(df: pd.DataFrame, text: set[str]) -> pd.DataFrame:
    for c in df.columns:
        if c not in text:
            df[c] = infer_column(df[c])
    return df


def read_spec(path: Path, log: SkipLog | None = None) -> dict:
    """Read and check ``corpus.yaml``.

    ``licence`` is returned as ``license``; keys outside :data:`SPEC_KEYS` are counted
    in ``log`` (one warning naming them; emitted here when no ``log`` is given).
    """
    own = log is None
    log = SkipLog("table") if own else log
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
    if isinstance(spec["label_spaces"], dict):  # {emotion: {kind: categorical, classes: [...]}}: name -> the rest
        spaces = []
        for name, d in spec["label_spaces"].items():
            if not isinstance(d, dict):
                raise CorpusError(f"{f}: label space {name!r} must be a mapping (kind, classes or dimensions), got {d!r}")
            if d.get("name") not in (None, name):
                raise CorpusError(f"{f}: label space {name!r} is also named {d['name']!r}; keep one name")
            spaces.append({"name": name, **d})
        spec["label_spaces"] = spaces
    if not isinstance(spec["label_spaces"], list):
        raise CorpusError(f"{f}: label_spaces must be a list of mappings or a mapping from name to space, "
                          f"got {spec['label_spaces']!r}")
    for i, d in enumerate(spec["label_spaces"], start=1):
        if not isinstance(d, dict):
            raise CorpusError(f"{f}: label space {i} must be a mapping (name, kind, classes or dimensions), got {d!r}")
        if not d.get("name"):
            raise CorpusError(f"{f}: label space {i} has no name")
    if spec.get("meta") is not None and not isinstance(spec["meta"], dict):
        raise CorpusError(f"{f}: meta must be a mapping")
    if "licence" in spec:
        lic = spec.pop("licence")
        if spec.get("license") not in (None, lic):
            raise CorpusError(f"{f}: license {spec['license']!r} and licence {lic!r} differ; keep one")
        spec["license"] = lic
    unknown = [str(k) for k in spec if k not in SPEC_KEYS]
    for k in unknown:
        log.add(f"unknown key(s) in {f} ignored (known: {', '.join(SPEC_KEYS)})", repr(k))
    if own:
        log.emit(stacklevel=2)
    return spec


def read_spaces(path: Path, spec: dict) -> dict[str, LabelSpace]:
    """The label spaces declared in ``spec``; errors name ``corpus.yaml`` and the space."""
    f = path / "corpus.yaml"
    spaces: dict[str, LabelSpace] = {}
    for d in spec["label_spaces"]:
        name = str(d["name"])
        if name in spaces:
            raise CorpusError(f"{f}: label space {name!r} is declared twice")
        try:
            spaces[name] = LabelSpace.from_dict(d)
        except CorpusError as e:
            raise CorpusError(f"{f}: {e}") from None
        except (KeyError, TypeError, ValueError) as e:
            raise CorpusError(f"{f}: label space {name!r} is malformed ({e})") from None
    return spaces


def _bools(col: pd.Series, f: Path, lines: np.ndarray) -> pd.Series:
    """Parse a true/false column (``true``/``false``, ``1``/``0``, ``yes``/``no``; empty is false)."""
    low = col.astype("str").str.strip().str.lower().where(col.notna(), "")
    truthy, falsy = low.isin(["true", "1", "yes"]), low.isin(["false", "0", "no", ""])
    bad = ~(truthy | falsy)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise CorpusError(f"{f}:{lines[i]}: {col.name} value {col.iloc[i]!r} is not true/false")
    return pd.Series(truthy.to_numpy(dtype=bool), index=col.index, name=col.name)


def load(path: Path, check_audio: bool = True) -> Corpus:
    """Load a table-format corpus from ``path`` and validate it.

    ``check_audio`` (default True) checks that every clip's audio file exists.
    """
    path = Path(path)
    log = SkipLog("table")
    spec = read_spec(path, log)
    log.emit(stacklevel=2)
    spaces = read_spaces(path, spec)
    fc, fr, fa = path / "clips.csv", path / "ratings.csv", path / "annotators.csv"
    clip_text = {"clip_id", "path", "speaker", "split", "session", "gender"}
    clips, clip_lines = read_rows(fc, dtype={c: str for c in _header(fc)}, keep_default_na=False, na_values=[""])
    clips = _infer_columns(clips, clip_text)  # other columns: numbers, unless zero-padded ids
    for col in ("clip_id", "path", "speaker"):
        if col not in clips.columns:
            raise CorpusError(f"{fc}: missing column {col!r} (has {list(clips.columns)})")
    nopath = clips["path"].isna() | (clips["path"].astype("str").str.strip() == "")
    if nopath.any():
        i = int(np.flatnonzero(nopath.to_numpy())[0])
        raise CorpusError(f"{fc}:{clip_lines[i]}: clip {clips['clip_id'].iloc[i]!r} has no path")
    clips = make_clips(clips)
    clips["path"] = resolve_paths(clips["path"], path)

    dims = {d for s in spaces.values() if not s.is_class for d in s.dimensions}  # validated as numbers below
    rating_text = {"clip_id", "annotator_id", "is_self", "secondary", "other_text", LABEL_COLUMN,
                   *(s.name for s in spaces.values() if s.is_class)}
    ratings, rating_lines = read_rows(fr, dtype={c: str for c in _header(fr) if c not in dims},
                                      keep_default_na=False, na_values=[""])
    ratings = _infer_columns(ratings, rating_text | dims)
    for col in ("clip_id", "annotator_id"):
        if col not in ratings.columns:
            raise CorpusError(f"{fr}: missing column {col!r} (has {list(ratings.columns)})")
    if LABEL_COLUMN in ratings.columns and LABEL_COLUMN not in spaces:
        ratings = ratings.rename(columns={LABEL_COLUMN: _label_space(spaces, ratings, fr).name})
    for s in spaces.values():
        for c in s.columns:
            if c not in ratings.columns:
                raise CorpusError(
                    f"{fr}: label space {s.name!r} needs column {c!r} (has {list(ratings.columns)})"
                )
    ratings = make_ratings(ratings)
    if "is_self" in ratings.columns:
        ratings["is_self"] = _bools(ratings["is_self"], fr, rating_lines)
    annotators = None
    if fa.is_file():
        annotators, annotator_lines = read_rows(fa, dtype={c: str for c in _header(fa)}, keep_default_na=False,
                                                na_values=[""])  # an id "NA" stays "NA", as in ratings.csv
        annotators = _infer_columns(annotators, {"annotator_id"})
        if "annotator_id" not in annotators.columns:
            raise CorpusError(f"{fa}: missing column 'annotator_id'")
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
    validate_corpus(corpus, check_audio=check_audio,
                    sources={"clips": (fc, clip_lines), "ratings": (fr, rating_lines),
                             "annotators": (fa, annotator_lines) if annotators is not None else None})
    for s in spaces.values():  # validated as numeric: store every dimension as float
        if not s.is_class:
            for d in s.dimensions:
                corpus.ratings[d] = pd.to_numeric(corpus.ratings[d]).astype(np.float64)
    return corpus


def _label_space(spaces: dict[str, LabelSpace], ratings: pd.DataFrame, fr: Path) -> LabelSpace:
    """The one class space that a ``label`` column of ``ratings.csv`` holds; errors when not one."""
    class_spaces = [s for s in spaces.values() if s.is_class]
    if not class_spaces:
        raise CorpusError(
            f"{fr}: has a {LABEL_COLUMN!r} column, but corpus.yaml declares no categorical or multilabel space"
        )
    if len(class_spaces) > 1:
        names = ", ".join(repr(s.name) for s in class_spaces)
        raise CorpusError(
            f"{fr}: a {LABEL_COLUMN!r} column is ambiguous with several class spaces ({names}); "
            "name each class column after its space"
        )
    s = class_spaces[0]
    if s.name in ratings.columns:
        raise CorpusError(
            f"{fr}: has both a {LABEL_COLUMN!r} and a {s.name!r} column for label space {s.name!r}; keep one"
        )
    return s


def resolve_paths(paths: pd.Series, root: Path) -> pd.Series:
    """Relative audio paths made absolute against ``root`` (normalised); absolute ones kept."""
    base = str(Path(root).resolve())
    values = paths.to_numpy(dtype=object)
    out = values.copy()
    if os.name == "posix":
        # fast path: plain relative paths ("audio/x.wav") only need the base prefixed
        s = pd.Series(values, dtype="str")
        plain = ~(s.str.startswith("/") | s.str.contains(r"(?:^|/)\.\.?(?:/|$)|//", regex=True))
        plain_np = plain.to_numpy(dtype=bool)
        out[plain_np] = (base.rstrip("/") + "/" + s[plain_np]).to_numpy(dtype=object)
        rest = np.flatnonzero(~plain_np)
    else:
        rest = np.arange(len(values))
    for i in rest:
        p = values[i]
        out[i] = p if os.path.isabs(p) else os.path.normpath(os.path.join(base, p))
    return pd.Series(out, index=paths.index, name=paths.name, dtype=object)


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
    with atomic_dir(out) as tmp:
        spec = {
            "name": corpus.name,
            "label_spaces": [s.to_dict() for s in corpus.label_spaces.values()],
        }
        meta = {k: v for k, v in corpus.meta.items() if k not in ("license", "citation", "description")}
        for key in ("license", "citation", "description"):
            if corpus.meta.get(key):
                spec[key] = corpus.meta[key]
        if meta:
            spec["meta"] = jsonable(meta)
        (tmp / "corpus.yaml").write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True), encoding="utf-8")
        clips = corpus.clips.copy()
        if relative_paths:
            base = str(out.resolve())
            clips["path"] = [os.path.relpath(p, base) if p else p for p in clips["path"]]
        clips.reset_index().to_csv(tmp / "clips.csv", index=False)
        corpus.ratings.to_csv(tmp / "ratings.csv", index=False)
        if corpus.annotators is not None:
            corpus.annotators.reset_index().to_csv(tmp / "annotators.csv", index=False)
    return out
