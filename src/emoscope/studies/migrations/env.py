"""Alembic's environment for the studies database: migrations run on the connection the store
hands over (`config.attributes["connection"]`), never on a URL of their own."""

from alembic import context

from emoscope.studies.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
