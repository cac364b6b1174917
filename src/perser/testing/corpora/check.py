"""Comparing what a loader returns with what a fixture says it must return."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd


def _canon(v):
    if v is None:
        return None
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, float, np.integer, np.floating)):
        return None if np.isnan(float(v)) else round(float(v), 6)
    if v is pd.NA or v is pd.NaT:
        return None
    return str(v)


def load_quietly(path, **options):
    """:func:`perser.load_corpus` with its counted warnings (:class:`PerserWarning`) silenced."""
    import warnings

    from perser.corpus import load_corpus
    from perser.errors import PerserWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PerserWarning)
        return load_corpus(path, **options)


def one_rating(corpus, clip: str, annotator: str) -> pd.Series:
    """The single rating of ``clip`` by ``annotator``; ``AssertionError`` unless there is exactly one."""
    r = corpus.ratings[(corpus.ratings["clip_id"] == clip) & (corpus.ratings["annotator_id"] == annotator)]
    assert len(r) == 1
    return r.iloc[0]


def assert_same_ratings(actual: pd.DataFrame, expected: pd.DataFrame, columns: Sequence[str]) -> None:
    """Assert that two ratings tables hold the same rows in ``columns`` (order-free).

    Missing values (None/NaN/NA) compare equal; numbers compare to 6 decimals.
    Raises ``AssertionError`` listing a few rows found in only one table.
    """
    from collections import Counter

    cols = ["clip_id", "annotator_id", *columns]

    def rows(df: pd.DataFrame) -> Counter:
        d = df.reindex(columns=cols)
        return Counter(tuple(_canon(v) for v in r) for r in d.itertuples(index=False, name=None))

    a, e = rows(actual), rows(expected)
    if a != e:
        only_a = list((a - e).elements())[:5]
        only_e = list((e - a).elements())[:5]
        raise AssertionError(
            f"ratings differ in {cols}: {sum((a - e).values())} row(s) only loaded, e.g. {only_a}; "
            f"{sum((e - a).values())} row(s) only expected, e.g. {only_e}"
        )
