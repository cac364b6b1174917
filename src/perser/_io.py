"""Small helpers shared across perser, each in one place.

- :func:`atomic_dir` / :func:`atomic_file` / :func:`atomic_write`: write a folder or a
  file so that a reader never sees it half-written;
- :func:`json_default` / :func:`jsonable`: numpy scalars and arrays, paths -> JSON data;
- :func:`progress_bar`: perser's rich progress display;
- :func:`package_versions`: installed versions of packages, for result files and store keys.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

__all__ = ["atomic_dir", "atomic_file", "atomic_write", "json_default", "jsonable", "progress_bar",
           "package_versions"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling folder that replaces ``path`` only if the block succeeds.

    The folder is created next to ``path`` (same file system, so the final rename is
    atomic) with a name starting ``.<name>.``. When the block finishes, an existing
    ``path`` is first renamed to ``.<name>.old``, the temporary folder is renamed to
    ``path`` and the old folder is deleted; a stale ``.<name>.old`` left by a crash
    between the two renames is deleted beforehand. If the block raises, the temporary
    folder is deleted and ``path`` is left as it was.

    Parameters
    ----------
    path:
        The folder to create or replace. Its parent is created if needed.

    Yields
    ------
    Path
        The temporary folder to write into. Before it is renamed into place it gets the
        mode a plain ``mkdir`` would give (``0o777`` less the umask), not ``mkdtemp``'s 0700.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        tmp.chmod(0o777 & ~_umask())
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            if old.exists():
                shutil.rmtree(old)
            path.rename(old)
            tmp.rename(path)
            shutil.rmtree(old)
        else:
            tmp.rename(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling path that is renamed over ``path`` only if the block succeeds.

    The temporary file is ``.tmp-<hex>.part`` in ``path``'s folder (same file system, so
    :func:`os.replace` is atomic; the name never matches a file perser reads). If the
    block raises, the temporary file is deleted and ``path`` is left as it was.
    """
    path = Path(path)
    tmp = path.parent / f".tmp-{uuid.uuid4().hex}.part"
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: str | Path, data: bytes | str | Callable[[BinaryIO], object], encoding: str = "utf-8") -> Path:
    """Write ``data`` (bytes, text, or a function writing to a binary file) to ``path`` atomically
    (see :func:`atomic_file`); returns ``path``."""
    path = Path(path)
    with atomic_file(path) as tmp, open(tmp, "wb") as f:
        if callable(data):
            data(f)
        else:
            f.write(data.encode(encoding) if isinstance(data, str) else data)
    return path


def json_default(o: Any) -> Any:
    """``json.dumps(..., default=json_default)``: numpy scalars and arrays, and paths, as JSON data."""
    import numpy as np

    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, os.PathLike):
        return os.fspath(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def jsonable(v: Any, nan: Any = math.nan) -> Any:
    """``v`` as plain JSON data: mappings (keys as text), lists, numpy scalars and paths
    converted recursively; a NaN float becomes ``nan`` (e.g. ``None``)."""
    if isinstance(v, dict):
        return {str(k): jsonable(x, nan) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x, nan) for x in v]
    if isinstance(v, float) and math.isnan(v):
        return nan
    try:
        out = json_default(v)
    except TypeError:
        return v
    return nan if isinstance(out, float) and math.isnan(out) else out


def progress_bar(*columns, eta: bool = False, bold: bool = False, **kwargs):
    """perser's rich progress display: description, bar, ``done/total``, ``columns``, elapsed
    time (and the remaining time with ``eta``); ``kwargs`` go to :class:`rich.progress.Progress`
    (``transient``, ``console``, ``disable``, ``auto_refresh``)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    tail = [TextColumn("eta"), TimeRemainingColumn()] if eta else []
    return Progress(TextColumn("[bold]{task.description}" if bold else "{task.description}"), BarColumn(),
                    MofNCompleteColumn(), *columns, TimeElapsedColumn(), *tail, **kwargs)


def package_versions(*names: str, python: bool = False, missing: str | None = "unknown") -> dict[str, str]:
    """Installed versions of the distributions ``names`` (and Python's with ``python``); a
    package that is not installed maps to ``missing``, or is left out when ``missing`` is None."""
    from importlib import metadata

    out = {"python": platform.python_version()} if python else {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            if missing is not None:
                out[name] = missing
    return out
