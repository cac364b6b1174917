"""Personalization methods behind one interface (see :mod:`perser.methods.base`)."""

from perser.methods.base import (
    Personalizer,
    Predictions,
    Profile,
    RatingSet,
    available_methods,
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
    "get_method",
    "make_method",
    "register",
]


def load_model(path) -> Personalizer:
    """Load a saved model folder, dispatching on the method named in its ``config.json``."""
    from perser.methods.neural import read_config

    return get_method(read_config(path)["method"]).load(path)


__all__.append("load_model")
