"""Inter-annotator agreement: Fleiss' kappa and Krippendorff's alpha.

Both are computed from per-clip sufficient statistics (class counts per clip, or
per-clip sums of values and squared values), never from a dense annotators × clips
matrix, so they scale to crowd-sourced corpora (MSP-Podcast: about 150,000 clips and
12,000 workers) in well under a second. Neither needs to know *who* gave a rating,
only how many ratings of each value a clip received; clips with fewer than two
ratings carry no pairable values and do not count.

References
----------
* Fleiss, J. L. (1971). Measuring nominal scale agreement among many raters.
  *Psychological Bulletin* 76(5). With a variable number of raters per item, the
  per-item agreement uses that item's own count ``n_i``, and the chance agreement the
  pooled class proportions over all ratings of the counted items.
* Krippendorff, K. (2011). Computing Krippendorff's alpha-reliability. Coincidence
  counts: a clip with ``m`` pairable values contributes each ordered pair of its values
  with weight ``1 / (m - 1)``. The interval metric is ``(a - b)**2``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from perser.corpus.consensus import clip_codes, rated, vote_counts
from perser.corpus.model import Corpus, LabelSpace
from perser.errors import CorpusError


def fleiss_kappa(counts) -> float:
    """Fleiss' kappa from an items × categories count matrix.

    ``counts[i, j]`` is the number of raters who put item ``i`` in category ``j``;
    rows may sum to different numbers (variable raters per item). Items with fewer than
    two ratings are left out. Returns NaN when no item has two ratings, and 1.0 when
    every rating falls in one category (no chance disagreement to beat).
    """
    m = np.asarray(counts, dtype=np.float64)
    if m.ndim != 2:
        raise CorpusError(f"fleiss_kappa needs an items x categories matrix, got shape {m.shape}")
    n = m.sum(axis=1)
    keep = n >= 2
    if not keep.any():
        return float("nan")
    m, n = m[keep], n[keep]
    p_i = ((m * m).sum(axis=1) - n) / (n * (n - 1))
    p_bar = p_i.mean()
    p_j = m.sum(axis=0) / n.sum()
    p_e = float((p_j * p_j).sum())
    if p_e >= 1.0 - 1e-15:
        return 1.0
    return float((p_bar - p_e) / (1.0 - p_e))


def krippendorff_alpha_nominal(counts) -> float:
    """Krippendorff's alpha (nominal metric) from a units × values count matrix.

    ``counts[u, c]`` is the number of times unit ``u`` received value ``c``. Equivalent
    to the coincidence-matrix formula; units with fewer than two values are left out.
    Returns NaN when there are no pairable values or no variation at all.
    """
    m = np.asarray(counts, dtype=np.float64)
    if m.ndim != 2:
        raise CorpusError(f"krippendorff_alpha_nominal needs a units x values matrix, got shape {m.shape}")
    mu = m.sum(axis=1)
    keep = mu >= 2
    m, mu = m[keep], mu[keep]
    n = mu.sum()
    if n < 2:
        return float("nan")
    n_c = m.sum(axis=0)
    expected = n * n - float((n_c * n_c).sum())
    if expected <= 0:
        return float("nan")
    observed = float(((mu * mu - (m * m).sum(axis=1)) / (mu - 1)).sum())
    return float(1.0 - (n - 1) * observed / expected)


def krippendorff_alpha_interval(units, values) -> float:
    """Krippendorff's alpha (interval metric) from long data.

    Parameters
    ----------
    units:
        One unit (clip) label or integer code per value.
    values:
        The numeric values; NaN entries are ignored.

    Returns NaN when there are no pairable values or they do not vary.
    """
    v = np.asarray(values, dtype=np.float64)
    u = np.asarray(units)
    if u.shape != v.shape:
        raise CorpusError(f"units and values differ in length ({u.shape} vs {v.shape})")
    ok = ~np.isnan(v)
    u, v = u[ok], v[ok]
    if u.dtype.kind not in "iu":
        u = pd.factorize(u)[0]
    n_units = int(u.max()) + 1 if len(u) else 0
    if len(v):
        v = v - v.mean()  # alpha is shift-invariant; centring keeps the sums of squares exact
    mu = np.bincount(u, minlength=n_units).astype(np.float64)
    s1c = np.bincount(u, weights=v, minlength=n_units)
    s2c = np.bincount(u, weights=v * v, minlength=n_units)
    keep = mu >= 2
    mu, s1c, s2c = mu[keep], s1c[keep], s2c[keep]
    n = mu.sum()
    if n < 2:
        return float("nan")
    expected = n * s2c.sum() - s1c.sum() ** 2
    if expected <= 1e-12 * max(n * s2c.sum(), 1.0):
        return float("nan")
    observed = float(((mu * s2c - s1c * s1c) / (mu - 1)).sum())
    return float(1.0 - (n - 1) * observed / expected)


def _nan_to_none(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def agreement(data: Corpus | pd.DataFrame, space: LabelSpace | str | None = None, include_self: bool = False) -> dict:
    """Agreement figures of one label space, as a JSON-ready dict (undefined values are ``None``).

    Parameters
    ----------
    data:
        A :class:`~perser.corpus.model.Corpus`, or a long ratings table (then ``space``
        must be a :class:`~perser.corpus.model.LabelSpace`).
    space:
        The label space (or its name, for a corpus; may be omitted if it has only one).
    include_self:
        For a corpus: count self-evaluations too.

    Returns
    -------
    dict
        Always ``space``, ``kind``, ``n_ratings``, ``n_clips`` (clips rated at least once)
        and ``n_clips_pairable`` (rated at least twice). Then

        * categorical: ``fleiss_kappa``, ``krippendorff_alpha`` (nominal) and
          ``plurality_share`` (mean over clips rated at least twice of the share of
          ratings given to the most chosen class);
        * multilabel: ``per_class`` (each class as a ticked / not ticked decision:
          ``fleiss_kappa``, ``krippendorff_alpha``) and their unweighted means;
        * dimensional: ``krippendorff_alpha`` per dimension (interval metric).
    """
    if isinstance(data, Corpus):
        sp = data.space(space) if not isinstance(space, LabelSpace) else space
        ratings = data.ratings_in(sp, include_self=include_self)
    else:
        if not isinstance(space, LabelSpace):
            raise CorpusError("agreement(ratings, space) needs a LabelSpace when given a ratings table")
        sp, ratings = space, data
    out: dict = {"space": sp.name, "kind": sp.kind}
    if sp.is_class:
        counts, n = vote_counts(ratings, sp)
        out.update(class_agreement(counts.to_numpy(), n.to_numpy(), sp))
    else:
        r = rated(ratings, sp)
        codes, clips = clip_codes(r)
        nv = np.bincount(codes, minlength=len(clips))
        out.update(n_ratings=int(len(r)), n_clips=int(len(clips)), n_clips_pairable=int((nv >= 2).sum()))
        out["krippendorff_alpha"] = {
            d: _nan_to_none(krippendorff_alpha_interval(codes, r[d].to_numpy(dtype=np.float64))) for d in sp.dimensions
        }
    return out


def class_agreement(m: np.ndarray, nv: np.ndarray, sp: LabelSpace) -> dict:
    """Agreement of a class space from its clip × class vote counts ``m`` and ratings per clip ``nv``
    (as returned by :func:`~perser.corpus.consensus.vote_counts`); see :func:`agreement`."""
    out: dict = {"n_ratings": int(nv.sum()), "n_clips": int(len(nv)), "n_clips_pairable": int((nv >= 2).sum())}
    if sp.kind == "categorical":
        out["fleiss_kappa"] = _nan_to_none(fleiss_kappa(m))
        out["krippendorff_alpha"] = _nan_to_none(krippendorff_alpha_nominal(m))
        pair = nv >= 2
        out["plurality_share"] = _nan_to_none(float((m[pair].max(axis=1) / nv[pair]).mean()) if pair.any() else np.nan)
    else:
        per: dict = {}
        for j, c in enumerate(sp.classes):
            binary = np.stack([m[:, j], nv - m[:, j]], axis=1)
            per[c] = {
                "fleiss_kappa": _nan_to_none(fleiss_kappa(binary)),
                "krippendorff_alpha": _nan_to_none(krippendorff_alpha_nominal(binary)),
            }
        for key in ("fleiss_kappa", "krippendorff_alpha"):
            vals = [d[key] for d in per.values() if d[key] is not None]
            out[key] = float(np.mean(vals)) if vals else None
        out["per_class"] = per
    return out
