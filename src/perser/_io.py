"""File-system helpers shared across perser: writing a folder atomically."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

__all__ = ["atomic_dir"]


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
