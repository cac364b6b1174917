"""Registry of on-disk corpus formats and format detection.

Each format lives in its own module ``perser.corpus.<module>`` exposing

``detect(path: Path) -> bool``
    True when ``path`` looks like a copy of this corpus;
``load(path: Path, **options) -> Corpus``
    read it (see the module's docstring for its options, scales and quirks).
"""

from __future__ import annotations

import importlib
import inspect
import logging
from pathlib import Path
from typing import Any

from perser.corpus.model import Corpus
from perser.errors import ConfigError, CorpusError

log = logging.getLogger(__name__)

#: format name -> module under ``perser.corpus``; the order is the detection order.
FORMATS: dict[str, str] = {
    "table": "table",
    "iemocap": "iemocap",
    "msp-podcast": "msp_podcast",
    "msp-improv": "msp_improv",
    "crema-d": "crema_d",
    "muse": "muse",
}


def _module(fmt: str):
    try:
        mod = FORMATS[fmt]
    except KeyError:
        raise CorpusError(f"unknown corpus format {fmt!r}; known formats: {', '.join(FORMATS)}") from None
    return importlib.import_module(f"perser.corpus.{mod}")


def detect_format(path: str | Path) -> str:
    """Name of the format whose layout ``path`` has; :class:`CorpusError` if none or several."""
    path = Path(path)
    if not path.exists():
        raise CorpusError(f"corpus path {path} does not exist")
    found = []
    for fmt in FORMATS:
        try:
            mod = _module(fmt)
        except ModuleNotFoundError:  # format not installed in this build
            continue
        if mod.detect(path):
            found.append(fmt)
    if not found:
        raise CorpusError(
            f"could not recognise the corpus layout at {path}; pass format= one of {', '.join(FORMATS)} "
            "(a plain 'table' corpus needs corpus.yaml, clips.csv and ratings.csv)"
        )
    if len(found) > 1:
        raise CorpusError(f"{path} matches several formats ({', '.join(found)}); pass format= to choose")
    return found[0]


def loader_options(format: str) -> dict[str, Any]:
    """The options that format ``format``'s loader accepts, with their defaults."""
    sig = inspect.signature(_module(format).load)
    return {n: p.default for n, p in list(sig.parameters.items())[1:]
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def check_options(format: str, options: dict[str, Any]) -> None:
    """Raise :class:`ConfigError` naming any option that format ``format``'s loader does not accept."""
    if any(p.kind is p.VAR_KEYWORD for p in inspect.signature(_module(format).load).parameters.values()):
        return  # a loader taking **options checks them itself
    known = loader_options(format)
    unknown = [k for k in options if k not in known]
    if unknown:
        accepted = ", ".join(f"{k} (default {v!r})" for k, v in known.items()) or "none"
        raise ConfigError(
            f"the {format} loader has no option {', '.join(map(repr, unknown))}; it accepts: {accepted}"
        )


def load_corpus(path: str | Path, format: str | None = None, **options: Any) -> Corpus:
    """Load a corpus from ``path``.

    Parameters
    ----------
    path:
        The corpus root directory.
    format:
        One of :data:`FORMATS`; ``None`` detects it from the layout and logs the choice
        (the chosen name is stored in ``corpus.meta["format"]``).
    **options:
        Passed to the format's ``load`` (e.g. ``modality="voice"`` for CREMA-D); an
        option it does not accept raises :class:`~perser.errors.ConfigError` listing those it does.
    """
    path = Path(path)
    if format is None:
        format = detect_format(path)
        log.info("detected corpus format %r at %s", format, path)
    check_options(format, options)
    corpus = _module(format).load(path, **options)
    source = corpus.meta.get("format")
    if source and source != format:  # e.g. an IEMOCAP copy converted to the table format
        corpus.meta.setdefault("source_format", source)
    corpus.meta["format"] = format
    return corpus
