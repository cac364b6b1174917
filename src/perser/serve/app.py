"""The enrollment service: an HTTP shell over one trained model and its profile store.

:class:`Service` does the work in plain Python (and is tested without HTTP);
:func:`create_app` wraps it in FastAPI. The endpoints:

``GET /health``
    ``{"status": "ok", "method", "space", "profiles"}``.
``GET /model``
    The model: method, label space (classes or dimensions and scale), feature spec and
    input shape, seen annotators (multi-annotator models).
``POST /enroll``
    ``{"annotator": "alice", "ratings": [{"id": "c1", "features": [...], "label": "hap"}, ...],
    "overwrite": false}``. Each rated clip gives ``features`` (the model's per-clip input:
    88 numbers for eGeMAPS, ``[layers, dim]`` for SSL features) **or** ``audio`` (a
    base64-encoded audio file; features are extracted with the model's feature spec and
    cached by content), and the listener's rating: ``label`` (categorical: a class;
    multilabel: a list of classes) or ``values`` (dimensional: ``{"arousal": 4, ...}`` on
    the space's scale). Answers the stored profile's summary (for ``similar``: the chosen
    seen annotator(s) and their scores). 409 if the annotator is enrolled already and
    ``overwrite`` is false.
``POST /predict``
    ``{"annotator": "alice", "clips": [{"id": "x", "features": [...]}, ...]}``; without
    ``annotator`` the model predicts for no particular listener (what ``predict`` does
    with no profile: the consensus head, or the method's listener-independent output).
    Answers one prediction per clip: ``label`` and ``proba`` per class, or ``values``
    per dimension.
``GET /profiles``, ``GET /profiles/{annotator}``, ``DELETE /profiles/{annotator}``
    List, show and remove enrolled listeners.

Errors are JSON ``{"detail": ...}`` naming the culprit (``ratings[3]``, the label, the
annotator): 422 for a malformed request or bad input (an unknown class, a value off the
scale, features of the wrong shape, undecodable audio), 404 for an unknown annotator,
409 for an existing profile. A request is checked whole before anything is written.
"""

from __future__ import annotations

import base64
import binascii
import json
import tempfile
import threading
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from perser.corpus.model import MULTILABEL_SEP, split_multilabel
from perser.errors import ConfigError, CorpusError, FeatureError, PerserError
from perser.methods.base import Personalizer, Profile, _json_default
from perser.serve.store import ProfileExists, ProfileStore, UnknownAnnotator, check_annotator_id, model_fingerprint

#: at most this many clips in one request (enrollment sets are small; predict in chunks)
MAX_CLIPS = 1000


# ------------------------------------------------------------------- requests
class Clip(BaseModel):
    """One clip: its precomputed features, or its audio (base64 of the file's bytes)."""

    model_config = ConfigDict(extra="forbid")
    id: Optional[str] = Field(None, description="Your name for the clip (echoed back).")
    features: Optional[Union[list[float], list[list[float]]]] = Field(
        None, description="The model's per-clip input (eGeMAPS: 88 numbers; SSL: [layers, dim]).")
    audio: Optional[str] = Field(None, description="Base64 of an audio file (WAV, FLAC, OGG).")


class RatedClip(Clip):
    """A clip and the enrolling listener's rating of it."""

    label: Optional[Union[str, list[str]]] = Field(
        None, description="Categorical: one class. Multilabel: a list of classes (may be empty).")
    values: Optional[dict[str, float]] = Field(None, description="Dimensional: a value per dimension.")


class EnrollRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    annotator: str = Field(..., description="The new listener's id.")
    ratings: list[RatedClip] = Field(..., min_length=1, max_length=MAX_CLIPS)
    overwrite: bool = False


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    annotator: Optional[str] = Field(None, description="An enrolled listener; omit for no particular listener.")
    clips: list[Clip] = Field(..., min_length=1, max_length=MAX_CLIPS)


# -------------------------------------------------------------------- service
class Service:
    """One trained model, its profile store and the feature extraction of uploaded audio.

    Parameters
    ----------
    model_dir:
        A saved model folder (``perser train --out``).
    profiles:
        The profile store folder; created for this model, refused if made for another.
    cache_dir:
        Feature store for uploaded audio (default ``$PERSER_CACHE`` or ``~/.cache/perser/features``).
    max_audio_seconds:
        Uploaded audio longer than this is refused.
    """

    def __init__(self, model_dir: str | Path, profiles: str | Path, cache_dir: str | Path | None = None,
                 max_audio_seconds: float = 60.0):
        from perser.methods import load_model

        self.model_dir = Path(model_dir)
        self.model: Personalizer = load_model(self.model_dir)
        self.space = self.model.space_
        self.cache_dir = cache_dir
        self.max_audio_seconds = float(max_audio_seconds)
        self.store = ProfileStore(profiles, {
            "fingerprint": model_fingerprint(self.model_dir), "method": self.model.name,
            "space": self.space.name, "model": str(self.model_dir.resolve()),
        })
        self._lock = threading.Lock()  # one model call at a time (cached head matrices are shared)

    # ------------------------------------------------------------ inspection
    def info(self) -> dict:
        spec = getattr(self.model, "feature_spec", None) or {}
        out = {
            "method": self.model.name,
            "space": self.space.to_dict(),
            "features": spec.get("spec"),
            "input_shape": list(getattr(self.model, "input_shape_", ()) or ()),
            "personalized": bool(getattr(self.model, "personalized", True)),
        }
        heads = getattr(self.model, "head_annotators_", None)
        if heads is not None:
            out["seen_annotators"] = len(heads)
        return out

    def health(self) -> dict:
        return {"status": "ok", "method": self.model.name, "space": self.space.name, "profiles": len(self.store)}

    # ------------------------------------------------------------- features
    def _features(self, clips: list[Clip], what: str) -> np.ndarray:
        """``[n, *input_shape]`` features of ``clips``: given, or extracted from their audio."""
        shape = tuple(getattr(self.model, "input_shape_", ()) or ())
        rows: list[Optional[np.ndarray]] = [None] * len(clips)
        audio: dict[int, bytes] = {}
        for i, c in enumerate(clips):
            name = self._name(clips, i, what)
            if (c.features is None) == (c.audio is None):
                raise ConfigError(f"{name}: give exactly one of 'features' and 'audio'")
            if c.features is not None:
                x = np.asarray(c.features, dtype=np.float32)
                if x.shape != shape:
                    raise FeatureError(f"{name}: features of shape {list(x.shape)}, the model expects {list(shape)}")
                if not np.isfinite(x).all():
                    raise FeatureError(f"{name}: features contain NaN or infinite values")
                rows[i] = x
            else:
                try:
                    audio[i] = base64.b64decode(c.audio, validate=True)
                except (binascii.Error, ValueError):
                    raise ConfigError(f"{name}: 'audio' is not valid base64") from None
                if not audio[i]:
                    raise FeatureError(f"{name}: 'audio' is empty")
        if audio:
            fspec = getattr(self.model, "feature_spec", None) or {}
            spec = fspec.get("spec")
            if not spec or str(spec).startswith("file:"):
                raise ConfigError("this model was trained on precomputed features of unknown origin; send 'features', not 'audio'")
            from perser.audio import read_audio
            from perser.features import extract

            with tempfile.TemporaryDirectory(prefix="perser-serve-") as tmp:
                paths = {}
                for i, data in audio.items():
                    p = Path(tmp) / f"{what}-{i}.wav"
                    p.write_bytes(data)
                    paths[i] = str(p)
                    try:  # unreadable, empty, silent, NaN: refused here, naming the clip
                        read_audio(p, max_duration=self.max_audio_seconds)
                    except FeatureError as e:
                        raise FeatureError(f"{self._name(clips, i, what)}: {str(e).replace(str(p), 'audio')}") from None
                feats = extract(list(paths.values()), spec, cache_dir=self.cache_dir, shard=(0, 1), progress=False,
                                **(fspec.get("settings") or {}))  # as at training: same numbers, same store key
                for i, p in paths.items():
                    if p in feats.failures:
                        msg = str(feats.failures[p]).replace(p, "audio")
                        raise FeatureError(f"{self._name(clips, i, what)}: {msg}")
                    rows[i] = feats.select([p])[0]
        return np.stack([np.asarray(r, dtype=np.float32) for r in rows])

    @staticmethod
    def _name(clips: list[Clip], i: int, what: str) -> str:
        return f"{what}[{i}]" + (f" ({clips[i].id!r})" if clips[i].id else "")

    # ---------------------------------------------------------------- labels
    def _labels(self, ratings: list[RatedClip]) -> np.ndarray:
        """Encode the listener's ratings as the model's targets; errors name ``ratings[i]``."""
        sp = self.space
        field, other = ("label", "values") if sp.is_class else ("values", "label")
        want = list(sp.classes) if sp.is_class else list(sp.dimensions)
        rows = []
        for i, r in enumerate(ratings):
            if getattr(r, other) is not None:
                raise ConfigError(f"ratings[{i}]: space {sp.name!r} is {sp.kind}: give '{field}', not '{other}'")
            v = getattr(r, field)
            if v is None:
                raise ConfigError(f"ratings[{i}]: missing '{field}' ({', '.join(want)})")
            if sp.kind == "categorical":
                if not isinstance(v, str):
                    raise ConfigError(f"ratings[{i}]: space {sp.name!r} is categorical: 'label' is one class, not a list")
                rows.append(v)
            elif sp.kind == "multilabel":
                labels = [v] if isinstance(v, str) else list(v)
                bad = [c for c in labels if MULTILABEL_SEP in c]
                if bad:
                    raise ConfigError(f"ratings[{i}]: class {bad[0]!r} contains {MULTILABEL_SEP!r}")
                rows.append(MULTILABEL_SEP.join(labels))
            else:
                if set(v) != set(want):
                    extra, missing = sorted(set(v) - set(want)), [d for d in want if d not in v]
                    raise ConfigError(f"ratings[{i}]: 'values' needs exactly {want}"
                                      + (f"; missing {missing}" if missing else "") + (f"; unknown {extra}" if extra else ""))
                lo, hi = sp.scale
                for d in want:
                    if not np.isfinite(v[d]) or v[d] < lo or v[d] > hi:
                        raise CorpusError(f"ratings[{i}]: {d} value {v[d]} is outside the scale {sp.scale}")
                rows.append([v[d] for d in want])
        index = pd.Index([f"ratings[{i}]" for i in range(len(ratings))])
        if sp.is_class:
            df = pd.DataFrame({sp.name: pd.Series(rows, index=index, dtype=object)})
        else:
            df = pd.DataFrame(np.asarray(rows, dtype=np.float32), index=index, columns=want)
        return sp.encode(df)

    # ------------------------------------------------------------- requests
    def enroll(self, req: EnrollRequest) -> dict:
        annotator = check_annotator_id(req.annotator)
        if annotator in self.store and not req.overwrite:
            raise ProfileExists(f"annotator {annotator!r} is already enrolled; send \"overwrite\": true to replace the profile")
        y = self._labels(req.ratings)
        X = self._features(req.ratings, "ratings")
        with self._lock:
            profile = self.model.enroll(X, y, annotator=annotator)
        self.store.put(profile, overwrite=req.overwrite)
        return {"annotator": annotator, "k": len(y), **self._summary(profile)}

    def predict(self, req: PredictRequest) -> dict:
        profile: Optional[Profile] = None
        if req.annotator is not None:
            profile = self.store.get(check_annotator_id(req.annotator))
        X = self._features(req.clips, "clips")
        with self._lock:
            pred = self.model.predict(profile, X)
        sp = self.space
        labels = pred.labels if sp.is_class else None  # the decision is Predictions' (argmax, or the threshold)
        out = []
        for i, c in enumerate(req.clips):
            item: dict[str, Any] = {"id": c.id if c.id is not None else str(i)}
            if sp.is_class:
                item["proba"] = {cls: float(v) for cls, v in zip(sp.classes, np.asarray(pred.proba[i], dtype=float))}
                if sp.kind == "categorical":
                    item["label"] = labels[i]
                else:
                    item["label"] = split_multilabel(labels[i])
                    item["threshold"] = float(pred.threshold)
            else:
                item["values"] = {d: float(v) for d, v in zip(sp.dimensions, np.asarray(pred.values[i], dtype=float))}
            out.append(item)
        return {"annotator": req.annotator, "method": self.model.name, "space": sp.name, "predictions": out}

    def profiles(self) -> dict:
        return {"annotators": self.store.annotators()}

    def profile(self, annotator: str) -> dict:
        p = self.store.get(check_annotator_id(annotator))
        return {"annotator": annotator, **self._summary(p)}

    def delete(self, annotator: str) -> dict:
        self.store.delete(check_annotator_id(annotator))
        return {"deleted": annotator}

    @staticmethod
    def _summary(profile: Profile) -> dict:
        """The profile's JSON part (without long rankings), JSON-safe."""
        data = {k: v for k, v in profile.data.items() if k != "ranking"}
        return {"method": profile.method,
                "profile": json.loads(json.dumps(data, default=_json_default)),
                "adapted_tensors": sorted(profile.tensors)}


# ------------------------------------------------------------------------ app
def create_app(service: Service):
    """A FastAPI application serving ``service`` (needs ``pip install 'perser[serve]'``)."""
    try:
        from fastapi import FastAPI, Request
        from fastapi.responses import JSONResponse
    except ImportError:  # pragma: no cover - depends on the installation
        raise ConfigError("the service needs FastAPI and uvicorn: pip install 'perser[serve]'") from None

    app = FastAPI(title="perser", description="Enroll listeners and predict their emotion labels.",
                  version=_version())

    def status(code: int):
        async def handler(request: Request, exc: Exception):
            return JSONResponse(status_code=code, content={"detail": str(exc)})

        return handler

    # the most specific class wins (Starlette looks handlers up along the exception's MRO)
    for exc_type, code in ((UnknownAnnotator, 404), (ProfileExists, 409), (PerserError, 422)):
        app.add_exception_handler(exc_type, status(code))

    routes = (
        ("GET", "/health", service.health),
        ("GET", "/model", service.info),
        ("POST", "/enroll", service.enroll),
        ("POST", "/predict", service.predict),
        ("GET", "/profiles", service.profiles),
        ("GET", "/profiles/{annotator:path}", service.profile),
        ("DELETE", "/profiles/{annotator:path}", service.delete),
    )
    for method, path, endpoint in routes:  # the service's methods, typed: FastAPI validates against them
        app.add_api_route(path, endpoint, methods=[method])
    return app


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("perser")
    except Exception:  # pragma: no cover
        return "0"
