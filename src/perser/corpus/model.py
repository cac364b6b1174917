"""The corpus data model: clips, per-annotator ratings and label spaces.

A :class:`Corpus` keeps **every** annotator's rating. Its two tables are

``clips``
    indexed by ``clip_id`` (string); columns ``path`` (absolute audio path, string),
    ``speaker`` (string) and optionally ``split``, ``session``, ``fold``, ``duration``
    (seconds) and ``gender``.

``ratings``
    long format, one row per (clip, annotator) and task; columns ``clip_id``,
    ``annotator_id`` (strings), then the rating itself:

    * a categorical or multilabel space stores its value in a column named after the
      space (``space.column``); multilabel values are classes joined by ``";"``;
    * a dimensional space stores one float column per dimension, named after it.

    A row may carry values for several spaces (NaN where absent). Optional extra
    columns: ``is_self`` (a self-evaluation, e.g. IEMOCAP ``F1``/``M1``), ``other_text``
    (free text of an "Other" answer), ``secondary`` (secondary classes, ``;``-joined).

:meth:`Corpus.validate` and :meth:`Corpus.describe` are a deliberate facade over
:mod:`perser.corpus.validate` and :mod:`perser.corpus.stats`: those modules build on this
one (they import :class:`Corpus` at the top), so the two methods import them when called,
and this module imports nothing of the corpus package at load time.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Literal, Sequence

import numpy as np
import pandas as pd

from perser.errors import CorpusError

Kind = Literal["categorical", "multilabel", "dimensional"]
KINDS: tuple[str, ...] = ("categorical", "multilabel", "dimensional")
MULTILABEL_SEP = ";"


@dataclass(frozen=True)
class LabelSpace:
    """What a rating is.

    Parameters
    ----------
    name:
        Name of the space; for class spaces also the name of its ratings column.
    kind:
        ``"categorical"`` (one of ``classes``), ``"multilabel"`` (a subset of
        ``classes``) or ``"dimensional"`` (one number per dimension).
    classes:
        Class names, for categorical and multilabel spaces.
    dimensions:
        Dimension names (also the ratings columns), for dimensional spaces.
    scale:
        Native ``(low, high)`` scale of every dimension, e.g. ``(1, 5)``.
    """

    name: str
    kind: Kind
    classes: tuple[str, ...] = ()
    dimensions: tuple[str, ...] = ()
    scale: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", tuple(self.classes))
        object.__setattr__(self, "dimensions", tuple(self.dimensions))
        if self.scale is not None:
            try:
                lo, hi = (float(x) for x in self.scale)
            except (TypeError, ValueError):
                raise CorpusError(
                    f"label space {self.name!r}: scale must be two numbers (low, high), got {self.scale!r}"
                ) from None
            object.__setattr__(self, "scale", (lo, hi))
        if self.kind not in KINDS:
            raise CorpusError(f"label space {self.name!r}: unknown kind {self.kind!r}; expected one of {KINDS}")
        if not self.name:
            raise CorpusError("a label space needs a non-empty name")
        if self.kind in ("categorical", "multilabel"):
            if len(self.classes) < 2:
                raise CorpusError(f"label space {self.name!r}: a {self.kind} space needs at least 2 classes")
            if len(set(self.classes)) != len(self.classes):
                raise CorpusError(f"label space {self.name!r}: duplicate classes in {list(self.classes)}")
            if self.kind == "multilabel" and any(MULTILABEL_SEP in c for c in self.classes):
                raise CorpusError(f"label space {self.name!r}: class names may not contain {MULTILABEL_SEP!r}")
            if self.dimensions:
                raise CorpusError(f"label space {self.name!r}: a {self.kind} space has classes, not dimensions")
        else:
            if not self.dimensions:
                raise CorpusError(f"label space {self.name!r}: a dimensional space needs dimensions")
            if self.scale is None or not self.scale[0] < self.scale[1]:
                raise CorpusError(f"label space {self.name!r}: a dimensional space needs a scale (low, high), got {self.scale}")
            if self.classes:
                raise CorpusError(f"label space {self.name!r}: a dimensional space has dimensions, not classes")

    # ------------------------------------------------------------------ columns
    @property
    def is_class(self) -> bool:
        """True for categorical and multilabel spaces."""
        return self.kind != "dimensional"

    @property
    def columns(self) -> list[str]:
        """Ratings-table columns holding this space's values."""
        return [self.name] if self.is_class else list(self.dimensions)

    @property
    def n_outputs(self) -> int:
        """Number of model outputs: classes, or dimensions."""
        return len(self.classes) if self.is_class else len(self.dimensions)

    # ----------------------------------------------------------- encode/decode
    def encode(self, ratings: pd.DataFrame) -> np.ndarray:
        """Encode the rows of ``ratings`` as model targets.

        Returns ``int64 [n]`` class indices (categorical), ``float32 [n, C]`` 0/1
        indicators (multilabel) or ``float32 [n, D]`` native-scale values (dimensional).
        Raises :class:`CorpusError` naming the first unknown class or missing value.
        """
        if self.kind == "dimensional":
            vals = ratings[list(self.dimensions)].to_numpy(dtype=np.float32)
            if np.isnan(vals).any():
                r = int(np.argwhere(np.isnan(vals))[0, 0])
                raise CorpusError(f"space {self.name!r}: missing dimensional value in rating row {_row(ratings, r)!r}")
            return vals
        col = ratings[self.name]
        index = {c: i for i, c in enumerate(self.classes)}
        if self.kind == "categorical":
            codes = col.map(index)
            bad = codes.isna()
            if bad.any():
                i = bad.to_numpy().nonzero()[0][0]
                raise CorpusError(
                    f"space {self.name!r}: label {col.iloc[i]!r} (rating row {_row(ratings, i)!r}) "
                    f"is not one of {list(self.classes)}"
                )
            return codes.to_numpy(dtype=np.int64)
        out = np.zeros((len(col), len(self.classes)), dtype=np.float32)
        present = col.notna().to_numpy()
        parts = col[present].astype("str").str.split(MULTILABEL_SEP, regex=False)
        rows = np.repeat(np.flatnonzero(present), parts.str.len().to_numpy(dtype=np.int64))
        values = parts.explode().astype("str").str.strip().to_numpy(dtype=object)
        keep = values != ""
        rows, values = rows[keep], values[keep]
        codes = pd.Index(list(self.classes), dtype=object).get_indexer(values)
        if (codes < 0).any():
            j = int(np.flatnonzero(codes < 0)[0])
            raise CorpusError(
                f"space {self.name!r}: label {values[j]!r} (rating row {_row(ratings, int(rows[j]))!r}) "
                f"is not one of {list(self.classes)}"
            )
        out[rows, codes] = 1.0
        return out

    def decode(self, y: np.ndarray) -> list:
        """Inverse of :meth:`encode` for class spaces (indices or indicator rows)."""
        if self.kind == "categorical":
            return [self.classes[int(i)] for i in np.asarray(y).reshape(-1)]
        if self.kind == "multilabel":
            return [MULTILABEL_SEP.join(c for c, on in zip(self.classes, row) if on) for row in np.asarray(y)]
        return np.asarray(y).tolist()

    # ------------------------------------------------------------- serialising
    def to_dict(self) -> dict:
        d: dict = {"name": self.name, "kind": self.kind}
        if self.is_class:
            d["classes"] = list(self.classes)
        else:
            d["dimensions"] = list(self.dimensions)
            d["scale"] = list(self.scale)  # type: ignore[arg-type]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "LabelSpace":
        unknown = set(d) - {"name", "kind", "classes", "dimensions", "scale"}
        if unknown:
            raise CorpusError(f"label space {d.get('name')!r}: unknown keys {sorted(unknown)}")
        scale = d.get("scale")
        return cls(
            name=str(d.get("name", "")),
            kind=d.get("kind"),  # type: ignore[arg-type]
            classes=tuple(str(c) for c in d.get("classes", ())),
            dimensions=tuple(str(c) for c in d.get("dimensions", ())),
            scale=tuple(scale) if scale is not None else None,  # type: ignore[arg-type]
        )


def _row(df: pd.DataFrame, i: int):
    """Index label of positional row ``i`` as a plain Python value (for messages)."""
    label = df.index[i]
    return label.item() if isinstance(label, np.generic) else label


def split_multilabel(value) -> list[str]:
    """Split a ``;``-joined multilabel value into classes (NaN/empty gives ``[]``)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    return [s.strip() for s in str(value).split(MULTILABEL_SEP) if s.strip()]


CLIP_COLUMNS = ("path", "speaker")
OPTIONAL_CLIP_COLUMNS = ("split", "session", "fold", "duration", "gender")


@dataclass
class Corpus:
    """Clips, every annotator's ratings, and the label spaces they are given in.

    Build one with :func:`perser.load_corpus` or directly from two data frames
    (see the module docstring for their columns); :meth:`validate` checks them.
    """

    name: str
    clips: pd.DataFrame
    ratings: pd.DataFrame
    label_spaces: dict[str, LabelSpace]
    annotators: pd.DataFrame | None = None
    meta: dict = field(default_factory=dict)
    root: Path | None = None

    # --------------------------------------------------------------- accessors
    def space(self, name: str | None = None, kind: str | None = None) -> LabelSpace:
        """The label space called ``name``; or the only one (of ``kind``) when unnamed."""
        if name is not None:
            try:
                return self.label_spaces[name]
            except KeyError:
                raise CorpusError(
                    f"corpus {self.name!r} has no label space {name!r}; it has {sorted(self.label_spaces)}"
                ) from None
        cands = [s for s in self.label_spaces.values() if kind is None or s.kind == kind]
        if len(cands) != 1:
            raise CorpusError(
                f"corpus {self.name!r}: name one label space of {sorted(self.label_spaces)}"
                + (f" (kind {kind})" if kind else "")
            )
        return cands[0]

    def ratings_in(self, space: LabelSpace | str, include_self: bool = False) -> pd.DataFrame:
        """Rating rows that carry a value in ``space`` (self-evaluations excluded by default)."""
        sp = self.space(space) if isinstance(space, str) else space
        r = self.ratings
        mask = r[sp.columns].notna().all(axis=1)
        if sp.kind == "multilabel":
            mask &= r[sp.name].astype(str).str.strip() != ""
        if not include_self and "is_self" in r.columns:
            mask &= ~r["is_self"].fillna(False).astype(bool)
        return r.loc[mask, ["clip_id", "annotator_id", *sp.columns]]

    @property
    def annotator_ids(self) -> list[str]:
        return sorted(self.ratings["annotator_id"].unique().tolist())

    def subset(self, clips: Iterable[str] | None = None, annotators: Iterable[str] | None = None) -> "Corpus":
        """A corpus restricted to some clips and/or annotators (tables are copied)."""
        c, r = self.clips, self.ratings
        if clips is not None:
            keep = pd.Index(list(clips))
            c = c.loc[c.index.intersection(keep, sort=False)]
            r = r[r["clip_id"].isin(keep)]
        if annotators is not None:
            r = r[r["annotator_id"].isin(set(annotators))]
        return replace(self, clips=c.copy(), ratings=r.reset_index(drop=True))

    def validate(self, check_audio: bool = False) -> "Corpus":
        """Check the tables; raise :class:`CorpusError` naming the first culprit."""
        from perser.corpus.validate import validate_corpus

        validate_corpus(self, check_audio=check_audio)
        return self

    def describe(self) -> dict:
        """Shape and agreement figures (see :func:`perser.corpus.stats.describe`)."""
        from perser.corpus.stats import describe

        return describe(self)

    def __repr__(self) -> str:
        spaces = ", ".join(f"{s.name}:{s.kind}" for s in self.label_spaces.values())
        return (
            f"Corpus({self.name!r}, clips={len(self.clips)}, ratings={len(self.ratings)}, "
            f"annotators={self.ratings['annotator_id'].nunique()}, spaces=[{spaces}])"
        )


def make_clips(records: Sequence[dict] | pd.DataFrame) -> pd.DataFrame:
    """Build a clips table with a string ``clip_id`` index and string columns."""
    df = pd.DataFrame(records)
    if "clip_id" in df.columns:
        df = df.set_index("clip_id")
    df.index = df.index.astype(str)
    df.index.name = "clip_id"
    for col in ("path", "speaker", "split", "session", "gender"):
        if col in df.columns:
            present = df[col].notna().to_numpy()
            values = np.full(len(df), None, dtype=object)
            values[present] = df[col][present].astype("str").to_numpy(dtype=object)
            df[col] = pd.Series(values, index=df.index, dtype=object)
    return df


def make_ratings(records: Sequence[dict] | pd.DataFrame) -> pd.DataFrame:
    """Build a ratings table with string ``clip_id``/``annotator_id`` columns."""
    df = pd.DataFrame(records).reset_index(drop=True)
    for col in ("clip_id", "annotator_id"):
        if col not in df.columns:
            raise CorpusError(f"ratings table lacks column {col!r}")
        df[col] = df[col].astype(str)
    return df
