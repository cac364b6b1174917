"""The HTTP service that enrolls listeners and predicts their labels.

``perser serve MODEL --profiles DIR`` runs it; :class:`Service` is the same work as a
Python object, :func:`create_app` its FastAPI application, :class:`ProfileStore` the
folder of enrolled listeners' profiles.
"""

from perser.serve.app import Clip, EnrollRequest, PredictRequest, RatedClip, Service, create_app
from perser.serve.store import ProfileExists, ProfileStore, UnknownAnnotator, model_fingerprint

__all__ = ["Clip", "EnrollRequest", "PredictRequest", "RatedClip", "Service", "create_app", "ProfileStore",
           "ProfileExists", "UnknownAnnotator", "model_fingerprint"]
