"""Storage: SQLAlchemy 2 tables, Alembic migrations, engine factory."""
