"""Alembic environment of the service's database.

perser runs the migrations itself (:meth:`perser.serve.db.Database.upgrade`), passing an
open connection in ``config.attributes["connection"]``; there is no ``alembic.ini``.
To write a new revision during development::

    alembic -x url=sqlite:///tmp.db -c /dev/null revision -m "what changes" \\
        --head head --version-path src/perser/serve/migrations/versions

and give it explicit ``op.*`` operations (tests compare the migrated schema with
:data:`perser.serve.db.metadata`).
"""

from alembic import context

from perser.serve.db import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only the alembic command line gets here
    from sqlalchemy import create_engine

    connection = create_engine(context.get_x_argument(as_dictionary=True)["url"]).connect()
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
