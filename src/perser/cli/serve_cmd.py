"""``perser serve``: the enrollment service over one trained model."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def serve_command(
    model_dir: Path = typer.Argument(..., help="A trained model folder (perser train --out)."),
    profiles: Path = typer.Option(..., "--profiles", "-p", help="Profile store folder (created; tied to this model)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", help="Port to listen on."),
    cache: Optional[Path] = typer.Option(None, "--cache", help="Feature store for uploaded audio."),
    pool: Optional[Path] = typer.Option(None, "--pool", help="Enrollment pool (a corpus folder, or a CSV with path "
                                        "and clip_id columns): serves GET /listeners/{id}/next and the enrollment "
                                        "page at /."),
    pool_features: Optional[Path] = typer.Option(None, "--pool-features", help="The pool's features file (for "
                                                 "models trained on precomputed features)."),
    strategy: str = typer.Option("active", "--strategy", help="How the page chooses the next clip: active | "
                                 "random | diverse."),
) -> None:
    """Serve enrollment and prediction over HTTP (POST /enroll, POST /predict, GET /profiles; docs at /docs)."""
    from perser.errors import ConfigError
    from perser.serve import Service, create_app

    try:
        import uvicorn
    except ImportError:
        raise ConfigError("perser serve needs FastAPI and uvicorn: pip install 'perser[serve]'") from None
    service = Service(model_dir, profiles, cache_dir=cache)
    app = create_app(service)
    if pool is not None:
        from perser.serve.enroll_page import EnrollmentPool, include_enroll_page

        include_enroll_page(app, service, EnrollmentPool.from_source(pool, service.model, cache, pool_features),
                            strategy=strategy)
    info = service.info()
    typer.echo(
        f"serving {info['method']!r} ({info['space']['name']}: {info['space']['kind']}, features {info['features']}) "
        f"with {len(service.store)} enrolled listeners from {profiles} on http://{host}:{port}",
        err=True,
    )
    uvicorn.run(app, host=host, port=port, log_level="warning")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)
