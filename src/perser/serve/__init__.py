"""The listener service: enrollment and prediction over HTTP, backed by a database.

``perser serve MODEL [MODEL ...] --store perser.db`` runs it. :class:`Service` is the
work in Python (:mod:`perser.serve.service`), :func:`create_app` its FastAPI application
(:mod:`perser.serve.app`), :class:`Database` the store of models, listeners, their ratings,
profiles per model and keys (:mod:`perser.serve.db`, SQLite or PostgreSQL).
"""

from perser.serve.db import Database, model_identity
from perser.serve.service import (
    Clip, Limits, PredictRequest, RatedClip, RatingsRequest, Service, UnknownListener, UnknownModel,
)


def create_app(service, start_background: bool = True):
    """The FastAPI application of ``service`` (see :mod:`perser.serve.app`)."""
    from perser.serve.app import create_app as _create

    return _create(service, start_background=start_background)


__all__ = ["Clip", "Database", "Limits", "PredictRequest", "RatedClip", "RatingsRequest", "Service", "UnknownListener",
           "UnknownModel", "create_app", "model_identity"]
