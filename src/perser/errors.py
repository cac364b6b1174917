"""Errors and counted warnings shared by every part of perser.

perser never drops a user's data silently: a bad row, file or label is either a
:class:`PerserError` naming the culprit, or it is recorded in a :class:`SkipLog`
that emits one counted :class:`PerserWarning` per reason, listing examples.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from dataclasses import dataclass, field


class PerserError(ValueError):
    """Base class of perser's errors (a ``ValueError``: the input is at fault)."""


class CorpusError(PerserError):
    """A corpus on disk or in memory is malformed; the message names the culprit."""


class FeatureError(PerserError):
    """Audio could not be read or features could not be extracted."""


class ConfigError(PerserError):
    """A configuration, request or command-line option is invalid."""


class PerserWarning(UserWarning):
    """A counted warning: something was skipped, merged or repaired."""


class CountedWarning(PerserWarning):
    """One :class:`SkipLog` line as a warning that keeps its parts.

    Its text is ``"source: N reason (e.g. a, b)"``; :attr:`source`, :attr:`reason`,
    :attr:`n` and :attr:`examples` let a caller (the evaluation runner summing warnings
    over splits) combine warnings without parsing that text.
    """

    def __init__(self, source: str, reason: str, n: int, examples: "list[str] | tuple[str, ...]" = ()) -> None:
        self.source, self.reason, self.n, self.examples = source, reason, int(n), list(examples)
        more = f" (e.g. {', '.join(self.examples)})" if self.examples else ""
        prefix = f"{source}: " if source else ""
        super().__init__(f"{prefix}{self.n} {reason}{more}")

    def __reduce__(self):  # pickled by its parts (a warning may cross a process boundary)
        return (type(self), (self.source, self.reason, self.n, self.examples))


def where(path, line: int | None = None) -> str:
    """Format ``path:line`` for error messages."""
    return f"{path}:{line}" if line is not None else str(path)


@dataclass
class SkipLog:
    """Collects skipped, merged or repaired items by reason and reports them counted.

    >>> log = SkipLog("iemocap")
    >>> log.add("dimensional line without dom", "Ses01F_impro01.txt:12")
    >>> log.counts()
    {'dimensional line without dom': 1}
    """

    source: str = ""
    max_examples: int = 5
    _items: "OrderedDict[str, list[str]]" = field(default_factory=OrderedDict)
    _n: "dict[str, int]" = field(default_factory=dict)

    def add(self, reason: str, item: object = "", n: int = 1) -> None:
        """Record ``n`` skipped items for ``reason``; ``item`` is an example culprit."""
        self._n[reason] = self._n.get(reason, 0) + n
        examples = self._items.setdefault(reason, [])
        if item != "" and len(examples) < self.max_examples:
            examples.append(str(item))

    def counts(self) -> dict[str, int]:
        """Number of items recorded per reason."""
        return dict(self._n)

    def __bool__(self) -> bool:
        return bool(self._n)

    def examples(self, reason: str) -> list[str]:
        """The example culprits recorded for ``reason`` (at most :attr:`max_examples`)."""
        return list(self._items.get(reason) or [])

    def records(self) -> list[CountedWarning]:
        """One :class:`CountedWarning` per reason, in the order the reasons were first seen."""
        return [CountedWarning(self.source, reason, n, self.examples(reason)) for reason, n in self._n.items()]

    def messages(self) -> list[str]:
        """One human-readable line per reason, with its count and examples."""
        return [str(w) for w in self.records()]

    def emit(self, stacklevel: int = 2) -> None:
        """Issue one :class:`CountedWarning` (a :class:`PerserWarning`) per reason."""
        for w in self.records():
            warnings.warn(w, stacklevel=stacklevel + 1)

    def merge(self, other: "SkipLog") -> None:
        for reason, n in other._n.items():
            self._n[reason] = self._n.get(reason, 0) + n
            ex = self._items.setdefault(reason, [])
            for e in other._items.get(reason, []):
                if len(ex) < self.max_examples:
                    ex.append(e)
