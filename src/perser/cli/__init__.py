"""The ``perser`` command: a thin shell over the Python API.

Each command group lives in its own module and adds itself to :data:`app`.
"""

from __future__ import annotations

import typer

from perser.cli._common import ReadableGroup

app = typer.Typer(
    name="perser",
    cls=ReadableGroup,
    help="Personalized speech emotion recognition: per-listener models and enrollment of new listeners.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    from perser.cli import corpus_cmd, evaluate_cmd, extract_cmd, keys_cmd, method_cmd, serve_cmd  # noqa: F401

    for mod in (corpus_cmd, extract_cmd, method_cmd, evaluate_cmd, serve_cmd, keys_cmd):
        mod.register(app)
    from perser.cli import select_cmd  # noqa: E402

    select_cmd.register(app)


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log more.")) -> None:
    import logging

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


def main() -> None:
    """Console-script entry point: errors of the user's input print one line, exit 2."""
    import sys

    from perser.errors import PerserError

    _register()
    try:
        app()
    except PerserError as e:
        typer.secho(f"error: {e}", fg=typer.colors.RED, err=True)
        sys.exit(2)
