"""What every extractor provides, and how a spec string names one."""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import cached_property
from typing import Callable

import numpy as np

__all__ = ["Job", "Sink", "Extractor", "FORMAT_VERSION"]

#: Bumped when perser changes how stored features are computed or laid out.
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Job:
    """One file to extract: its content hash and path."""

    digest: str
    path: str


#: ``sink(digest, features, error)``: called once per job, with features or an error message.
Sink = Callable[[str, "np.ndarray | None", "str | None"], None]


class Extractor(ABC):
    """Turns audio files into one float32 array per file.

    Subclasses set :attr:`spec` and :attr:`name`, describe in :meth:`settings` everything
    that changes the numbers (this makes the store key), and compute in :meth:`run`.
    """

    spec: str
    name: str

    @abstractmethod
    def settings(self) -> dict:
        """Everything that changes the extracted numbers (JSON-serialisable)."""

    @cached_property
    def key(self) -> str:
        """Store key: the extractor's name and a hash of its settings and perser's feature format."""
        blob = json.dumps({"format": FORMAT_VERSION, **self.settings()}, sort_keys=True, default=str)
        return f"{self.name}-{hashlib.sha256(blob.encode()).hexdigest()[:20]}"

    def key_files(self) -> list[str]:
        """Large files whose contents go into :attr:`key` (model weights), hashed when the key is first made.

        The caller may hash them first through the store (with progress) so the key finds them cached.
        """
        return []

    def feature_names(self) -> list[str] | None:
        """Column names of 2-D features, or ``None``."""
        return None

    def meta(self) -> dict:
        """What the store records about this extractor."""
        return {"spec": self.spec, "settings": self.settings(), "feature_names": self.feature_names()}

    @abstractmethod
    def run(self, jobs: list[Job], sink: Sink, workers: int = 1) -> None:
        """Compute every job, calling ``sink`` as each finishes (in any order)."""

    def close(self) -> None:
        """Release models or worker processes."""
