"""``loyalty-relay deliveries list|show|retry|discard``: the outbox, for ops.

Retry is bulk and idempotent (``worker.ops.deliveries``): only dead (and, by id,
retrying) rows move back to pending, so a delivered one is never resent, and a
second run finds nothing to move. Moved rows are enqueued as the sweeper does.
"""

from __future__ import annotations

from datetime import datetime

import click

from worker.cli.kit import open_runtime
from worker.cli.ops_kit import (
    BadInput,
    Since,
    bad_input,
    echo_json,
    echo_listing,
    echo_table,
    json_option,
    listing_options,
    ring,
)
from worker.ops import deliveries as ops
from worker.pipeline.outbox import DEAD
from worker.pipeline.sweeper import Swept
from worker.runtime import Runtime

STATUS = click.Choice(ops.STATUSES)
HEADERS = ("ID", "STATUS", "SINK", "STORE", "EVENT", "TRIES", "CREATED", "LAST ERROR")


@click.group()
def deliveries() -> None:
    """Look at the outbox, retry or discard deliveries."""


@deliveries.command("list")
@click.option("--status", type=STATUS)
@click.option("--sink", "sink_id", type=int, help="A sink id (loyalty-relay sinks list).")
@click.option("--store", help="A store key, e.g. salla:1234509876.")
@listing_options
def list_command(
    status: str | None,
    sink_id: int | None,
    store: str | None,
    since: datetime | None,
    limit: int,
    cursor: str | None,
    as_json: bool,
) -> None:
    """Deliveries, newest first."""
    runtime = open_runtime()
    with runtime.sessions() as session, bad_input():
        page = ops.list_deliveries(session, status, sink_id, store, since, cursor, limit)
    echo_listing(page, as_json, HEADERS, _cells)


def _cells(row: ops.DeliveryRow) -> tuple[object, ...]:
    error = (
        f"{row.last_status_code} {row.last_error or ''}" if row.last_status_code else row.last_error
    )
    return (
        row.id, row.status, row.sink_id, row.store, row.event_type, row.attempts,
        row.created_at, error,
    )  # fmt: skip


@deliveries.command("show")
@click.argument("delivery_id")
@json_option
def show(delivery_id: str, as_json: bool) -> None:
    """One delivery: its payload (personal data masked) and every attempt."""
    runtime = open_runtime()
    with runtime.sessions() as session, bad_input():
        detail = ops.show_delivery(session, delivery_id)
    if as_json:
        echo_json(detail)
        return
    row = detail.delivery
    echo_table(("FIELD", "VALUE"), [
        ("id", row.id), ("status", row.status), ("sink", f"{row.sink_id} ({detail.sink_kind})"),
        ("store", row.store), ("customer", detail.customer_id), ("event", row.event_type),
        ("attempts", row.attempts), ("created", row.created_at),
        ("next attempt", row.next_attempt_at), ("delivered", row.delivered_at),
        ("last error", row.last_error),
    ], limit=200)  # fmt: skip
    click.echo("\npayload:")
    echo_json(detail.payload)
    click.echo("\nattempts:" if detail.attempts else "\nattempts: none recorded")
    attempts = [
        (a.number, a.outcome, a.started_at, a.duration_ms, a.status_code, a.error)
        for a in detail.attempts
    ]
    if attempts:
        echo_table(("#", "OUTCOME", "STARTED", "MS", "STATUS", "ERROR"), attempts, limit=100)


@deliveries.command("retry")
@click.argument("delivery_ids", nargs=-1)
@click.option("--status", type=click.Choice(ops.RETRYABLE), help="Every delivery in this state.")
@click.option("--sink", "sink_id", type=int, help="With --status: only this sink's.")
@click.option("--since", type=Since(), help="With --status: only those created since.")
@json_option
def retry(
    delivery_ids: tuple[str, ...],
    status: str | None,
    sink_id: int | None,
    since: datetime | None,
    as_json: bool,
) -> None:
    """Send dead deliveries again (by id, or every one matching --status)."""
    if bool(delivery_ids) == (status is not None):
        raise BadInput("give delivery ids or --status dead, not both")
    if delivery_ids and (sink_id is not None or since is not None):
        raise BadInput("--sink and --since go with --status")
    runtime = open_runtime()
    with bad_input():
        if delivery_ids:
            moved = _retry_ids(runtime, delivery_ids)
        else:
            moved = _retry_all(runtime, status or DEAD, sink_id, since)
    note = ring(runtime, Swept(deliveries=moved))
    _report("retried", moved, delivery_ids, note, as_json)


def _retry_ids(runtime: Runtime, delivery_ids: tuple[str, ...]) -> list[str]:
    with runtime.transaction() as session:
        return ops.retry(session, delivery_ids)


def _retry_all(
    runtime: Runtime, status: str, sink_id: int | None, since: datetime | None
) -> list[str]:
    """Batch after batch (each committed) until none matches: bounded transactions."""
    moved: list[str] = []
    while True:
        with runtime.transaction() as session:
            batch = ops.retry_matching(session, status, sink_id, since)
        moved += batch
        if len(batch) < ops.BULK_BATCH:
            return moved


@deliveries.command("discard")
@click.argument("delivery_ids", nargs=-1, required=True)
@json_option
def discard(delivery_ids: tuple[str, ...], as_json: bool) -> None:
    """Never send these (pending, retrying or dead ones become skipped)."""
    runtime = open_runtime()
    with runtime.transaction() as session:
        moved = ops.discard(session, delivery_ids)
    _report("discarded", moved, delivery_ids, "", as_json)


def _report(verb: str, moved: list[str], asked: tuple[str, ...], note: str, as_json: bool) -> None:
    untouched = sorted(set(asked) - set(moved))
    if as_json:
        echo_json({verb: moved, "untouched": untouched})
        return
    click.echo(f"{verb} {len(moved)} deliveries{note}")
    for delivery_id in moved:
        click.echo(f"  {delivery_id}")
    if untouched:
        click.echo(
            f"left as they are (delivered, skipped, in flight or unknown): {' '.join(untouched)}"
        )
