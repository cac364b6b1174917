"""The HTTP application over a :class:`~perser.serve.service.Service`.

``create_app(service)`` builds it; other parts of perser add their own routes with
``app.include_router(router)`` and use :func:`principal` (the caller, authenticated and
rate-limited), :func:`listener_param` (the ``{listener}`` path segment, decoded and
checked) and ``request.app.state.service``.

Endpoints (JSON; errors are ``{"detail": "..."}`` naming the field, never echoing input):

``GET /health``
    ``{"status": "ok", "models", "default"}`` -- no database work, for load balancers.
``GET /models``
    Served models (name, identity digest, method, space, features, default) and their
    re-enrollment progress (``listeners``, ``ready``, ``pending``, ``failed``).
``POST /listeners/{listener}/ratings``
    ``{"ratings": [{"id": "clip1", "features": [...] | "audio": "<base64>", "label": "hap"
    | "values": {...}}, ...], "model": optional}``: adds ratings (a clip rated before is
    replaced), creating the listener; recomputes their profile for every served model
    from all their ratings; answers each profile's state.
``PUT /listeners/{listener}/ratings``
    The same, replacing all the listener's ratings (at least the method's minimum K).
``GET /listeners/{listener}/ratings``, ``GET /listeners/{listener}``, ``DELETE /listeners/{listener}``
    Their ratings; their profiles per model; remove them (ratings, profiles, cached features).
``GET /listeners?after=&limit=``
    A page of listener ids (admin).
``POST /predict``
    ``{"listener": optional, "model": optional, "clips": [{"id", "features" | "audio"}]}``.
``GET /metrics``
    Prometheus metrics (admin when keys are in use).

Listener ids are any Unicode text up to 256 bytes: in a path they are one percent-encoded
segment (``/`` as ``%2F``), so ``msp-podcast/W1`` is ``/listeners/msp-podcast%2FW1``.

Status codes: 401 no or unknown key, 403 a key that does not reach the listener, 404
unknown listener or model, 409 listener exists / no usable profile, 413 body or clip
count over the limit, 422 bad input, 429 rate limit (with ``Retry-After``).
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
import uuid
from typing import Optional
from urllib.parse import unquote

from starlette.requests import Request

from perser._io import package_versions
from perser.errors import ConfigError, PerserError
from perser.serve.keys import Forbidden, Principal, RateLimited, Unauthorized
from perser.serve.service import (
    ListenerExists, NoProfile, PredictRequest, RatingsRequest, Service, TooLarge, UnknownListener, UnknownModel,
)

access_log = logging.getLogger("perser.serve.access")
_RID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class BodyTooLarge(Exception):
    pass


# ------------------------------------------------------------------ middleware
class ServiceMiddleware:
    """Outermost layer (pure ASGI, before any parsing): request ids, access log, metrics,
    the body-size cap (``Content-Length`` first, then counted while streaming), and the
    ``/listeners/<segment>`` path kept percent-encoded so an id may contain ``/``."""

    def __init__(self, app, max_body_bytes: int):
        self.app = app
        self.max_body = int(max_body_bytes)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        from perser.serve import metrics

        t0 = time.perf_counter()
        headers = dict(scope.get("headers") or [])
        rid = headers.get(b"x-request-id", b"").decode("latin-1")
        if not _RID.match(rid):
            rid = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        raw = scope.get("raw_path")
        if raw and raw.startswith(b"/listeners/"):
            scope["path"] = raw.split(b"?", 1)[0].decode("latin-1")  # segments stay encoded; listener_param decodes
        status = {"code": 500, "started": False}

        async def send_wrapped(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                status["started"] = True
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + [(b"x-request-id", rid.encode())]
            await send(message)

        async def reply(code: int, detail: str):
            body = json.dumps({"detail": detail}).encode()
            await send_wrapped({"type": "http.response.start", "status": code,
                                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                            (b"connection", b"close")]})
            await send_wrapped({"type": "http.response.body", "body": body})

        too_big = f"request body over the limit of {self.max_body} bytes"
        try:
            length = headers.get(b"content-length")
            if length is not None and (not length.isdigit() or int(length) > self.max_body):
                await reply(413, too_big)
                return
            seen = 0

            async def receive_counted():
                nonlocal seen
                message = await receive()
                if message["type"] == "http.request":
                    seen += len(message.get("body", b""))
                    if seen > self.max_body:
                        raise BodyTooLarge()
                return message

            try:
                await self.app(scope, receive_counted, send_wrapped)
            except BodyTooLarge:
                if not status["started"]:
                    await reply(413, too_big)
        finally:
            dt = time.perf_counter() - t0
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            metrics.REQUESTS.labels(scope["method"], template, str(status["code"])).inc()
            metrics.LATENCY.labels(template).observe(dt)
            who = scope["state"].get("principal", "-")
            access_log.info('%s %s "%s %s" %s %.1fms key=%s', rid, (scope.get("client") or ("-",))[0], scope["method"],
                            template, status["code"], dt * 1000, who)


# ---------------------------------------------------------------- dependencies
def principal(request: Request) -> Principal:
    """The caller: authenticated by their key and within their rate limit (a FastAPI dependency)."""
    service: Service = request.app.state.service
    p = service.authenticate(request.headers.get("authorization"))
    request.scope["state"]["principal"] = p.name
    who = p.name if p.scope != "open" else f"ip:{request.client.host if request.client else '-'}"
    service.rate_limiter.check(who)
    return p


def listener_param(request: Request) -> str:
    """The ``{listener}`` path segment, percent-decoded and checked."""
    from perser.serve.db import check_listener_id

    try:
        return check_listener_id(unquote(request.path_params["listener"], errors="strict"))
    except UnicodeDecodeError:
        raise ConfigError("listener id: not valid UTF-8") from None


# ------------------------------------------------------------------------ app
def create_app(service: Service, start_background: bool = True, threads: int = 4):
    """A FastAPI application serving ``service`` (needs ``pip install 'perser[serve]'``).

    ``start_background``: start the re-enrollment thread when the app starts (and stop it
    when it stops). ``threads``: requests worked on at once in this process (parsing,
    features, the model, the database run in these threads, never on the event loop;
    few threads leave the event loop the interpreter's lock often enough that
    ``/health`` answers in milliseconds under load).
    """
    try:
        from fastapi import APIRouter, Depends, FastAPI, Query
        from fastapi.exceptions import RequestValidationError
        from fastapi.responses import JSONResponse, Response
        from pydantic import ValidationError
    except ImportError:  # pragma: no cover - depends on the installation
        raise ConfigError("the service needs FastAPI and uvicorn: pip install 'perser[serve]'") from None
    from contextlib import asynccontextmanager

    import anyio

    limiter = anyio.CapacityLimiter(threads)

    async def run_in_threadpool(fn, *args):
        """``fn(*args)`` in a worker thread, its result serialised there too (not on the event loop)."""
        def call():
            return json.dumps(fn(*args), ensure_ascii=False, allow_nan=False).encode("utf-8")

        return Response(await anyio.to_thread.run_sync(call, limiter=limiter), media_type="application/json")

    @asynccontextmanager
    async def lifespan(app):
        if start_background:
            service.start()
        yield
        service.stop()

    app = FastAPI(title="perser", description="Enroll listeners and predict their emotion labels.",
                  version=package_versions("perser", missing="0")["perser"], lifespan=lifespan)
    app.state.service = service

    def status(code: int):
        async def handler(request: Request, exc: Exception):
            headers = {}
            if isinstance(exc, RateLimited):
                headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
            if isinstance(exc, Unauthorized):
                headers["WWW-Authenticate"] = "Bearer"
            return JSONResponse(status_code=code, content={"detail": str(exc)}, headers=headers)

        return handler

    # the most specific class wins (Starlette looks handlers up along the exception's MRO)
    for exc_type, code in ((UnknownListener, 404), (UnknownModel, 404), (ListenerExists, 409), (NoProfile, 409),
                           (TooLarge, 413), (Unauthorized, 401), (Forbidden, 403), (RateLimited, 429), (PerserError, 422)):
        app.add_exception_handler(exc_type, status(code))

    async def invalid(request: Request, exc):
        return JSONResponse(status_code=422, content={"detail": validation_message(exc.errors())})

    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(ValidationError, invalid)

    async def body_of(request: Request) -> bytes:
        return await request.body()  # counted by ServiceMiddleware while it streams in

    def parse(model, body: bytes):
        return model.model_validate_json(body or b"null")

    router = APIRouter()
    Caller = Depends(principal)

    @router.get("/health")
    async def health():
        return service.health()

    @router.get("/models")
    async def models(p: Principal = Caller):
        return await run_in_threadpool(service.models_info)

    @router.get("/listeners")
    async def listeners(p: Principal = Caller, after: Optional[str] = Query(None, max_length=1024),
                        limit: int = Query(100, ge=1)):
        service.authorize(p, admin=True)
        return await run_in_threadpool(service.list_listeners, after, limit)

    def ratings_endpoint(replace: bool):
        async def endpoint(request: Request, listener: str = Depends(listener_param), p: Principal = Caller):
            service.authorize(p, listener)
            body = await body_of(request)

            def work():
                return service.add_ratings(listener, parse(RatingsRequest, body), replace=replace)

            return await run_in_threadpool(work)

        return endpoint

    extra = {"requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RatingsRequest"}}}}}
    router.add_api_route("/listeners/{listener}/ratings", ratings_endpoint(False), methods=["POST"], openapi_extra=extra,
                         summary="Add ratings of a listener and recompute their profiles")
    router.add_api_route("/listeners/{listener}/ratings", ratings_endpoint(True), methods=["PUT"], openapi_extra=extra,
                         summary="Replace all ratings of a listener")

    @router.get("/listeners/{listener}/ratings")
    async def get_ratings(listener: str = Depends(listener_param), p: Principal = Caller):
        service.authorize(p, listener)
        return await run_in_threadpool(lambda: {"listener": listener, "ratings": service.ratings(listener)})

    @router.get("/listeners/{listener}")
    async def get_listener(listener: str = Depends(listener_param), p: Principal = Caller):
        service.authorize(p, listener)
        return await run_in_threadpool(service.listener_info, listener)

    @router.delete("/listeners/{listener}")
    async def delete_listener(listener: str = Depends(listener_param), p: Principal = Caller):
        service.authorize(p, listener)
        return await run_in_threadpool(service.delete_listener, listener)

    @router.post("/predict", openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/PredictRequest"}}}}})
    async def predict(request: Request, p: Principal = Caller):
        body = await body_of(request)

        def work():
            req = parse(PredictRequest, body)
            if req.listener is not None or not p.is_admin:
                service.authorize(p, req.listener)
            return service.predict(req)

        return await run_in_threadpool(work)

    @router.get("/metrics")
    async def metrics_page(p: Principal = Caller):
        service.authorize(p, admin=True)
        from perser.serve import metrics

        body = await anyio.to_thread.run_sync(metrics.render, service, limiter=limiter)
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    app.include_router(router)
    _document_bodies(app, RatingsRequest, PredictRequest)
    app.add_middleware(ServiceMiddleware, max_body_bytes=service.limits.max_body_bytes)
    return app


def validation_message(errors) -> str:
    """Pydantic's errors as ``field: message; ...`` (locations and messages only, no input)."""
    parts = []
    for e in list(errors)[:10]:
        loc = [x for x in e.get("loc", ()) if x != "body"]
        where = ""
        for x in loc:
            where += f"[{x}]" if isinstance(x, int) else (f".{x}" if where else str(x))
        msg = str(e.get("msg", "invalid"))
        parts.append(f"{where or 'body'}: {msg}")
    return "; ".join(parts)


def _document_bodies(app, *models) -> None:
    """Put the request models' JSON schemas into the OpenAPI document (bodies are parsed by hand,
    off the event loop, so FastAPI does not see them)."""
    original = app.openapi

    def openapi():
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        comps = schema.setdefault("components", {}).setdefault("schemas", {})
        for m in models:
            s = m.model_json_schema(ref_template="#/components/schemas/{model}")
            comps.update(s.pop("$defs", {}))
            comps[m.__name__] = s
        return schema

    app.openapi = openapi


