"""What a trained model takes from its user: features of clips, and one listener's labels.

The command line (``perser enroll`` / ``perser predict``) and the HTTP service both turn
their input into a trained model's arguments through these functions:

- :func:`audio_features` — audio files -> ``X`` made the way the model's training
  features were made (its recorded ``feature_spec``: extractor and settings);
- :func:`clip_features` — clip ids (with a feature file or a corpus) or audio paths -> ``X``;
- :func:`encode_ratings` — one listener's labels (one per clip) -> the model's targets ``y``;
- :func:`read_ratings` — a ratings file (CSV or JSON) -> :class:`ListenerRatings`;
- :func:`read_clips` — a clips file (CSV: ``clip_id`` and/or ``path``, ``transcript``) -> :class:`ClipList`.

A model may be trained on several feature sets side by side (``features: [ssl:DIR,
text:DIR]``, recorded in its ``feature_spec["sets"]``); each set is made again the same way
and concatenated per clip. Text features (``text:DIR``) need each clip's transcript: a
``transcript`` column of the ratings or clips file, or the corpus's own transcripts; a clip
without one is an error naming it.

Errors name the culprit: the file and line, or the caller's name for the clip.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from perser.corpus.model import MULTILABEL_SEP, LabelSpace
from perser.errors import ConfigError, CorpusError, FeatureError

__all__ = ["ClipList", "ListenerRatings", "audio_features", "clip_features", "encode_ratings", "feature_sets",
           "needs_transcripts", "read_clips", "read_ratings"]


# ------------------------------------------------------------------ features
def _feature_spec(model_or_spec: Any) -> dict:
    if isinstance(model_or_spec, Mapping):
        return dict(model_or_spec)
    return dict(getattr(model_or_spec, "feature_spec", None) or {})


def feature_sets(model_or_spec: Any) -> list[dict]:
    """The feature sets a model was trained on, each ``{"spec": ..., "settings": {...}}``:
    the sets of a list (``feature_spec["sets"]``), or the one set."""
    fspec = _feature_spec(model_or_spec)
    if fspec.get("sets"):
        return [{"spec": s.get("spec"), "settings": dict(s.get("settings") or {})} for s in fspec["sets"]]
    return [{"spec": fspec.get("spec"), "settings": dict(fspec.get("settings") or {})}]


def needs_transcripts(model_or_spec: Any) -> bool:
    """Whether the model's features include text features (``text:DIR``) of transcripts."""
    return any(str(s["spec"] or "").startswith("text:") for s in feature_sets(model_or_spec))


def audio_features(
    model_or_spec: Any,
    paths: Sequence[str | Path],
    *,
    cache_dir: str | Path | None = None,
    progress: bool = False,
    names: Sequence[str] | None = None,
    max_duration: float | None = None,
    hint: str = "pass features of these clips",
    transcripts: Sequence[str | None] | None = None,
) -> np.ndarray:
    """Features of audio files, made as the model's training features were made.

    Parameters
    ----------
    model_or_spec:
        A trained model (its ``feature_spec``) or that dict: ``spec`` (extractor spec)
        and optional ``settings`` (the extractor settings used at training: same numbers,
        same store key).
    paths:
        Audio files; the rows of the result follow this order.
    names:
        What to call each file in an error (default: its path). Where a name differs from
        the path, the path is replaced by ``audio`` in the message (a temporary file's
        path means nothing to the sender).
    max_duration:
        Files longer than this many seconds are refused before extraction.
    transcripts:
        Each file's transcript (same order), for a model trained on text features.
    hint:
        The end of the error for a model whose features came from a file of unknown
        origin (which cannot featurise audio).

    Raises
    ------
    ConfigError
        The model records no extractor; or it uses text features and a clip has no transcript.
    FeatureError
        A file cannot be read or featurised; the message names it.
    """
    from perser.features import extract

    fspec = _feature_spec(model_or_spec)
    spec = fspec.get("spec")
    if not spec or str(spec).startswith("file:"):
        raise ConfigError(f"this model was trained on precomputed features of unknown origin; {hint}")
    sets = feature_sets(fspec)
    paths = [str(p) for p in paths]
    names = [str(n) for n in names] if names is not None else paths

    def culprit(msg: str, path: str, name: str) -> str:
        return msg if name == path else f"{name}: {msg.replace(path, 'audio')}"

    if max_duration is not None:
        from perser.audio import read_audio

        for p, n in zip(paths, names):
            try:  # unreadable, empty, silent, NaN, too long: refused here, naming the clip
                read_audio(p, max_duration=max_duration)
            except FeatureError as e:
                raise FeatureError(culprit(str(e), p, n)) from None
    if transcripts is not None and len(transcripts) != len(paths):
        raise ValueError(f"{len(paths)} files but {len(transcripts)} transcripts")
    parts = []
    for fs in sets:
        if str(fs["spec"]).startswith("text:"):
            parts.append(_text_features(fs, paths, names, transcripts, cache_dir, progress))
            continue
        feats = extract(paths, fs["spec"], cache_dir=cache_dir, shard=(0, 1), progress=progress, **fs["settings"])
        for p, n in zip(paths, names):
            if p in feats.failures:
                msg = str(feats.failures[p])
                raise FeatureError(f"no features for {n}: {msg}" if n == p else culprit(msg, p, n))
        parts.append(feats)
    if len(parts) == 1:
        return parts[0].select(paths)
    from perser.features.text import combine

    return combine(parts, last_layer=True).select(paths)  # as at training (perser.methods.pipeline)


def _text_features(fs: dict, paths: list[str], names: list[str], transcripts, cache_dir, progress):
    """Text features (``fs``: a ``text:DIR`` set) of the files' transcripts, keyed by path."""
    from perser.features.text import extract_text

    for i, n in enumerate(names):
        t = None if transcripts is None else transcripts[i]
        if t is None or (isinstance(t, float) and np.isnan(t)) or not str(t).strip():
            raise ConfigError(
                f"{n}: no transcript; this model uses text features ({fs['spec']}), so every clip needs its "
                "transcript (a 'transcript' column in the ratings or clips CSV, 'transcript' in JSON ratings, "
                "or --corpus with the corpus's transcripts)")
    return extract_text(None, fs["spec"], cache_dir=cache_dir, progress=progress,
                        transcripts={p: str(t).strip() for p, t in zip(paths, transcripts)}, **fs["settings"])


def clip_features(
    model_or_spec: Any,
    clip_ids: Sequence[str] | None = None,
    paths: Sequence[str] | None = None,
    *,
    features: str | Path | None = None,
    corpus: str | Path | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = False,
    transcripts: Sequence[str | None] | None = None,
) -> np.ndarray:
    """Features of clips named by id or by audio file, in the given order.

    Clip ids are looked up in the feature file ``features`` (``.npz``/``.parquet``/``.csv``,
    see :meth:`perser.features.Features.load`) or in ``corpus`` (their audio featurised with
    the model's feature spec); clips without ids are looked up by their paths. Without
    either, the clips' ``paths`` are featurised; where there are no paths, the clip ids
    must themselves be audio files. ``transcripts`` (same order) feed a model's text
    features; with ``corpus`` and no ``transcripts`` the corpus's own transcripts are used.
    """
    from perser.features import Features

    if (features is not None or corpus is not None) and clip_ids is None:
        clip_ids = paths
    if features is not None:
        feats = Features.load(features)
        pos = {c: i for i, c in enumerate(feats.clip_ids.tolist())}
        missing = [c for c in clip_ids if c not in pos]
        if missing:
            raise FeatureError(f"{features}: no features for clip {missing[0]!r}"
                               + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
        return feats.X[np.array([pos[c] for c in clip_ids], dtype=np.int64)]
    if corpus is not None:
        from perser.corpus import load_corpus

        c = load_corpus(corpus)
        unknown = [i for i in clip_ids if i not in c.clips.index]
        if unknown:
            raise ConfigError(f"corpus {c.name!r} has no clip {unknown[0]!r}")
        if transcripts is None and needs_transcripts(model_or_spec):
            from perser.features.text import read_transcripts

            known = read_transcripts(c)
            transcripts = [known.get(str(i)) for i in clip_ids]
        paths_c = [str(c.clips.loc[i, "path"]) for i in clip_ids]
        return audio_features(model_or_spec, paths_c, cache_dir=cache_dir, progress=progress,
                              hint="pass --features FILE with features of these clips", transcripts=transcripts,
                              names=[f"clip {i!r}" if p != i else p for i, p in zip(clip_ids, paths_c)])
    items = list(paths) if paths is not None else list(clip_ids or [])
    missing = [i for i in items if not Path(i).is_file()]
    if missing:
        raise ConfigError(f"{missing[0]!r} is not an audio file; for clip ids pass --features FILE or --corpus PATH")
    return audio_features(model_or_spec, items, cache_dir=cache_dir, progress=progress,
                          hint="pass --features FILE with features of these clips", transcripts=transcripts)


# -------------------------------------------------------------------- labels
def encode_ratings(labels: Sequence[Any], space: LabelSpace, names: Sequence[str] | None = None) -> np.ndarray:
    """One listener's labels as the model's targets (see :meth:`LabelSpace.encode`).

    ``labels[i]`` is, by the space's kind: *categorical*, one class name; *multilabel*,
    a list of class names (may be empty) or one string of classes joined by ``;``;
    *dimensional*, a mapping from every dimension to a number on the space's scale
    (numbers given as text are read). Errors name ``names[i]`` (default ``rating i``).
    """
    names = [str(n) for n in names] if names is not None else [f"rating {i}" for i in range(len(labels))]
    if len(names) != len(labels):
        raise ValueError(f"{len(labels)} labels but {len(names)} names")
    if not labels:
        raise ConfigError("no ratings")
    want = list(space.classes) if space.is_class else list(space.dimensions)
    rows: list[Any] = []
    for v, name in zip(labels, names):
        if space.kind == "categorical":
            if not isinstance(v, str):
                raise ConfigError(f"{name}: space {space.name!r} is categorical: a label is one class, not {type(v).__name__}")
            rows.append(v)
        elif space.kind == "multilabel":
            if isinstance(v, str):
                rows.append(v)
                continue
            if not isinstance(v, (list, tuple)) or not all(isinstance(c, str) for c in v):
                raise ConfigError(f"{name}: space {space.name!r} is multilabel: a label is a list of classes")
            bad = [c for c in v if MULTILABEL_SEP in c]
            if bad:
                raise ConfigError(f"{name}: class {bad[0]!r} contains {MULTILABEL_SEP!r}")
            rows.append(MULTILABEL_SEP.join(v))
        else:
            if not isinstance(v, Mapping):
                raise ConfigError(f"{name}: space {space.name!r} is dimensional: give a value per dimension {want}")
            if set(v) != set(want):
                extra, missing = sorted(set(v) - set(want)), [d for d in want if d not in v]
                raise ConfigError(f"{name}: needs exactly the dimensions {want}"
                                  + (f"; missing {missing}" if missing else "") + (f"; unknown {extra}" if extra else ""))
            lo, hi = space.scale
            row = []
            for d in want:
                try:
                    x = float(v[d])
                except (TypeError, ValueError):
                    x = float("nan")
                if not np.isfinite(x):
                    raise CorpusError(f"{name}: {d} value {v[d]!r} is not a number")
                if x < lo or x > hi:
                    raise CorpusError(f"{name}: {d} value {x} is outside the scale {space.scale}")
                row.append(x)
            rows.append(row)
    index = pd.Index(names)
    if space.is_class:
        df = pd.DataFrame({space.name: pd.Series(rows, index=index, dtype=object)})
    else:
        df = pd.DataFrame(np.asarray(rows, dtype=np.float32), index=index, columns=want)
    return space.encode(df)


@dataclass
class ListenerRatings:
    """One listener's rated clips read from a file: clip ids and/or audio paths, and targets."""

    clip_ids: list[str] | None
    paths: list[str] | None
    y: np.ndarray
    #: each clip's transcript (a ``transcript`` column / field), for models on text features
    transcripts: list[str | None] | None = None

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class ClipList:
    """Clips to predict, read from a file: clip ids and/or audio paths, and transcripts."""

    clip_ids: list[str] | None
    paths: list[str] | None
    transcripts: list[str | None] | None = None
    #: the paths as the file wrote them (``paths`` are resolved against the file's folder)
    raw_paths: list[str] | None = None

    @property
    def names(self) -> list[str]:
        """What to call each clip in the output: its id, else its path as written."""
        return list(self.clip_ids) if self.clip_ids is not None else list(self.raw_paths or self.paths or [])

    def __len__(self) -> int:
        return len(self.clip_ids if self.clip_ids is not None else self.paths or [])


def read_clips(file: str | Path) -> ClipList:
    """A CSV of clips to predict: ``clip_id`` and/or ``path`` (relative to the file's folder),
    optional ``transcript``. Errors name the file."""
    from perser.corpus.table import read_csv

    file = Path(file)
    if not file.is_file():
        raise ConfigError(f"{file}: no such clips file")
    df = read_csv(file, dtype=str, keep_default_na=False)
    if "clip_id" not in df.columns and "path" not in df.columns:
        raise ConfigError(f"{file}: needs a 'clip_id' or 'path' column (has {list(df.columns)})")
    if df.empty:
        raise ConfigError(f"{file}: no clips")
    ids = df["clip_id"].tolist() if "clip_id" in df.columns else None
    raw = df["path"].tolist() if "path" in df.columns else None
    paths = [p if Path(p).is_absolute() else str((file.parent / p).resolve()) for p in raw] if raw else None
    tr = _transcripts(df)
    return ClipList(ids, paths, tr, raw)


def _transcripts(df: pd.DataFrame) -> list[str | None] | None:
    if "transcript" not in df.columns:
        return None
    return [t if str(t).strip() else None for t in df["transcript"].tolist()]


def read_ratings(file: str | Path, space: LabelSpace) -> ListenerRatings:
    """A listener's ratings file as encoded targets.

    *CSV*: a ``clip_id`` and/or ``path`` column and the label column(s): the space's name
    (or ``label``) for classes (multilabel: classes joined by ``;``), one column per
    dimension for a dimensional space; optional ``transcript``. *JSON*: a list of objects
    with ``clip_id`` and/or ``path``, and ``label`` (a class, or a list of classes) or
    ``values`` (dimension -> number); optional ``transcript``. Relative paths are read relative to the file's folder. Errors name the file
    and its line (CSV) or record (JSON).
    """
    file = Path(file)
    if not file.is_file():
        raise ConfigError(f"{file}: no such ratings file")
    if file.suffix.lower() == ".json":
        clip_ids, paths, labels, names, transcripts = _ratings_json(file, space)
    else:
        clip_ids, paths, labels, names, transcripts = _ratings_csv(file, space)
    if not labels:
        raise ConfigError(f"{file}: no ratings")
    if paths is not None:
        paths = [p if Path(p).is_absolute() else str((file.parent / p).resolve()) for p in paths]
    return ListenerRatings(clip_ids, paths, encode_ratings(labels, space, names), transcripts)


def _ratings_csv(file: Path, space: LabelSpace):
    from perser.corpus.table import read_csv

    df = read_csv(file, dtype=str, keep_default_na=False)
    if "clip_id" not in df.columns and "path" not in df.columns:
        raise ConfigError(f"{file}: needs a 'clip_id' or 'path' column (has {list(df.columns)})")
    if space.is_class and space.name not in df.columns and "label" in df.columns:
        df = df.rename(columns={"label": space.name})
    missing = [c for c in space.columns if c not in df.columns]
    if missing:
        raise ConfigError(f"{file}: missing label column(s) {missing} for space {space.name!r}")
    if space.is_class:
        labels = df[space.name].tolist()
    else:
        labels = [dict(zip(space.dimensions, row)) for row in df[list(space.dimensions)].itertuples(index=False)]
    names = [f"{file}:{i + 2}" for i in range(len(df))]
    clip_ids = df["clip_id"].tolist() if "clip_id" in df.columns else None
    paths = df["path"].tolist() if "path" in df.columns else None
    return clip_ids, paths, labels, names, _transcripts(df)


def _ratings_json(file: Path, space: LabelSpace):
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{file}: malformed JSON: {e}") from None
    if isinstance(doc, dict) and "ratings" in doc:
        doc = doc["ratings"]
    if not isinstance(doc, list):
        raise ConfigError(f"{file}: expected a list of ratings (objects with clip_id or path, and label or values)")
    field, other = ("label", "values") if space.is_class else ("values", "label")
    clip_ids, paths, labels, names, transcripts = [], [], [], [], []
    for i, r in enumerate(doc):
        name = f"{file}: ratings[{i}]"
        if not isinstance(r, dict):
            raise ConfigError(f"{name}: expected an object")
        if r.get(other) is not None:
            raise ConfigError(f"{name}: space {space.name!r} is {space.kind}: give '{field}', not '{other}'")
        if r.get(field) is None:
            raise ConfigError(f"{name}: missing '{field}'")
        if r.get("clip_id") is None and r.get("path") is None:
            raise ConfigError(f"{name}: needs 'clip_id' or 'path'")
        clip_ids.append(r.get("clip_id"))
        paths.append(r.get("path"))
        labels.append(r[field])
        names.append(name)
        t = r.get("transcript")
        if t is not None and not isinstance(t, str):
            raise ConfigError(f"{name}: 'transcript' must be text")
        transcripts.append(t if t is not None and t.strip() else None)
    ids = None if any(c is None for c in clip_ids) else [str(c) for c in clip_ids]
    ps = None if any(p is None for p in paths) else [str(p) for p in paths]
    if ids is None and ps is None:
        raise ConfigError(f"{file}: give every rating a 'clip_id', or every rating a 'path'")
    return ids, ps, labels, names, (transcripts if any(t is not None for t in transcripts) else None)
