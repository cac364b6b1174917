"""CLI commands (placeholder module: its owner adds commands in ``register``)."""

import typer


def register(app: typer.Typer) -> None:
    return None
