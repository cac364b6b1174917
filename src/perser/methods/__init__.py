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
