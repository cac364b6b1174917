"""Pieces shared by the ``perser`` command groups."""

from __future__ import annotations

import contextlib
import warnings
from typing import Any, Iterator, List, Optional

from rich.console import Console

__all__ = ["report_warnings", "parse_key_value", "parse_options", "OPTION_HELP"]


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


OPTION_HELP = ("A loader option KEY=VALUE (repeatable; VALUE read as a YAML scalar), e.g. modality=face for "
               "CREMA-D, secondary=true for MSP-Podcast; see the format's loader for its options.")


def parse_key_value(item: str, flag: str = "--option") -> tuple[str, Any]:
    """``"KEY=VALUE"`` -> ``(KEY, VALUE)`` with VALUE read as YAML (``true``, ``10``, ``[16]``,
    ``null``; text YAML cannot read stays a string; nothing after ``=`` is ``None``); a
    missing ``=`` or an empty key raises :class:`~perser.errors.ConfigError` naming ``flag``."""
    import yaml

    from perser.errors import ConfigError

    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"{flag} {item!r} is not KEY=VALUE")
    try:
        return key, (yaml.safe_load(text) if text.strip() else None)
    except yaml.YAMLError:
        return key, text


def parse_options(items: Optional[List[str]]) -> dict[str, Any]:
    """``["modality=face", "max_first_click_s=10"]`` -> ``{"modality": "face", "max_first_click_s": 10}``.

    Each value is parsed as a YAML scalar (see :func:`parse_key_value`); a missing ``=``, an
    empty key, a repeated key or a non-scalar value raise :class:`~perser.errors.ConfigError`
    naming the item.
    """
    from perser.errors import ConfigError

    out: dict[str, Any] = {}
    for item in items or []:
        key, value = parse_key_value(item)
        if key in out:
            raise ConfigError(f"--option {key} is given twice")
        if isinstance(value, (dict, list)):
            raise ConfigError(f"--option {item!r}: the value must be a single value, not a YAML {type(value).__name__}")
        out[key] = value
    return out
