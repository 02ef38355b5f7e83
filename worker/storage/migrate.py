"""Schema migrations (Alembic), run by ``loyalty-relay migrate`` and ``loyalty-relay run``.

Only those two change the schema; every other command checks it is current and
otherwise says to run ``migrate`` (a stray ``stores list`` must not upgrade a
production database behind its operator's back).
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def schema_is_current(engine: Engine) -> bool:
    """True when the database is at the newest revision this code knows."""
    heads = set(ScriptDirectory.from_config(alembic_config(engine)).get_heads())
    chatty = logging.getLogger("alembic.runtime.migration")  # "Context impl …" on every check
    level, chatty.level = chatty.level, logging.WARNING
    try:
        with engine.connect() as connection:
            current = set(MigrationContext.configure(connection).get_current_heads())
    finally:
        chatty.setLevel(level)
    return current == heads
