"""``active``: ask the clips whose answers tell the most about the new listener.

**Methods with seen-listener heads** (``similar``, ``finetune``, ``random-annotator``,
``mean-annotator``: every :class:`~perser.methods.multi.MultiAnnotatorModel`). The
seen listeners' heads are a sample of how people label; a new listener is taken to
label like one of them, with noise. Given the answers so far the posterior over heads
is ``w_h ∝ prod_j p(y_j | head h, clip j)`` (uniform prior) with the likelihood

* categorical: ``(1 - eps) p_h(y | x) + eps / C`` (a lapse rate ``eps``);
* multilabel: the same per class (``eps / 2``), classes independent given the head;
* dimensional: Gaussian, ``y ~ N(f_h(x), sigma_d^2)`` per dimension on the unit scale.

The noise (``eps`` or every ``sigma_d``) is fitted on the seen listeners
(:func:`perser.methods.head_posterior.fit_noise`; a multi-annotator model fits it at
training time and keeps it in its model folder): the value on a grid that maximises
the leave-own-head-out marginal likelihood ``sum_a log mean_{h != a} p(ratings of a | h)``,
i.e. how well the mixture of the *other* listeners' heads explains each seen listener,
which is exactly the model the selection then uses for a new one.

Two criteria, chosen by ``criterion``:

* ``"head"``: the expected information about *which head* fits, ``I(y; h)`` (BALD,
  Houlsby et al. 2011): the entropy of the predictive minus the expected entropy under
  each head.
* ``"target"`` (the default): the expected predictive information gain, ``EPIG``
  (Bickford Smith et al. 2023): the mutual information between the answer ``y`` to
  the candidate and the listener's label ``y*`` of a target clip, averaged over target
  clips drawn from the pool. It rewards clips whose answer sharpens the predictions
  the listener will be served, not clips that only separate heads on atypical audio:
  this is the remedy for the sampling bias of head-information criteria (the chosen
  clips are the hard ones, where every head is least right).

Categorical and multilabel criteria are exact for the mixture; dimensional ones use
the Gaussian approximation of the predictive (``I(y; h) ~ 1/2 sum_d log(1 + Var_w f_d / sigma_d^2)``,
``I(y; y*) ~ -1/2 sum_d log(1 - rho_d^2)`` with ``rho`` the correlation of the two
answers under the head mixture).

**Methods without heads** (``meta``, ``consensus``): ``criterion="model-change"``,
the expected information about the adapted output head's weights under a
linear-Gaussian (classes: Laplace) approximation on the trunk embedding ``z``:
``1/2 log(1 + u(x) z' A^-1 z)`` with ``A = lambda I + sum_rated u_j z_j z_j'`` and
``u(x) = 1 - sum_c p_c(x)^2`` (the current profile's predictive uncertainty; 1 for
dimensional spaces). It picks clips the current personal model is unsure of and that
move the head in directions not yet covered (greedy D-optimal design).

``criterion="uncertainty"`` (any method, class spaces): the clip whose label the
current personal model is least sure of (predictive entropy; uncertainty sampling,
Lewis & Gale 1994), the simplest baseline for methods without heads.

``density = beta > 0`` multiplies every gain by the clip's representativeness to the
power ``beta`` (information density, Settles & Craven 2008): the mean Gaussian-kernel
similarity to the pool in standardised feature space, the bandwidth the median distance.

**Batch mode** (``n > 1`` without answers) is greedy: after each pick the posterior is
conditioned on the pick's most probable answer (the "kriging believer" heuristic), or
``A`` is updated with the pick (model change), and the next pick is chosen.
"""

from __future__ import annotations

import numpy as np

from perser.enroll.base import Selection, Session, Strategy, pool_vectors
from perser.errors import ConfigError, PerserError
from perser.methods.head_posterior import (  # noqa: F401 - re-exported
    DEFAULT_EPS,
    DEFAULT_SIGMA,
    EPS_GRID,
    SIGMA_GRID,
    answer_codes,
    factor_probs,
    fit_noise,
    logmeanexp,
    loglik_classes,
    loglik_dims,
    model_noise,
    unit_values,
)

CRITERIA = ("auto", "head", "target", "model-change", "uncertainty")
#: the density exponent of each criterion when ``density`` is not given, chosen on the demo
#: corpus's seen listeners (benchmarks/enrollment/RESULTS.md)
DENSITY = {"head": 2.0, "target": 2.0, "model-change": 2.0, "uncertainty": 0.0}


def has_heads(model) -> bool:
    """Whether ``model`` exposes seen-listener heads (``head_outputs``, ``head_annotators_``)."""
    return callable(getattr(model, "head_outputs", None)) and bool(getattr(model, "head_annotators_", None))


class ActiveStrategy(Strategy):
    """Choose the clips with the largest expected information (see the module docstring).

    Parameters
    ----------
    criterion:
        ``"auto"`` (``"target"`` for methods with heads; for methods without,
        ``"uncertainty"`` in class spaces and ``"model-change"`` in dimensional ones),
        ``"head"``, ``"target"``, ``"model-change"`` or ``"uncertainty"``.
    noise:
        Lapse rate (class spaces) or unit-scale noise standard deviation (dimensional;
        one number or one per dimension). ``None``: the value the model fitted on its
        seen listeners at training time (``listener_noise_``, kept in the model
        folder), else fitted on the seen listeners' ratings given to :meth:`fit`, else
        the defaults (0.1; 0.25) with a counted warning.
    density:
        Exponent of the representativeness weight (0: off). ``None``: the criterion's
        value in :data:`DENSITY` (2 for the head criteria and model change, 0 for
        uncertainty), and 0 for the head criteria when the method predicts with the
        head posterior (``similar`` with ``combine="posterior"``), as chosen on the demo
        corpus's seen listeners (held out as pseudo-new ones; never on its new
        listeners): see ``benchmarks/enrollment/RESULTS.md``.
    n_target:
        Target clips drawn from the pool for ``"target"`` (all when the pool is smaller).
    max_heads:
        ``"target"`` with more heads than this uses this many heads drawn from the
        posterior (systematic resampling), the Monte Carlo estimate of EPIG.
    seed:
        Seeds the draw of the target clips and of the heads.
    """

    name = "active"

    def __init__(self, criterion: str = "auto", noise=None, density: float | None = None, n_target: int = 32,
                 max_heads: int = 128, seed: int = 0):
        super().__init__(seed)
        self.criterion = criterion
        self.noise = noise
        self.density = density
        self.n_target = n_target
        self.max_heads = max_heads

    def check_params(self) -> None:
        if self.criterion not in CRITERIA:
            raise ConfigError(f"strategy 'active': unknown criterion {self.criterion!r}; use one of {CRITERIA}")
        if self.density is not None and not float(self.density) >= 0:
            raise ConfigError(f"strategy 'active': density must be >= 0, got {self.density}")
        if int(self.n_target) < 1:
            raise ConfigError(f"strategy 'active': n_target must be at least 1, got {self.n_target}")
        if int(self.max_heads) < 1:
            raise ConfigError(f"strategy 'active': max_heads must be at least 1, got {self.max_heads}")

    def fit(self, model=None, train=None) -> "ActiveStrategy":
        self.check_params()
        if model is None:
            raise PerserError("strategy 'active' needs a fitted method")
        self.model_ = model
        self.space_ = model.space_
        crit = self.criterion
        if crit == "auto":
            crit = "target" if has_heads(model) else ("uncertainty" if model.space_.is_class else "model-change")
        if crit in ("head", "target") and not has_heads(model):
            raise ConfigError(f"strategy 'active': criterion {crit!r} needs a method with seen-listener heads "
                              f"(similar, finetune, ...); method {getattr(model, 'name', '?')!r} has none: "
                              f"use criterion 'model-change'")
        if crit == "model-change" and not callable(getattr(model, "embed", None)):
            raise ConfigError(f"strategy 'active': method {getattr(model, 'name', '?')!r} has no trunk embedding")
        if crit == "uncertainty" and not model.space_.is_class:
            raise ConfigError("strategy 'active': criterion 'uncertainty' needs a class space (a dimensional "
                              "prediction carries no uncertainty); use 'model-change'")
        self.criterion_ = crit
        if self.density is not None:
            self.density_ = float(self.density)
        elif crit in ("head", "target") and getattr(model, "combine", None) == "posterior":
            self.density_ = 0.0  # posterior-weighted prediction needs no typicality weight (seen-listener tuning)
        else:
            self.density_ = DENSITY[crit]
        if crit in ("head", "target"):
            self.noise_ = self._noise(train)
        return self

    def _noise(self, train) -> np.ndarray:
        kind = self.space_.kind
        if self.noise is not None:
            v = np.atleast_1d(np.asarray(self.noise, dtype=np.float64))
            if kind == "dimensional":
                v = np.broadcast_to(v, (len(self.space_.dimensions),)).copy()
            if not np.all(v > 0) or (kind != "dimensional" and not v[0] < 1):
                raise ConfigError(f"strategy 'active': noise must be in (0, 1) for class spaces and > 0 for "
                                  f"dimensional ones, got {self.noise}")
            return v
        if getattr(self.model_, "listener_noise_", None) is not None:  # fitted at training time, same estimator
            return np.asarray(self.model_.listener_noise_, dtype=np.float64)
        if train is not None:
            return fit_noise(self.model_, train)
        return model_noise(self.model_)  # the default, with a counted warning

    def session(self, X_pool: np.ndarray) -> Session:
        if not hasattr(self, "criterion_"):
            raise PerserError("strategy 'active' is not fitted: call fit(model) first")
        if self.criterion_ == "model-change":
            return _ModelChangeSession(self, X_pool)
        if self.criterion_ == "uncertainty":
            return _UncertaintySession(self, X_pool)
        return HeadSession(self, X_pool)


# ------------------------------------------------------------------ likelihoods
# (shared with similar's posterior-weighted prediction: perser.methods.head_posterior)
_factor_probs = factor_probs
_answer_codes = answer_codes
_loglik_classes = loglik_classes
_loglik_dims = loglik_dims
_unit = unit_values
_logmeanexp = logmeanexp


def representativeness(X: np.ndarray) -> np.ndarray:
    """Mean Gaussian-kernel similarity of each clip to the pool (standardised features,
    bandwidth the median pairwise distance), scaled to a maximum of 1."""
    V = pool_vectors(X)
    sd = V.std(axis=0)
    V = (V - V.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    if len(V) > 2000:  # a fixed subsample of reference clips keeps this O(n)
        ref = V[np.random.default_rng(0).choice(len(V), 2000, replace=False)]
    else:
        ref = V
    d2 = np.maximum((V**2).sum(1)[:, None] + (ref**2).sum(1)[None, :] - 2 * V @ ref.T, 0)
    h2 = float(np.median(d2)) or 1.0
    dens = np.exp(-d2 / h2).mean(axis=1)
    return dens / dens.max()


# ----------------------------------------------------------------- head posterior
class HeadSession(Session):
    """The head-posterior selection on one pool (head outputs computed once).

    Head outputs are held heads-last (``[N, F, V, H]`` factor probabilities, or
    ``[N, D, H]`` unit-scale values), so every criterion is a matrix-vector product
    over the heads; the per-head entropies are computed once. The ``"target"``
    criterion with more than ``max_heads`` heads uses ``max_heads`` heads drawn from
    the posterior by systematic resampling (seeded), the Monte Carlo estimate of EPIG.
    """

    unit = "nats of expected information"

    def __init__(self, strategy: ActiveStrategy, X_pool: np.ndarray) -> None:
        super().__init__(strategy, X_pool)
        m = strategy.model_
        self.model = m
        self.kind = m.space_.kind
        self.criterion = strategy.criterion_
        self.noise = strategy.noise_
        self.max_heads = int(strategy.max_heads)
        out = m.head_outputs(self.X, activated=True).numpy()  # [N, H, O]
        self.P = self._heads_last(out)
        if self.kind != "dimensional" and self.criterion == "head":  # only BALD uses them
            self.ent_h = -(self.P * np.log(self.P)).sum(axis=(1, 2))  # [N, H]
        self.dens = representativeness(self.X) ** float(strategy.density_) if strategy.density_ else None
        rng = np.random.default_rng([int(strategy.seed), 3])
        nt = min(int(strategy.n_target), self.n)
        self.targets = np.sort(rng.choice(self.n, nt, replace=False)) if nt < self.n else np.arange(self.n)
        self._u = float(np.random.default_rng([int(strategy.seed), 5]).random())

    def _heads_last(self, out: np.ndarray) -> np.ndarray:
        if self.kind == "dimensional":
            return np.ascontiguousarray(out.transpose(0, 2, 1), dtype=np.float32)  # [N, D, H]
        P = _factor_probs(out.astype(np.float32), self.kind, float(self.noise[0]))  # [N, H, F, V]
        return np.ascontiguousarray(P.transpose(0, 2, 3, 1), dtype=np.float32)  # [N, F, V, H]

    @property
    def heads(self) -> list[str]:
        return list(self.model.head_annotators_)

    def _loglik(self, P: np.ndarray, y: np.ndarray) -> np.ndarray:
        """``[H]`` log-likelihood of answers ``y`` to clips with heads-last outputs ``P``."""
        if len(P) == 0:
            return np.zeros(P.shape[-1])
        if self.kind == "dimensional":
            z = (_unit(self.model, y)[:, :, None] - P.astype(np.float64)) / self.noise[None, :, None]
            return (-0.5 * z**2 - np.log(self.noise)[None, :, None]).sum(axis=(0, 1))
        codes = _answer_codes(y, self.kind)  # [n, F]
        n, nF = codes.shape
        g = P[np.arange(n)[:, None], np.arange(nF)[None, :], codes]  # [n, F, H]
        return np.log(g.astype(np.float64)).sum(axis=(0, 1))

    def log_posterior(self, rated=None, y=None, X_rated=None, y_rated=None) -> np.ndarray:
        """Unnormalised log posterior ``[H]`` over the seen heads given the answers."""
        lw = np.zeros(self.P.shape[-1])
        if rated is not None and len(rated):
            lw += self._loglik(self.P[np.asarray(rated, dtype=np.int64)], np.asarray(y))
        if X_rated is not None and len(X_rated):
            out = self.model.head_outputs(np.asarray(X_rated, dtype=np.float32), activated=True).numpy()
            lw += self._loglik(self._heads_last(out), np.asarray(y_rated))
        return lw

    def posterior(self, rated=None, y=None, X_rated=None, y_rated=None) -> np.ndarray:
        """Posterior probabilities ``[H]`` of the seen heads (order of :attr:`heads`)."""
        lw = self.log_posterior(rated, y, X_rated, y_rated)
        w = np.exp(lw - lw.max())
        return w / w.sum()

    def _draw(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(head indices, weights)``: all heads, or ``max_heads`` drawn by systematic resampling."""
        H = len(w)
        if H <= self.max_heads:
            return np.arange(H), w
        pos = (self._u + np.arange(self.max_heads)) / self.max_heads
        idx = np.minimum(np.searchsorted(np.cumsum(w), pos), H - 1)
        return idx, np.full(self.max_heads, 1.0 / self.max_heads)

    def gains(self, w: np.ndarray, cand: np.ndarray) -> np.ndarray:
        """Expected information of asking each candidate row, under head weights ``w``."""
        P = self.P
        T = self.targets
        if self.kind == "dimensional":
            s2 = (self.noise**2)[None, :]
            if self.criterion == "head":
                w32 = w.astype(np.float32)
                m = (P @ w32).astype(np.float64)
                var = np.maximum((P**2 @ w32).astype(np.float64) - m**2, 0)
                return 0.5 * np.log1p(var / s2).sum(axis=1)[cand]
            idx, ws = self._draw(w)
            Ps = P[:, :, idx].astype(np.float64)  # [N, D, M]
            m = Ps @ ws
            G = (Ps - m[:, :, None]) * np.sqrt(ws)  # [N, D, M]
            var = (G**2).sum(axis=2)  # [N, D]
            total = np.zeros(len(cand))
            for d in range(P.shape[1]):
                cov = G[cand, d] @ G[T, d].T  # [n, T]
                rho2 = cov**2 / ((var[cand, d, None] + s2[0, d]) * (var[None, T, d] + s2[0, d]))
                total += (-0.5 * np.log1p(-np.minimum(rho2, 1 - 1e-12))).mean(axis=1)
            return total
        if self.criterion == "head":  # on every row (cheaper than copying the candidates' rows), then picked
            w32 = w.astype(np.float32)
            q = (P @ w32).astype(np.float64)  # [N, F, V]
            ent_q = -(q * np.log(q)).sum(axis=(1, 2))
            return (ent_q - self.ent_h @ w32)[cand]
        idx, ws = self._draw(w)
        Pc, Pt = P[..., idx][cand], P[T][..., idx]  # [n, F, V, M], [T, F, V, M] (float32)
        ws = ws.astype(np.float32)
        q, qt = (Pc @ ws).astype(np.float64), (Pt @ ws).astype(np.float64)  # [n, F, V], [T, F, V]
        total = np.zeros(len(cand))
        n, nF, V, M = Pc.shape
        for f in range(nF):
            A = (Pc[:, f] * ws).reshape(n * V, M)
            B = Pt[:, f].reshape(len(T) * V, M)
            J = np.maximum((A @ B.T), np.float32(1e-30))  # [n*V, T*V], float32: the bulk of the work
            jl = np.einsum("ivtw->it", (J * np.log(J)).reshape(n, V, len(T), V), dtype=np.float64)  # [n, T]
            ent_c = -(q[:, f] * np.log(q[:, f])).sum(axis=1)
            ent_t = -(qt[:, f] * np.log(qt[:, f])).sum(axis=1)
            total += (ent_c[:, None] + ent_t[None, :] + jl).mean(axis=1)
        return total

    def _believed_answer(self, w: np.ndarray, i: int) -> np.ndarray:
        if self.kind == "dimensional":
            from perser.methods.nets import from_unit

            return from_unit(self.P[i] @ w, self.model.space_.scale)[None, :]
        v = (self.P[i] @ w).argmax(axis=1)  # [F]
        return v[:1] if self.kind == "categorical" else v[None, :].astype(np.float32)

    def _select(self, n, rated, y, X_rated, y_rated, banned) -> Selection:
        lw = self.log_posterior(rated, y, X_rated, y_rated)
        out, gains = [], []
        banned = banned.copy()
        for _ in range(n):
            w = np.exp(lw - lw.max())
            w /= w.sum()
            cand = np.flatnonzero(~banned)
            i, gain = _pick(cand, self.gains(w, cand), self.dens)
            out.append(i)
            gains.append(gain)
            banned[i] = True
            if len(out) < n:  # batch: condition on the most probable answer
                lw = lw + self._loglik(self.P[[i]], self._believed_answer(w, i))
        return Selection(np.asarray(out, dtype=np.int64), np.asarray(gains),
                         {"unit": self.unit, "criterion": self.criterion})


# ------------------------------------------------------------------ model change
class _ModelChangeSession(Session):
    unit = "nats of expected information about the adapted head"

    def __init__(self, strategy: ActiveStrategy, X_pool: np.ndarray) -> None:
        super().__init__(strategy, X_pool)
        self.model = strategy.model_
        self.Z = self._z(self.X)
        self.lam = float((self.Z**2).sum(1).mean()) / self.Z.shape[1]
        self.dens = representativeness(self.X) ** float(strategy.density_) if strategy.density_ else None

    def _z(self, X: np.ndarray) -> np.ndarray:
        z = self.model.embed(np.asarray(X, dtype=np.float32)).numpy().astype(np.float64)
        return np.concatenate([z, np.ones((len(z), 1))], axis=1)

    def _proba(self, rated, y, X_rated, y_rated) -> np.ndarray:
        """The pool's class probabilities from the personal model enrolled with the
        answers so far (pool clips ``rated`` with labels ``y``, and any rated clips outside
        the pool); the model's default prediction before any answer."""
        Xs = [self.X[rated]] if len(rated) else []
        ys = [np.asarray(y)] if len(rated) else []
        if X_rated is not None and len(X_rated):
            Xs.append(np.asarray(X_rated, dtype=np.float32))
            ys.append(np.asarray(y_rated))
        prof = self.model.enroll(np.concatenate(Xs), np.concatenate(ys)) if Xs else None
        return np.asarray(self.model.predict(prof, self.X).proba, dtype=np.float64)

    def _uncertainty(self, rated, y, X_rated, y_rated) -> np.ndarray:
        m = self.model
        if not m.space_.is_class:
            return np.ones(self.n)
        p = self._proba(rated, y, X_rated, y_rated)
        if m.space_.kind == "categorical":
            return 1 - (p**2).sum(1)
        return (p * (1 - p)).sum(1)

    def _select(self, n, rated, y, X_rated, y_rated, banned) -> Selection:
        u = self._uncertainty(rated, y, X_rated, y_rated)
        A = self.lam * np.eye(self.Z.shape[1])
        if len(rated):
            Zr = self.Z[rated]
            A += Zr.T @ (Zr * u[rated, None])
        if X_rated is not None and len(X_rated):
            Zx = self._z(X_rated)
            A += Zx.T @ Zx  # outside the pool: no uncertainty estimate, full weight
        out, gains = [], []
        banned = banned.copy()
        for _ in range(n):
            cand = np.flatnonzero(~banned)
            Zc = self.Z[cand]
            q = np.einsum("nd,nd->n", Zc, np.linalg.solve(A, Zc.T).T)
            i, gain = _pick(cand, 0.5 * np.log1p(u[cand] * q), self.dens)
            out.append(i)
            gains.append(gain)
            banned[i] = True
            A += u[i] * np.outer(self.Z[i], self.Z[i])
        return Selection(np.asarray(out, dtype=np.int64), np.asarray(gains),
                         {"unit": self.unit, "criterion": "model-change"})


class _UncertaintySession(_ModelChangeSession):
    """``criterion="uncertainty"``: the clips the current personal model is least sure
    of (the entropy of its predictive distribution; multilabel: summed over classes),
    times the density weight. Batch mode takes the best ``n`` (no answers, no change)."""

    unit = "nats of predictive entropy"

    def __init__(self, strategy: ActiveStrategy, X_pool: np.ndarray) -> None:
        Session.__init__(self, strategy, X_pool)
        self.model = strategy.model_
        self.dens = representativeness(self.X) ** float(strategy.density_) if strategy.density_ else None

    def _uncertainty(self, rated, y, X_rated, y_rated) -> np.ndarray:
        p = np.clip(self._proba(rated, y, X_rated, y_rated), 1e-12, 1.0)
        if self.model.space_.kind == "categorical":
            return -(p * np.log(p)).sum(1)
        q = np.clip(1 - p, 1e-12, 1.0)
        return -(p * np.log(p) + q * np.log(q)).sum(1)

    def _select(self, n, rated, y, X_rated, y_rated, banned) -> Selection:
        u = self._uncertainty(rated, y, X_rated, y_rated)
        out, gains = [], []
        banned = banned.copy()
        for _ in range(n):
            cand = np.flatnonzero(~banned)
            i, gain = _pick(cand, u[cand], self.dens)
            out.append(i)
            gains.append(gain)
            banned[i] = True
        return Selection(np.asarray(out, dtype=np.int64), np.asarray(gains),
                         {"unit": self.unit, "criterion": "uncertainty"})


def _pick(cand: np.ndarray, g: np.ndarray, dens: np.ndarray | None) -> tuple[int, float]:
    """The candidate with the largest gain ``g`` (weighted by the pool's typicality ``dens``
    where there is one) and its unweighted gain."""
    score = g * dens[cand] if dens is not None else g
    j = int(np.argmax(score))
    return int(cand[j]), float(g[j])
