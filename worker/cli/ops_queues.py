"""``loyalty-relay queues``: how far behind the service is (``worker.ops.queues``)."""

from __future__ import annotations

import click

from worker.cli.kit import open_runtime
from worker.cli.ops_kit import echo_json, echo_table, json_option
from worker.ops.queues import QueuesReport, StatusCount, report


@click.command()
@json_option
def queues(as_json: bool) -> None:
    """Celery queues (depth, oldest message) and the tables behind them."""
    found = report(open_runtime())
    if as_json:
        echo_json(found)
        return
    _echo(found)


def _echo(found: QueuesReport) -> None:
    click.echo(f"broker ({found.broker}):")
    echo_table(
        ("QUEUE", "DEPTH", "OLDEST"),
        [(q.name, "unreachable" if q.depth is None else q.depth, _age(q.oldest_seconds))
         for q in found.queues],
    )  # fmt: skip
    click.echo("\ntables:")
    echo_table(
        ("TABLE", "OLDEST DUE", "ROWS BY STATUS"),
        [(t.table, _age(t.oldest_due_seconds),
          "  ".join(_count(c) for c in t.statuses if c.rows) or "empty")
         for t in found.tables],
        limit=200,
    )  # fmt: skip


def _count(count: StatusCount) -> str:
    mark = "~" if not count.exact else ">=" if count.capped else ""
    return f"{count.status} {mark}{count.rows}"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"
