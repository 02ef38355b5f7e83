"""The migration builds exactly the schema the models describe (SQLite and PostgreSQL)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from worker.runtime import Runtime
from worker.storage.models import Base


def test_migration_matches_the_models(runtime: Runtime) -> None:
    with runtime.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": False})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []
