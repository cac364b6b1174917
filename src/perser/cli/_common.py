"""Pieces shared by the ``perser`` command groups."""

from __future__ import annotations

import contextlib
import warnings
from typing import Iterator

from rich.console import Console

__all__ = ["report_warnings"]


@contextlib.contextmanager
def report_warnings(console: Console) -> Iterator[None]:
    """Print perser's counted warnings raised in the block as one yellow line each on ``console``.

    Every :class:`perser.errors.PerserWarning` is printed (none is deduplicated away);
    any other warning is passed on to :func:`warnings.showwarning` in Python's format.
    Both happen when the block ends, also when it raises.
    """
    from perser.errors import PerserWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PerserWarning)
        try:
            yield
        finally:
            for w in caught:
                if issubclass(w.category, PerserWarning):
                    console.print(f"[yellow]warning:[/yellow] {w.message}", highlight=False, soft_wrap=True)
                else:
                    warnings.showwarning(w.message, w.category, w.filename, w.lineno)
