"""The model folder: what :meth:`Personalizer.save` writes and :func:`perser.methods.load_model` reads.

A model is a folder (written atomically, see :func:`perser._io.atomic_dir`)::

    config.json          {"format": "perser-model/1", "method": <registry name>, "params": {...},
                          "space": {...}, "input_shape": [...], "feature_spec": {...} | null,
                          "versions": {...}, ...method-specific keys}
    model.safetensors    the fitted arrays (safetensors: loading a model runs no code)

``method`` names the registered class that reads the rest (:meth:`Personalizer.load`);
this module knows nothing of the methods themselves. A profile folder (:class:`Profile`)
holds ``profile.json`` and, for adapted weights, ``profile.safetensors``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from perser.errors import ConfigError

__all__ = ["FORMAT", "CONFIG", "WEIGHTS", "read_config", "save_tensors", "load_tensors"]

#: the model folder format written in ``config.json``
FORMAT = "perser-model/1"
#: file names inside a model folder
CONFIG, WEIGHTS = "config.json", "model.safetensors"


def read_config(path: str | Path) -> dict:
    """``config.json`` of a model folder, checked for the keys every model has and for its weights."""
    path = Path(path)
    f = path / CONFIG
    if not f.is_file():
        raise ConfigError(f"{path} is not a perser model folder (no {CONFIG})")
    try:
        cfg = json.loads(f.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ConfigError(f"{f}: malformed JSON: {e}") from None
    missing = [k for k in ("method", "params", "space", "input_shape") if k not in cfg]
    if missing:
        raise ConfigError(f"{f}: missing keys {missing}")
    if not (path / WEIGHTS).is_file():
        raise ConfigError(f"{path}: {WEIGHTS} is missing")
    return cfg


def save_tensors(tensors: dict[str, np.ndarray], file: str | Path) -> None:
    """Write named arrays to a safetensors file."""
    from safetensors.numpy import save_file

    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(file))


def load_tensors(file: str | Path) -> dict[str, np.ndarray]:
    """Named arrays of a safetensors file."""
    from safetensors.numpy import load_file

    return load_file(str(file))
