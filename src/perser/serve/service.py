"""The listener service in plain Python: models, listeners' ratings and profiles, keys.

:class:`Service` is what the HTTP application (:mod:`perser.serve.app`) calls, and what
other routers use. Its public API:

``service.model_for(name=None) -> ServedModel``
    The model a request names, or the default model; :class:`UnknownModel` otherwise.
``service.ratings(listener) -> list[dict]``
    A listener's stored ratings (``clip_id``, ``label``, ``audio_digest``, ``created_at``);
    :class:`UnknownListener` if there is no such listener.
``service.authenticate(authorization_header) -> Principal`` and
``service.authorize(principal, listener=None, admin=False)``
    Who is asking (:class:`~perser.serve.keys.Unauthorized` if nobody known), and whether
    they may act on ``listener`` or on admin-only things (:class:`~perser.serve.keys.Forbidden`).
``service.add_ratings(listener, request, replace=False)``, ``service.predict(request)``,
``service.listener_info(listener)``, ``service.list_listeners(after, limit)``,
``service.delete_listener(listener)``, ``service.models_info()``
    The work behind the endpoints.

Every method is synchronous (call it from a worker thread, not the event loop) and safe
to call from several threads: the database serialises writes, each model is used under
its own lock, and the feature extractor under the featurizer's.

How listeners survive model updates: every listener's ratings are kept (the label as
sent, the clip's features per feature key, the audio's digest). A profile is stored per
(listener, model) with the ratings revision it was made from. When a model the database
has not seen is served, a background thread re-enrolls every listener from their kept
ratings (one worker at a time per model, under a lease in the database); until a
listener's profile for the default model is ready, their requests that name no model are
answered by another served model that has their profile (or the profile is made on the
spot). A listener whose ratings cannot make a profile for a model (features of another
kind, labels outside its space, too few ratings) gets a ``failed`` profile that says why:
nobody is dropped silently.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from perser.corpus.model import LabelSpace, split_multilabel
from perser.errors import ConfigError, FeatureError, PerserError
from perser._io import json_default as _json_default
from perser.methods.base import Personalizer, Profile
from perser.serve import db as dbm
from perser.serve.keys import Forbidden, Principal, RateLimiter, Unauthorized, check_scope, hash_key
from perser.serve.uploads import Featurizer, audio_digest

log = logging.getLogger("perser.serve")

#: the fewest ratings that make a profile, per method (a listener with fewer gets none yet)
MIN_K = {"consensus": 1, "random-annotator": 1, "mean-annotator": 1, "similar": 4, "finetune": 4, "meta": 4}


class UnknownListener(PerserError, KeyError):
    """No such listener (404)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class UnknownModel(UnknownListener):
    """No such model served here (404)."""


class ListenerExists(PerserError):
    """Creating a listener that exists (409)."""


class NoProfile(PerserError):
    """The listener has no usable profile for the model (409): too few ratings, or a failed one."""


class TooLarge(PerserError):
    """A request over a size limit (413)."""


@dataclass
class Limits:
    """What a request may ask for; checked before any work is done."""

    max_body_bytes: int = 32 * 1024 * 1024
    max_clips: int = 256
    max_seconds: float = 30.0
    min_k: dict = field(default_factory=lambda: dict(MIN_K))
    rate: float = 0.0  # requests per second per key (0: no limit)
    burst: Optional[float] = None
    cache_entries: int = 4096
    max_page: int = 1000

    def k_for(self, method: str) -> int:
        return int(self.min_k.get(method, 2))


# ------------------------------------------------------------------- requests
class Clip(BaseModel):
    """One clip: its precomputed features, or its audio (base64 of the file's bytes)."""

    model_config = ConfigDict(extra="forbid")
    id: Optional[str] = Field(None, description="Your name for the clip (echoed back; required in ratings).")
    features: Optional[Union[list[float], list[list[float]]]] = Field(
        None, description="The model's per-clip input (eGeMAPS: 88 numbers; SSL: [layers, dim]).")
    audio: Optional[str] = Field(None, description="Base64 of an audio file (WAV, FLAC, OGG).")


class RatedClip(Clip):
    """A clip and the listener's rating of it."""

    label: Optional[Union[str, list[str]]] = Field(
        None, description="Categorical: one class. Multilabel: a list of classes (may be empty).")
    values: Optional[dict[str, float]] = Field(None, description="Dimensional: a value per dimension.")


class RatingsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ratings: list[RatedClip] = Field(..., min_length=1, description="Rated clips; a clip rated before is replaced.")
    model: Optional[str] = Field(None, description="The model whose input 'features' are (default: the default model).")


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    listener: Optional[str] = Field(None, description="A listener with ratings; omit for no particular listener.")
    model: Optional[str] = Field(None, description="A served model's name (default: the default model).")
    clips: list[Clip] = Field(..., min_length=1)


# --------------------------------------------------------------------- models
@dataclass
class ServedModel:
    """A model loaded in this process: its name here, identity, database row and lock."""

    name: str
    path: Path
    model: Personalizer
    digest: str
    fkey: str
    id: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    featurizer: Optional[Featurizer] = None
    featurizer_error: Optional[str] = None

    @property
    def space(self) -> LabelSpace:
        return self.model.space_

    @property
    def input_shape(self) -> tuple:
        return tuple(getattr(self.model, "input_shape_", ()) or ())

    @property
    def feature_spec(self) -> dict:
        return getattr(self.model, "feature_spec", None) or {}

    def info(self) -> dict:
        out = {"name": self.name, "digest": self.digest, "method": self.model.name, "space": self.space.to_dict(),
               "features": self.feature_spec.get("spec"), "input_shape": list(self.input_shape),
               "personalized": bool(getattr(self.model, "personalized", True))}
        heads = getattr(self.model, "head_annotators_", None)
        if heads is not None:
            out["seen_annotators"] = len(heads)
        return out


def parse_model_args(models: Sequence[Union[str, Path, tuple]]) -> list[tuple[str, Path]]:
    """``[(name, folder)]`` from ``PATH`` or ``NAME=PATH`` items (name: the folder's name)."""
    out: list[tuple[str, Path]] = []
    for m in models:
        if isinstance(m, tuple):
            name, path = m
        else:
            s = str(m)
            name, path = s.split("=", 1) if "=" in s and not Path(s).exists() else (Path(s).name, s)
        path = Path(path)
        if name in [n for n, _ in out]:
            raise ConfigError(f"two served models are named {name!r}; name them: NAME=PATH")
        out.append((str(name), path))
    if not out:
        raise ConfigError("serve at least one model")
    return out


# -------------------------------------------------------------------- labels
#: the longest class name or dimension name a rating may carry (longer ones are refused unread)
MAX_LABEL_CHARS = 64


def encode_labels(space: LabelSpace, labels: list, names: list[str]) -> np.ndarray:
    """Stored labels (a class, a list of classes, or values per dimension) as ``space``'s targets.

    :func:`perser.methods.inputs.encode_ratings` does the encoding (the same rules as
    ``perser enroll``); before it, every text in a label is bounded to
    :data:`MAX_LABEL_CHARS`, so an error can name the culprit without echoing a long input.
    """
    from perser.methods.inputs import encode_ratings

    for name, v in zip(names, labels):
        texts = [v] if isinstance(v, str) else list(v) if isinstance(v, (list, tuple, dict)) else []
        if isinstance(v, (list, tuple, dict)) and len(v) > 4 * MAX_LABEL_CHARS:
            raise ConfigError(f"{name}: the label has {len(v)} entries")
        for t in texts:
            if isinstance(t, str) and len(t) > MAX_LABEL_CHARS:
                field_ = "values" if isinstance(v, dict) else "label"
                raise ConfigError(f"{name}: a name in '{field_}' is longer than {MAX_LABEL_CHARS} characters")
    return encode_ratings(labels, space, names)


def _stored_label(r: RatedClip, space: LabelSpace, name: str) -> Any:
    """The rating as stored: a class, a list of classes, or values per dimension."""
    field_, other = ("label", "values") if space.is_class else ("values", "label")
    if getattr(r, other) is not None:
        raise ConfigError(f"{name}: space {space.name!r} is {space.kind}: give '{field_}', not '{other}'")
    v = getattr(r, field_)
    if v is None:
        want = space.classes if space.is_class else space.dimensions
        raise ConfigError(f"{name}: missing '{field_}' ({', '.join(want)})")
    if space.kind == "multilabel" and isinstance(v, str):
        v = [v]
    return v


def _short(s: str, n: int = 40) -> str:
    return repr(s) if len(s) <= n else repr(s[:n] + "…")


# -------------------------------------------------------------------- service
class Service:
    """Models served from one database of listeners.

    Parameters
    ----------
    models:
        Model folders (``PATH`` or ``NAME=PATH``, or ``(name, path)``); the first is the
        default unless ``default`` names another.
    store:
        A SQLite file path or a ``postgresql://`` URL (:class:`perser.serve.db.Database`).
    limits:
        Request limits (:class:`Limits`).
    workers:
        Worker processes of the service (the rate limit is divided among them).
    keep_audio:
        Keep uploaded audio in the database (``audio`` table), so that a model with another
        feature extractor can re-enroll listeners from it; otherwise only features are kept.
    """

    def __init__(self, models, store, default: Optional[str] = None, limits: Optional[Limits] = None,
                 workers: int = 1, key_cache_seconds: float = 10.0, keep_audio: bool = False):
        from perser.methods import load_model

        self.limits = limits or Limits()
        self.keep_audio = bool(keep_audio)
        self.db = store if isinstance(store, dbm.Database) else dbm.Database(store)
        self.models: dict[str, ServedModel] = {}
        featurizers: dict[str, Featurizer] = {}
        for name, path in parse_model_args(models):
            model = load_model(path)
            sm = ServedModel(name=name, path=Path(path), model=model, digest=dbm.model_identity(path),
                             fkey=dbm.feature_key(getattr(model, "feature_spec", None), getattr(model, "input_shape_", ())))
            sm.id = self.db.register_model(sm.digest, model.name, sm.space.to_dict(), sm.fkey, sm.feature_spec,
                                           str(Path(path).resolve()))
            spec_key = dbm.canonical_json({k: sm.feature_spec.get(k) for k in ("spec", "settings")})
            try:
                if spec_key not in featurizers:
                    featurizers[spec_key] = Featurizer(sm.feature_spec, self.limits.max_seconds, self.limits.cache_entries)
                sm.featurizer = featurizers[spec_key]
            except ConfigError as e:
                sm.featurizer_error = str(e)
            self.models[name] = sm
        self.default = default or next(iter(self.models))
        if self.default not in self.models:
            raise ConfigError(f"--default {self.default!r} is not a served model ({', '.join(self.models)})")
        self.featurizers = list(featurizers.values())
        self.rate_limiter = RateLimiter(self.limits.rate / max(1, workers), None if self.limits.burst is None
                                        else self.limits.burst / max(1, workers))
        self._key_cache: dict[str, tuple[Optional[Principal], float]] = {}
        self._keys_on: tuple[bool, float] = (False, 0.0)
        self.key_cache_seconds = float(key_cache_seconds)
        self.worker_id = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.counters = {"enrollments": 0, "reenrollments": 0}  # read by the metrics

    # ------------------------------------------------------------ models
    def model_for(self, name: Optional[str] = None) -> ServedModel:
        """The served model named ``name``, or the default model."""
        if name is None:
            return self.models[self.default]
        try:
            return self.models[name]
        except KeyError:
            raise UnknownModel(f"no model named {_short(name)} is served here; see GET /models") from None

    def models_info(self) -> dict:
        out = []
        for sm in self.models.values():
            out.append({**sm.info(), "default": sm.name == self.default, "reenrollment": self.db.progress(sm.id)})
        return {"default": self.default, "models": out}

    def health(self) -> dict:
        return {"status": "ok", "models": list(self.models), "default": self.default}

    # ----------------------------------------------------------------- auth
    def keys_required(self) -> bool:
        """Whether requests need a key: once any active key exists in the database."""
        on, until = self._keys_on
        t = time.monotonic()
        if t >= until:
            on = self.db.active_keys() > 0
            self._keys_on = (on, t + self.key_cache_seconds)
        return on

    def authenticate(self, authorization: Optional[str]) -> Principal:
        """The principal of an ``Authorization: Bearer KEY`` header (keys are cached for a few seconds)."""
        if not self.keys_required():
            return Principal("open", "open")
        if not authorization or not authorization.startswith("Bearer ") or not authorization[7:].strip():
            raise Unauthorized("send your key as 'Authorization: Bearer KEY'")
        h = hash_key(authorization[7:].strip())
        t = time.monotonic()
        hit = self._key_cache.get(h)
        if hit is None or t >= hit[1]:
            row = self.db.find_key(h)
            hit = (None if row is None else Principal(row["name"], row["scope"]), t + self.key_cache_seconds)
            if len(self._key_cache) > 10_000:
                self._key_cache.clear()
            self._key_cache[h] = hit
        if hit[0] is None:
            raise Unauthorized("unknown or revoked key")
        return hit[0]

    def authorize(self, principal: Principal, listener: Optional[str] = None, admin: bool = False) -> None:
        """:class:`Forbidden` unless ``principal`` may act on ``listener`` (or on admin-only things)."""
        if not principal.may(listener, admin):
            what = "this needs an admin key" if admin or listener is None else "this key does not reach that listener"
            raise Forbidden(what)

    def add_key(self, name: str, scope: str) -> str:
        """Make a key, store its hash, return the key (the only time it is seen)."""
        return add_key(self.db, name, scope)

    # ------------------------------------------------------------- features
    def _clip_features(self, clips: list[Clip], what: str, sms: list[ServedModel], need_ids: bool):
        """Per clip: ``{feature key: features}`` for the models in ``sms`` (given features count
        for the first of them only), the audio digests, and the audio bytes by clip index.
        Checks everything first."""
        lim = self.limits
        if len(clips) > lim.max_clips:
            raise TooLarge(f"{what}: {len(clips)} clips; at most {lim.max_clips} per request")
        names = [f"{what}[{i}]" for i in range(len(clips))]
        if need_ids:
            for i, c in enumerate(clips):
                if c.id is None or not c.id or len(c.id.encode("utf-8")) > 256:
                    raise ConfigError(f"{names[i]}.id: every rating needs the clip's id (1 to 256 bytes)")
            seen: dict[str, int] = {}
            for c in clips:
                seen[c.id] = seen.get(c.id, 0) + 1
            dup = [k for k, n in seen.items() if n > 1]
            if dup:
                shown = ", ".join(_short(d) for d in dup[:10]) + (f" and {len(dup) - 10} more" if len(dup) > 10 else "")
                raise ConfigError(f"{what}: clip ids sent more than once: {shown}")
        first = sms[0]
        out: list[dict] = [dict() for _ in clips]
        digests: list[Optional[str]] = [None] * len(clips)
        audio: dict[int, bytes] = {}
        import base64
        import binascii

        for i, c in enumerate(clips):
            if (c.features is None) == (c.audio is None):
                raise ConfigError(f"{names[i]}: give exactly one of 'features' and 'audio'")
            if c.features is not None:
                x = np.asarray(c.features, dtype=np.float32)
                if x.shape != first.input_shape:
                    raise FeatureError(f"{names[i]}.features: shape {list(x.shape)}, the model expects {list(first.input_shape)}")
                if not np.isfinite(x).all():
                    raise FeatureError(f"{names[i]}.features: contain NaN or infinite values")
                out[i][first.fkey] = x
            else:
                if first.featurizer is None:
                    raise ConfigError(f"{names[i]}.audio: {first.featurizer_error}")
                try:
                    audio[i] = base64.b64decode(c.audio, validate=True)
                except (binascii.Error, ValueError):
                    raise ConfigError(f"{names[i]}.audio: not valid base64") from None
                digests[i] = audio_digest(audio[i])
        if audio:
            for sm in sms:
                fz = sm.featurizer
                if fz is None or any(sm.fkey in out[i] for i in audio):
                    continue
                decoded = [(names[i], digests[i], fz.decode(audio[i], names[i])) for i in audio]
                for i, x in zip(audio, fz.features(decoded)):
                    if x.shape != sm.input_shape:
                        raise FeatureError(f"{names[i]}: the model's feature spec gave shape {list(x.shape)}, "
                                           f"it expects {list(sm.input_shape)}")
                    out[i][sm.fkey] = x
        return out, digests, audio

    # --------------------------------------------------------------- profiles
    def _make_profile(self, sm: ServedModel, listener: str, labels: list, X: list[Optional[np.ndarray]],
                      clip_ids: list[str]) -> dict:
        """A ``profiles`` row for ``sm`` from these ratings: ready, or failed saying why."""
        k = len(labels)
        try:
            missing = sum(x is None for x in X)
            if missing:
                raise PerserError(f"{missing} of {k} ratings have no features for this model's input "
                                  f"({sm.feature_spec.get('spec') or 'precomputed features'}, shape {list(sm.input_shape)}); "
                                  "send those clips' audio (or features) again, or serve with --keep-audio before the next model change")
            need = self.limits.k_for(sm.model.name)
            if k < need:
                raise PerserError(f"{k} rating(s); method {sm.model.name!r} needs at least {need}")
            y = encode_labels(sm.space, labels, [f"clip {_short(c)}" for c in clip_ids])
            with sm.lock:
                p = sm.model.enroll(np.stack(X).astype(np.float32), y, annotator=listener)
        except PerserError as e:
            return {"status": "failed", "k": k, "error": str(e), "data": None, "tensors": None}
        except Exception as e:  # a method's own failure: recorded, not fatal to the others
            log.exception("enrollment of a listener failed for model %s", sm.name)
            return {"status": "failed", "k": k, "error": f"enrollment failed ({type(e).__name__})", "data": None, "tensors": None}
        return profile_row(p, k)

    @staticmethod
    def _profile(row: dict, listener: str) -> Profile:
        doc = row["data"]
        tensors = {}
        if row.get("tensors"):
            from safetensors.numpy import load

            tensors = load(bytes(row["tensors"]))
        return Profile(method=doc["method"], annotator=listener, data=doc.get("data", {}), tensors=tensors)

    def _stored_for(self, sm: ServedModel, listener_id: int):
        """A listener's stored ratings and their features for ``sm``; features missing for
        its input are made from kept audio (``--keep-audio``) and stored, where there is some."""
        stored, X = self.db.ratings_of(listener_id, sm.fkey)
        todo = [i for i, x in enumerate(X) if x is None and stored[i].audio_digest]
        if not todo or sm.featurizer is None:
            return stored, X
        blobs = self.db.audio_of(sorted({stored[i].audio_digest for i in todo}))
        todo = [i for i in todo if stored[i].audio_digest in blobs]
        if not todo:
            return stored, X
        try:
            fz = sm.featurizer
            decoded = [(f"clip {_short(stored[i].clip_id)}", stored[i].audio_digest,
                        fz.decode(blobs[stored[i].audio_digest], f"clip {_short(stored[i].clip_id)}")) for i in todo]
            feats = fz.features(decoded)
        except PerserError:  # the profile then reports the ratings without features
            log.warning("kept audio of a listener could not be featurised for model %s", sm.name, exc_info=True)
            return stored, X
        rows = []
        for i, x in zip(todo, feats):
            if x.shape == sm.input_shape:
                X[i] = x
                rows.append({"rating_id": stored[i].rating_id, "feature_key": sm.fkey, "x": x})
        self.db.add_features(rows)
        return stored, X

    # ----------------------------------------------------------- listeners
    def _listener(self, listener: str) -> dict:
        row = self.db.listener(dbm.check_listener_id(listener))
        if row is None:
            raise UnknownListener(f"no listener {_short(listener)}; add their ratings first")
        return row

    def ratings(self, listener: str) -> list[dict]:
        """The listener's stored ratings: ``clip_id``, ``label``, ``audio_digest``, ``created_at``."""
        row = self._listener(listener)
        stored, _ = self.db.ratings_of(row["id"], None)
        return [r.public() for r in stored]

    def add_ratings(self, listener: str, req: RatingsRequest, replace: bool = False, create_only: bool = False) -> dict:
        """Store ratings of ``listener`` (created when new) and recompute their profile for
        every served model from all their ratings.

        ``replace``: the request's ratings become the listener's only ratings (and must be at
        least the method's minimum K). ``create_only``: :class:`ListenerExists` if the
        listener has ratings already.
        """
        name = dbm.check_listener_id(listener)
        sm = self.model_for(req.model)
        labels = [_stored_label(r, sm.space, f"ratings[{i}]") for i, r in enumerate(req.ratings)]
        encode_labels(sm.space, labels, [f"ratings[{i}]" for i in range(len(labels))])  # refused before any work
        need = self.limits.k_for(sm.model.name)
        if (replace or create_only) and len(labels) < need:
            raise ConfigError(f"ratings: {len(labels)} rating(s); method {sm.model.name!r} needs at least {need}")
        order = [sm] + [m for m in self.models.values() if m is not sm]
        feats, digests, audio = self._clip_features(req.ratings, "ratings", order, need_ids=True)
        blobs = {digests[i]: data for i, data in audio.items()} if self.keep_audio else None
        new = [{"clip_id": r.id, "label": lab, "audio_digest": d, "features": f}
               for r, lab, d, f in zip(req.ratings, labels, digests, feats)]
        for attempt in range(20):
            cur = self.db.listener(name)
            if cur is not None and create_only:
                raise ListenerExists(f"listener {_short(name)} exists; add ratings with POST /listeners/{{id}}/ratings")
            rows = {}
            for m in self.models.values():
                clip_ids, labs, X = [], [], []
                if cur is not None and not replace:
                    stored, sx = self._stored_for(m, cur["id"])
                    sent = {r["clip_id"] for r in new}
                    for s, x in zip(stored, sx):
                        if s.clip_id not in sent:
                            clip_ids.append(s.clip_id), labs.append(s.label), X.append(x)
                for r in new:
                    clip_ids.append(r["clip_id"]), labs.append(r["label"]), X.append(r["features"].get(m.fkey))
                rows[m.id] = self._make_profile(m, name, labs, X, clip_ids)
            try:
                lid, rev, replaced = self.db.write_ratings(name, new, replace, None if cur is None else cur["revision"], rows,
                                                           audio_blobs=blobs)
                break
            except dbm.Conflict:
                time.sleep(0.005 * (attempt + 1))
        else:  # pragma: no cover - twenty concurrent writers to one listener
            raise PerserError(f"listener {_short(name)} is being changed by other requests; retry")
        self.counters["enrollments"] += 1
        _metrics().ENROLLMENTS.inc()
        total = len(clip_ids)
        return {"listener": name, "revision": rev, "ratings": total, "added": len(new) - replaced, "replaced": replaced,
                "profiles": {m.name: _row_summary(rows[m.id], rev, rev) for m in self.models.values()}}

    def listener_info(self, listener: str) -> dict:
        row = self._listener(listener)
        by_id = {m.id: m for m in self.models.values()}
        stored, _ = self.db.ratings_of(row["id"], None)
        profs = {}
        for p in self.db.profiles_of(row["id"]):
            m = by_id.get(p["model_id"])
            profs[m.name if m else p["digest"]] = _row_summary(p, p["revision"], row["revision"])
        for m in self.models.values():
            profs.setdefault(m.name, {"status": "pending"})
        return {"listener": row["name"], "revision": row["revision"], "ratings": len(stored),
                "created_at": dbm.iso(row["created_at"]), "updated_at": dbm.iso(row["updated_at"]), "profiles": profs}

    def list_listeners(self, after: Optional[str] = None, limit: int = 100) -> dict:
        """A page of listener ids in order; ``next`` is the ``after`` of the next page (None at the end)."""
        if not 1 <= limit <= self.limits.max_page:
            raise ConfigError(f"limit: between 1 and {self.limits.max_page}")
        rows = self.db.list_listeners(after, limit)
        return {"listeners": [{"listener": r["name"], "revision": r["revision"], "updated_at": dbm.iso(r["updated_at"])} for r in rows],
                "next": rows[-1]["name"] if len(rows) == limit else None}

    def delete_listener(self, listener: str) -> dict:
        """Remove the listener, their ratings and profiles, and their clips' cached features."""
        name = dbm.check_listener_id(listener)
        digests = self.db.delete_listener(name)
        if digests is None:
            raise UnknownListener(f"no listener {_short(name)}")
        for fz in self.featurizers:
            fz.forget(digests)
        return {"deleted": name}

    # -------------------------------------------------------------- predict
    def _profile_for(self, sm: ServedModel, listener: str, explicit: bool) -> tuple[ServedModel, Optional[Profile]]:
        """The model that answers for ``listener`` and their profile for it (see the module's doc)."""
        row = self._listener(listener)
        prof = self.db.profile(row["id"], sm.id)
        if prof is not None and prof["status"] == "ready":
            return sm, self._profile(prof, listener)
        if prof is not None and prof["revision"] == row["revision"]:  # failed, and nothing changed since
            raise NoProfile(f"listener {_short(listener)} has no profile for model {sm.name!r}: {prof['error']}")
        if not explicit:  # their profile for the default model is on its way: another model answers meanwhile
            for other in self.models.values():
                if other is sm:
                    continue
                p = self.db.profile(row["id"], other.id)
                if p is not None and p["status"] == "ready":
                    return other, self._profile(p, listener)
        stored, X = self._stored_for(sm, row["id"])
        r = self._make_profile(sm, listener, [s.label for s in stored], X, [s.clip_id for s in stored])
        self.db.put_profile_if_current(row["id"], sm.id, row["revision"], r)
        if r["status"] != "ready":
            raise NoProfile(f"listener {_short(listener)} has no profile for model {sm.name!r}: {r['error']}")
        return sm, self._profile(r, listener)

    def predict(self, req: PredictRequest) -> dict:
        sm = self.model_for(req.model)
        profile = None
        if req.listener is not None:
            sm, profile = self._profile_for(sm, dbm.check_listener_id(req.listener), explicit=req.model is not None)
        feats, _, _ = self._clip_features(req.clips, "clips", [sm], need_ids=False)
        X = np.stack([f[sm.fkey] for f in feats])
        with sm.lock:
            pred = sm.model.predict(profile, X)
        sp = sm.space
        labels = pred.labels if sp.is_class else None
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
        return {"listener": req.listener, "model": sm.name, "method": sm.model.name, "space": sp.name, "predictions": out}

    # --------------------------------------------------------- re-enrollment
    def reenroll_step(self, sm: ServedModel, batch: int = 64, lease_seconds: float = 120.0) -> int:
        """Re-enroll one batch of listeners whose profile for ``sm`` is missing or stale.

        Returns how many were processed (0: nothing to do, or another worker holds the lease).
        """
        if not self.db.take_lease(sm.id, self.worker_id, lease_seconds):
            return 0
        todo = self.db.pending(sm.id, batch)
        for row in todo:
            stored, X = self._stored_for(sm, row["id"])
            r = self._make_profile(sm, row["name"], [s.label for s in stored], X, [s.clip_id for s in stored])
            if self.db.put_profile_if_current(row["id"], sm.id, row["revision"], r):
                self.counters["reenrollments"] += 1
                _metrics().REENROLLMENTS.labels(sm.name).inc()
        if not todo:
            self.db.release_lease(sm.id, self.worker_id)
        return len(todo)

    def reenroll_all(self) -> None:
        """Re-enroll every pending listener for every served model, now (in this thread)."""
        for sm in self.models.values():
            while self.reenroll_step(sm):
                pass

    def start(self, idle_seconds: float = 5.0) -> None:
        """Start the background re-enrollment thread (idempotent)."""
        if self._thread is not None:
            return

        def loop():
            for fz in self.featurizers:  # load the extractor (and SSL encoder) before the first upload needs it
                try:
                    fz.extractor
                except Exception:  # reported to the request that needs it
                    log.exception("could not load the feature extractor %s", fz.spec)
            while not self._stop.is_set():
                busy = False
                for sm in self.models.values():
                    try:
                        busy |= self.reenroll_step(sm) > 0
                    except Exception:  # the database is away for a moment: try again later
                        log.exception("re-enrollment for model %s failed; retrying", sm.name)
                    if self._stop.is_set():
                        return
                if not busy:
                    self._stop.wait(idle_seconds)

        self._thread = threading.Thread(target=loop, name="perser-reenroll", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        for sm in self.models.values():
            try:
                self.db.release_lease(sm.id, self.worker_id)
            except Exception:  # pragma: no cover - shutting down with the database gone
                pass


def _metrics():
    from perser.serve import metrics

    return metrics


def add_key(database: dbm.Database, name: str, scope: str) -> str:
    """Make a key named ``name`` with ``scope``, store its hash; the key (shown only now)."""
    from perser.serve.keys import new_key

    if not name or len(name) > 100 or any(ord(c) < 0x20 for c in name):
        raise ConfigError("key name: 1 to 100 printable characters")
    key = new_key()
    database.add_key(name, check_scope(scope), hash_key(key))
    return key


def profile_row(p: Profile, k: int) -> dict:
    """A ready ``profiles`` row of a profile: its JSON and its tensors as safetensors bytes."""
    doc = json.loads(json.dumps({"method": p.method, "data": p.data}, default=_json_default))
    tensors = None
    if p.tensors:
        from safetensors.numpy import save

        tensors = save({k_: np.ascontiguousarray(v) for k_, v in p.tensors.items()})
    return {"status": "ready", "k": k, "error": None, "data": doc, "tensors": tensors}


def _row_summary(row: dict, revision: int, current: int) -> dict:
    out: dict[str, Any] = {"status": row["status"], "k": row["k"], "stale": revision < current}
    if row["status"] == "ready":
        doc = row["data"] or {}
        out["method"] = doc.get("method")
        out["profile"] = {k: v for k, v in (doc.get("data") or {}).items() if k != "ranking"}
    else:
        out["error"] = row.get("error")
    return out
