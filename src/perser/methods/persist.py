"""Safetensors I/O (no pickle: loading a model runs no code) and atomic folders.

:func:`atomic_dir` lives in :mod:`perser._io`; it is re-exported here for the methods.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from perser._io import atomic_dir

__all__ = ["atomic_dir", "save_tensors", "load_tensors"]


def save_tensors(tensors: dict[str, np.ndarray], file: str | Path) -> None:
    from safetensors.numpy import save_file

    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(file))


def load_tensors(file: str | Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(file))
