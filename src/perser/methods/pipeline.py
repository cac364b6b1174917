"""Training a method on a corpus: the pipeline behind ``perser train``.

:func:`train` reads the corpus, makes (or reads) the features, selects the ratings of the
chosen space and split, fits the method and writes the model folder. It runs under
``torchrun`` too: every rank fits its share, rank 0 writes the folder (the caller joins
and leaves the process group, see :mod:`perser.methods.distributed`).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable

import numpy as np

from perser.config import TrainConfig
from perser.errors import ConfigError, PerserWarning, SkipLog
from perser.methods.base import Personalizer, RatingSet, make_method

__all__ = ["train", "corpus_features", "check_out_dir", "settings_for"]


def check_out_dir(out: str | Path, force: bool = False) -> Path:
    """``out`` as a path, refusing an existing non-empty folder (or a file) unless ``force``.

    A trained model is hours of work: writing over one takes an explicit ``force``.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ConfigError(f"{out} exists and is not empty; choose another folder or pass --force to replace it")
    return out


def settings_for(spec: str, specs: list[str], settings: dict | None) -> dict:
    """The extractor settings of ``spec`` among ``specs``: ``settings[spec]`` when the
    settings are keyed by the specs of a list of feature sets, else ``settings`` itself."""
    fs = dict(settings or {})
    if len(specs) > 1 and fs and set(fs) <= set(specs):
        return dict(fs.get(spec) or {})
    return fs


def corpus_features(corpus, features: str | list[str], cache_dir: str | Path | None = None, progress: bool = False,
                    settings: dict | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """``(X, clip_ids, feature_spec)`` of a corpus from a feature file or the feature store.

    ``features`` is one spec or a list of specs (e.g. ``[ssl:DIR, text:DIR]``) whose vectors
    are concatenated per clip (an SSL layer stack contributes its last layer, see
    :func:`perser.features.text.combine`). ``settings`` are the extractor's (``pooling``,
    ``precision`` ...; for a list, either shared or keyed by spec): part of the store key,
    and recorded in the returned ``feature_spec`` (``sets``: one entry per set) so that
    clips given to the trained model later are featurised the same way. Clips without
    features are left out with a counted warning.
    """
    from perser.features import Features, extract

    specs = [str(s) for s in features] if isinstance(features, (list, tuple)) else [str(features)]
    if not specs:
        raise ConfigError("features: the list of feature sets is empty")
    settings = dict(settings or {})
    if len(specs) == 1 and Features.is_file_spec(specs[0]):
        if settings:
            raise ConfigError(f"feature settings {sorted(settings)} do not apply to a features file ({specs[0]})")
        feats = Features.load(specs[0])
        return feats.X, feats.clip_ids, {"spec": feats.spec, "file": str(Path(specs[0]).resolve())}
    files = [s for s in specs if Features.is_file_spec(s)]
    if files:
        raise ConfigError(f"a features file ({files[0]}) cannot be combined with other feature sets; "
                          "combine them before exporting, or name extractors")
    sets, entries = [], []
    for spec in specs:
        st = settings_for(spec, specs, settings)
        f = extract(corpus, spec, cache_dir=cache_dir, shard=None if spec.startswith("text:") else (0, 1),
                    progress=progress, **st)
        sets.append(f)
        entries.append({"spec": f.spec, "key": f.key, **({"settings": st} if st else {})})
    if len(sets) == 1:
        feats = sets[0]
    else:
        from perser.features.text import combine

        stacks = [f.spec for f in sets if f.X.ndim == 3 and f.X.shape[1] > 1]
        if stacks:
            warnings.warn(f"{len(stacks)} SSL layer stack(s) ({', '.join(stacks)}) reduced to their last layer to be "
                          "concatenated with the other feature sets", PerserWarning, stacklevel=2)
        feats = combine(sets, last_layer=True)
    if feats.failures:
        cid, msg = next(iter(feats.failures.items()))
        warnings.warn(
            f"{len(feats.failures)} clips have no {feats.spec} features and are left out (e.g. {cid}: {msg})",
            PerserWarning, stacklevel=2,
        )
    if len(sets) == 1:
        return feats.X, feats.clip_ids, {"spec": feats.spec, "key": feats.key,
                                         **({"settings": settings} if settings else {})}
    return feats.X, feats.clip_ids, {"spec": feats.spec, "key": feats.key, "sets": entries}


def train(config: TrainConfig, out: str | Path | None = None, *, force: bool = False, progress: bool = False,
          echo: Callable[[str], None] | None = None) -> Personalizer:
    """Fit ``config.method`` on the seen annotators of ``config.corpus`` and write it to ``out``.

    Listeners that ``annotators.csv`` marks as new (a true ``new`` column) are left out
    unless ``config.new_listeners``.

    Parameters
    ----------
    config:
        What to train (method, its ``params``, features, space, split).
    out:
        Model folder to write (on rank 0 only); ``None`` writes nothing. An existing
        non-empty folder is refused unless ``force`` (checked before any work).
    progress:
        Progress bars of feature extraction, and of the fit unless ``params`` say otherwise.
    echo:
        Called with a one-line summary of the training data before the fit (rank 0 only).

    Returns
    -------
    The fitted method; its ``feature_spec`` records how its input features were made.
    """
    from perser.corpus import load_corpus
    from perser.methods import distributed

    if not config.method:
        raise ConfigError("name a method with --method (or 'method:' in --config)")
    if not config.features:
        raise ConfigError("name the features with --features (or 'features:' in --config)")
    if config.corpus is None:
        raise ConfigError("name the corpus to train on")
    if out is not None:
        out = check_out_dir(out, force)
    main = distributed.is_main()
    params = dict(config.params)
    params.setdefault("progress", progress and main)
    model = make_method(config.method, **params)  # a bad method or parameter fails before any data is read

    corpus = load_corpus(config.corpus, format=config.format)
    sp = corpus.space(config.space)
    X, ids, fspec = corpus_features(corpus, config.features, config.feature_cache, progress and main,
                                    config.feature_settings)
    clips = corpus.clips
    if config.split is not None:
        if "split" not in clips.columns:
            raise ConfigError(f"corpus {corpus.name!r} has no split column; drop --split")
        clips = clips[clips["split"] == config.split]
        if clips.empty:
            raise ConfigError(f"corpus {corpus.name!r} has no clips in split {config.split!r}")
    have = set(ids.tolist())
    log = SkipLog(corpus.name)
    keep = [c for c in clips.index if c in have]
    if len(keep) < len(clips):
        lost = [c for c in clips.index if c not in have]
        log.add("clips without features left out", lost[0], n=len(lost))
    log.emit()
    listeners = None
    ann = corpus.annotators
    if not config.new_listeners and ann is not None and "new" in ann.columns:
        is_new = ann["new"].astype(str).str.lower().isin(["true", "1", "yes"])
        if is_new.any():  # the listeners to enroll: a model trained on them would hold their own heads
            listeners = [str(a) for a in ann.index[~is_new]]
            if main and echo is not None:
                echo(f"left out {int(is_new.sum())} listeners annotators.csv marks as new "
                     "(--new-listeners trains on them too)")
    rs = RatingSet.from_corpus(corpus, X, sp, clip_ids=ids, clips=keep, annotators=listeners)
    if len(rs) == 0:
        raise ConfigError(f"no ratings in space {sp.name!r} for the chosen clips")
    model.feature_spec = {**fspec, "shape": list(X.shape[1:])}
    if main and echo is not None:
        echo(f"training {config.method!r} on {len(rs)} ratings of {len(np.unique(rs.clip_index))} clips by "
             f"{len(rs.annotators)} annotators ({sp.name}: {sp.kind}); features {fspec['spec']} {tuple(X.shape[1:])}")
    model.fit(rs)
    if main and out is not None:
        model.save(out)
    return model
