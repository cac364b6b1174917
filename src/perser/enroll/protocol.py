"""Enrollment strategies inside the evaluation protocol (``enroll_strategy``).

For every new (unseen) listener the protocol holds their *pool*: the clips of the
training folds they rated, in one seeded random order (``Assignment.pool``). The
``random`` strategy enrolls with the first K of that order -- the papers' protocol,
unchanged. Any other strategy chooses the K clips from the same pool, sequentially:
each choice sees the listener's real labels of the clips chosen before it (the
"answers"), so the simulation is honest. The K-clip sets are nested (the first K of
one sequential order of ``max K``), the test set is the same as ``random``'s, and
the same listeners are compared, so strategies are paired.

Results of a non-random strategy appear as method ``<method>+<strategy>`` (e.g.
``similar+active``); ``random`` keeps the method's own name. Strategies apply to
personalized methods and unseen listeners only (seen listeners are predicted by
their own head or enrolled at random, as before).
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from perser.enroll import make_strategy
from perser.errors import ConfigError, PerserError


def strategy_label(method: str, spec: str) -> str:
    """The results' method name of ``method`` enrolled with strategy ``spec``."""
    return method if spec == "random" else f"{method}+{spec}"


class StrategyPlan:
    """The strategies of one run: ``specs`` (labels such as ``"active"`` or
    ``"active:criterion=head"``) with extra parameters per label in ``params``."""

    def __init__(self, specs: list[str] | None = None, params: dict[str, dict] | None = None) -> None:
        specs = list(specs or ["random"])
        if len(set(specs)) != len(specs):
            raise ConfigError(f"enroll_strategy lists a strategy twice: {specs}")
        params = dict(params or {})
        unknown = sorted(set(params) - set(specs))
        if unknown:
            raise ConfigError(f"enroll_strategy_params names strategies not in enroll_strategy: {unknown}")
        self.specs = specs
        self.params = params
        for s in specs:  # a misspelt name or parameter fails before any fit
            make_strategy(s, **params.get(s, {})).check_params()
        self._fitted: dict[tuple, object] = {}

    @property
    def others(self) -> list[str]:
        """The non-random strategies."""
        return [s for s in self.specs if s != "random"]

    def n_extra(self, personalized: bool, scenario: str) -> int:
        """Extra enrollment runs per listener and K besides ``random``'s."""
        if not personalized or scenario != "unseen":
            return 0
        return len(self.others) - (0 if "random" in self.specs else 1)

    def enrollments(self, method: str, model, scenario: str, assignment, data, rows: dict, train_fn,
                    seed: int, fold: str) -> Iterator[tuple[str, list[str]]]:
        """``(results method name, enrollment clip ids)`` for every K of ``assignment`` and
        every strategy that applies; ``rows`` maps the listener's clip ids to rating rows,
        ``train_fn()`` gives the seen listeners' ratings (fitting the likelihood)."""
        use = self.specs if (model.personalized and scenario == "unseen") else ["random"]
        for spec in use:
            if spec == "random":
                for k in assignment.ks:
                    yield method, assignment.enroll_order[:k]
                continue
            order = self.order(spec, method, model, assignment, data, rows, train_fn, seed, fold)
            for k in assignment.ks:
                yield strategy_label(method, spec), order[:k]

    def order(self, spec, method, model, assignment, data, rows, train_fn, seed, fold) -> list[str]:
        """The listener's sequential enrollment order (``max K`` clips) under ``spec``."""
        from perser.evaluate.protocol import stable_int

        held = self._fitted.get((spec, method))
        if held is None or held[0] is not model:  # one fitted strategy per fitted model
            strat = make_strategy(spec, **self.params.get(spec, {}))
            strat.fit(model, train_fn())
            self._fitted[(spec, method)] = (model, strat)
        strat = self._fitted[(spec, method)][1]
        pool = list(assignment.pool or assignment.enroll_order)
        if not pool:
            raise PerserError(f"listener {assignment.annotator!r} has no enrollment pool")
        strat.seed = int(np.random.default_rng([int(seed), stable_int(str(fold)), stable_int(assignment.annotator)])
                         .integers(2**31))
        sess = strat.session(data.X[data.rows(pool)])
        y_pool = data.y_all[[rows[c] for c in pool]]
        sel = sess.order(y_pool, max(assignment.ks))
        return [pool[i] for i in sel.indices]
