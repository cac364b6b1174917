"""``perser keys``: API keys of the listener service (add, list, revoke)."""

from __future__ import annotations

import typer

keys_app = typer.Typer(help="API keys of perser serve: add (printed once), list, revoke.", no_args_is_help=True)


@keys_app.command("add")
def add_command(
    name: str = typer.Argument(..., help="A name for the key (who or what uses it)."),
    scope: str = typer.Option(..., "--scope", help="admin, or listener:ID (only that listener)."),
    store: str = typer.Option(..., "--store", "-s", help="The service's database (SQLite file or postgresql:// URL)."),
) -> None:
    """Make a key and print it once; only its SHA-256 is stored."""
    from perser.cli.serve_cmd import _need_serve_extra

    _need_serve_extra()
    from perser.serve import Database
    from perser.serve.service import add_key

    key = add_key(Database(store), name, scope)
    typer.echo(key)
    typer.echo(f"key {name!r} ({scope}) stored; this is the only time it is shown. Send it as: Authorization: Bearer <key>",
               err=True)


@keys_app.command("list")
def list_command(store: str = typer.Option(..., "--store", "-s", help="The service's database.")) -> None:
    """Names, scopes and dates of the keys (never the keys)."""
    from perser.serve import Database
    from perser.serve.db import iso

    for k in Database(store).list_keys():
        state = f"revoked {iso(k['revoked_at'])}" if k["revoked_at"] else "active"
        typer.echo(f"{k['name']}\t{k['scope']}\tcreated {iso(k['created_at'])}\t{state}")


@keys_app.command("revoke")
def revoke_command(
    name: str = typer.Argument(..., help="The key's name."),
    store: str = typer.Option(..., "--store", "-s", help="The service's database."),
) -> None:
    """Revoke a key (running services stop accepting it within seconds)."""
    from perser.serve import Database

    Database(store).revoke_key(name)
    typer.echo(f"revoked {name!r}")


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
