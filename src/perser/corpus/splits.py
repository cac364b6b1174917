"""Seeded, reproducible splits of clips and annotators.

The evaluation protocol combines three of them:

1. :func:`speaker_folds` puts every clip in a fold so that no speaker appears in two
   folds (or follows the corpus's own folds, official split or sessions);
   :func:`iter_folds` turns that into (train, dev, test) clip sets.
2. :func:`annotator_split` draws the *unseen* annotators (new listeners, held out of
   training) among those with enough ratings; the others are *seen*.
3. :func:`enrollment_split` divides one unseen annotator's rated clips into an
   enrollment (support) set of K clips and a disjoint test set.

:func:`filter_annotators` removes annotators with too few ratings and says what it
removed. The same arguments always give the same result: every random draw uses a
generator seeded by ``seed`` (and, per annotator, by the annotator's id), and inputs
are sorted first so that the order of rows does not matter.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Iterator, Literal, Sequence

import numpy as np
import pandas as pd

from perser.errors import CorpusError, SkipLog

By = Literal["auto", "speaker", "session", "fold", "split"]

#: Official split names, normalised (lower case otherwise): MSP-Podcast says
#: ``Development`` (``Validation`` in some releases) for the development set; its test
#: sets ``Test1``/``Test2``/``Test3`` become ``test1``/``test2``/``test3``.
SPLIT_ALIASES = {
    "train": "train", "training": "train",
    "dev": "dev", "development": "dev", "validation": "dev", "valid": "dev", "val": "dev",
    "testing": "test",
}


def rng_for(seed: int, *keys: str) -> np.random.Generator:
    """A generator seeded by ``seed`` and string ``keys`` (stable across runs and platforms)."""
    return np.random.default_rng([int(seed), *(zlib.crc32(str(k).encode("utf-8")) for k in keys)])


def _present(clips: pd.DataFrame, col: str) -> bool:
    return col in clips.columns and bool(clips[col].notna().all()) and bool(len(clips))


def resolve_by(clips: pd.DataFrame, by: By = "auto") -> str:
    """The grouping ``by="auto"`` stands for: the corpus's ``fold`` column if every clip has
    one, else its official ``split``, else ``session``, else ``speaker``."""
    if by != "auto":
        if by not in ("speaker", "session", "fold", "split"):
            raise CorpusError(f"by must be one of auto, speaker, session, fold, split; got {by!r}")
        if not _present(clips, by):
            raise CorpusError(f"cannot split by {by!r}: the clips table has no complete {by!r} column")
        return by
    for col in ("fold", "split", "session"):
        if _present(clips, col):
            return col
    return "speaker"


def _assign_groups(groups: pd.Series, n_folds: int, seed: int) -> pd.Series:
    """Assign whole groups to ``n_folds`` folds of similar clip counts (seeded)."""
    sizes = groups.value_counts(sort=False)
    sizes = sizes.sort_index()  # order-independent
    if len(sizes) < n_folds:
        raise CorpusError(f"cannot make {n_folds} folds from {len(sizes)} {groups.name or 'group'}(s)")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(sizes))
    # largest groups first (random order among equal sizes), each to the currently smallest fold
    order = order[np.argsort(-sizes.to_numpy()[order], kind="stable")]
    load = np.zeros(n_folds, dtype=np.int64)
    fold_of = np.empty(len(sizes), dtype=np.int64)
    tiebreak = rng.permutation(n_folds)
    for g in order:
        f = int(np.lexsort((tiebreak, load))[0])
        fold_of[g] = f
        load[f] += sizes.iloc[g]
    mapping = pd.Series(fold_of, index=sizes.index)
    return groups.map(mapping).astype(np.int64)


def speaker_folds(clips: pd.DataFrame, n_folds: int = 5, seed: int = 0, by: By = "auto") -> pd.Series:
    """Fold of every clip, never splitting a speaker (or session) across folds.

    Parameters
    ----------
    clips:
        A clips table (index ``clip_id``, column ``speaker``; optionally ``session``,
        ``fold``, ``split``).
    n_folds:
        Number of folds for ``by="speaker"`` and ``by="session"``; ignored otherwise.
    seed:
        Seeds the assignment of speakers (sessions) to folds.
    by:
        ``"speaker"``: whole speakers are dealt to ``n_folds`` folds of similar size,
        largest first, each to the smallest fold so far (ties broken at random).
        ``"session"``: the same with sessions (IEMOCAP's 5 sessions and ``n_folds=5`` give
        leave-one-session-out). ``"fold"``: the corpus's own ``fold`` column.
        ``"split"``: the corpus's official ``split`` column (MSP-Podcast), with names
        normalised to ``train``/``dev``/``test...`` (see :data:`SPLIT_ALIASES`).
        ``"auto"``: the first of ``fold``, ``split``, ``session`` that every clip has,
        else ``speaker``.

    Returns
    -------
    pandas.Series
        Named ``"fold"``, indexed like ``clips``: integer folds ``0 .. n_folds-1``
        (``speaker``/``session``), the corpus's fold values (``fold``) or split names
        (``split``). Its ``attrs["by"]`` says which grouping was used.

    Warns
    -----
    PerserWarning
        When the corpus's own folds, split or sessions put one speaker in several of
        them (the count and examples are given); ``by="speaker"`` never does.
    """
    if "speaker" not in clips.columns:
        raise CorpusError("the clips table lacks the 'speaker' column")
    if clips["speaker"].isna().any():
        raise CorpusError(f"clip {clips.index[clips['speaker'].isna().to_numpy()][0]!r} has no speaker")
    how = resolve_by(clips, by)
    if how in ("speaker", "session"):
        if n_folds < 2:
            raise CorpusError(f"n_folds must be at least 2, got {n_folds}")
        groups = clips[how].astype(str).rename(how)
        folds = _assign_groups(groups, n_folds, seed)
    elif how == "fold":
        folds = clips["fold"]
        if pd.api.types.is_float_dtype(folds) and (folds == folds.round()).all():
            folds = folds.astype(np.int64)
    else:
        raw = clips["split"].astype(str).str.strip()
        folds = raw.str.lower().map(lambda s: SPLIT_ALIASES.get(s, s)).astype(object)
    folds = pd.Series(np.asarray(folds, dtype=object if how == "split" else None), index=clips.index, name="fold")
    if how != "speaker":
        per = pd.DataFrame({"speaker": clips["speaker"].astype(str), "fold": folds.astype(str)})
        n = per.drop_duplicates().groupby("speaker").size()
        straddle = n[n > 1]
        if len(straddle):
            log = SkipLog("speaker_folds")
            reason = f"speaker(s) appear in more than one {how} of the corpus; their clips are not speaker-independent"
            log.add(reason, "", n=len(straddle))
            for s in straddle.index[: log.max_examples]:
                log.add(reason, s, n=0)
            log.emit(stacklevel=2)
    folds.attrs["by"] = how
    return folds


@dataclass(frozen=True)
class Fold:
    """One train/test division of the clips: ``dev`` is empty for k-fold splits."""

    name: str
    train: pd.Index
    test: pd.Index
    dev: pd.Index


def iter_folds(folds: pd.Series, dev_fold: bool = False) -> Iterator[Fold]:
    """(train, dev, test) clip sets from :func:`speaker_folds`.

    For an official split (values ``train``/``dev``/``test``...) yields one :class:`Fold`
    per test set (every value starting with ``test``: ``test``, or ``test1``, ``test2``...), training on ``train`` and keeping
    ``dev`` as the development set. For k folds yields k of them, each fold once the test
    set; with ``dev_fold=True`` the next fold (cyclically) is the development set.
    """
    values = folds.astype(str) if folds.dtype == object else folds
    if folds.attrs.get("by") == "split" or set(pd.unique(values)) & {"train", "test"}:
        tests = sorted(v for v in pd.unique(values) if str(v).startswith("test"))
        if "train" not in set(values) or not tests:
            raise CorpusError(f"an official split needs 'train' and a 'test' set; it has {sorted(set(values))}")
        for t in tests:
            yield Fold(
                name=str(t),
                train=folds.index[(values == "train").to_numpy()],
                test=folds.index[(values == t).to_numpy()],
                dev=folds.index[(values == "dev").to_numpy()],
            )
        return
    names = sorted(pd.unique(values).tolist())
    if len(names) < 2:
        raise CorpusError(f"need at least two folds, got {names}")
    empty = folds.index[:0]
    for i, f in enumerate(names):
        test = (values == f).to_numpy()
        dev = (values == names[(i + 1) % len(names)]).to_numpy() if dev_fold else np.zeros(len(values), bool)
        yield Fold(name=str(f), train=folds.index[~test & ~dev], test=folds.index[test],
                   dev=folds.index[dev] if dev_fold else empty)


def ratings_per_annotator(ratings: pd.DataFrame) -> pd.Series:
    """Number of rated clips per annotator (distinct clips), sorted by annotator id."""
    if "annotator_id" not in ratings.columns or "clip_id" not in ratings.columns:
        raise CorpusError("the ratings table needs columns 'clip_id' and 'annotator_id'")
    pairs = ratings[["annotator_id", "clip_id"]].drop_duplicates()
    return pairs.groupby("annotator_id", sort=True).size().rename("n_ratings")


def filter_annotators(ratings: pd.DataFrame, min_ratings: int, warn: bool = True) -> tuple[pd.DataFrame, dict]:
    """Drop the ratings of annotators who rated fewer than ``min_ratings`` clips.

    Returns
    -------
    kept_ratings:
        The remaining rows (original index kept).
    excluded:
        ``{"min_ratings", "n_annotators", "n_ratings", "annotators"}``: how many
        annotators and rating rows were removed, and ``{annotator_id: n_ratings}`` of each
        removed annotator. With ``warn=True`` a counted
        :class:`~perser.errors.PerserWarning` says the same.
    """
    counts = ratings_per_annotator(ratings)
    low = counts[counts < min_ratings]
    drop = ratings["annotator_id"].isin(low.index)
    excluded = {
        "min_ratings": int(min_ratings),
        "n_annotators": int(len(low)),
        "n_ratings": int(drop.sum()),
        "annotators": {str(a): int(n) for a, n in low.items()},
    }
    if warn and len(low):
        log = SkipLog("filter_annotators")
        reason = f"annotator(s) with fewer than {min_ratings} ratings excluded ({excluded['n_ratings']} ratings)"
        log.add(reason, "", n=len(low))
        for a, n in list(low.items())[: log.max_examples]:
            log.add(reason, f"{a}: {n}", n=0)
        log.emit(stacklevel=2)
    return ratings.loc[~drop.to_numpy()], excluded


def annotator_split(
    ratings: pd.DataFrame,
    n_unseen: int | None = None,
    frac_unseen: float | None = None,
    seed: int = 0,
    min_ratings: int = 1,
) -> tuple[list[str], list[str]]:
    """Split the annotators into seen (for training) and unseen (new listeners).

    Parameters
    ----------
    ratings:
        Long ratings table (``annotator_id``, ``clip_id``).
    n_unseen, frac_unseen:
        How many annotators to hold out: a number, or a fraction of the *eligible*
        annotators (rounded, at least 1). Give exactly one.
    seed:
        Seeds the draw.
    min_ratings:
        Only annotators with at least this many rated clips are eligible to be unseen
        (an unseen annotator needs K enrollment clips plus a test set); every other
        annotator is seen. Use :func:`filter_annotators` to drop annotators altogether.

    Returns
    -------
    (seen, unseen):
        Sorted lists of annotator ids; together they hold every annotator exactly once.
    """
    if (n_unseen is None) == (frac_unseen is None):
        raise CorpusError("give exactly one of n_unseen and frac_unseen")
    counts = ratings_per_annotator(ratings)
    eligible = counts.index[counts.to_numpy() >= min_ratings]
    if n_unseen is None:
        if not 0 < float(frac_unseen) < 1:  # type: ignore[arg-type]
            raise CorpusError(f"frac_unseen must be between 0 and 1, got {frac_unseen}")
        n_unseen = max(1, int(round(float(frac_unseen) * len(eligible))))  # type: ignore[arg-type]
    if n_unseen < 1:
        raise CorpusError(f"n_unseen must be at least 1, got {n_unseen}")
    if n_unseen > len(eligible):
        raise CorpusError(
            f"cannot hold out {n_unseen} unseen annotators: only {len(eligible)} of {len(counts)} "
            f"have at least {min_ratings} ratings"
        )
    if n_unseen >= len(counts):
        raise CorpusError(f"holding out {n_unseen} of {len(counts)} annotators leaves none to train on")
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(eligible), size=n_unseen, replace=False))
    unseen = sorted(str(a) for a in eligible[pick])
    uset = set(unseen)
    seen = [str(a) for a in counts.index if a not in uset]
    return seen, unseen


def enrollment_split(
    annotator_ratings: pd.DataFrame | Sequence[str],
    k: int,
    seed: int = 0,
    min_test: int = 1,
    max_k: int | None = None,
) -> tuple[list[str], list[str]]:
    """Divide one annotator's rated clips into an enrollment set of ``k`` clips and a test set.

    Parameters
    ----------
    annotator_ratings:
        That annotator's ratings (one ``annotator_id``; column ``clip_id``), or their
        clip ids.
    k:
        Size of the enrollment (support) set.
    seed:
        Seeds the draw, together with the annotator's id: annotators get independent
        draws, and the same arguments give the same sets.
    min_test:
        The test set must keep at least this many clips, else :class:`CorpusError`.
    max_k:
        When given, the test set is the clips left after the first ``max_k`` drawn, so it
        is **the same for every k <= max_k**, and the enrollment sets are nested (the
        set for a smaller k is part of the set for a larger one). Use the largest K of an
        experiment so that results across K compare on the same test clips.

    Returns
    -------
    (support_clip_ids, test_clip_ids):
        Disjoint lists of clip ids (support in draw order, test sorted).
    """
    key = ""
    if isinstance(annotator_ratings, pd.DataFrame):
        if "clip_id" not in annotator_ratings.columns:
            raise CorpusError("enrollment_split needs a ratings table with a 'clip_id' column")
        if "annotator_id" in annotator_ratings.columns:
            ann = pd.unique(annotator_ratings["annotator_id"])
            if len(ann) > 1:
                raise CorpusError(f"enrollment_split takes one annotator's ratings, got {len(ann)} annotators")
            key = str(ann[0]) if len(ann) else ""
        ids = annotator_ratings["clip_id"].astype(str).tolist()
    else:
        ids = [str(c) for c in annotator_ratings]
    clips = sorted(set(ids))
    if len(clips) < len(ids):
        raise CorpusError(
            f"annotator {key!r} rated some clip more than once" if key else "duplicate clip ids in enrollment_split"
        )
    if k < 0:
        raise CorpusError(f"k must be non-negative, got {k}")
    hold = k if max_k is None else max_k
    if max_k is not None and k > max_k:
        raise CorpusError(f"k={k} is larger than max_k={max_k}")
    who = f"annotator {key!r}" if key else "the annotator"
    if len(clips) - hold < min_test:
        raise CorpusError(
            f"{who} rated {len(clips)} clips: too few for {hold} enrollment clips and a test set of at least {min_test}"
        )
    perm = rng_for(seed, key).permutation(len(clips))
    support = [clips[i] for i in perm[:k]]
    test = sorted(clips[i] for i in perm[hold:])
    return support, test
