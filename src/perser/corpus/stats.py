"""Shape and agreement figures of a corpus, as one JSON-serialisable dict.

:func:`describe` is what ``perser corpus stats`` prints (and ``--json`` writes).
"""

from __future__ import annotations


import numpy as np
import pandas as pd

from perser.corpus.agreement import agreement, class_agreement
from perser.corpus.consensus import rated, vote_counts
from perser._io import jsonable
from perser.corpus.model import Corpus



def distribution(values) -> dict:
    """``{n, min, q1, median, q3, max, mean}`` of a numeric sample (``None``s when empty)."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0:
        return {"n": 0, "min": None, "q1": None, "median": None, "q3": None, "max": None, "mean": None}
    q = np.quantile(v, [0.0, 0.25, 0.5, 0.75, 1.0])
    return {
        "n": int(len(v)),
        "min": _num(q[0]),
        "q1": _num(q[1]),
        "median": _num(q[2]),
        "q3": _num(q[3]),
        "max": _num(q[4]),
        "mean": round(float(v.mean()), 4),
    }


def _num(x: float) -> int | float:
    x = float(x)
    return int(x) if x.is_integer() else round(x, 4)


def space_summary(corpus: Corpus, space, include_agreement: bool = True) -> dict:
    """Ratings, label distribution and agreement of one label space."""
    sp = corpus.space(space) if isinstance(space, str) else space
    r = rated(corpus.ratings_in(sp), sp)
    out: dict = {
        "kind": sp.kind,
        "n_ratings": int(len(r)),
        "n_clips_rated": 0,
        "n_annotators": int(len(pd.unique(r["annotator_id"]))),
    }
    if sp.is_class:
        counts, n = vote_counts(r, sp)
        out["n_clips_rated"] = int(len(counts))
        tot = counts.sum(axis=0)
        denom = int(tot.sum()) if sp.kind == "categorical" else int(len(r))
        out["classes"] = list(sp.classes)
        out["label_distribution"] = {
            c: {"count": int(tot[c]), "share": round(float(tot[c]) / denom, 4) if denom else None} for c in sp.classes
        }
    else:
        out["n_clips_rated"] = int(len(pd.unique(r["clip_id"])))
        out["dimensions"] = list(sp.dimensions)
        out["scale"] = list(sp.scale)  # type: ignore[arg-type]
        out["label_distribution"] = {}
        for d in sp.dimensions:
            x = r[d].to_numpy(dtype=np.float64)
            desc = distribution(x)
            desc["std"] = round(float(x.std()), 4) if len(x) else None
            out["label_distribution"][d] = desc
    if include_agreement:
        ag = class_agreement(counts.to_numpy(), n.to_numpy(), sp) if sp.is_class else agreement(r, sp)
        out["agreement"] = {k: v for k, v in ag.items() if k not in ("space", "kind")}
    return out


def describe(corpus: Corpus, agreement: bool = True) -> dict:
    """Shape and agreement figures of ``corpus``.

    Returns
    -------
    dict
        JSON-serialisable: ``name``, ``format``, ``n_clips``, ``n_ratings``,
        ``n_annotators``, ``n_self_evaluations``, ``clips_without_ratings``,
        ``ratings_per_clip`` and ``clips_per_annotator`` (distributions: ``n``, ``min``,
        ``q1``, ``median``, ``q3``, ``max``, ``mean``; self-evaluations excluded),
        ``speakers`` (``n`` and the distribution of clips per speaker), ``splits``
        (clip counts per value of each of ``split``, ``session``, ``fold`` present),
        ``duration`` (total hours, when known) and ``spaces`` (per label space, see
        :func:`space_summary`, with agreement unless ``agreement=False``).
    """
    clips, ratings = corpus.clips, corpus.ratings
    is_self = ratings["is_self"].fillna(False).astype(bool) if "is_self" in ratings.columns else None
    ext = ratings.loc[~is_self.to_numpy()] if is_self is not None else ratings
    # distinct (clip, annotator) pairs: a rater may have one row per label space
    ccode, cuniq = pd.factorize(ext["clip_id"])
    acode, auniq = pd.factorize(ext["annotator_id"])
    pair = np.sort(ccode.astype(np.int64) * max(len(auniq), 1) + acode)
    pair = pair[np.r_[True, pair[1:] != pair[:-1]]] if len(pair) else pair  # distinct pairs (sort-based: fast)
    pc, pa = pair // max(len(auniq), 1), pair % max(len(auniq), 1)
    per_clip = pd.Series(np.bincount(pc, minlength=len(cuniq)), index=pd.Index(cuniq)).reindex(clips.index, fill_value=0)
    per_ann = np.bincount(pa, minlength=len(auniq))
    spk = clips["speaker"].value_counts()
    out: dict = {
        "name": corpus.name,
        "format": corpus.meta.get("format"),
        "n_clips": int(len(clips)),
        "n_ratings": int(len(ratings)),
        "n_annotators": int(len(auniq)),
        "n_self_evaluations": int(is_self.sum()) if is_self is not None else 0,
        "clips_without_ratings": int((per_clip == 0).sum()),
        "ratings_per_clip": distribution(per_clip.to_numpy()),
        "clips_per_annotator": distribution(per_ann),
        "speakers": {"n": int(len(spk)), "clips_per_speaker": distribution(spk.to_numpy())},
        "splits": {},
    }
    for col in ("split", "session", "fold"):
        if col in clips.columns and clips[col].notna().any():
            vc = clips[col].astype(str).where(clips[col].notna(), "<none>").value_counts().sort_index()
            out["splits"][col] = {str(k): int(v) for k, v in vc.items()}
    if "duration" in clips.columns and clips["duration"].notna().any():
        d = pd.to_numeric(clips["duration"], errors="coerce")
        out["duration"] = {"hours": round(float(d.sum()) / 3600, 3), "clips_with_duration": int(d.notna().sum())}
    out["spaces"] = {name: space_summary(corpus, sp, include_agreement=agreement) for name, sp in corpus.label_spaces.items()}
    return jsonable(out, nan=None)
