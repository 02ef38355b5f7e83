"""What the ops commands (``queues``, ``deliveries``, ``inbox``, ``refresh``) share:
the listing options, ``--since`` in the forms operators type, one JSON document
or a readable table, the next page's command, and bad input as one line.

Output is built from the ``worker.ops`` dataclasses, which hold masked payloads
and scrubbed errors only; every text cell passes the log scrubber once more.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import click
from kombu.exceptions import KombuError

from worker.logs import scrub
from worker.ops import OpsError
from worker.ops.pages import DEFAULT_LIMIT, MAX_LIMIT, Page
from worker.pipeline import sweeper
from worker.runtime import Runtime
from worker.storage.models import utcnow


class BadInput(click.ClickException):
    """Bad input: one line, exit status 2 (as click's own usage errors)."""

    exit_code = 2


@contextmanager
def bad_input() -> Iterator[None]:
    """The query layer's refusals (unknown store, bad cursor, no such id) as one line."""
    try:
        yield
    except OpsError as exc:
        raise BadInput(str(exc)) from None


_RELATIVE = re.compile(r"^(\d+)\s*([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class Since(click.ParamType[datetime, Any]):
    """``2h``, ``30m``, ``45s``, ``3d`` ago, or a moment (``2026-12-01T10:00``, UTC
    unless it names its offset)."""

    name = "since"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, datetime):
            return value
        text = str(value).strip()
        relative = _RELATIVE.match(text)
        if relative:
            amount, unit = relative.groups()
            return utcnow() - timedelta(**{_UNITS[unit]: int(amount)})
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            self.fail(f"{text[:40]!r} is not a time like 2h, 30m or 2026-12-01T10:00", param, ctx)
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def json_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="One JSON document.")(command)


def listing_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--since``, ``--limit``, ``--cursor`` and ``--json``, for every listing."""
    options: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
        click.option("--since", type=Since(), help="Only newer: 2h, 30m, 2026-12-01T10:00."),
        click.option(
            "--limit", type=click.IntRange(1, MAX_LIMIT), default=DEFAULT_LIMIT, show_default=True
        ),
        click.option("--cursor", help="Where the previous page ended (printed with it)."),
        json_option,
    ]
    for option in reversed(options):
        command = option(command)
    return command


def jsonable(value: Any) -> Any:
    """Dataclasses, datetimes and tuples as JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            field.name: jsonable(getattr(value, field.name)) for field in dataclasses.fields(value)
        }
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    return value


def echo_json(value: Any) -> None:
    click.echo(json.dumps(jsonable(value), ensure_ascii=False, indent=2))


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return scrub(str(value)).replace("\n", " ")


def echo_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], limit: int = 60) -> None:
    """Left-aligned columns; long cells cut to ``limit`` characters."""
    text = [[cell(value)[:limit] for value in row] for row in rows]
    widths = [
        max([len(header), *(len(row[i]) for row in text)]) for i, header in enumerate(headers)
    ]
    for row in [list(headers), *text]:
        click.echo(
            "  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip()
        )


def echo_listing(
    page: Page[Any], as_json: bool, headers: Sequence[str], row: Callable[[Any], Sequence[Any]]
) -> None:
    """The page as one JSON document, or as a table followed by the command that prints
    the next one."""
    if as_json:
        echo_json(page)
        return
    if not page.items:
        click.echo("nothing matches")
        return
    echo_table(headers, [row(item) for item in page.items])
    if page.next_cursor:
        click.echo(f"\nmore: {next_page_command(page.next_cursor)}")


def next_page_command(cursor: str) -> str:
    """This command again with the same filters (``--since`` as the absolute time it
    meant, so the next page is read against the same window) and the new cursor."""
    ctx = click.get_current_context()
    words = ["loyalty-relay", *ctx.command_path.split()[1:]]  # the installed name
    for param in ctx.command.params:
        value = ctx.params.get(param.name or "")
        if not isinstance(param, click.Option) or param.name in ("cursor", "as_json"):
            continue
        if value is None or value == param.default or value is False:
            continue
        words += [param.opts[0]] if value is True else [param.opts[0], _word(value)]
    return " ".join([*words, "--cursor", cursor])


def _word(value: Any) -> str:
    return value.isoformat(timespec="seconds") if isinstance(value, datetime) else str(value)


def ring(runtime: Runtime, swept: sweeper.Swept) -> str:
    """Enqueue moved rows as the sweeper does; a broker that is down only delays them."""
    from worker.celery_app import create_celery  # a publisher, only when there is news

    try:
        sweeper.ring(create_celery(runtime.settings), swept)
    except (KombuError, OSError) as exc:
        return f"; not enqueued ({scrub(str(exc))[:80]}): the sweeper sends them"
    return ""
