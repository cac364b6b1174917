"""The interface every enrollment-clip selection strategy implements.

A strategy chooses which clips of a *pool* to ask a new listener next, given the
labels that listener gave so far. It sees the fitted method (a
:class:`~perser.methods.base.Personalizer`) and the clips' features, never the
listener's unanswered labels::

    strategy = make_strategy("active", seed=0).fit(model)     # once per model
    session = strategy.session(X_pool)                         # once per pool
    sel = session.select(n=1, rated=idx_so_far, y=labels_so_far)
    sel.indices, sel.gains                                     # pool rows to ask next

* **sequential** mode: ``n=1`` after each answer (:meth:`Session.order` simulates it
  with known answers, as the evaluation protocol does);
* **batch** mode: ``n=B`` clips at once, chosen greedily (each strategy says how the
  clips chosen earlier in the batch count for the later ones).

Labels ``y`` are encoded as :meth:`perser.corpus.LabelSpace.encode` encodes them
(class indices, 0/1 indicators or native-scale values). Every strategy is
deterministic given its ``seed``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from perser.errors import ConfigError, PerserError


@dataclass
class Selection:
    """Pool rows to ask next, best first, and each one's expected gain.

    ``gains`` is in the strategy's own unit (``details["unit"]``): nats of expected
    information for ``active``, the distance to the nearest chosen or rated clip for
    ``diverse``, NaN for ``random``.
    """

    indices: np.ndarray
    gains: np.ndarray
    details: dict = field(default_factory=dict)


class Session:
    """A strategy bound to one pool of clips (per-pool work is done once, here)."""

    def __init__(self, strategy: "Strategy", X_pool: np.ndarray) -> None:
        X_pool = np.asarray(X_pool, dtype=np.float32)
        if X_pool.ndim < 2 or len(X_pool) == 0:
            raise PerserError(f"selection pool: expected a non-empty [n, ...] feature array, got shape {X_pool.shape}")
        self.strategy = strategy
        self.X = X_pool
        self.n = len(X_pool)

    def select(self, n: int = 1, rated=None, y=None, X_rated=None, y_rated=None, exclude=None) -> Selection:
        """The next ``n`` pool rows to ask.

        ``rated`` (pool rows) with their labels ``y``, and ``X_rated``/``y_rated``
        (clips outside the pool) are the listener's answers so far; rated rows and
        ``exclude`` are never chosen. Fewer than ``n`` rows come back only when the
        pool has no more.
        """
        rated = np.asarray([] if rated is None else rated, dtype=np.int64)
        if y is not None and len(np.asarray(y)) != len(rated):
            raise PerserError(f"select: {len(rated)} rated pool rows but {len(np.asarray(y))} labels")
        if len(rated) and (rated.min() < 0 or rated.max() >= self.n):
            raise PerserError(f"select: a rated row is outside the pool of {self.n} clips")
        if (X_rated is None) != (y_rated is None):
            raise PerserError("select: give X_rated and y_rated together")
        if int(n) < 1:
            raise ConfigError(f"select: n must be at least 1, got {n}")
        banned = np.zeros(self.n, dtype=bool)
        banned[rated] = True
        if exclude is not None:
            banned[np.asarray(exclude, dtype=np.int64)] = True
        n = min(int(n), int((~banned).sum()))
        if n == 0:
            return Selection(np.zeros(0, dtype=np.int64), np.zeros(0), {"unit": self.unit})
        return self._select(n, rated, y, X_rated, y_rated, banned)

    def order(self, y_pool: np.ndarray, k: int) -> Selection:
        """Sequential selection of ``k`` rows with the listener's answers known in
        advance (``y_pool``, aligned to the pool): each choice sees the answers to the
        choices before it. The first ``j`` rows are what ``j`` sequential steps choose."""
        y_pool = np.asarray(y_pool)
        if len(y_pool) != self.n:
            raise PerserError(f"order: {len(y_pool)} answers for a pool of {self.n} clips")
        chosen: list[int] = []
        gains: list[float] = []
        for _ in range(min(int(k), self.n)):
            idx = np.asarray(chosen, dtype=np.int64)
            s = self.select(1, rated=idx, y=y_pool[idx])
            chosen.append(int(s.indices[0]))
            gains.append(float(s.gains[0]))
        return Selection(np.asarray(chosen, dtype=np.int64), np.asarray(gains), {"unit": self.unit})

    # to implement -----------------------------------------------------------
    unit: str = ""

    def _select(self, n, rated, y, X_rated, y_rated, banned) -> Selection:  # pragma: no cover - abstract
        raise NotImplementedError


class Strategy:
    """Base class of selection strategies: hyper-parameters in ``__init__``, no work there."""

    name: ClassVar[str] = ""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def check_params(self) -> None:
        """Raise a :class:`~perser.errors.ConfigError` naming a bad hyper-parameter."""

    def fit(self, model=None, train=None) -> "Strategy":
        """Bind the fitted method ``model`` (and, where the strategy uses them, the seen
        listeners' ratings ``train``, a :class:`~perser.methods.base.RatingSet`)."""
        self.model_ = model
        return self

    def session(self, X_pool: np.ndarray) -> Session:
        raise NotImplementedError

    def select(self, X_pool: np.ndarray, n: int = 1, **kwargs) -> Selection:
        """One-off selection (see :meth:`Session.select`)."""
        return self.session(X_pool).select(n, **kwargs)

    def get_params(self) -> dict:
        import inspect

        sig = inspect.signature(type(self).__init__)
        return {p: getattr(self, p) for p in sig.parameters if p not in ("self", "kwargs") and hasattr(self, p)}


def pool_vectors(X: np.ndarray) -> np.ndarray:
    """Clip features as ``[n, d]`` vectors (``[n, layers, dim]`` arrays: the mean over layers)."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 3:
        X = X.mean(axis=1)
    return X.reshape(len(X), -1)
