"""Alembic's environment: migrate on the connection the caller hands over.

:func:`boson_shared.record.migrate.upgrade` opens the connection (and takes
the lock); this only runs the revisions on it. There is no offline mode.
"""

from __future__ import annotations

from alembic import context

from boson_shared.record.migrate import VERSION_TABLE
from boson_shared.record.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through boson_shared.record.migrate.upgrade")
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()
