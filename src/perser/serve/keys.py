"""API keys: made once, stored as SHA-256, checked per request; scopes; a per-key rate limit.

A key is ``perser_`` and 43 characters of ``secrets.token_urlsafe(32)`` (256 random bits).
Only its SHA-256 is stored: with that much entropy a fast hash is enough (nobody can
search 2^256 keys, however fast each guess), and an unsalted hash lets the service find
the key by an index lookup. A slow password hash (bcrypt, Argon2) protects *low-entropy*
secrets that people choose, at ~0.1 s of CPU per check, which here would be paid on
every request.

Scopes: ``admin`` (models, keys aside, and every listener) or ``listener:<id>`` (that
listener's ratings, profile and predictions only).
"""

from __future__ import annotations

import hashlib
import math
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Optional

from perser.errors import ConfigError, PerserError

PREFIX = "perser_"


class Unauthorized(PerserError):
    """No key, or a key the service does not know (401)."""


class Forbidden(PerserError):
    """A known key whose scope does not reach what was asked (403)."""


class RateLimited(PerserError):
    """Too many requests for this key (429 with ``Retry-After``)."""

    def __init__(self, message: str, retry_after: float):
        super().__init__(message)
        self.retry_after = retry_after


def new_key() -> str:
    """A fresh random key (shown once to the person who asked for it)."""
    return PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def check_scope(scope: str) -> str:
    """``admin`` or ``listener:<id>`` with a valid listener id; :class:`ConfigError` otherwise."""
    from perser.serve.db import check_listener_id

    if scope == "admin":
        return scope
    if scope.startswith("listener:"):
        check_listener_id(scope[len("listener:"):])
        return scope
    raise ConfigError("scope must be 'admin' or 'listener:<id>'")


@dataclass(frozen=True)
class Principal:
    """Who is asking: a key's name and scope (``open`` when the service runs without keys)."""

    name: str
    scope: str

    @property
    def is_admin(self) -> bool:
        return self.scope in ("admin", "open")

    @property
    def listener(self) -> Optional[str]:
        return self.scope[len("listener:"):] if self.scope.startswith("listener:") else None

    def may(self, listener: Optional[str] = None, admin: bool = False) -> bool:
        """Whether this principal may act on ``listener`` (or on admin-only things)."""
        if self.is_admin:
            return True
        if admin:
            return False
        return listener is not None and listener == self.listener


class RateLimiter:
    """A token bucket per key: ``rate`` requests a second on average, bursts of ``burst``.

    The buckets live in the process; with ``--workers N`` each worker gets ``rate / N``
    (connections are spread over the workers), so the whole service allows about ``rate``.
    """

    def __init__(self, rate: float, burst: Optional[float] = None):
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(1.0, rate))
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def check(self, who: str) -> None:
        """Take one token for ``who`` or raise :class:`RateLimited` saying when to retry."""
        if self.rate <= 0:
            return
        t = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(who, (self.burst, t))
            tokens = min(self.burst, tokens + (t - last) * self.rate)
            if tokens < 1.0:
                self._buckets[who] = (tokens, t)
                wait = (1.0 - tokens) / self.rate
                raise RateLimited(f"rate limit of {self.rate:g} requests/s exceeded; retry in {math.ceil(wait)} s", wait)
            self._buckets[who] = (tokens - 1.0, t)
            if len(self._buckets) > 100_000:  # forget idle buckets (they would be full again anyway)
                full = [k for k, (n, s) in self._buckets.items() if n + (t - s) * self.rate >= self.burst]
                for k in full:
                    del self._buckets[k]
