"""Consensus labels: one label per clip derived from all of its annotators' ratings.

Everything here is vectorised (``numpy.bincount`` over integer codes), so a corpus
the size of MSP-Podcast (about a million ratings) takes well under a second per method.

Methods
-------
``plurality`` (class spaces)
    The class chosen most often. A tie is **never broken silently**: by default the
    clip's label is missing (``<NA>``), its ``tie`` flag is set, its ``tied`` column lists
    the tied classes and one counted :class:`~perser.errors.PerserWarning` is issued;
    ``tie_break="random"`` picks one of the tied classes with a seeded generator (still
    flagged and counted). For a multilabel space each ticked class is one vote.
``soft`` (class spaces)
    Categorical: the share of the clip's ratings given to each class (rows sum to 1).
    Multilabel: the fraction of the clip's annotators who ticked each class.
``mean`` (dimensional spaces)
    The mean rating per dimension (with its standard deviation).
``ewe`` (dimensional spaces)
    The evaluator-weighted estimator of Grimm & Kroschel (2005, "Evaluation of natural
    emotions using self assessment manikins", ASRU): a mean weighted by each
    annotator's reliability, the correlation between that annotator's ratings and the
    clips' mean ratings (see :func:`ewe_weights`).

Use :func:`consensus` for a :class:`~perser.corpus.model.Corpus`, or the per-method
functions for a ratings table (long format: ``clip_id``, ``annotator_id``, value columns).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from perser.corpus.model import MULTILABEL_SEP, Corpus, LabelSpace, split_multilabel
from perser.errors import CorpusError, SkipLog

Method = Literal["plurality", "soft", "mean", "ewe"]
METHODS: tuple[str, ...] = ("plurality", "soft", "mean", "ewe")


# ---------------------------------------------------------------------- encoding
def rated(ratings: pd.DataFrame, space: LabelSpace) -> pd.DataFrame:
    """Rows of ``ratings`` that carry a value in ``space`` (other rows belong to other spaces)."""
    for col in ("clip_id", "annotator_id", *space.columns):
        if col not in ratings.columns:
            raise CorpusError(f"ratings lack column {col!r} (label space {space.name!r})")
    mask = ratings[space.columns].notna().all(axis=1).to_numpy()
    if space.kind == "multilabel":
        mask = mask & (ratings[space.name].astype("str").str.strip() != "").to_numpy()
    return ratings.loc[mask] if not mask.all() else ratings


def clip_codes(ratings: pd.DataFrame) -> tuple[np.ndarray, pd.Index]:
    """Integer code per rating row and the sorted clip ids they index."""
    codes, uniques = pd.factorize(ratings["clip_id"], sort=False)
    uniques = pd.Index(uniques)
    order = uniques.argsort()  # sort the distinct ids only, then relabel the rows
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order), dtype=np.int64)
    return rank[codes], pd.Index(np.asarray(uniques[order], dtype=object), name="clip_id")


def class_indicator(values: pd.Series, space: LabelSpace) -> tuple[np.ndarray, list[str], np.ndarray, list[tuple[int, str]]]:
    """Encode class values through their distinct values (a few, however many rows).

    Returns ``(codes, uniques, indicator, unknown)``: ``codes[i]`` indexes the distinct
    value (in ``uniques``, as strings) of row ``i`` (-1 when missing), ``indicator`` is a ``bool`` distinct-values × classes
    matrix (the classes each distinct value names), and ``unknown`` lists
    ``(distinct value index, label)`` for labels outside ``space``. A multilabel value
    names every ``;``-separated class in it.
    """
    codes, uniques = pd.factorize(values, sort=False)
    uniques = [str(u) for u in uniques]
    index = {c: j for j, c in enumerate(space.classes)}
    ind = np.zeros((len(uniques), len(space.classes)), dtype=bool)
    unknown: list[tuple[int, str]] = []
    for u, value in enumerate(uniques):
        parts = [value] if space.kind == "categorical" else split_multilabel(value)
        for c in parts:
            j = index.get(c)
            if j is None:
                unknown.append((u, c))
            else:
                ind[u, j] = True
    return codes.astype(np.int64), uniques, ind, unknown


def _class_matrix(ratings: pd.DataFrame, space: LabelSpace) -> tuple[np.ndarray, np.ndarray]:
    if not space.is_class:
        raise CorpusError(f"label space {space.name!r} is dimensional; votes need a class space")
    codes, _, ind, unknown = class_indicator(ratings[space.name], space)
    if unknown:
        bad = np.isin(codes, [u for u, _ in unknown])
        i = int(np.flatnonzero(bad)[0])
        label = next(c for u, c in unknown if u == codes[i])
        raise CorpusError(
            f"label {label!r} of clip {ratings['clip_id'].iloc[i]!r} by annotator "
            f"{ratings['annotator_id'].iloc[i]!r} is not one of {list(space.classes)} (space {space.name!r})"
        )
    return codes, ind


def vote_counts(ratings: pd.DataFrame, space: LabelSpace) -> tuple[pd.DataFrame, pd.Series]:
    """Clip × class vote counts and the number of ratings per clip.

    Returns ``(counts, n_ratings)``: ``counts`` is an ``int64`` frame indexed by
    ``clip_id`` with one column per class; ``n_ratings`` counts the ratings (annotators)
    of each clip, which for a multilabel space may differ from the row sums.
    Raises :class:`CorpusError` naming the first label outside ``space``.
    """
    r = rated(ratings, space)
    ccode, clips = clip_codes(r)
    vcode, ind = _class_matrix(r, space)
    C, n = len(space.classes), len(clips)
    if space.kind == "categorical":
        cls = np.argmax(ind, axis=1)[vcode]
        m = np.bincount(ccode * C + cls, minlength=n * C).reshape(n, C)
    else:
        m = np.empty((n, C), dtype=np.int64)
        for j in range(C):
            m[:, j] = np.bincount(ccode, weights=ind[vcode, j], minlength=n).astype(np.int64)
    counts = pd.DataFrame(m, index=clips, columns=list(space.classes))
    return counts, pd.Series(np.bincount(ccode, minlength=n), index=clips, name="n_ratings")


# --------------------------------------------------------------------- methods
def plurality(
    ratings: pd.DataFrame,
    space: LabelSpace,
    tie_break: Literal["none", "random"] = "none",
    seed: int = 0,
    warn: bool = True,
) -> pd.DataFrame:
    """Plurality vote per clip.

    Parameters
    ----------
    ratings:
        Long ratings table (rows without a value in ``space`` are ignored).
    space:
        A categorical or multilabel label space.
    tie_break:
        ``"none"`` leaves a tied clip's ``label`` missing; ``"random"`` picks one of the
        tied classes with ``numpy.random.default_rng(seed)`` (the same for every run).
        Either way the clip's ``tie`` flag is set and ties are counted in a warning.
    seed:
        Seed of the tie-breaking generator.
    warn:
        Issue the counted :class:`~perser.errors.PerserWarning` about ties.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``clip_id``: ``label`` (string, ``<NA>`` for an unbroken tie),
        ``votes`` (votes for the winning class), ``share`` (``votes / n_ratings``, the
        fraction of the clip's annotators who chose it), ``n_ratings``, ``tie`` (bool)
        and ``tied`` (the tied classes joined by ``";"``, empty when no tie).
    """
    if tie_break not in ("none", "random"):
        raise CorpusError(f"tie_break must be 'none' or 'random', got {tie_break!r}")
    counts, n = vote_counts(ratings, space)
    m = counts.to_numpy()
    top = m.max(axis=1) if len(m) else np.zeros(0, dtype=np.int64)
    is_top = (m == top[:, None]) & (top[:, None] > 0)
    n_top = is_top.sum(axis=1)
    tie = n_top > 1
    classes = np.asarray(space.classes, dtype=object)
    winner = np.argmax(is_top, axis=1)
    label = classes[winner].astype(object) if len(m) else np.zeros(0, dtype=object)
    label[n_top == 0] = None
    tied = np.full(len(m), "", dtype=object)
    if tie.any():
        ti = np.flatnonzero(tie)
        tied[ti] = [MULTILABEL_SEP.join(classes[row]) for row in is_top[ti]]
        if tie_break == "random":
            rng = np.random.default_rng(seed)
            # pick uniformly among the tied classes: random key on each tied class, take the max
            keys = np.where(is_top[ti], rng.random((len(ti), m.shape[1])), -1.0)
            label[ti] = classes[np.argmax(keys, axis=1)]
        else:
            label[ti] = None
        if warn:
            log = SkipLog("plurality")
            how = f"broken at random (seed {seed})" if tie_break == "random" else "left without a label"
            log.add(f"of {len(m)} clips have tied plurality votes in space {space.name!r}, {how}", "", n=len(ti))
            for cid in counts.index[ti[: log.max_examples]]:
                log.add(f"of {len(m)} clips have tied plurality votes in space {space.name!r}, {how}", cid, n=0)
            log.emit(stacklevel=2)
    nv = n.to_numpy()
    out = pd.DataFrame(
        {
            "label": pd.array(label, dtype="string"),
            "votes": top.astype(np.int64),
            "share": np.divide(top, nv, out=np.zeros(len(nv)), where=nv > 0),
            "n_ratings": nv,
            "tie": tie,
            "tied": pd.array(tied, dtype="string"),
        },
        index=counts.index,
    )
    return out


def soft(ratings: pd.DataFrame, space: LabelSpace) -> pd.DataFrame:
    """Soft label per clip: class shares (categorical) or tick fractions (multilabel).

    Returns a ``float64`` frame indexed by ``clip_id`` with one column per class.
    Categorical rows sum to 1; a multilabel entry is the fraction of the clip's
    annotators who ticked that class.
    """
    counts, n = vote_counts(ratings, space)
    m = counts.to_numpy(dtype=np.float64)
    denom = m.sum(axis=1) if space.kind == "categorical" else n.to_numpy(dtype=np.float64)
    return pd.DataFrame(m / denom[:, None], index=counts.index, columns=counts.columns)


def _dim_values(ratings: pd.DataFrame, space: LabelSpace) -> tuple[pd.DataFrame, np.ndarray, pd.Index, np.ndarray]:
    if space.kind != "dimensional":
        raise CorpusError(f"label space {space.name!r} is {space.kind}; this consensus needs a dimensional space")
    r = rated(ratings, space)
    x = r[list(space.dimensions)].to_numpy(dtype=np.float64)
    ccode, clips = clip_codes(r)
    return r, ccode, clips, x


def mean(ratings: pd.DataFrame, space: LabelSpace) -> pd.DataFrame:
    """Mean rating per clip and dimension.

    Returns a frame indexed by ``clip_id``: one column per dimension (the mean), one
    ``<dimension>_std`` column per dimension (population standard deviation across
    the clip's annotators) and ``n_ratings``.
    """
    _, ccode, clips, x = _dim_values(ratings, space)
    n = np.bincount(ccode, minlength=len(clips)).astype(np.float64)
    out: dict[str, np.ndarray] = {}
    for j, d in enumerate(space.dimensions):
        s = np.bincount(ccode, weights=x[:, j], minlength=len(clips))
        ss = np.bincount(ccode, weights=x[:, j] ** 2, minlength=len(clips))
        mu = s / n
        out[d] = mu
        out[f"{d}_std"] = np.sqrt(np.maximum(ss / n - mu**2, 0.0))
    df = pd.DataFrame(out, index=clips)
    df = df[[*space.dimensions, *(f"{d}_std" for d in space.dimensions)]]
    df["n_ratings"] = n.astype(np.int64)
    return df


def ewe_weights(
    ratings: pd.DataFrame,
    space: LabelSpace,
    reference: Literal["mean", "others"] = "mean",
    min_ratings: int = 2,
) -> pd.DataFrame:
    """Reliability of each annotator per dimension, for :func:`ewe`.

    The weight of annotator *k* is the Pearson correlation between *k*'s ratings and
    the reference ratings of the same clips, clipped at 0 (Grimm & Kroschel 2005).

    Parameters
    ----------
    reference:
        ``"mean"`` (Grimm & Kroschel): the clip's mean over all its annotators,
        ``"others"``: the mean over the clip's *other* annotators (leave-one-out, which
        does not reward an annotator for agreeing with itself; clips with a single
        rating then do not count).
    min_ratings:
        Annotators with fewer usable ratings, or whose ratings (or references) do not
        vary, have no defined correlation: their weight is 0.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``annotator_id``: one weight column per dimension, plus ``n_ratings``.
    """
    if reference not in ("mean", "others"):
        raise CorpusError(f"reference must be 'mean' or 'others', got {reference!r}")
    r, ccode, clips, x = _dim_values(ratings, space)
    acode, annotators = pd.factorize(r["annotator_id"], sort=True)
    w, n = _reliabilities(x, ccode, len(clips), acode.astype(np.int64), len(annotators), reference, min_ratings)
    df = pd.DataFrame(w, columns=list(space.dimensions),
                      index=pd.Index(np.asarray(annotators, dtype=object), name="annotator_id"))
    df["n_ratings"] = n.astype(np.int64)
    return df


def _reliabilities(x: np.ndarray, ccode: np.ndarray, n_clips: int, acode: np.ndarray, A: int,
                   reference: str, min_ratings: int) -> tuple[np.ndarray, np.ndarray]:
    """EWE weights ``[A, D]`` and usable ratings per annotator, from integer codes."""
    nc = np.bincount(ccode, minlength=n_clips).astype(np.float64)
    w = np.zeros((A, x.shape[1]))
    n = np.zeros(A)
    for j in range(x.shape[1]):
        xj = x[:, j]
        s = np.bincount(ccode, weights=xj, minlength=n_clips)
        if reference == "mean":
            ref = (s / nc)[ccode]
            a, xu, ru = acode, xj, ref
        else:
            k = nc[ccode] - 1.0
            use = k > 0
            ref = np.divide(s[ccode] - xj, k, out=np.zeros(len(xj)), where=use)
            a, xu, ru = acode[use], xj[use], ref[use]
        n = np.bincount(a, minlength=A).astype(np.float64)
        sx = np.bincount(a, weights=xu, minlength=A)
        sr = np.bincount(a, weights=ru, minlength=A)
        sxx = np.bincount(a, weights=xu * xu, minlength=A)
        srr = np.bincount(a, weights=ru * ru, minlength=A)
        sxr = np.bincount(a, weights=xu * ru, minlength=A)
        with np.errstate(invalid="ignore", divide="ignore"):
            cov = sxr - sx * sr / n
            vx = sxx - sx * sx / n
            vr = srr - sr * sr / n
            corr = cov / np.sqrt(vx * vr)
        ok = (n >= max(min_ratings, 2)) & (vx > 1e-12 * np.maximum(n, 1)) & (vr > 1e-12 * np.maximum(n, 1))
        w[:, j] = np.where(ok, np.clip(np.nan_to_num(corr), 0.0, 1.0), 0.0)
    return w, n


def ewe(
    ratings: pd.DataFrame,
    space: LabelSpace,
    reference: Literal["mean", "others"] = "mean",
    min_ratings: int = 2,
    weights: pd.DataFrame | None = None,
    warn: bool = True,
) -> pd.DataFrame:
    """Evaluator-weighted estimator per clip and dimension (Grimm & Kroschel 2005).

    ``EWE(clip) = sum_k w_k x_k / sum_k w_k`` over the clip's annotators *k*, with
    ``w_k`` from :func:`ewe_weights` (or ``weights``, indexed by annotator, one
    column per dimension). A clip whose annotators all have weight 0 falls back to its
    plain mean; such clips are flagged in ``fallback`` and counted in a warning.

    Returns a frame indexed by ``clip_id``: one column per dimension, ``n_ratings`` and
    ``fallback`` (bool, any dimension fell back to the mean).
    """
    if reference not in ("mean", "others"):
        raise CorpusError(f"reference must be 'mean' or 'others', got {reference!r}")
    r, ccode, clips, x = _dim_values(ratings, space)
    if weights is None:
        acode, annotators = pd.factorize(r["annotator_id"], sort=False)
        acode = acode.astype(np.int64)
        W, _ = _reliabilities(x, ccode, len(clips), acode, len(annotators), reference, min_ratings)
    else:
        acode = weights.index.get_indexer(r["annotator_id"])
        if (acode < 0).any():
            raise CorpusError(f"EWE weights lack annotator {r['annotator_id'].iloc[int(np.flatnonzero(acode < 0)[0])]!r}")
        W = weights[list(space.dimensions)].to_numpy(dtype=np.float64)
    nc = np.bincount(ccode, minlength=len(clips)).astype(np.float64)
    out: dict[str, np.ndarray] = {}
    fallback = np.zeros(len(clips), dtype=bool)
    for j, d in enumerate(space.dimensions):
        w = W[acode, j]
        sw = np.bincount(ccode, weights=w, minlength=len(clips))
        swx = np.bincount(ccode, weights=w * x[:, j], minlength=len(clips))
        plain = np.bincount(ccode, weights=x[:, j], minlength=len(clips)) / nc
        fb = sw <= 0
        out[d] = np.where(fb, plain, np.divide(swx, sw, out=np.zeros(len(sw)), where=~fb))
        fallback |= fb
    df = pd.DataFrame(out, index=clips)
    df["n_ratings"] = nc.astype(np.int64)
    df["fallback"] = fallback
    if warn and fallback.any():
        log = SkipLog("ewe")
        reason = f"of {len(clips)} clips have only zero-weight annotators; their EWE is the plain mean"
        log.add(reason, "", n=int(fallback.sum()))
        for cid in clips[fallback][: log.max_examples]:
            log.add(reason, cid, n=0)
        log.emit(stacklevel=2)
    return df


# ------------------------------------------------------------------ corpus API
def consensus(
    corpus: Corpus,
    space: LabelSpace | str | None = None,
    method: Method | None = None,
    include_self: bool = False,
    **options,
) -> pd.DataFrame:
    """Consensus labels of ``corpus`` in one label space.

    Parameters
    ----------
    corpus:
        The corpus.
    space:
        A label space of the corpus or its name; may be omitted when the corpus has one.
    method:
        ``"plurality"`` or ``"soft"`` (class spaces), ``"mean"`` or ``"ewe"``
        (dimensional). ``None``: plurality for class spaces, mean for dimensional ones.
    include_self:
        Count self-evaluations (``is_self``), which released consensus labels exclude.
    **options:
        Passed to the method (e.g. ``tie_break="random", seed=1`` for plurality,
        ``reference="others"`` for EWE).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``clip_id`` (clips with at least one rating in the space), as
        returned by :func:`plurality`, :func:`soft`, :func:`mean` or :func:`ewe`.
    """
    sp = corpus.space(space) if not isinstance(space, LabelSpace) else space
    if method is None:
        method = "plurality" if sp.is_class else "mean"
    if method not in METHODS:
        raise CorpusError(f"unknown consensus method {method!r}; expected one of {METHODS}")
    if (method in ("plurality", "soft")) != sp.is_class:
        raise CorpusError(f"consensus method {method!r} does not apply to the {sp.kind} space {sp.name!r}")
    r = corpus.ratings_in(sp, include_self=include_self)
    fn = {"plurality": plurality, "soft": soft, "mean": mean, "ewe": ewe}[method]
    return fn(r, sp, **options)

