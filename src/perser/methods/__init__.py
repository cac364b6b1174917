"""Personalization methods behind one interface (see :mod:`perser.methods.base`).

:func:`train` (``perser train``'s pipeline) and :func:`load_model` are the entry points
for a trained model; :mod:`perser.methods.inputs` turns audio files and a listener's
ratings into a model's arguments.
"""

from perser.methods.base import (
    Personalizer,
    Predictions,
    Profile,
    RatingSet,
    available_methods,
    default_methods,
    get_method,
    make_method,
    register,
)

__all__ = [
    "Personalizer",
    "Predictions",
    "Profile",
    "RatingSet",
    "available_methods",
    "default_methods",
    "get_method",
    "load_model",
    "make_method",
    "register",
    "train",
]


def load_model(path) -> Personalizer:
    """Load a saved model folder, dispatching on the method named in its ``config.json``."""
    from perser.methods.persist import read_config

    return get_method(read_config(path)["method"]).load(path)


def train(config, out=None, **kwargs) -> Personalizer:
    """Train a method on a corpus and write the model folder: see :func:`perser.methods.pipeline.train`."""
    from perser.methods.pipeline import train as _train

    return _train(config, out, **kwargs)
