"""Alembic migrations of the registry schema, run by doge itself (see doge.registry.schema)."""
