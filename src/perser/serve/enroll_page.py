"""Enrolling a listener by asking them the most telling clips, over HTTP and in a web page.

A *pool* of clips (a corpus folder or a CSV of audio files, see :class:`EnrollmentPool`)
is registered with a served model. :class:`EnrollPage` chooses the next clips with an
enrollment strategy (:mod:`perser.enroll`; ``active`` by default) from the listener's
ratings so far, and stores each answer as a rating through the service
(:meth:`perser.serve.service.Service.add_ratings`: the database keeps the listener's
ratings, and their profile is recomputed from all of them). :func:`enroll_router` exposes
it, with the service's keys (a key must reach the listener):

``GET /``
    The enrollment page (plain HTML and JavaScript shipped in the package).
``GET /listeners/{id}/next?n=N``
    The next ``N`` clips to ask (``clip_id``, expected ``gain``, ``audio`` URL), given
    the listener's answers so far; ``{"clips": []}`` when the pool is exhausted.
``POST /listeners/{id}/answers``
    ``{"clip_id": "c1", "label": "happy"}`` (or ``"values": {"arousal": 4, ...}``):
    stores the answer, re-enrolls, and answers the listener's state (below).
``GET /listeners/{id}/enrollment``
    The state: the answers, and -- for methods with seen-listener heads -- the seen
    listeners they are closest to with the posterior probability of each (how sure the
    model is), under the likelihood of :mod:`perser.enroll.active`.
``POST /listeners/{id}/compare``
    ``{"clip_id": "c7"}`` or ``{"audio": BASE64}``: the listener's personal prediction
    next to the consensus one (the model's prediction for no particular listener).
``GET /pool/{clip_id}/audio``
    A pool clip's audio file.

The page is opened with the listener's id (``/?listener=ID``) and, where the service uses
keys, the listener's key (sent as ``Authorization: Bearer KEY``).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Optional, Union
from urllib.parse import quote

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request

from perser.errors import ConfigError, PerserError

STATIC = Path(__file__).with_name("static")
#: files the page serves from :data:`STATIC`
PAGE_FILES = {"enroll.html": "text/html", "enroll.js": "text/javascript", "enroll.css": "text/css"}


# ----------------------------------------------------------------------- pool
class EnrollmentPool:
    """The clips a listener may be asked: ids, the model's features, audio files.

    Build it with :meth:`from_source`: a corpus folder (its clips and their audio) or a
    CSV with a ``path`` column of audio files (and optionally ``clip_id``; paths are
    relative to the CSV). Features are the model's (extracted with its feature spec
    and cached in the feature store), or read from a features file (``features``,
    rows matched by clip id) for models trained on precomputed features.
    """

    def __init__(self, ids: list[str], X: np.ndarray, paths: list[Optional[str]]):
        if len(ids) != len(X) or len(ids) != len(paths):
            raise PerserError("EnrollmentPool: ids, features and paths differ in length")
        if len(set(ids)) != len(ids):
            raise ConfigError("enrollment pool: a clip id occurs twice")
        if not len(ids):
            raise ConfigError("enrollment pool: no clips")
        self.ids = [str(i) for i in ids]
        self.X = np.asarray(X, dtype=np.float32)
        self.paths = paths
        self.pos = {c: i for i, c in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)

    def index(self, clip_id: str) -> int:
        try:
            return self.pos[str(clip_id)]
        except KeyError:
            raise ConfigError(f"clip {clip_id!r} is not in the enrollment pool") from None

    @classmethod
    def from_source(cls, source: str | Path, model, cache_dir=None, features: str | Path | None = None) -> "EnrollmentPool":
        source = Path(source)
        if source.is_dir():
            from perser.corpus import load_corpus

            corpus = load_corpus(source)
            ids = [str(c) for c in corpus.clips.index]
            paths = [str(p) for p in corpus.clips["path"]]
        elif source.is_file():
            from perser.corpus.table import read_csv

            df = read_csv(source, dtype=str, keep_default_na=False)
            if "path" not in df.columns:
                raise ConfigError(f"{source}: an enrollment pool CSV needs a 'path' column of audio files "
                                  f"(has {list(df.columns)})")
            paths = [str((source.parent / p).resolve()) if not Path(p).is_absolute() else p for p in df["path"]]
            ids = df["clip_id"].tolist() if "clip_id" in df.columns else [Path(p).stem for p in df["path"]]
        else:
            raise ConfigError(f"enrollment pool {source}: no such corpus folder or CSV file")
        missing = [p for p in paths if not Path(p).is_file()]
        if missing:
            raise ConfigError(f"enrollment pool {source}: audio file {missing[0]!r} does not exist"
                              + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
        from perser.methods.inputs import clip_features

        if features is not None:
            X = clip_features(model, ids, features=features)
        else:
            X = clip_features(model, paths=paths, cache_dir=cache_dir)
        return cls(ids, X, paths)


# ----------------------------------------------------------------------- page
class AnswerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    clip_id: str = Field(..., description="The pool clip answered.")
    label: Optional[Union[str, list[str]]] = Field(None, description="Categorical: one class; multilabel: a list.")
    values: Optional[dict[str, float]] = Field(None, description="Dimensional: a value per dimension.")


class CompareRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    clip_id: Optional[str] = Field(None, description="A pool clip.")
    audio: Optional[str] = Field(None, description="Base64 of an audio file.")


class EnrollPage:
    """Next clips, answers and the closest seen listeners of listeners enrolling from ``pool``.

    Parameters
    ----------
    service:
        The :class:`perser.serve.service.Service`; the page works with its model ``model``
        (default: the default model).
    pool:
        The :class:`EnrollmentPool` (features made for that model).
    strategy:
        Enrollment strategy spec (``"active"``, ``"random"``, ``"diverse"``, or with
        parameters, ``"active:criterion=head"``).
    target_k:
        How many answers the page asks for before offering the comparison.
    """

    def __init__(self, service, pool: EnrollmentPool, strategy: str = "active", target_k: int = 10, seed: int = 0,
                 model: Optional[str] = None):
        from perser.enroll import make_strategy
        from perser.enroll.active import ActiveStrategy, has_heads

        self.service = service
        self.served = service.model_for(model)
        self.model = self.served.model
        self.space = self.model.space_
        self.pool = pool
        self.target_k = int(target_k)
        self.strategy = make_strategy(strategy, seed=seed).fit(self.model)
        self.session = self.strategy.session(pool.X)
        self.heads = ActiveStrategy(criterion="head").fit(self.model).session(pool.X) if has_heads(self.model) else None
        self._lock = threading.Lock()

    # answers ---------------------------------------------------------------
    def answers(self, listener: str) -> list[dict]:
        """The listener's ratings of pool clips (``clip_id``, ``label``: a class, classes or values)."""
        from perser.serve.service import UnknownListener

        try:
            stored = self.service.ratings(listener)
        except UnknownListener:
            return []
        return [{"clip_id": r["clip_id"], "label": r["label"]} for r in stored if r["clip_id"] in self.pool.pos]

    def _rated(self, answers: list[dict]) -> tuple[np.ndarray, Optional[np.ndarray]]:
        from perser.serve.service import encode_labels

        if not answers:
            return np.zeros(0, dtype=np.int64), None
        y = encode_labels(self.space, [a["label"] for a in answers], [a["clip_id"] for a in answers])
        return np.array([self.pool.index(a["clip_id"]) for a in answers]), y

    # requests ---------------------------------------------------------------
    def next(self, listener: str, n: int = 1) -> dict:
        if not 1 <= int(n) <= 100:
            raise ConfigError(f"n must be between 1 and 100, got {n}")
        answers = self.answers(listener)
        rated, y = self._rated(answers)
        with self._lock:
            sel = self.session.select(int(n), rated=rated, y=y)
        clips = [{"clip_id": self.pool.ids[i], "gain": float(g) if np.isfinite(g) else None,
                  "audio": f"/pool/{quote(self.pool.ids[i], safe='')}/audio"}
                 for i, g in zip(sel.indices, sel.gains)]
        return {"listener": listener, "answered": len(answers), "target": self.target_k,
                "strategy": self.strategy.name, "unit": sel.details.get("unit"), "clips": clips}

    def answer(self, listener: str, req: AnswerRequest) -> dict:
        from perser.serve.service import RatedClip, RatingsRequest

        i = self.pool.index(req.clip_id)
        rc = RatedClip(id=self.pool.ids[i], features=self.pool.X[i].tolist(), label=req.label, values=req.values)
        # the service checks the label, stores the rating and recomputes the profile from all ratings
        self.service.add_ratings(listener, RatingsRequest(ratings=[rc], model=self.served.name))
        return self.state(listener)

    def state(self, listener: str) -> dict:
        answers = self.answers(listener)
        info = self.service.listener_info(listener)  # UnknownListener (404) before any answer
        out: dict = {"listener": listener, "answered": len(answers), "target": self.target_k, "answers": answers,
                     "method": self.model.name, "profile": info["profiles"].get(self.served.name)}
        if self.heads is not None and answers:
            rated, y = self._rated(answers)
            w = self.heads.posterior(rated, y)
            top = np.argsort(-w, kind="stable")[:3]
            names = self.heads.heads
            out["closest"] = [{"annotator": names[h], "probability": float(w[h])} for h in top]
            out["confidence"] = float(w[top[0]])
        return out

    def compare(self, listener: str, req: CompareRequest) -> dict:
        from perser.serve.service import Clip, PredictRequest

        if (req.clip_id is None) == (req.audio is None):
            raise ConfigError("give exactly one of 'clip_id' and 'audio'")
        if req.clip_id is not None:
            clip = Clip(id=req.clip_id, features=self.pool.X[self.pool.index(req.clip_id)].tolist())
        else:
            clip = Clip(id="upload", audio=req.audio)
        name = self.served.name
        personal = self.service.predict(PredictRequest(listener=listener, model=name, clips=[clip]))["predictions"][0]
        consensus = self.service.predict(PredictRequest(model=name, clips=[clip]))["predictions"][0]
        return {"listener": listener, "clip": clip.id, "personal": personal, "consensus": consensus}

    def config(self) -> dict:
        return {"method": self.model.name, "model": self.served.name, "space": self.space.to_dict(),
                "pool": len(self.pool), "target": self.target_k, "strategy": self.strategy.name,
                "heads": self.heads is not None, "keys": bool(self.service.keys_required()),
                "clips": self.pool.ids[:500]}


# --------------------------------------------------------------------- router
def enroll_router(page: EnrollPage):
    """A FastAPI router with the page and its endpoints (module docstring); the listener
    endpoints need a key that reaches the listener where the service uses keys."""
    from fastapi import APIRouter, Depends
    from fastapi.responses import FileResponse, HTMLResponse, Response

    from perser.serve.app import listener_param, principal
    from perser.serve.service import UnknownListener

    router = APIRouter()
    Caller = Depends(principal)

    def who(request: Request, p) -> str:
        listener = listener_param(request)
        page.service.authorize(p, listener)
        return listener

    def index() -> HTMLResponse:
        return HTMLResponse((STATIC / "enroll.html").read_text(encoding="utf-8"))

    def static(name: str) -> Response:
        if name not in PAGE_FILES:
            raise UnknownListener(f"no page file {name!r}")
        return Response((STATIC / name).read_bytes(), media_type=PAGE_FILES[name])

    def audio(clip_id: str) -> FileResponse:
        p = page.pool.paths[page.pool.index(clip_id)]
        if p is None:
            raise ConfigError(f"clip {clip_id!r} has no audio file")
        return FileResponse(p)

    def next_clips(request: Request, listener: str, n: int = 1, p=Caller) -> dict:
        return page.next(who(request, p), n)

    def answer(request: Request, listener: str, req: AnswerRequest, p=Caller) -> dict:
        return page.answer(who(request, p), req)

    def state(request: Request, listener: str, p=Caller) -> dict:
        return page.state(who(request, p))

    def compare(request: Request, listener: str, req: CompareRequest, p=Caller) -> dict:
        return page.compare(who(request, p), req)

    router.add_api_route("/", index, methods=["GET"], response_class=HTMLResponse, include_in_schema=False)
    router.add_api_route("/page/{name}", static, methods=["GET"], include_in_schema=False)
    router.add_api_route("/page-config", page.config, methods=["GET"])
    router.add_api_route("/pool/{clip_id}/audio", audio, methods=["GET"])
    router.add_api_route("/listeners/{listener}/next", next_clips, methods=["GET"])
    router.add_api_route("/listeners/{listener}/answers", answer, methods=["POST"])
    router.add_api_route("/listeners/{listener}/enrollment", state, methods=["GET"])
    router.add_api_route("/listeners/{listener}/compare", compare, methods=["POST"])
    return router


def include_enroll_page(app, service, pool: EnrollmentPool, **kwargs) -> EnrollPage:
    """Add the enrollment page and its endpoints to ``app`` (a :func:`perser.serve.create_app` app)."""
    page = EnrollPage(service, pool, **kwargs)
    app.include_router(enroll_router(page))
    app.state.enroll_page = page
    return page
