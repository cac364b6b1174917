"""Choosing which clips to ask a new listener: ``random``, ``active``, ``diverse``.

>>> from perser.enroll import make_strategy
>>> s = make_strategy("active").fit(model, train)        # doctest: +SKIP
>>> s.select(X_pool, n=5).indices                         # doctest: +SKIP

See :mod:`perser.enroll.base` for the interface, :mod:`perser.enroll.active` for the
information criteria and :mod:`perser.enroll.simple` for ``random`` and ``diverse``.
"""

from __future__ import annotations

from perser.enroll.active import ActiveStrategy
from perser.enroll.base import Selection, Session, Strategy
from perser.enroll.simple import DiverseStrategy, RandomStrategy
from perser.errors import ConfigError

#: strategy name -> class; ``random`` is the papers' protocol and the default
STRATEGIES: dict[str, type[Strategy]] = {
    "random": RandomStrategy,
    "active": ActiveStrategy,
    "diverse": DiverseStrategy,
}

__all__ = ["STRATEGIES", "ActiveStrategy", "DiverseStrategy", "RandomStrategy", "Selection", "Session", "Strategy",
           "make_strategy", "parse_strategy"]


def parse_strategy(spec: str) -> tuple[str, dict]:
    """``"active"`` or ``"active:criterion=head,density=1"`` -> ``(name, params)``
    (values read as YAML scalars)."""
    import yaml

    name, _, rest = str(spec).partition(":")
    params = {}
    for item in filter(None, (x.strip() for x in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq:
            raise ConfigError(f"enrollment strategy {spec!r}: expected KEY=VALUE after ':', got {item!r}")
        params[key.strip().replace("-", "_")] = yaml.safe_load(value)
    return name.strip(), params


def make_strategy(spec: str, **params) -> Strategy:
    """The strategy ``spec`` (a name, optionally with ``:key=value,...``) with ``params``."""
    name, own = parse_strategy(spec)
    try:
        klass = STRATEGIES[name]
    except KeyError:
        raise ConfigError(f"unknown enrollment strategy {name!r}; available: {', '.join(STRATEGIES)}") from None
    try:
        return klass(**{**own, **params})
    except TypeError as e:
        raise ConfigError(f"enrollment strategy {name!r}: {e}") from None
