"""Extracting features for a corpus (or files) through the feature store."""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from perser.errors import ConfigError, FeatureError, SkipLog
from perser.features.base import Extractor, Job
from perser.features.store import FeatureStore

__all__ = ["Features", "extract", "make_extractor", "parse_shard"]


# --------------------------------------------------------------------- result
@dataclass
class Features:
    """Features of clips, aligned to clip ids.

    Attributes
    ----------
    X : numpy.ndarray
        ``float32 [n_clips, d]`` (openSMILE) or ``[n_clips, layers, dim]`` (SSL).
    clip_ids : numpy.ndarray
        Clip ids (str) of the rows of ``X``, in the input's order; failed clips left out.
    spec : str
        The extractor spec, e.g. ``"egemaps"`` or ``"ssl:/models/wavlm-base-plus"``.
    failures : dict
        clip id -> error message, for every clip left out.
    feature_names : list of str, optional
        Column names of 2-D features.
    key : str
        The extractor's store key (folder under the store root).
    cache_dir : pathlib.Path, optional
        The store's root.
    n_computed, n_reused : int
        Clips whose features this call computed, and clips found in the store.
    """

    X: np.ndarray
    clip_ids: np.ndarray
    spec: str
    failures: dict[str, str] = field(default_factory=dict)
    feature_names: list[str] | None = None
    key: str = ""
    cache_dir: Path | None = None
    n_computed: int = 0
    n_reused: int = 0
    seconds: float = 0.0

    def __len__(self) -> int:
        return len(self.clip_ids)

    def __repr__(self) -> str:
        return (
            f"Features({self.spec!r}, X={tuple(self.X.shape)}, computed={self.n_computed}, "
            f"reused={self.n_reused}, failed={len(self.failures)})"
        )

    @property
    def location(self) -> Path | None:
        """Folder of this extractor's entries in the store."""
        return None if self.cache_dir is None else self.cache_dir / self.key

    def frame(self) -> pd.DataFrame:
        """2-D features as a DataFrame indexed by ``clip_id`` with feature names as columns."""
        if self.X.ndim != 2:
            raise FeatureError(
                f"{self.spec}: features are {self.X.ndim - 1}-D per clip ({tuple(self.X.shape[1:])}); "
                "frame() needs one vector per clip (select a layer, e.g. X[:, -1])"
            )
        cols = self.feature_names if self.feature_names and len(self.feature_names) == self.X.shape[1] else None
        if cols is None:
            cols = [f"f{i}" for i in range(self.X.shape[1])]
        return pd.DataFrame(self.X, index=pd.Index(self.clip_ids, dtype=str, name="clip_id"), columns=cols)

    def select(self, clip_ids) -> np.ndarray:
        """Rows of ``X`` for ``clip_ids``, in that order; :class:`KeyError` names a missing clip."""
        pos = {c: i for i, c in enumerate(self.clip_ids.tolist())}
        rows = []
        for c in clip_ids:
            try:
                rows.append(pos[str(c)])
            except KeyError:
                why = f" (failed: {self.failures[str(c)]})" if str(c) in self.failures else ""
                raise KeyError(f"clip {c!r} has no {self.spec} features{why}") from None
        return self.X[np.asarray(rows, dtype=np.int64)]

    def save(self, path: str | os.PathLike) -> Path:
        """Write to ``.npz`` (any shape), ``.parquet`` or ``.csv`` (2-D), atomically."""
        from perser._io import atomic_file

        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in self.FILE_SUFFIXES:
            raise ConfigError(f"{path}: unknown feature file format {suffix!r}; use .npz, .parquet or .csv")
        with atomic_file(path) as tmp:
            if suffix == ".npz":
                with open(tmp, "wb") as f:
                    np.savez(
                        f, X=self.X, clip_ids=self.clip_ids.astype(str), spec=np.array(self.spec),
                        feature_names=np.array(self.feature_names or [], dtype=str),
                    )
            elif suffix == ".parquet":
                self.frame().to_parquet(tmp)
            else:
                self.frame().to_csv(tmp)
        return path

    #: suffixes of the feature files :meth:`save` writes and :meth:`load` reads
    FILE_SUFFIXES = (".npz", ".parquet", ".csv")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Features":
        """Read a feature file: the twin of :meth:`save`.

        ``.npz`` holds arrays ``X`` and ``clip_ids`` (and ``spec``, ``feature_names`` when
        :meth:`save` wrote it); ``.parquet`` and ``.csv`` hold a table indexed by, or with a
        column, ``clip_id``. Clip ids are read as text (``"0001"`` stays ``"0001"``, ``"NA"``
        is an id). A file not written by :meth:`save` gets the spec ``file:<name>``.
        Errors (:class:`~perser.errors.FeatureError`) name the file, and the line of an
        empty clip id.
        """
        path = Path(path)
        if not path.is_file():
            raise FeatureError(f"{path}: no such feature file")
        suffix = path.suffix.lower()
        if suffix not in cls.FILE_SUFFIXES:
            raise FeatureError(f"{path}: unknown feature file format {suffix!r}; use .npz, .parquet or .csv")
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                if "X" not in z or "clip_ids" not in z:
                    raise FeatureError(f"{path}: a feature .npz needs arrays 'X' and 'clip_ids' (has {sorted(z.files)})")
                names = z["feature_names"].tolist() if "feature_names" in z else []
                return cls(X=z["X"].astype(np.float32, copy=False), clip_ids=z["clip_ids"].astype(str).astype(object),
                           spec=str(z["spec"]) if "spec" in z else f"file:{path.name}", feature_names=names or None)
        if suffix == ".parquet":
            df = pd.read_parquet(path)
        else:  # clip ids are text ("0001" must not come back as 1 and miss the corpus's clip; "NA" is an id)
            df = pd.read_csv(path, dtype={"clip_id": str}, keep_default_na=False, na_values=[""])
        if "clip_id" in df.columns:
            if df["clip_id"].isna().any():
                raise FeatureError(f"{path}:{int(df['clip_id'].isna().to_numpy().nonzero()[0][0]) + 2}: empty clip_id")
            df = df.set_index("clip_id")
        elif df.index.name != "clip_id":
            raise FeatureError(f"{path}: a feature table needs a 'clip_id' column or index")
        try:
            X = df.to_numpy(dtype=np.float32)
        except (TypeError, ValueError):
            bad = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
            raise FeatureError(f"{path}: non-numeric feature columns {bad[:5]}") from None
        return cls(X=X, clip_ids=df.index.astype(str).to_numpy(dtype=object), spec=f"file:{path.name}",
                   feature_names=[str(c) for c in df.columns])

    @staticmethod
    def is_file_spec(spec: str) -> bool:
        """Whether a ``--features`` value names a feature file (by its suffix) rather than an extractor."""
        return Path(str(spec)).suffix.lower() in Features.FILE_SUFFIXES


# -------------------------------------------------------------------- inputs
def _resolve_inputs(obj) -> tuple[list[str], list[str | None]]:
    """(clip ids, absolute paths) from a corpus, a mapping, a folder, a file or a list of paths."""
    from perser.corpus.model import Corpus

    if isinstance(obj, Corpus):
        if "path" not in obj.clips.columns:
            raise FeatureError(f"corpus {obj.name!r}: its clips table has no 'path' column")
        ids = [str(c) for c in obj.clips.index]
        paths = []
        for p in obj.clips["path"].tolist():
            if p is None or pd.isna(p) or str(p) == "":
                paths.append(None)
            else:
                p = Path(str(p))
                if not p.is_absolute() and obj.root is not None:
                    p = Path(obj.root) / p
                paths.append(os.path.abspath(p))
        return ids, paths
    if isinstance(obj, pd.Series):
        obj = obj.to_dict()
    if isinstance(obj, dict):
        return [str(k) for k in obj], [os.path.abspath(str(v)) for v in obj.values()]
    if isinstance(obj, (str, os.PathLike)):
        root = Path(obj)
        if root.is_dir():
            from perser.audio import list_audio_files

            files = list_audio_files(root)
            if not files:
                raise FeatureError(f"{root}: no audio files found")
            return [p.relative_to(root).with_suffix("").as_posix() for p in files], [os.path.abspath(p) for p in files]
        if not root.exists():
            raise FeatureError(f"{root}: no such file or folder")
        return [root.stem], [os.path.abspath(root)]
    try:
        items = [str(p) for p in obj]
    except TypeError:
        raise ConfigError(f"cannot extract features from a {type(obj).__name__}; pass a Corpus, paths or a folder") from None
    return items, [os.path.abspath(p) for p in items]


def parse_shard(shard) -> tuple[int, int] | None:
    """``"i/N"`` or ``(i, N)`` -> ``(i, N)`` with ``0 <= i < N`` (shards are numbered from 0)."""
    if shard is None:
        return None
    try:
        if isinstance(shard, str):
            i, n = (int(s) for s in shard.split("/"))
        else:
            i, n = (int(s) for s in shard)
    except (ValueError, TypeError):
        raise ConfigError(f"shard {shard!r}: expected 'i/N', e.g. 0/4 (shards are numbered 0 .. N-1)") from None
    if n < 1 or not 0 <= i < n:
        raise ConfigError(f"shard {shard!r}: need 0 <= i < N (shards are numbered 0 .. N-1)")
    return i, n


def _torchrun_shard() -> tuple[int, int] | None:
    ws = os.environ.get("WORLD_SIZE")
    rank = os.environ.get("RANK")
    if ws and rank and int(ws) > 1:
        return int(rank), int(ws)
    return None


def make_extractor(spec: str, device: str | None = None, store: FeatureStore | None = None, **settings: Any) -> Extractor:
    """The extractor a spec names: ``"egemaps"``, ``"compare"`` or ``"ssl:<model dir or id>"``.

    ``settings`` go to the extractor (e.g. ``pooling="mean+std"``, ``batch_size=16``,
    ``max_duration=30``, ``sample_rate=16000`` for openSMILE).
    """
    spec = str(spec).strip()
    _check_settings(spec, settings)
    if spec.startswith("ssl:"):
        from perser.features.ssl_models import SSLExtractor

        model = spec[4:]
        if not model:
            raise ConfigError("spec 'ssl:' needs a model: ssl:/path/to/model_dir")
        if store is not None:
            def digest(p: str) -> str:
                return store.content_hashes([p])[p]

            settings.setdefault("digest", digest)
        if device is None and _torchrun_shard() is not None:
            import torch

            if torch.cuda.is_available():
                device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
        ex = SSLExtractor(model, device=device, **settings)
        ex.spec = spec
        return ex
    from perser.features.smile import FEATURE_SETS, OpenSmileExtractor

    if spec.lower() in FEATURE_SETS:
        return OpenSmileExtractor(spec.lower(), **settings)
    raise ConfigError(f"unknown feature spec {spec!r}; expected one of {', '.join(FEATURE_SETS)} or ssl:<model dir>")


def _check_settings(spec: str, settings: dict) -> None:
    """A :class:`ConfigError` naming any setting the extractor of ``spec`` does not take."""
    import inspect

    if spec.startswith("ssl:"):
        from perser.features.ssl_models import SSLExtractor as cls
    else:
        from perser.features.smile import OpenSmileExtractor as cls
    known = set(inspect.signature(cls.__init__).parameters) - {"self", "model", "name", "device", "digest"}
    unknown = sorted(set(settings) - known - {"digest"})
    if unknown:
        raise ConfigError(f"feature settings {unknown} are not settings of {spec!r}; it takes {sorted(known)}")


class _RateColumn:
    """Lazily built rich column showing clips (or a task's ``unit``) per second."""

    @staticmethod
    def make():
        from rich.progress import ProgressColumn
        from rich.text import Text

        class Rate(ProgressColumn):
            def render(self, task):
                speed = task.finished_speed or task.speed
                unit = task.fields.get("unit", "clips")
                return Text(f"{speed:,.1f} {unit}/s" if speed else f"- {unit}/s", style="progress.data.speed")

        return Rate()


def _progress(progress):
    """A rich progress display (``progress`` True, or the rich Console to draw on), or nothing."""
    if progress is None or progress is False:
        return contextlib.nullcontext(None)
    from perser._io import progress_bar

    return progress_bar(
        _RateColumn.make(), eta=True, console=None if progress is True else progress,
        auto_refresh=False,  # no display thread: openSMILE workers are forked while the bar is up
    )


class _Ticker:
    """Advances a progress task and redraws at most ten times a second."""

    def __init__(self, bar, task) -> None:
        self.bar, self.task, self.last = bar, task, 0.0

    def __call__(self, n: int = 1) -> None:
        if self.bar is None:
            return
        self.bar.advance(self.task, n)
        now = time.monotonic()
        if now - self.last > 0.1 or self.bar.tasks[self.task].finished:
            self.last = now
            self.bar.refresh()


# ------------------------------------------------------------------- extract
def extract(
    corpus_or_paths,
    spec: str,
    cache_dir: str | os.PathLike | None = None,
    workers: int = 1,
    device: str | None = None,
    shard=None,
    progress: bool = True,
    **settings: Any,
) -> Features:
    """Features of every clip, computed once and kept in the content-addressed store.

    Parameters
    ----------
    corpus_or_paths : Corpus, mapping, folder, file or list of paths
        A :class:`perser.Corpus` (clip ids and paths from ``clips``), a mapping or
        Series clip id -> path, a folder (every audio file below it; clip id = relative
        path without suffix), one file, or a list of paths (clip id = the path as given).
    spec : str
        ``"egemaps"`` (eGeMAPSv02 functionals), ``"compare"`` (ComParE_2016 functionals),
        ``"ssl:<model>"`` (every hidden layer of a local Hugging Face speech encoder) or
        ``"text:<model>"`` (a local Hugging Face text encoder on each clip's transcript,
        :mod:`perser.features.text`; needs a corpus).
    cache_dir : path, optional
        The store; default ``$PERSER_CACHE`` or ``~/.cache/perser/features``.
    workers : int
        openSMILE: worker processes. SSL: threads reading audio ahead of the model.
    device : str, optional
        SSL: ``"cpu"``, ``"cuda"``, ``"cuda:1"``; default the GPU when there is one.
    shard : "i/N" or (i, N), optional
        Only the clips at positions ``k`` with ``k % N == i`` (0-based ``i``). Under
        ``torchrun`` (``WORLD_SIZE > 1``) the default is this rank's shard and GPU.
        The result holds that shard's clips; a later run without a shard over the same
        store reuses everything the shards wrote.
    progress : bool or rich.console.Console
        Show progress bars with rate and ETA (on the given Console, else rich's default):
        hashing model weights and audio, loading features found in the store, extracting.
    **settings
        Extractor settings: ``pooling="mean"|"mean+std"``, ``precision``, ``batch_size``,
        ``chunk_seconds``, ``max_batch_seconds`` (SSL); ``sample_rate`` (openSMILE);
        ``max_duration`` (seconds) and ``silence_peak`` for both.

    Returns
    -------
    Features
        Aligned to the clips in input order; failed clips are left out, listed in
        ``failures`` and summarised in one counted :class:`perser.PerserWarning`.

    Raises
    ------
    FeatureError
        Every clip failed, or the extractor could not be set up (e.g. no model).
    """
    if str(spec).strip().startswith("text:"):  # transcripts, not audio: perser.features.text
        from perser.features.text import TEXT_SETTINGS, extract_text

        given = {k: v for k, v in settings.items() if v is not None}
        other = sorted(set(given) - set(TEXT_SETTINGS))
        if other or shard is not None:
            raise ConfigError(f"text features take the settings {list(TEXT_SETTINGS)}"
                              f"{'' if shard is None else ' and no shard'}; got {other or ['shard']}")
        return extract_text(corpus_or_paths, str(spec).strip(), cache_dir=cache_dir, progress=progress,
                            device=device, **given)
    t0 = time.perf_counter()
    store = FeatureStore(cache_dir)
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    extractor = make_extractor(spec, device=device, store=store, **settings)
    ids, paths = _resolve_inputs(corpus_or_paths)
    if len(set(ids)) != len(ids):
        dup = pd.Series(ids)[pd.Series(ids).duplicated()].iloc[0]
        raise FeatureError(f"clip id {dup!r} occurs more than once in the input")
    sh = parse_shard(shard) if shard is not None else _torchrun_shard()
    if sh is not None:
        i, n = sh
        ids, paths = ids[i::n], paths[i::n]

    failures: dict[str, str] = {}
    path_error: dict[str, str] = {}
    values: dict[str, np.ndarray] = {}
    errors: dict[str, str] = {}

    with _progress(progress if len(ids) > 0 else False) as bar:
        weights = extractor.key_files()
        if weights:  # model weights (GBs) are hashed once, then found in the store's hash index
            wtick = _Ticker(bar, bar.add_task("hashing model weights", total=len(weights), unit="files") if bar is not None else None)
            if bar is not None:
                bar.refresh()
            store.content_hashes(weights, on_done=wtick)
        key = extractor.key
        unique_paths = [p for p in dict.fromkeys(paths) if p is not None]
        htick = _Ticker(bar, bar.add_task("hashing audio", total=len(unique_paths)) if bar is not None else None)
        digests = store.content_hashes(
            unique_paths, on_error=lambda p, msg: path_error.__setitem__(p, msg), on_done=htick
        )
        ltick = _Ticker(bar, bar.add_task("loading stored features", total=len(unique_paths)) if bar is not None else None)
        jobs: list[Job] = []
        queued: set[str] = set()
        for p in unique_paths:
            d = digests.get(p)
            if d is not None and d not in values and d not in queued:  # identical files are computed once
                got = store.get(key, d)
                if got is not None:
                    values[d] = got
                else:
                    jobs.append(Job(d, p))
                    queued.add(d)
            ltick(1)
        reused = set(values)
        meta = store.read_meta(key)
        if meta is None:
            meta = extractor.meta()
            store.write_meta(key, meta)

        if jobs:
            etick = _Ticker(bar, bar.add_task(f"extracting {extractor.spec}", total=len(jobs)) if bar is not None else None)

            def sink(digest: str, y, err) -> None:
                if err is None:
                    store.put(key, digest, y)
                    values[digest] = y
                else:
                    errors[digest] = err
                etick(1)

            try:
                extractor.run(jobs, sink, workers=workers)
            finally:
                extractor.close()

    rows, kept = [], []
    n_computed = n_reused = 0
    for cid, p in zip(ids, paths):
        if p is None:
            failures[cid] = f"clip {cid!r}: no audio path"
            continue
        if p in path_error:
            failures[cid] = path_error[p]
            continue
        d = digests[p]
        if d in errors:
            failures[cid] = errors[d]
            continue
        y = values.get(d)
        if y is None:  # the extractor reported nothing: a bug, but never drop silently
            failures[cid] = f"{p}: no features were produced"
            continue
        rows.append(y)
        kept.append(cid)
        if d in reused:
            n_reused += 1
        else:
            n_computed += 1

    if store.damaged:
        log = SkipLog("features " + extractor.spec)
        for msg in store.damaged:
            log.add("unreadable feature store entries computed again", msg)
        log.emit(stacklevel=2)
    if failures:
        log = SkipLog("features " + extractor.spec)
        for cid, msg in failures.items():
            log.add("clip(s) failed feature extraction and are left out", msg if cid in msg else f"{cid}: {msg}")
        log.emit(stacklevel=2)
    if not rows and ids:
        first = "; ".join(f"{c}: {m}" for c, m in list(failures.items())[:3])
        raise FeatureError(f"{extractor.spec}: all {len(ids)} clips failed feature extraction (e.g. {first})")
    if rows:
        X = np.stack(rows).astype(np.float32, copy=False)
    else:
        shape = (meta["layers"], meta["dim"]) if "layers" in meta else (len(meta.get("feature_names") or []),)
        X = np.zeros((0, *shape), dtype=np.float32)
    return Features(
        X=X,
        clip_ids=np.array(kept, dtype=object),
        spec=extractor.spec,
        failures=failures,
        feature_names=meta.get("feature_names"),
        key=key,
        cache_dir=store.root,
        n_computed=n_computed,
        n_reused=n_reused,
        seconds=time.perf_counter() - t0,
    )
