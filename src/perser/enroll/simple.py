"""Method-free strategies: ``random`` (the papers' protocol) and ``diverse`` (pool coverage)."""

from __future__ import annotations

import numpy as np

from perser.enroll.base import Selection, Session, Strategy, pool_vectors


class RandomStrategy(Strategy):
    """Clips in one seeded random order of the pool (answers change nothing).

    The order is fixed per session, so sequential and batch selection give the same
    clips, and the first K of K+1 are the K-clip choice (nested enrollment sets).
    """

    name = "random"

    def session(self, X_pool: np.ndarray) -> Session:
        return _RandomSession(self, X_pool)


class _RandomSession(Session):
    unit = "none"

    def __init__(self, strategy: RandomStrategy, X_pool: np.ndarray) -> None:
        super().__init__(strategy, X_pool)
        self.perm = np.random.default_rng(strategy.seed).permutation(self.n)

    def _select(self, n, rated, y, X_rated, y_rated, banned) -> Selection:
        free = self.perm[~banned[self.perm]][:n]
        return Selection(free.astype(np.int64), np.full(len(free), np.nan), {"unit": self.unit})


class DiverseStrategy(Strategy):
    """Cover the pool in feature space: greedy k-center (farthest-first traversal).

    Features are standardised with the pool's mean and standard deviation
    (``[n, layers, dim]`` SSL arrays: their mean over layers). The first clip, when
    nothing is rated yet, is the one nearest the pool's mean (the most typical one);
    every next clip is the one farthest from all clips chosen or rated so far. The
    gain is that distance. Answers change nothing: the strategy never looks at labels.
    """

    name = "diverse"

    def session(self, X_pool: np.ndarray) -> Session:
        return _DiverseSession(self, X_pool)


class _DiverseSession(Session):
    unit = "standardised feature distance to the nearest chosen or rated clip"

    def __init__(self, strategy: DiverseStrategy, X_pool: np.ndarray) -> None:
        super().__init__(strategy, X_pool)
        V = pool_vectors(self.X)
        self.mu = V.mean(axis=0)
        sd = V.std(axis=0)
        self.sd = np.where(sd > 0, sd, 1.0)
        self.V = (V - self.mu) / self.sd

    def _dist_to(self, C: np.ndarray) -> np.ndarray:
        d2 = (self.V**2).sum(1)[:, None] + (C**2).sum(1)[None, :] - 2 * self.V @ C.T
        return np.sqrt(np.maximum(d2, 0)).min(axis=1)

    def _select(self, n, rated, y, X_rated, y_rated, banned) -> Selection:
        centers = [self.V[rated]] if len(rated) else []
        if X_rated is not None and len(X_rated):
            centers.append((pool_vectors(X_rated) - self.mu) / self.sd)
        if centers:
            dmin = self._dist_to(np.concatenate(centers))
        else:
            dmin = None
        out, gains = [], []
        banned = banned.copy()
        for _ in range(n):
            if dmin is None:  # nothing rated: the most typical clip
                score = -np.sqrt((self.V**2).sum(1))
                i = int(np.flatnonzero(~banned)[np.argmax(score[~banned])])
                gains.append(float(-score[i]))
            else:
                cand = np.flatnonzero(~banned)
                i = int(cand[np.argmax(dmin[cand])])
                gains.append(float(dmin[i]))
            out.append(i)
            banned[i] = True
            d_new = np.sqrt(((self.V - self.V[i]) ** 2).sum(1))
            dmin = d_new if dmin is None else np.minimum(dmin, d_new)
        return Selection(np.asarray(out, dtype=np.int64), np.asarray(gains), {"unit": self.unit})
