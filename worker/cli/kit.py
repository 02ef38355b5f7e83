"""The command line's public kit: what every command shares — the runtime,
secrets from options or files, errors as one line — and the helpers that the
commands of platform and sink folders use (``stores add <platform>``, ``sinks
add <kind>``). Platform and sink folders import from here, never from the
other modules of ``worker.cli``."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click
from sqlalchemy.exc import SQLAlchemyError

from worker import runtime as runtime_module
from worker import url_policy
from worker.config import ConfigError, load_settings
from worker.crypto import CredentialsError
from worker.logs import configure_logging, scrub
from worker.platforms.base import StoreUpdate
from worker.runtime import Runtime
from worker.storage.migrate import schema_is_current, upgrade
from worker.storage.models import Sink
from worker.stores import find_store, save_store
from worker.url_policy import DestinationRefused


def secret_option(
    flag: str, *, envvar: str, required: bool = False, help: str = ""
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--name`` (or the ``envvar``) and ``--name-file``: a secret never has to be typed
    on a command line, where shell history and ``ps`` keep it.

    The command receives one parameter, ``name``, whichever way it came.
    """
    name = flag.lstrip("-").replace("-", "_")

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(command)
        def with_secret(*args: Any, **kwargs: Any) -> Any:
            path = kwargs.pop(f"{name}_file")
            kwargs[name] = _read_secret(flag, kwargs.get(name), path, required)
            return command(*args, **kwargs)

        file_help = f"Read {flag} from this file (e.g. a mounted secret)."
        with_file = click.option(
            f"{flag}-file", f"{name}_file", type=click.Path(dir_okay=False), help=file_help
        )(with_secret)
        return click.option(flag, name, envvar=envvar, show_envvar=True, help=help)(with_file)

    return decorate


def _read_secret(flag: str, value: str | None, path: str | None, required: bool) -> str | None:
    if path:
        try:
            value = Path(path).read_text()
        except OSError as exc:
            raise click.BadParameter(
                f"cannot read {path}: {exc.strerror}", param_hint=f"{flag}-file"
            ) from None
    value = value.strip() if value is not None else None
    if required and value is None:  # a blank one is for the command's own check to name
        raise click.UsageError(f"give {flag}, {flag}-file or its environment variable")
    return value


def open_runtime(*, migrate: bool = False, check_schema: bool = True) -> Runtime:
    """The runtime for a command. Only ``migrate`` and ``run`` change the schema;
    every other command refuses to work on a missing or older one."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    configure_logging(settings.log_level, settings.log_format)
    runtime = runtime_module.configure(settings)
    try:
        if migrate:
            upgrade(runtime.engine)
        elif check_schema and not schema_is_current(runtime.engine):
            raise click.ClickException(
                "the database schema is missing or older than this version: "
                "run `loyalty-relay migrate` first"
            )
    except SQLAlchemyError as exc:
        raise database_error(exc) from None
    return runtime


def database_error(exc: SQLAlchemyError) -> click.ClickException:
    return click.ClickException(f"database unreachable or failing: {_first_line(exc)}")


def check_destination(runtime: Runtime, option: str, url: str | None) -> None:
    """The outbound URL policy (``worker.url_policy``) as a one-line usage error."""
    if not url:
        return
    try:
        url_policy.check_url(url, allow_private=runtime.settings.allow_private_urls)
    except DestinationRefused as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None


def fail(message: str) -> click.ClickException:
    return click.ClickException(message)


def _first_line(exc: Exception) -> str:
    lines = str(exc).splitlines() or [type(exc).__name__]
    return scrub(lines[0])[:200]


def credentials_error(exc: CredentialsError) -> click.ClickException:
    return click.ClickException(str(exc))


def parse_store_key(value: str) -> tuple[str, str]:
    platform, sep, external_id = value.partition(":")
    if not sep or not platform or not external_id:
        raise click.BadParameter(f"{value!r} is not a store key like salla:1234509876")
    return platform, external_id


# --- stores add <platform> --------------------------------------------------------------


def check_timezone(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise click.BadParameter(f"unknown time zone {value!r}") from None
    return value


def check_url(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not value.startswith(("http://", "https://")):
        raise click.BadParameter(f"{value!r} is not an http(s) URL")
    return value.rstrip("/") if value else None


def save(platform: str, external_id: str, update: StoreUpdate, fields: dict[str, Any]) -> None:
    """Register (or update) a store from a ``stores add <platform>`` command."""
    runtime = open_runtime()
    check_destination(runtime, "--api-base", fields.get("api_base"))
    with runtime.transaction() as session:
        store = save_store(runtime, session, platform, external_id, update, **fields)
        click.echo(f"store {store.key} saved ({store.status})")


# --- sinks add <kind> -------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """The store and the rules ``sinks add`` was given, for its ``<kind>`` subcommand."""

    platform: str
    external_id: str
    kinds: list[str]
    rules: dict[str, Any] = field(default_factory=dict)


def add_sink(target: Target, kind: str, config: dict[str, Any]) -> None:
    """Store a sink of ``kind`` with its validated ``config`` (sealed) for the target store."""
    runtime = open_runtime()
    check_destination(runtime, "--url", config.get("url"))
    check_destination(runtime, "--api-base", config.get("api_base"))
    with runtime.transaction() as session:
        store = find_store(session, target.platform, target.external_id)
        if store is None:
            raise click.ClickException(
                f"no store {target.platform}:{target.external_id}: add it first"
            )
        sink = Sink(
            store_id=store.id,
            kind=kind,
            config=runtime.cipher.seal(config),
            kinds=target.kinds,
            rules=target.rules,
        )
        session.add(sink)
        session.flush()
        click.echo(f"sink {sink.id} ({kind}) added to {store.key}")
