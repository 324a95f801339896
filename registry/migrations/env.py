"""Alembic environment: doge hands over an open connection (``config.attributes['connection']``).

There is no alembic.ini: ``doge.registry.schema.alembic_config`` points Alembic at this folder.
The migrations run inside the caller's transaction, so an upgrade lands whole or not at all.
"""

from alembic import context

from doge.registry.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("doge runs its migrations itself: use 'doge registry upgrade'")

context.configure(connection=connection, target_metadata=Base.metadata)
with context.begin_transaction():
    context.run_migrations()
