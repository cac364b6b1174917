"""``perser train``, ``perser enroll`` and ``perser predict``: thin shells over
:mod:`perser.methods`.

Features come either from the feature store (``--features egemaps``, ``compare`` or
``ssl:MODEL_DIR``, computed on first use) or from a precomputed file (``--features
feats.npz`` / ``.parquet`` / ``.csv``, indexed by clip id, as ``perser extract --export``
writes). A trained model records its feature spec, so ``enroll`` and ``predict`` make
the same features from audio files.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import List, Optional

import typer

FEATURE_FILE_SUFFIXES = (".npz", ".parquet", ".csv")


# ------------------------------------------------------------------ features
def _is_feature_file(spec: str) -> bool:
    return Path(spec).suffix.lower() in FEATURE_FILE_SUFFIXES


def load_feature_file(path: str | Path):
    """``(X, clip_ids, spec)`` from a ``.npz`` (``X``, ``clip_ids``), ``.parquet`` or ``.csv`` (indexed by clip id)."""
    import numpy as np
    import pandas as pd

    from perser.errors import FeatureError

    path = Path(path)
    if not path.is_file():
        raise FeatureError(f"{path}: no such feature file")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            if "X" not in z or "clip_ids" not in z:
                raise FeatureError(f"{path}: a feature .npz needs arrays 'X' and 'clip_ids' (has {sorted(z.files)})")
            spec = str(z["spec"]) if "spec" in z else f"file:{path.name}"
            return z["X"].astype(np.float32), z["clip_ids"].astype(str).astype(object), spec
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
    return X, df.index.astype(str).to_numpy(dtype=object), f"file:{path.name}"


def corpus_features(corpus, features: str, cache: Optional[Path], progress: bool, settings: dict | None = None):
    """``(X, clip_ids, spec_dict)`` of a corpus from a feature file or the feature store.

    ``settings`` are the extractor's (``perser extract``'s ``--pooling``, ``--precision`` ...):
    they are part of the store key, and the spec dict records them so that audio given to
    the trained model later is featurised the same way.
    """
    from perser.errors import ConfigError
    from perser.features import extract

    settings = dict(settings or {})
    if _is_feature_file(features):
        if settings:
            raise ConfigError(f"feature settings {sorted(settings)} do not apply to a features file ({features})")
        X, ids, spec = load_feature_file(features)
        return X, ids, {"spec": spec, "file": str(Path(features).resolve())}
    feats = extract(corpus, features, cache_dir=cache, shard=(0, 1), progress=progress, **settings)
    if feats.failures:
        cid, msg = next(iter(feats.failures.items()))
        warnings.warn(
            f"{len(feats.failures)} clips have no {features} features and are left out (e.g. {cid}: {msg})",
            _perser_warning(), stacklevel=2,
        )
    return feats.X, feats.clip_ids, {"spec": feats.spec, "key": feats.key, **({"settings": settings} if settings else {})}


def audio_features(paths: list[str], feature_spec: dict | None, cache: Optional[Path], progress: bool):
    """Features of audio files with the model's feature spec; ``(X, clip_ids)``."""
    from perser.errors import ConfigError, FeatureError
    from perser.features import extract

    spec = (feature_spec or {}).get("spec")
    if not spec or spec.startswith("file:"):
        raise ConfigError(
            "this model was trained on precomputed features of unknown origin; "
            "pass --features FILE with features of these clips"
        )
    settings = (feature_spec or {}).get("settings") or {}  # as at training: same numbers, same store key
    feats = extract(paths, spec, cache_dir=cache, shard=(0, 1), progress=progress, **settings)
    if feats.failures:
        cid, msg = next(iter(feats.failures.items()))
        raise FeatureError(f"no features for {cid}: {msg}")
    return feats.X, feats.clip_ids


def _perser_warning():
    from perser.errors import PerserWarning

    return PerserWarning


def _features_for(items: list[str], model, features: Optional[str], corpus: Optional[Path], cache: Optional[Path],
                  progress: bool):
    """``(X, ids)`` for clip ids or audio paths ``items``, in that order."""
    import numpy as np

    from perser.errors import ConfigError, FeatureError

    if features is not None and _is_feature_file(features):
        X, ids, _ = load_feature_file(features)
        pos = {c: i for i, c in enumerate(ids.tolist())}
        missing = [c for c in items if c not in pos]
        if missing:
            raise FeatureError(f"{features}: no features for clip {missing[0]!r}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
        return X[np.array([pos[c] for c in items], dtype=np.int64)], np.array(items, dtype=object)
    if corpus is not None:
        from perser.corpus import load_corpus

        c = load_corpus(corpus)
        unknown = [i for i in items if i not in c.clips.index]
        if unknown:
            raise ConfigError(f"corpus {c.name!r} has no clip {unknown[0]!r}")
        paths = [str(c.clips.loc[i, "path"]) for i in items]
        X, _ = audio_features(paths, model.feature_spec, cache, progress)
        return X, np.array(items, dtype=object)
    missing = [i for i in items if not Path(i).is_file()]
    if missing:
        raise ConfigError(
            f"{missing[0]!r} is not an audio file; for clip ids pass --features FILE or --corpus PATH"
        )
    X, _ = audio_features(items, model.feature_spec, cache, progress)
    return X, np.array(items, dtype=object)


# --------------------------------------------------------------------- train
def _key_values(pairs: list[str], flag: str, into: dict) -> dict:
    """``KEY=VALUE`` pairs (YAML values, see :func:`perser.cli._common.parse_key_value`) added
    to ``into``, later ones winning; a malformed pair names the flag."""
    from perser.cli._common import parse_key_value

    for kv in pairs:
        key, value = parse_key_value(kv, flag)
        into[key] = value
    return into


def _read_config(path: Optional[Path]) -> dict:
    from perser.errors import ConfigError

    if path is None:
        return {}
    import yaml

    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        cfg = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: malformed YAML: {e}") from None
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path}: expected a mapping (method, space, features, params)")
    unknown = set(cfg) - {"method", "space", "features", "feature_settings", "params", "split", "format"}
    if unknown:
        raise ConfigError(f"{path}: unknown keys {sorted(unknown)}; expected method, space, features, "
                          "feature_settings, params, split, format")
    for key in ("params", "feature_settings"):
        if not isinstance(cfg.get(key) or {}, dict):
            raise ConfigError(f"{path}: {key!r} must be a mapping")
    return cfg


def train_command(
    path: Path = typer.Argument(..., help="The corpus folder."),
    features: Optional[str] = typer.Option(None, "--features", "-f", help="egemaps | compare | ssl:MODEL_DIR | a features file (.npz/.parquet/.csv)."),
    method: Optional[str] = typer.Option(None, "--method", "-m", help="consensus | random-annotator | mean-annotator | similar | finetune | meta"),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write the trained model to."),
    space: Optional[str] = typer.Option(None, "--space", "-s", help="Label space to train on [default: the corpus's only one]."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML with method, space, features, split and params (flags override)."),
    split: Optional[str] = typer.Option(None, "--split", help="Train on the clips of this split only (clips.split column)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Training epochs."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Mini-batch size."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Learning rate."),
    param: List[str] = typer.Option([], "--param", "-p", help="Any hyper-parameter as KEY=VALUE (YAML value), repeatable."),
    feature_setting: List[str] = typer.Option([], "--feature-setting", "-F", help="Extractor setting as KEY=VALUE (pooling, precision, pad_unmasked, max_duration ...), repeatable: the ones perser extract used."),
    fmt: Optional[str] = typer.Option(None, "--format", help="Corpus format [default: detected]."),
    cache: Optional[Path] = typer.Option(None, "--cache", help="Feature store [default: $PERSER_CACHE or ~/.cache/perser/features]."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Checkpoint folder; rerun the same command to resume."),
    new_listeners: Optional[bool] = typer.Option(None, "--new-listeners/--seen-only", help="Also train on the listeners annotators.csv marks as new (column 'new') [default: seen only]."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Train a personalization method on the seen annotators of a corpus (runs under torchrun too).

    Listeners that ``annotators.csv`` marks as new (a true ``new`` column, as in the
    demo corpus) are left out unless ``--new-listeners`` (or ``new_listeners: true``)
    asks for them: they are the ones to enroll, and a model trained on them would
    hold their own heads."""
    import numpy as np
    from rich.console import Console

    from perser.corpus import load_corpus
    from perser.errors import ConfigError, SkipLog
    from perser.methods import RatingSet, distributed, make_method

    err = Console(stderr=True)
    cfg = _read_config(config)
    method = method or cfg.get("method")
    features = features or cfg.get("features")
    space = space or cfg.get("space")
    split = split or cfg.get("split")
    fmt = fmt or cfg.get("format")
    if not method:
        raise ConfigError("name a method with --method (or 'method:' in --config)")
    if not features:
        raise ConfigError("name the features with --features (or 'features:' in --config)")
    params = dict(cfg.get("params") or {})
    _key_values(param, "--param", params)
    fsettings = _key_values(feature_setting, "--feature-setting", dict(cfg.get("feature_settings") or {}))
    for k, v in (("seed", seed), ("epochs", epochs), ("batch_size", batch_size), ("lr", lr)):
        if v is not None:
            params[k] = v
    if checkpoint is not None:
        params["checkpoint_dir"] = str(checkpoint)
    distributed.init()
    main = distributed.is_main()
    params.setdefault("progress", progress and main and err.is_terminal)
    model = make_method(method, **params)  # a bad method or parameter fails before any data is read

    corpus = load_corpus(path, format=fmt)
    sp = corpus.space(space)
    X, ids, fspec = corpus_features(corpus, features, cache, progress and main and err.is_terminal, fsettings)
    clips = corpus.clips
    if split is not None:
        if "split" not in clips.columns:
            raise ConfigError(f"corpus {corpus.name!r} has no split column; drop --split")
        clips = clips[clips["split"] == split]
        if clips.empty:
            raise ConfigError(f"corpus {corpus.name!r} has no clips in split {split!r}")
    have = set(ids.tolist())
    log = SkipLog(corpus.name)
    keep = [c for c in clips.index if c in have]
    if len(keep) < len(clips):
        lost = [c for c in clips.index if c not in have]
        log.add("clips without features left out", lost[0], n=len(lost))
    log.emit()
    if new_listeners is None:
        new_listeners = bool(cfg.get("new_listeners", False))
    listeners = None
    ann = corpus.annotators
    if not new_listeners and ann is not None and "new" in ann.columns:
        is_new = ann["new"].astype(str).str.lower().isin(["true", "1", "yes"])
        if is_new.any():
            listeners = [str(a) for a in ann.index[~is_new]]
            if main:
                err.print(f"left out {int(is_new.sum())} listeners annotators.csv marks as new "
                          "(--new-listeners trains on them too)", highlight=False)
    rs = RatingSet.from_corpus(corpus, X, sp, clip_ids=ids, clips=keep, annotators=listeners)
    if len(rs) == 0:
        raise ConfigError(f"no ratings in space {sp.name!r} for the chosen clips")
    model.feature_spec = {**fspec, "shape": list(X.shape[1:])}
    if main:
        err.print(
            f"training {method!r} on {len(rs)} ratings of {len(np.unique(rs.clip_index))} clips by "
            f"{len(rs.annotators)} annotators ({sp.name}: {sp.kind}); features {fspec['spec']} {tuple(X.shape[1:])}",
            highlight=False, soft_wrap=True,
        )
    model.fit(rs)
    if main:
        model.save(out)
        hist = getattr(model, "history_", None)
        extra = f"; best epoch {hist.best_epoch + 1} of {hist.epochs_run}" if hist is not None else ""
        typer.echo(f"model written: {out}{extra}")
    distributed.barrier()
    distributed.shutdown()


# -------------------------------------------------------------------- enroll
def _read_ratings(file: Path, space) -> "tuple[list[str], object]":
    """Item column (clip ids or audio paths) and encoded labels of an enrollment CSV."""
    import pandas as pd

    from perser.corpus.table import read_csv
    from perser.errors import ConfigError, CorpusError

    df = read_csv(file, dtype=str, keep_default_na=False)
    item_col = "clip_id" if "clip_id" in df.columns else "path" if "path" in df.columns else None
    if item_col is None:
        raise ConfigError(f"{file}: needs a 'clip_id' or 'path' column (has {list(df.columns)})")
    if space.is_class and space.name not in df.columns and "label" in df.columns:
        df = df.rename(columns={"label": space.name})
    missing = [c for c in space.columns if c not in df.columns]
    if missing:
        raise ConfigError(f"{file}: missing label column(s) {missing} for space {space.name!r}")
    if not space.is_class:
        for c in space.columns:
            vals = pd.to_numeric(df[c], errors="coerce")
            if vals.isna().any():
                i = int(vals.isna().to_numpy().nonzero()[0][0])
                raise CorpusError(f"{file}:{i + 2}: {c} value {df[c].iloc[i]!r} is not a number")
            lo, hi = space.scale
            out = (vals < lo) | (vals > hi)
            if out.any():
                i = int(out.to_numpy().nonzero()[0][0])
                raise CorpusError(f"{file}:{i + 2}: {c} value {vals.iloc[i]} is outside the scale {space.scale}")
            df[c] = vals
    if df.empty:
        raise ConfigError(f"{file}: no ratings")
    df.index = pd.RangeIndex(2, len(df) + 2)  # error messages name the file line
    try:
        y = space.encode(df)
    except CorpusError as e:
        raise CorpusError(f"{file}: {e}") from None
    items = df[item_col].tolist()
    if item_col == "path":
        items = [str((file.parent / p).resolve()) if not Path(p).is_absolute() else p for p in items]
    return items, y


def enroll_command(
    model_dir: Path = typer.Argument(..., help="A trained model folder."),
    annotator: str = typer.Option(..., "--annotator", "-a", help="Name of the new listener."),
    ratings: Path = typer.Option(..., "--ratings", "-r", help="CSV: clip_id or path, and the listener's label column(s)."),
    out: Path = typer.Option(..., "--out", "-o", help="Profile folder to write."),
    features: Optional[str] = typer.Option(None, "--features", "-f", help="Features file with the clips' features (.npz/.parquet/.csv)."),
    corpus: Optional[Path] = typer.Option(None, "--corpus", help="Corpus whose clips the clip ids name (features from the store)."),
    cache: Optional[Path] = typer.Option(None, "--cache", help="Feature store."),
) -> None:
    """Enroll a new listener from their rated clips; write their profile."""
    from perser.methods import load_model

    model = load_model(model_dir)
    items, y = _read_ratings(ratings, model.space_)
    X, _ = _features_for(items, model, features, corpus, cache, progress=False)
    profile = model.enroll(X, y, annotator=annotator)
    profile.save(out)
    summary = {k: v for k, v in profile.data.items() if k != "ranking"}
    typer.echo(f"profile written: {out}  ({model.name}, K={len(y)}) {json.dumps(summary, default=str)}")


# ------------------------------------------------------------------- predict
def predict_command(
    model_dir: Path = typer.Argument(..., help="A trained model folder."),
    items: List[str] = typer.Argument(..., help="Audio files, or clip ids (with --features or --corpus)."),
    profile: Optional[Path] = typer.Option(None, "--profile", "-p", help="A listener's profile folder [default: no listener]."),
    features: Optional[str] = typer.Option(None, "--features", "-f", help="Features file holding the clips (.npz/.parquet/.csv)."),
    corpus: Optional[Path] = typer.Option(None, "--corpus", help="Corpus whose clips the clip ids name."),
    output_format: str = typer.Option("csv", "--format", help="csv | json"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write here instead of standard output."),
    cache: Optional[Path] = typer.Option(None, "--cache", help="Feature store."),
) -> None:
    """Predict a listener's labels for clips (CSV or JSON)."""
    from perser.errors import ConfigError
    from perser.methods import Profile, load_model

    if output_format not in ("csv", "json"):
        raise ConfigError(f"--format {output_format!r}: use csv or json")
    model = load_model(model_dir)
    prof = Profile.load(profile) if profile is not None else None
    X, ids = _features_for(list(items), model, features, corpus, cache, progress=False)
    df = model.predict(prof, X).to_frame(ids)
    if output_format == "csv":
        text = df.to_csv()
    else:
        text = json.dumps(
            {"method": model.name, "annotator": prof.annotator if prof else None, "space": model.space_.name,
             "predictions": json.loads(df.reset_index().to_json(orient="records"))},
            indent=2,
        ) + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        import os

        tmp = out.with_name(f".tmp-{os.getpid()}-{out.name}")
        try:
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
        typer.echo(f"predictions written: {out}", err=True)


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
    app.command("enroll")(enroll_command)
    app.command("predict")(predict_command)
