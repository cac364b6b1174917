"""A ``perser`` command-line app holding only the command groups a test needs."""

from __future__ import annotations

from types import ModuleType

import typer

__all__ = ["command_app"]


def command_app(*modules: ModuleType) -> typer.Typer:
    """A bare Typer app with ``modules`` (e.g. :mod:`perser.cli.corpus_cmd`) registered.

    The app has a no-op root callback, so a single group's commands keep their names
    (``["corpus", "convert", ...]``) as under the real ``perser`` command, without its
    logging set-up or the other groups' imports.

    Parameters
    ----------
    modules:
        Command modules, each with a ``register(app)`` function.
    """
    from perser.cli._common import ReadableGroup

    app = typer.Typer(cls=ReadableGroup)

    @app.callback()
    def _root() -> None:
        pass

    for module in modules:
        module.register(app)
    return app
