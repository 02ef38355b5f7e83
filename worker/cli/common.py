"""What every command shares: the runtime, and turning errors into one line."""

from __future__ import annotations

import click
from sqlalchemy.exc import SQLAlchemyError

from worker import runtime as runtime_module
from worker.config import ConfigError, load_settings
from worker.crypto import CredentialsError
from worker.logs import configure_logging
from worker.runtime import Runtime
from worker.storage.migrate import upgrade


def open_runtime(*, migrate: bool = True) -> Runtime:
    try:
        settings = load_settings()
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    configure_logging(settings.log_level, settings.log_format)
    runtime = runtime_module.configure(settings)
    if migrate:
        try:
            upgrade(runtime.engine)
        except SQLAlchemyError as exc:
            raise click.ClickException(f"database unreachable: {_first_line(exc)}") from None
    return runtime


def fail(message: str) -> click.ClickException:
    return click.ClickException(message)


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0][:200]


def credentials_error(exc: CredentialsError) -> click.ClickException:
    return click.ClickException(str(exc))


def parse_store_key(value: str) -> tuple[str, str]:
    platform, sep, external_id = value.partition(":")
    if not sep or not platform or not external_id:
        raise click.BadParameter(f"{value!r} is not a store key like salla:1234509876")
    return platform, external_id
