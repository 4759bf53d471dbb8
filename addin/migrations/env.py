"""Alembic environment of the estimates store.

`addin.estimates` runs the migrations itself on every open and hands its connection over in
`config.attributes["connection"]`, so there is no alembic.ini and no manual step. To write a new
migration, add a script to versions/ whose down_revision is the current head; the tests compare
the migrated schema with `addin.estimates.metadata`, so the two cannot drift apart.
"""
from alembic import context

from addin.estimates import VERSION_TABLE, metadata

connection = context.config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise RuntimeError("the estimates store migrates itself through addin.estimates.open_store(); "
                       "run a command such as `python -m addin publish`")

context.configure(connection=connection, target_metadata=metadata, version_table=VERSION_TABLE,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
