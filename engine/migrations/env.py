"""Alembic environment: runs migrations on the connection `engine.db.upgrade` hands over."""

from alembic import context

from engine import models  # noqa: F401  (registers the tables on Base.metadata)
from engine.db import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # plain `alembic` command line: build one from the URL
    from engine.db import make_engine

    connection = make_engine(config.get_main_option("sqlalchemy.url") or "").connect()

context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
