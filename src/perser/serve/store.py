"""The service's profile store: one folder per enrolled listener, tied to one model.

Layout of a store folder::

    store.json                  # the model it belongs to (method, space, fingerprint)
    profiles/<key>/profile.json # one listener's profile (+ profile.safetensors)

``<key>`` is the annotator id percent-encoded (``msp-podcast/WORKER1`` becomes
``msp-podcast%2FWORKER1``), so any id is a single safe folder name. Profiles are written
with :func:`perser._io.atomic_dir`: a reader never sees a half-written profile, and a
crashed write leaves the previous profile in place.

A store refuses to open for another model than the one it was made with: a profile
chooses heads or adapts weights of *one* trained model, and would silently mean
something else under another.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import threading
from pathlib import Path
from urllib.parse import quote, unquote

from perser.errors import ConfigError, PerserError
from perser.features.store import file_digest
from perser.methods.base import Profile

#: what an annotator id may look like: 1-200 printable characters, no control characters
_ID = re.compile(r"^[^\x00-\x1f\x7f]{1,200}$")


class UnknownAnnotator(PerserError, KeyError):
    """No profile for this annotator in the store."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ProfileExists(PerserError):
    """A profile for this annotator exists and overwriting was not asked for."""


def model_fingerprint(model_dir: str | Path) -> str:
    """SHA-256 (24 hex digits) of a saved model folder's files (names and bytes)."""
    root = Path(model_dir)
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(root)).encode("utf-8") + b"\0")
        h.update(file_digest(f).encode("ascii"))
    return h.hexdigest()[:24]


def check_annotator_id(annotator: object) -> str:
    """The annotator id, or a :class:`ConfigError` saying what is wrong with it."""
    if not isinstance(annotator, str) or not annotator.strip():
        raise ConfigError(f"annotator id must be a non-empty string, got {annotator!r}")
    if annotator != annotator.strip():
        raise ConfigError(f"annotator id {annotator!r} has leading or trailing white space")
    if not _ID.match(annotator):
        raise ConfigError(f"annotator id {annotator!r} is longer than 200 characters or has control characters")
    return annotator


class ProfileStore:
    """Profiles of listeners enrolled with one model, in a folder.

    Parameters
    ----------
    root:
        The store folder (created when missing).
    model_info:
        What identifies the model: at least ``fingerprint`` (see :func:`model_fingerprint`);
        ``method`` and ``space`` are recorded for people reading ``store.json``.
    """

    def __init__(self, root: str | Path, model_info: dict):
        self.root = Path(root)
        self.model_info = dict(model_info)
        if "fingerprint" not in self.model_info:
            raise ConfigError("ProfileStore needs the model's fingerprint")
        self._lock = threading.Lock()
        meta = self.root / "store.json"
        if meta.is_file():
            try:
                have = json.loads(meta.read_text(encoding="utf-8"))
            except json.JSONDecodeError as e:
                raise ConfigError(f"{meta}: malformed JSON ({e})") from None
            if have.get("fingerprint") != self.model_info["fingerprint"]:
                raise ConfigError(
                    f"profile store {self.root} belongs to another model ({have.get('method')!r}, fingerprint "
                    f"{have.get('fingerprint')}), not this one ({self.model_info.get('method')!r}, fingerprint "
                    f"{self.model_info['fingerprint']}); use another --profiles folder"
                )
        else:
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = meta.with_name(".store.json.part")
            tmp.write_text(json.dumps(self.model_info, indent=2, sort_keys=True), encoding="utf-8")
            tmp.replace(meta)
        (self.root / "profiles").mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ paths
    @staticmethod
    def key(annotator: str) -> str:
        """The folder name of an annotator's profile (never starting with ``.``: those are
        the temporary folders of writes in progress)."""
        k = quote(check_annotator_id(annotator), safe="-_.@+=~")
        return "%2E" + k[1:] if k.startswith(".") else k

    def path(self, annotator: str) -> Path:
        return self.root / "profiles" / self.key(annotator)

    # -------------------------------------------------------------- interface
    def annotators(self) -> list[str]:
        """Enrolled annotators, sorted."""
        d = self.root / "profiles"
        return sorted(unquote(p.name) for p in d.iterdir()
                      if not p.name.startswith(".") and (p / "profile.json").is_file())

    def __contains__(self, annotator: str) -> bool:
        return (self.path(annotator) / "profile.json").is_file()

    def __len__(self) -> int:
        return len(self.annotators())

    def get(self, annotator: str) -> Profile:
        """The stored profile, or :class:`UnknownAnnotator`."""
        p = self.path(annotator)
        if not (p / "profile.json").is_file():
            raise UnknownAnnotator(f"no profile for annotator {annotator!r}; enroll them first")
        return Profile.load(p)

    def put(self, profile: Profile, overwrite: bool = False) -> Path:
        """Store ``profile`` atomically under its annotator id."""
        if profile.annotator is None:
            raise ConfigError("a stored profile needs an annotator id")
        p = self.path(profile.annotator)
        with self._lock:
            if (p / "profile.json").is_file() and not overwrite:
                raise ProfileExists(f"annotator {profile.annotator!r} is already enrolled; pass overwrite to replace the profile")
            return profile.save(p)

    def delete(self, annotator: str) -> None:
        """Remove a profile (or :class:`UnknownAnnotator`)."""
        p = self.path(annotator)
        with self._lock:
            if not (p / "profile.json").is_file():
                raise UnknownAnnotator(f"no profile for annotator {annotator!r}")
            shutil.rmtree(p)
