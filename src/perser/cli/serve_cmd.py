"""``perser serve``: the listener service; ``perser serve-migrate``: import a perser 0.1 profile folder."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import typer

ENV = "PERSER_SERVE_CONFIG"


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _need_serve_extra():
    from perser.errors import ConfigError

    try:
        import fastapi  # noqa: F401
        import sqlalchemy  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise ConfigError("perser serve needs the service's libraries: pip install 'perser[serve]'") from None


def _process_setup() -> None:
    """Hand the interpreter's lock around every millisecond (not every 5): the event loop then
    waits less for worker threads, and /health stays fast under load."""
    import sys

    sys.setswitchinterval(0.001)


def build_service(cfg: dict):
    """The :class:`~perser.serve.Service` of a ``perser serve`` configuration (also run in each worker)."""
    from perser.serve import Limits, Service

    lim = cfg.get("limits") or {}
    return Service(cfg["models"], cfg["store"], default=cfg.get("default"), limits=Limits(**lim),
                   workers=int(cfg.get("workers", 1)), keep_audio=bool(cfg.get("keep_audio")))


def app_from_env():
    """Uvicorn factory of each worker with ``--workers N``: the configuration comes in ``$PERSER_SERVE_CONFIG``."""
    import logging

    from perser.serve import create_app

    cfg = json.loads(os.environ[ENV])
    _process_setup()
    logging.basicConfig(level=cfg.get("log_level", "INFO").upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    service = build_service(cfg)
    app = create_app(service)
    add_pool(app, service, cfg)
    return app


def add_pool(app, service, cfg: dict) -> None:
    """The enrollment page and ``GET /listeners/{id}/next`` when the configuration names a pool."""
    pool = cfg.get("pool")
    if not pool:
        return
    from perser.serve.enroll_page import EnrollmentPool, include_enroll_page

    model = service.model_for(None).model
    include_enroll_page(app, service, EnrollmentPool.from_source(pool["source"], model, features=pool.get("features")),
                        strategy=pool.get("strategy", "active"))


def serve_command(
    models: list[str] = typer.Argument(..., help="Model folders (perser train --out), as PATH or NAME=PATH; the first is the default."),
    store: str = typer.Option(..., "--store", "-s", help="Database: a SQLite file (created) or a postgresql://user@host/db URL."),
    default: Optional[str] = typer.Option(None, "--default", help="The model requests get when they name none."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (not loopback: needs keys, see perser keys)."),
    port: int = typer.Option(8000, "--port", help="Port to listen on."),
    workers: int = typer.Option(1, "--workers", min=1, help="Worker processes sharing the database."),
    log_level: str = typer.Option("info", "--log-level", help="debug, info (access log), warning or error."),
    max_body_mb: float = typer.Option(32.0, "--max-body-mb", help="Largest request body (MiB)."),
    max_clips: int = typer.Option(256, "--max-clips", help="Most clips per request."),
    max_seconds: float = typer.Option(30.0, "--max-seconds", help="Longest uploaded clip (seconds)."),
    min_k: list[str] = typer.Option([], "--min-k", help="METHOD=K: fewest ratings that make a profile (repeatable)."),
    rate_limit: float = typer.Option(0.0, "--rate-limit", help="Requests per second per key (0: none); answered 429 over it."),
    burst: Optional[float] = typer.Option(None, "--burst", help="Requests a key may send at once (default: the rate)."),
    cache_entries: int = typer.Option(4096, "--cache-entries", help="Uploaded clips whose features are kept in memory per worker."),
    keep_audio: bool = typer.Option(False, "--keep-audio", help="Keep uploaded audio in the database, so that a model with "
                                    "another feature extractor can re-enroll listeners from it."),
    pool: Optional[Path] = typer.Option(None, "--pool", help="Enrollment pool of the default model (a corpus folder, or a CSV "
                                        "with path and clip_id columns): serves the enrollment page at / and "
                                        "GET /listeners/{id}/next."),
    pool_features: Optional[Path] = typer.Option(None, "--pool-features", help="The pool's features file (for models "
                                                 "trained on precomputed features)."),
    strategy: str = typer.Option("active", "--strategy", help="How the page chooses the next clip: active | random | diverse."),
) -> None:
    """Serve listeners' enrollment and predictions over HTTP (docs at /docs once running)."""
    from perser.errors import ConfigError
    from perser.serve.service import MIN_K

    _need_serve_extra()
    level = log_level.lower()
    if level not in ("debug", "info", "warning", "error"):
        raise ConfigError("--log-level: debug, info, warning or error")
    ks = dict(MIN_K)
    for item in min_k:
        m, _, k = item.partition("=")
        if not k.isdigit() or int(k) < 1:
            raise ConfigError(f"--min-k {item!r}: expected METHOD=K with K >= 1")
        ks[m] = int(k)
    cfg = {"models": [str(m) for m in models], "store": store, "default": default, "workers": workers, "log_level": level,
           "keep_audio": keep_audio,
           "limits": {"max_body_bytes": int(max_body_mb * 1024 * 1024), "max_clips": max_clips, "max_seconds": max_seconds,
                      "min_k": ks, "rate": rate_limit, "burst": burst, "cache_entries": cache_entries}}
    if pool is not None:
        cfg["pool"] = {"source": str(pool), "features": None if pool_features is None else str(pool_features),
                       "strategy": strategy}
    import logging

    import uvicorn

    from perser.serve import Database

    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    database = Database(store)  # creates or migrates the schema once, before any worker starts
    if not _is_loopback(host) and database.active_keys() == 0:
        raise ConfigError(f"--host {host} is reachable from other machines, and the store has no keys: "
                          "make an admin key first (perser keys add NAME --scope admin --store ...)")
    if workers == 1:
        from perser.serve import create_app

        _process_setup()
        service = build_service(cfg)
        app = create_app(service)
        add_pool(app, service, cfg)
        info = service.models_info()
        typer.echo(f"serving {', '.join(m['name'] + ' (' + m['method'] + ')' for m in info['models'])} "
                   f"(default {info['default']}) from {database} on http://{host}:{port}", err=True)
        uvicorn.run(app, host=host, port=port, log_level=level, access_log=False)
        return
    import tempfile

    os.environ[ENV] = json.dumps(cfg)
    with tempfile.TemporaryDirectory(prefix="perser-metrics-") as d:
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", d)
        typer.echo(f"serving {', '.join(cfg['models'])} with {workers} workers from {database} on http://{host}:{port}", err=True)
        uvicorn.run("perser.cli.serve_cmd:app_from_env", factory=True, host=host, port=port, workers=workers,
                    log_level=level, access_log=False)


def migrate_command(
    old: Path = typer.Argument(..., help="A perser 0.1 --profiles folder (store.json, profiles/)."),
    model_dir: Path = typer.Argument(..., help="The model folder its profiles were made with."),
    store: str = typer.Option(..., "--store", "-s", help="The database to copy them into."),
    check: bool = typer.Option(True, "--check/--no-check", help="Refuse when store.json names another model folder."),
) -> None:
    """Copy a perser 0.1 profile folder's listeners into a database (profiles only: those folders kept no ratings)."""
    _need_serve_extra()
    from perser.serve.legacy import migrate_folder_store

    r = migrate_folder_store(old, model_dir, store, check_model=check)
    typer.echo(f"migrated {r['migrated']} listener(s) into {store}")
    for name, why in r["skipped"].items():
        typer.echo(f"skipped {name!r}: {why}", err=True)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)
    app.command("serve-migrate")(migrate_command)
