"""``loyalty-relay inbox list|show|replay`` and ``refresh list|retry``: the stored
webhooks and the refresh jobs they became, for ops."""

from __future__ import annotations

from datetime import datetime

import click

from worker.cli.kit import open_runtime
from worker.cli.ops_kit import (
    BadInput,
    bad_input,
    echo_json,
    echo_listing,
    echo_table,
    json_option,
    listing_options,
    ring,
)
from worker.ops import inbox as inbox_ops
from worker.ops import refresh as refresh_ops
from worker.pipeline.sweeper import Swept
from worker.platforms import REGISTRY

EVENT_HEADERS = ("ID", "PLATFORM", "STORE", "EVENT", "STATUS", "RECEIVED", "BODY", "REASON")
JOB_HEADERS = ("ID", "STORE", "CUSTOMER", "SLOT", "STATUS", "TRIES", "DUE", "LAST ERROR")


@click.group()
def inbox() -> None:
    """Look at stored webhooks and replay them."""


@inbox.command("list")
@click.option("--store", help="A store key, e.g. salla:1234509876.")
@click.option("--event", help="An event type, e.g. order.created.")
@click.option("--platform", type=click.Choice(sorted(REGISTRY)), help="The receiving platform.")
@click.option("--status", type=click.Choice(inbox_ops.STATUSES))
@listing_options
def list_events(
    store: str | None,
    event: str | None,
    platform: str | None,
    status: str | None,
    since: datetime | None,
    limit: int,
    cursor: str | None,
    as_json: bool,
) -> None:
    """Webhooks, newest first."""
    runtime = open_runtime()
    with runtime.sessions() as session, bad_input():
        page = inbox_ops.list_events(
            session, store, event, status, since, cursor, limit, platform=platform
        )
    echo_listing(page, as_json, EVENT_HEADERS, lambda row: (
        row.id, row.platform, row.store_ref, row.event_type, row.status, row.received_at,
        "kept" if row.body_kept else "-", row.reason,
    ))  # fmt: skip


@inbox.command("show")
@click.argument("event_id", type=int)
@json_option
def show_event(event_id: int, as_json: bool) -> None:
    """One webhook, its body decrypted with personal data masked."""
    runtime = open_runtime()
    with runtime.sessions() as session, bad_input():
        detail = inbox_ops.show_event(runtime, session, event_id)
    if as_json:
        echo_json(detail)
        return
    row = detail.event
    echo_table(("FIELD", "VALUE"), [
        ("id", row.id), ("platform", row.platform), ("store", row.store_ref),
        ("event", row.event_type), ("status", row.status), ("reason", row.reason),
        ("customer", detail.customer_id), ("attempts", row.attempts),
        ("received", row.received_at), ("processed", row.processed_at),
    ], limit=200)  # fmt: skip
    click.echo("\nbody:" if detail.body is not None else "\nbody: not kept")
    if detail.body is not None:
        echo_json(detail.body)


@inbox.command("replay")
@click.argument("event_ids", type=int, nargs=-1, required=True)
@json_option
def replay(event_ids: tuple[int, ...], as_json: bool) -> None:
    """Process these webhooks again (a refresh follows; nothing is sent unless
    the customer's points changed)."""
    runtime = open_runtime()
    replayed = inbox_ops.replay(runtime, event_ids)
    untouched = sorted(set(event_ids) - set(replayed))
    if as_json:
        echo_json({"replayed": replayed, "untouched": untouched})
        return
    click.echo(f"replayed {len(replayed)} events: {' '.join(map(str, replayed)) or '-'}")
    if untouched:
        listed = " ".join(map(str, untouched))
        click.echo(f"left as they are (still in flight, no body kept or unknown): {listed}")


@click.group()
def refresh() -> None:
    """Look at refresh jobs and run failed ones again."""


@refresh.command("list")
@click.option("--status", type=click.Choice(refresh_ops.STATUSES))
@click.option("--store", help="A store key, e.g. salla:1234509876.")
@listing_options
def list_jobs(
    status: str | None,
    store: str | None,
    since: datetime | None,
    limit: int,
    cursor: str | None,
    as_json: bool,
) -> None:
    """Refresh jobs, latest due first."""
    runtime = open_runtime()
    with runtime.sessions() as session, bad_input():
        page = refresh_ops.list_jobs(session, status, store, since, cursor, limit)
    echo_listing(page, as_json, JOB_HEADERS, lambda row: (
        row.id, row.store, row.customer_id, row.slot, row.status, row.attempts, row.due_at,
        row.last_error,
    ))  # fmt: skip


@refresh.command("retry")
@click.argument("job_ids", type=int, nargs=-1)
@click.option("--status", type=click.Choice(refresh_ops.RETRYABLE), help="Every job in it.")
@json_option
def retry_jobs(job_ids: tuple[int, ...], status: str | None, as_json: bool) -> None:
    """Run failed (or held) refresh jobs again, now."""
    if bool(job_ids) == (status is not None):
        raise BadInput("give job ids or --status failed, not both")
    runtime = open_runtime()
    with runtime.transaction() as session, bad_input():
        moved = refresh_ops.retry_jobs(session, list(job_ids) if job_ids else None, status)
    note = ring(runtime, Swept(refreshes=moved))
    if as_json:
        echo_json({"retried": moved, "untouched": sorted(set(job_ids) - set(moved))})
        return
    click.echo(f"retried {len(moved)} refresh jobs{note}: {' '.join(map(str, moved)) or '-'}")
