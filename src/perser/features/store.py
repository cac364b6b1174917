"""The content-addressed feature store.

Layout under the store's root (default ``$PERSER_CACHE`` or ``~/.cache/perser/features``)::

    hashes/<writer>.tsv             path, size, mtime_ns, inode -> content hash of the file's bytes
    <extractor key>/meta.json       the extractor's spec, settings and feature names
    <extractor key>/<ab>/<hash>.npy one clip's features (``ab`` = the hash's first two characters)

An entry is addressed by the SHA-256 of the audio file's bytes and by the extractor key
(a hash of the extractor, its settings and its model's weights and config), never by a
file name: renaming a file still finds its entry, and changing the audio, the extractor,
a setting or the model weights misses.

Every write goes to a temporary file in the destination folder and is moved into place
with :func:`os.replace`, so a reader never sees a half-written entry, a killed run leaves
only finished entries behind, and any number of processes or machines may write into one
store at once (two writers of one entry write the same numbers; the last rename wins).

The ``hashes`` index spares a warm run from re-reading every audio file: a file whose
path, size, modification time and inode match a recorded line reuses the recorded hash.
Each process appends its new lines to a file of its own, so writers never contend.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from perser._io import atomic_write

__all__ = ["FeatureStore", "default_cache_dir", "file_digest", "DIGEST_CHARS"]

#: Hex characters of SHA-256 kept in entry names (128 bits).
DIGEST_CHARS = 32
_MAX_INDEX_FILES = 32


def default_cache_dir() -> Path:
    """``$PERSER_CACHE`` if set, else ``~/.cache/perser/features``."""
    env = os.environ.get("PERSER_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "perser" / "features"


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (hex, :data:`DIGEST_CHARS` characters)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()[:DIGEST_CHARS]


# Every write goes through perser._io.atomic_write: a temporary ``.tmp-<hex>.part`` file
# renamed into place; the name never matches an entry's, index file's or meta file's, so a
# writer killed before the rename leaves nothing that is read.


def _by_age(files) -> list[tuple[int, str, Path]]:
    """``(mtime_ns, name, file)`` of each index file still there (a concurrent writer may merge some away)."""
    out = []
    for f in files:
        try:
            out.append((f.stat().st_mtime_ns, f.name, f))
        except FileNotFoundError:
            continue
    return out


class FeatureStore:
    """Features of audio files on disk, addressed by content hash and extractor key.

    Parameters
    ----------
    root : str or path-like, optional
        The store's folder; created on first write. ``None`` uses :func:`default_cache_dir`.
    """

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()
        self._index: dict[str, tuple[int, int, int, str]] | None = None
        self._new_lines: list[str] = []
        self._made_dirs: set[Path] = set()
        #: entries :meth:`get` found unreadable (path: reason), treated as absent
        self.damaged: list[str] = []

    def __repr__(self) -> str:
        return f"FeatureStore({str(self.root)!r})"

    # ------------------------------------------------------------------ hashes
    @property
    def _hash_dir(self) -> Path:
        return self.root / "hashes"

    def _load_index(self) -> dict[str, tuple[int, int, int, str]]:
        if self._index is not None:
            return self._index
        index: dict[str, tuple[int, int, int, str]] = {}
        files = self._hash_dir.glob("*.tsv") if self._hash_dir.is_dir() else []
        files = [t[2] for t in sorted(_by_age(files), key=lambda t: t[:2])]  # oldest first: later lines win
        for f in files:
            try:
                text = f.read_text(encoding="utf-8")
            except FileNotFoundError:  # merged away by a concurrent writer
                continue
            for line in text.splitlines():
                parts = line.split("\t")
                if len(parts) != 5:
                    continue
                try:
                    index[parts[0]] = (int(parts[1]), int(parts[2]), int(parts[3]), parts[4])
                except ValueError:
                    continue
        self._index = index
        self._index_files = files
        return index

    def content_hashes(
        self,
        paths: Iterable[str],
        on_error: Callable[[str, str], None] | None = None,
        on_done: Callable[[int], None] | None = None,
        threads: int = 4,
    ) -> dict[str, str]:
        """Content hash of each path, reusing the index where size, mtime and inode still match.

        Parameters
        ----------
        paths : iterable of str
            Absolute file paths.
        on_error : callable, optional
            Called ``on_error(path, message)`` for a file that cannot be read; without it
            the :class:`OSError` propagates.
        on_done : callable, optional
            Called with the number of files hashed after each batch (for progress bars).

        Returns
        -------
        dict
            path -> hash, for every readable path.
        """
        index = self._load_index()
        out: dict[str, str] = {}
        todo: list[tuple[str, os.stat_result]] = []
        for p in dict.fromkeys(paths):
            try:
                st = os.stat(p)
            except OSError as e:
                if on_error is None:
                    raise
                on_error(p, f"{p}: audio file not found" if isinstance(e, FileNotFoundError) else f"{p}: {e}")
                continue
            rec = index.get(p)
            if rec is not None and rec[:3] == (st.st_size, st.st_mtime_ns, st.st_ino):
                out[p] = rec[3]
            else:
                todo.append((p, st))
        if on_done is not None and out:
            on_done(len(out))

        def one(item):
            p, st = item
            try:
                return p, st, file_digest(p), None
            except OSError as e:
                return p, st, None, f"{p}: {e}"

        if todo:
            with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
                for p, st, digest, err in pool.map(one, todo):
                    if err is not None:
                        if on_error is None:
                            raise OSError(err)
                        on_error(p, err)
                    else:
                        out[p] = digest
                        index[p] = (st.st_size, st.st_mtime_ns, st.st_ino, digest)
                        if "\t" not in p and "\n" not in p:  # such paths are hashed afresh each run
                            self._new_lines.append(f"{p}\t{st.st_size}\t{st.st_mtime_ns}\t{st.st_ino}\t{digest}\n")
                    if on_done is not None:
                        on_done(1)
                    if len(self._new_lines) >= 10000:
                        self.flush_index()
            self.flush_index()
        return out

    def flush_index(self) -> None:
        """Write this process's new index lines to a file of its own (atomically)."""
        if not self._new_lines:
            return
        self._hash_dir.mkdir(parents=True, exist_ok=True)
        lines, self._new_lines = self._new_lines, []
        files = getattr(self, "_index_files", [])
        if len(files) >= _MAX_INDEX_FILES:  # compact: one file with everything known, then drop the merged ones
            lines = [f"{p}\t{s}\t{m}\t{i}\t{d}\n" for p, (s, m, i, d) in self._index.items()
                     if "\t" not in p and "\n" not in p]
        if lines:
            atomic_write(self._hash_dir / f"{uuid.uuid4().hex}.tsv", "".join(lines).encode("utf-8"))
        if len(files) >= _MAX_INDEX_FILES:
            for f in files:
                f.unlink(missing_ok=True)
            self._index_files = []

    # ----------------------------------------------------------------- entries
    def entry_path(self, key: str, digest: str) -> Path:
        """Where the entry for (extractor ``key``, content ``digest``) lives."""
        return self.root / key / digest[:2] / f"{digest}.npy"

    def get(self, key: str, digest: str) -> np.ndarray | None:
        """The stored array, or ``None`` when absent.

        An entry that cannot be read as an array (damaged on disk, or written by something
        else) counts as absent, so that it is computed again and replaced; its path is
        added to :attr:`damaged` for the caller to report.
        """
        path = self.entry_path(key, digest)
        try:
            return np.load(path, allow_pickle=False)
        except FileNotFoundError:
            return None
        except (ValueError, OSError, EOFError) as e:  # numpy raises ValueError for a bad header or size
            self.damaged.append(f"{path}: {e}")
            return None

    def has(self, key: str, digest: str) -> bool:
        return self.entry_path(key, digest).is_file()

    def put(self, key: str, digest: str, value: np.ndarray) -> Path:
        """Store ``value`` atomically (temporary file + rename) and return its path."""
        path = self.entry_path(key, digest)
        if path.parent not in self._made_dirs:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._made_dirs.add(path.parent)
        atomic_write(path, lambda f: np.save(f, np.ascontiguousarray(value), allow_pickle=False))
        return path

    def keys(self, key: str) -> list[str]:
        """Content hashes stored for extractor ``key``."""
        d = self.root / key
        if not d.is_dir():
            return []
        return sorted(p.stem for p in d.glob("??/*.npy"))

    # -------------------------------------------------------------------- meta
    def write_meta(self, key: str, meta: dict) -> None:
        """Record what extractor ``key`` is (once; atomically)."""
        path = self.root / key / "meta.json"
        if path.is_file():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps(meta, indent=1, sort_keys=True, default=str).encode("utf-8"))

    def read_meta(self, key: str) -> dict | None:
        path = self.root / key / "meta.json"
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None

    def clean_temporary(self, older_than: float = 3600.0) -> int:
        """Delete temporary files left by killed writers (older than ``older_than`` seconds)."""
        import time

        now, n = time.time(), 0
        if not self.root.is_dir():
            return 0
        for p in self.root.rglob(".tmp-*"):
            try:
                if now - p.stat().st_mtime > older_than:
                    p.unlink()
                    n += 1
            except FileNotFoundError:
                pass
        return n
