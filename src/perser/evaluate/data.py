"""From corpora on disk to :class:`~perser.evaluate.protocol.EvalData`: label spaces,
label-space mappings (cross-corpus), features.

A cross-corpus run trains on one corpus and enrolls the listeners of another. The two
label spaces must agree (same kind, classes or dimensions and scale); where they do not,
a stated :class:`~perser.config.LabelMapping` says how the training corpus's ratings
become ratings in the evaluation space, e.g. CREMA-D's six classes onto IEMOCAP's four
(``{A: ang, H: hap, N: neu, S: sad, D: null, F: null}``) or MSP-Podcast's 1-7 scale
onto IEMOCAP's 1-5 (linear). Without one the run is refused with a message saying what
to map.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from perser.config import ExperimentConfig, LabelMapping
from perser.corpus.model import Corpus, LabelSpace, MULTILABEL_SEP, split_multilabel
from perser.errors import ConfigError, CorpusError, SkipLog
from perser.evaluate.protocol import EvalData


def target_space(corpus: Corpus, cfg: ExperimentConfig) -> LabelSpace:
    """The experiment's label space: the evaluation corpus's ``cfg.space``, restricted to
    ``cfg.dimensions`` or re-classed by ``cfg.mapping``."""
    sp = corpus.space(cfg.space)
    if sp.kind == "dimensional":
        dims = tuple(cfg.dimensions) if cfg.dimensions else sp.dimensions
        if cfg.mapping is not None and cfg.mapping.dimensions:
            dims = tuple(cfg.mapping.dimensions) if not cfg.dimensions else dims
        return LabelSpace(sp.name, "dimensional", dimensions=dims, scale=sp.scale)
    if cfg.dimensions:
        raise ConfigError(f"dimensions: space {sp.name!r} is {sp.kind}, it has classes, not dimensions")
    if cfg.mapping is not None and cfg.mapping.classes:
        targets = [t for t in cfg.mapping.classes.values() if t is not None]
        classes = cfg.target_classes or list(dict.fromkeys(targets))
        return LabelSpace(sp.name, sp.kind, classes=tuple(classes))
    if cfg.target_classes and tuple(cfg.target_classes) != sp.classes:
        raise ConfigError(f"target_classes {cfg.target_classes} differ from space {sp.name!r}'s classes "
                          f"{list(sp.classes)}: give a mapping (mapping.classes) from its classes")
    return sp


def needs_mapping(source: LabelSpace, target: LabelSpace) -> str | None:
    """Why ``source`` ratings cannot be used as ``target`` ratings as they are (``None`` if they can)."""
    if source.kind != target.kind:
        return f"the training space {source.name!r} is {source.kind} but the evaluation space is {target.kind}"
    if source.is_class:
        extra = sorted(set(source.classes) - set(target.classes))
        if extra:
            return (f"classes {extra} of the training space {source.name!r} are not classes of the evaluation "
                    f"space {list(target.classes)}")
        return None
    missing = [d for d in target.dimensions if d not in source.dimensions]
    if missing:
        return (f"dimensions {missing} of the evaluation space are not dimensions of the training space "
                f"{list(source.dimensions)}")
    if tuple(source.scale) != tuple(target.scale):
        return f"the training scale {source.scale} differs from the evaluation scale {target.scale}"
    return None


def map_ratings(ratings: pd.DataFrame, source: LabelSpace, target: LabelSpace, mapping: LabelMapping | None,
                log: SkipLog, what: str) -> pd.DataFrame:
    """Ratings of ``source`` (rows with values) as ratings of ``target``.

    Classes go through ``mapping.classes`` (null drops the rating, counted in ``log``);
    dimensions are renamed by ``mapping.dimensions`` and rescaled linearly from the
    source scale to the target scale. Without ``mapping`` the spaces must agree.
    """
    base = ratings[["clip_id", "annotator_id"]].copy()
    if mapping is None:
        why = needs_mapping(source, target)
        if why:
            raise ConfigError(f"{what}: {why}. State a label mapping ({'train_mapping' if 'train' in what else 'mapping'}"
                              f".classes: {{source class: target class or null}}, or .dimensions/.scale for a "
                              f"linear rescaling), e.g. CREMA-D onto IEMOCAP: {{A: ang, H: hap, N: neu, S: sad, "
                              f"D: null, F: null}}")
        for c in target.columns:
            base[c] = ratings[c if source.is_class else c].to_numpy()
        if source.is_class and source.name != target.name:
            base[target.name] = ratings[source.name].to_numpy()
        return base
    if source.kind != target.kind:
        raise ConfigError(f"{what}: cannot map a {source.kind} space onto a {target.kind} space")
    if source.is_class:
        if not mapping.classes:
            raise ConfigError(f"{what}: the mapping gives no classes for class space {source.name!r}")
        unknown_src = sorted(set(mapping.classes) - set(source.classes))
        if unknown_src:
            raise ConfigError(f"{what}: mapping names classes {unknown_src} that space {source.name!r} does not "
                              f"have ({list(source.classes)})")
        bad_tgt = sorted({t for t in mapping.classes.values() if t is not None} - set(target.classes))
        if bad_tgt:
            raise ConfigError(f"{what}: mapping targets {bad_tgt} are not classes of {list(target.classes)}")
        vals = ratings[source.name]
        if source.kind == "categorical":
            unmapped = sorted(set(vals.dropna().astype(str)) - set(mapping.classes))
            if unmapped:
                raise ConfigError(f"{what}: classes {unmapped} occur in the ratings but have no mapping; map each "
                                  "to a target class or to null to drop its ratings")
            new = vals.astype(str).map(mapping.classes)
            drop = new.isna().to_numpy()
            if drop.any():
                for cls, n in vals[drop].astype(str).value_counts().items():
                    log.add(f"ratings of class {cls!r} dropped by the mapping", what, n=int(n))
            base[target.name] = new.to_numpy()
            return base.loc[~drop].reset_index(drop=True)
        out, keep = [], []
        for v in vals.to_numpy():
            src = split_multilabel(v)
            missing = [c for c in src if c not in mapping.classes]
            if missing:
                raise ConfigError(f"{what}: class {missing[0]!r} occurs in the ratings but has no mapping")
            tgt = list(dict.fromkeys(mapping.classes[c] for c in src if mapping.classes[c] is not None))
            keep.append(bool(tgt))
            out.append(MULTILABEL_SEP.join(tgt))
        keep_a = np.array(keep, dtype=bool)
        if (~keep_a).any():
            log.add("multilabel ratings left with no class by the mapping, dropped", what, n=int((~keep_a).sum()))
        base[target.name] = out
        return base.loc[keep_a].reset_index(drop=True)
    dims = mapping.dimensions or {}
    lo_s, hi_s = mapping.scale if mapping.scale is not None else source.scale
    lo_t, hi_t = target.scale
    for d in target.dimensions:
        src = dims.get(d, d)
        if src not in source.dimensions:
            raise ConfigError(f"{what}: dimension {d!r} maps to {src!r}, which space {source.name!r} does not have "
                              f"({list(source.dimensions)})")
        v = ratings[src].to_numpy(dtype=np.float64)
        base[d] = lo_t + (v - lo_s) * (hi_t - lo_t) / (hi_s - lo_s)
    return base


def feature_settings_for(spec: str, cfg: ExperimentConfig) -> dict:
    """The extractor settings of ``spec``: ``feature_settings[spec]`` when the settings are
    keyed by the specs of a list of feature sets, else ``feature_settings`` itself."""
    specs = cfg.features if isinstance(cfg.features, list) else [cfg.features]
    fs = dict(cfg.feature_settings)
    if len(specs) > 1 and fs and set(fs) <= set(specs):
        return dict(fs.get(spec) or {})
    return fs


def _features(corpus: Corpus, cfg: ExperimentConfig, log: SkipLog):
    from perser.features import Features, extract

    specs = cfg.features if isinstance(cfg.features, list) else [cfg.features]
    sets = [Features.load(s) if Features.is_file_spec(s) else  # precomputed features
            extract(corpus, s, cache_dir=cfg.feature_cache, workers=cfg.workers, progress=cfg.progress,
                    **feature_settings_for(s, cfg)) for s in specs]
    if len(sets) == 1:
        feats = sets[0]
    else:
        from perser.features.text import combine

        for f in sets:
            if f.X.ndim == 3 and f.X.shape[1] > 1:
                log.add("SSL layer stacks reduced to their last layer to be concatenated with the other feature "
                        "sets (the encoder's last hidden state)", f.spec)
        feats = combine(sets, last_layer=True)
    failures = getattr(feats, "failures", {}) or {}
    for clip, msg in failures.items():
        log.add("clips without features (extraction failed), their ratings left out", f"{clip}: {msg}")
    # kept as they are: a [layers, dim] SSL stack reaches the methods whole, so that their
    # networks learn a softmax-weighted sum of layers (flattening would make it one long vector)
    return np.asarray(feats.X, dtype=np.float32), np.asarray(feats.clip_ids, dtype=object)


def _table(corpus: Corpus, space: LabelSpace, target: LabelSpace, mapping, log, what, origin, prefix):
    r = corpus.ratings_in(space)
    r = map_ratings(r, space, target, mapping, log, what)
    clips = corpus.clips.copy()
    keep_cols = [c for c in ("speaker", "session", "fold", "split") if c in clips.columns]
    clips = clips[keep_cols].copy()
    clips["origin"] = origin
    if prefix:
        clips.index = prefix + clips.index.astype(str)
        clips.index.name = "clip_id"
        clips["speaker"] = prefix + clips["speaker"].astype(str)
        if "session" in clips.columns:
            clips["session"] = prefix + clips["session"].astype(str)
        r["clip_id"] = prefix + r["clip_id"].astype(str)
        r["annotator_id"] = prefix + r["annotator_id"].astype(str)
    return clips, r


def load_eval_data(cfg: ExperimentConfig, corpora: dict | None = None, features: dict | None = None) -> EvalData:
    """Load the corpora of ``cfg``, map their labels, extract features, build :class:`EvalData`.

    ``corpora`` / ``features`` (keys ``"train"``, ``"eval"``) supply already loaded
    corpora or ``(X, clip_ids)`` features, e.g. in tests.
    """
    from perser.corpus import load_corpus

    corpora = dict(corpora or {})
    features = dict(features or {})
    log = SkipLog("evaluate")
    cross = cfg.eval_corpus is not None or "eval" in corpora
    train = corpora.get("train") or load_corpus(cfg.corpus, format=cfg.format, **cfg.corpus_options)
    ev = (corpora.get("eval") or load_corpus(cfg.eval_corpus, format=cfg.eval_format, **cfg.eval_corpus_options)) \
        if cross else train
    target = target_space(ev, cfg)
    ev_space = ev.space(cfg.space)
    notes: list[str] = []
    if not cross:
        if cfg.valid_splits is not None:
            raise ConfigError("valid_splits applies to a cross-corpus run (early stopping on the training corpus's "
                              "official splits); give eval_corpus too, or drop valid_splits")
        ep = ""
        clips, ratings = _table(ev, ev_space, target, cfg.mapping, log, "mapping", "eval", "")
        X, ids = features.get("eval") or _features(ev, cfg, log)
        annotators = ev.annotators
    else:
        tp, ep = _prefixes(train, ev)
        tr_space = train.space(cfg.train_space or cfg.space)
        if cfg.train_mapping is None and needs_mapping(tr_space, target) is None and tr_space.is_class \
                and tr_space.classes != target.classes:
            notes.append(f"training classes {list(tr_space.classes)} used as evaluation classes {list(target.classes)}")
        c1, r1 = _table(train, tr_space, target, cfg.train_mapping, log, "train_mapping", "train", tp)
        if cfg.train_splits is not None or cfg.valid_splits is not None:
            c1, r1 = _keep_splits(c1, r1, cfg.train_splits, train.name, notes, valid=cfg.valid_splits)
        c2, r2 = _table(ev, ev_space, target, cfg.mapping, log, "mapping", "eval", ep)
        clips = pd.concat([c1, c2])
        ratings = pd.concat([r1, r2], ignore_index=True)
        X1, i1 = features.get("train") or _features(train, cfg, log)
        X2, i2 = features.get("eval") or _features(ev, cfg, log)
        if X1.shape[1:] != X2.shape[1:]:
            raise ConfigError(f"features of the two corpora differ in shape ({list(X1.shape[1:])} vs {list(X2.shape[1:])})")
        X = np.concatenate([X1, X2])
        ids = np.concatenate([np.asarray([tp + str(c) for c in i1], dtype=object),
                              np.asarray([ep + str(c) for c in i2], dtype=object)])
        annotators = None
        if ev.annotators is not None:
            annotators = ev.annotators.copy()
            annotators.index = ep + annotators.index.astype(str)
        notes.append(f"cross-corpus: trained on {train.name!r} ({tr_space.name}), enrolled and tested on "
                     f"listeners of {ev.name!r} ({ev_space.name})")
        if cfg.train_mapping is not None:
            notes.append(f"label mapping of the training corpus: {cfg.train_mapping.model_dump(exclude_none=True)}"
                         + (f"; dimensions rescaled linearly from {cfg.train_mapping.scale or tr_space.scale} "
                            f"to {target.scale}" if target.kind == "dimensional" else ""))
    if cfg.mapping is not None:
        notes.append(f"label mapping of the evaluation corpus: {cfg.mapping.model_dump(exclude_none=True)}")
    have = set(ids.tolist())
    lost = ~ratings["clip_id"].isin(have)
    if lost.any():
        log.add("ratings of clips without features left out", ratings.loc[lost, "clip_id"].iloc[0], n=int(lost.sum()))
        ratings = ratings.loc[~lost].reset_index(drop=True)
    clips = clips.loc[clips.index.isin(have)]
    dup = ratings.duplicated(["clip_id", "annotator_id"], keep="first")
    if dup.any():
        log.add("repeated ratings of a clip by the same listener, first kept", ratings.loc[dup, "clip_id"].iloc[0],
                n=int(dup.sum()))
        ratings = ratings.loc[~dup]
    if ratings.empty:
        raise CorpusError("no ratings left to evaluate on")
    log.emit()
    notes.extend(log.messages())
    eval_ids = {str(c): ep + str(c) for c in ev.clips.index}
    return EvalData(space=target, clips=clips, ratings=ratings.reset_index(drop=True), X=X, clip_ids=ids,
                    annotators=annotators, cross_corpus=cross, notes=notes, eval_ids=eval_ids)


def _split_name(name: str) -> str:
    """An official split name as the loaders store it (``Development`` -> ``dev``, ``Train`` -> ``train``)."""
    from perser.corpus.splits import SPLIT_ALIASES

    low = str(name).strip().lower()
    return SPLIT_ALIASES.get(low, low)


def _keep_splits(clips: pd.DataFrame, ratings: pd.DataFrame, splits: list[str] | None, name: str, notes: list[str],
                 valid: list[str] | None = None):
    """The training corpus's clips (and their ratings) of the official ``splits`` only
    (``None``: every split but the ``valid`` ones); the clips of the ``valid`` splits stay,
    with ``origin`` ``"valid"`` (early stopping, never training).

    Split names are matched as the loaders store them: case-insensitive, with the aliases
    of :data:`perser.corpus.splits.SPLIT_ALIASES` (``development``/``validation`` -> ``dev``)."""
    what = "train_splits" if valid is None else "valid_splits" if splits is None else "train_splits/valid_splits"
    if "split" not in clips.columns:
        raise ConfigError(f"{what}: corpus {name!r} has no official split (clips.split); drop {what}")
    split = clips["split"].astype(str).map(_split_name)
    have = sorted(set(split[clips["split"].notna()]))
    for key, names in (("train_splits", splits), ("valid_splits", valid)):
        unknown = [s for s in names or [] if _split_name(s) not in have]
        if unknown:
            raise ConfigError(f"{key}: corpus {name!r} has no split {unknown}; its splits are {have}")
    vset = {_split_name(s) for s in valid or []}
    tset = {_split_name(s) for s in splits} if splits is not None else set(have) - vset
    both = sorted(tset & vset)
    if both:
        raise ConfigError(f"train_splits and valid_splits both name split(s) {both} of corpus {name!r}: a clip "
                          "cannot be trained on and used for early stopping")
    keep = split.isin(tset).to_numpy()
    held = split.isin(vset).to_numpy()
    notes.append(f"trained on the {int(keep.sum())} clips of {name!r} in split(s) {sorted(tset)}"
                 + (f", early stopping on its {int(held.sum())} clips of split(s) {sorted(vset)}" if vset else "")
                 + f" ({int((~keep & ~held).sum())} clips of other splits left out)")
    clips = clips.loc[keep | held].copy()
    clips.loc[held[keep | held], "origin"] = "valid"
    return clips, ratings[ratings["clip_id"].isin(set(clips.index))]


def _prefixes(train: Corpus, ev: Corpus) -> tuple[str, str]:
    a, b = train.name, ev.name
    if a == b:
        a, b = "train", "eval"
    return f"{a}/", f"{b}/"
