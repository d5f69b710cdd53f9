"""Alembic environment: runs on the connection handed over by :func:`keyguard.store.db.migrate`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from keyguard.store.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations() -> None:
    """Run migrations on the given connection, or on ``sqlalchemy.url`` (autogenerate)."""
    connection = config.attributes.get("connection")
    if connection is None:
        engine = create_engine(config.get_main_option("sqlalchemy.url") or "sqlite://")
        with engine.begin() as conn:
            context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
            context.run_migrations()
        return
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    context.run_migrations()


run_migrations()
