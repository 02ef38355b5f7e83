"""``loyalty-relay sinks add|list|test|enable|disable|pause|resume``: where changes go."""

from __future__ import annotations

import json
import secrets
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import click
from kombu.exceptions import KombuError
from sqlalchemy import select

from worker import dispatch
from worker.cli.kit import Target, add_sink, open_runtime, parse_store_key, secret_option
from worker.errors import RelayError
from worker.pipeline import holding
from worker.pipeline.breaker import BREAKER
from worker.pipeline.outbox import Due, make_sink
from worker.points import (
    BALANCE_CHANGED,
    CHANGE_KINDS,
    CustomerContact,
    PointsSnapshot,
    change_payload,
)
from worker.reactions import validate_rules
from worker.runtime import Runtime
from worker.scrub import scrub_error
from worker.sinks import get_sink
from worker.sinks.base import OutboundDelivery, StoreInfo
from worker.storage.models import Sink, Store, utcnow


def _kinds(_ctx: click.Context, _param: click.Parameter, value: str) -> list[str]:
    kinds = [kind.strip() for kind in value.split(",") if kind.strip()]
    unknown = [kind for kind in kinds if kind not in CHANGE_KINDS]
    if unknown or not kinds:
        raise click.BadParameter(f"choose from {', '.join(CHANGE_KINDS)}")
    return kinds


@click.group()
def sinks() -> None:
    """Subscribe endpoints to a store's changes."""


@sinks.group()
@click.option("--store", "store_key", required=True, help="Store key, e.g. salla:1234509876.")
@click.option(
    "--kinds",
    default=",".join(CHANGE_KINDS),
    callback=_kinds,
    show_default=True,
    help="Comma-separated change kinds to subscribe to.",
)
@click.option("--only", type=click.Choice(["increases", "decreases"]), help="Balance direction.")
@click.option("--min-change", help="Smallest change in available points worth sending.")
@click.option("--quiet-hours", help="HH:MM-HH:MM in the store's time zone; messages wait.")
@click.option("--collapse-seconds", type=float, help="Messages wait this long for later changes.")
@click.pass_context
def add(
    ctx: click.Context,
    store_key: str,
    kinds: list[str],
    only: str | None,
    min_change: str | None,
    quiet_hours: str | None,
    collapse_seconds: float | None,
) -> None:
    """Add a sink to a store (then choose its kind)."""
    platform, external_id = parse_store_key(store_key)
    rules = _rules(only, min_change, quiet_hours, collapse_seconds)
    ctx.obj = Target(platform, external_id, kinds, rules)


def _rules(
    only: str | None, min_change: str | None, quiet_hours: str | None, collapse: float | None
) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    if only:
        raw["direction"] = only.removesuffix("s")
    if min_change is not None:
        raw["min_change"] = min_change
    if quiet_hours is not None:
        start, _, end = quiet_hours.partition("-")
        raw["quiet_hours"] = {"start": start.strip(), "end": end.strip()}
    if collapse is not None:
        raw["collapse_seconds"] = collapse
    try:
        return validate_rules(raw)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@add.command("webhook")
@click.option("--url", required=True, help="Endpoint receiving Standard Webhooks POSTs.")
@secret_option(
    "--secret",
    envvar="RELAY_SINK_SECRET",
    required=True,
    help="whsec_… signing secret (space-separate to rotate).",
)
@click.pass_obj
def add_webhook(target: Target, url: str, secret: str) -> None:
    """A signed webhook (Standard Webhooks) to any HTTPS endpoint."""
    try:
        config = get_sink("webhook").validate_config({"url": url, "secret": secret})
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    add_sink(target, "webhook", config)


@sinks.command("list")
def list_sinks() -> None:
    """Sinks with their store, kind, rules and subscriptions; never their secrets."""
    runtime = open_runtime()
    with runtime.sessions() as session:
        rows = session.execute(select(Sink, Store).join(Store).order_by(Sink.id)).all()
        if not rows:
            click.echo("no sinks yet: loyalty-relay sinks add --help")
        for sink, store in rows:
            config = runtime.cipher.open(sink.config)
            target = _without_query(config.get("url") or config.get("api_base") or "")
            click.echo(f"{sink.id:<5} {store.key:<26} {sink.kind:<8} {state(sink):<9} {target}")
            click.echo(f"      kinds: {', '.join(sink.kinds)}")
            if sink.rules:
                click.echo(f"      rules: {json.dumps(sink.rules, sort_keys=True)}")
            click.echo(f"      health: {health(sink)}")


def state(sink: Sink) -> str:
    """enabled, disabled, paused by operator, or breaker open — with the reason."""
    if not sink.enabled:
        return f"disabled ({sink.disabled_reason or 'by hand'})"
    reason = scrub_error(sink.paused_reason, 120)
    if sink.paused and sink.paused_by == BREAKER:
        return f"breaker open (next probe {_moment(sink.probe_at)}; {reason or 'failing'})"
    if sink.paused:
        return f"paused by operator ({reason})" if reason else "paused by operator"
    return "enabled"


def health(sink: Sink) -> str:
    success, failure = _moment(sink.last_success_at), _moment(sink.last_failure_at)
    failures = f"{sink.consecutive_failures} consecutive failures"
    return f"{failures}, last success {success}, last failure {failure}"


def _moment(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ") if moment else "never"


@sinks.command("enable")
@click.argument("sink_id", type=int)
def enable(sink_id: int) -> None:
    """Send to this sink again."""
    _set_enabled(sink_id, True, None)


@sinks.command("disable")
@click.argument("sink_id", type=int)
@click.option("--reason", default="disabled by hand", show_default=True)
def disable(sink_id: int, reason: str) -> None:
    """Stop sending to this sink (pending deliveries are skipped)."""
    _set_enabled(sink_id, False, reason)


def _set_enabled(sink_id: int, enabled: bool, reason: str | None) -> None:
    runtime = open_runtime()
    _find(runtime, sink_id)
    with runtime.transaction() as session:
        sink = session.get_one(Sink, sink_id)
        sink.enabled, sink.disabled_reason = enabled, reason
    click.echo(f"sink {sink_id} {'enabled' if enabled else 'disabled'}")


@sinks.command("pause")
@click.argument("sink_id", type=int)
@click.option("--reason", help="Shown beside the sink's state.")
def pause(sink_id: int, reason: str | None) -> None:
    """Hold this sink's deliveries (none is skipped) until `sinks resume`."""
    runtime = open_runtime()
    _find(runtime, sink_id)
    if holding.pause_sink(runtime, sink_id, reason):
        click.echo(f"sink {sink_id} paused: its deliveries wait until `sinks resume {sink_id}`")
    else:
        click.echo(f"sink {sink_id} was already paused")


@sinks.command("resume")
@click.argument("sink_id", type=int)
def resume(sink_id: int) -> None:
    """Send this sink's waiting deliveries again (closes an open circuit breaker too)."""
    runtime = open_runtime()
    _find(runtime, sink_id)
    released = holding.resume_sink(runtime, sink_id)
    if released is None:
        click.echo(f"sink {sink_id} was not paused")
        return
    click.echo(
        f"sink {sink_id} resumed: {len(released)} waiting deliveries {_ring(runtime, released)}"
    )


def _find(runtime: Runtime, sink_id: int) -> Sink:
    with runtime.sessions() as session:
        sink = session.get(Sink, sink_id)
    if sink is None:
        raise click.ClickException(f"no sink {sink_id}: see loyalty-relay sinks list")
    return sink


def _ring(runtime: Runtime, released: list[Due]) -> str:
    """Enqueue the released deliveries; they are due, so the sweeper sends them otherwise."""
    from worker.celery_app import create_celery

    app = create_celery(runtime.settings)
    try:
        for due in released:
            dispatch.enqueue(app, dispatch.DELIVER, due.delivery_id, due.countdown)
    except (KombuError, OSError):
        return "are due; the broker is unavailable, the sweeper will send them"
    return "queued"


@sinks.command("test")
@click.argument("sink_id", type=int)
@click.option("--email", help="Recipient for sinks that address a person (CRM, email).")
@click.option("--name", default="Sara", show_default=True)
@click.option("--lang", type=click.Choice(["ar", "en"]), help="The customer's language.")
def test_sink(sink_id: int, email: str | None, name: str, lang: str | None) -> None:
    """Send one sample delivery now and print what the sink answered."""
    runtime = open_runtime()
    sink = _find(runtime, sink_id)
    with runtime.sessions() as session:
        store = session.get_one(Store, sink.store_id)
    delivery = sample_delivery(store, CustomerContact(email=email, name=name, locale=lang))
    try:
        result = make_sink(runtime, sink).send(delivery)
    except RelayError as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from None
    click.echo(f"sink {sink_id} ({sink.kind}): {result.status_code or 'ok'} {result.detail}")


def sample_delivery(store: Store, contact: CustomerContact) -> OutboundDelivery:
    """A plausible balance change for ``sinks test`` (marked as a test in its id)."""
    now = utcnow()
    expiry = now + timedelta(days=30)
    before = PointsSnapshot(available=Decimal(750))
    after = PointsSnapshot(
        available=Decimal(1000), next_expiry_at=expiry, next_expiry_points=Decimal(250)
    )
    payload = change_payload(
        platform=store.platform, store=store.key, customer_id="test-customer",
        kinds=[BALANCE_CHANGED], before=before, after=after, timezone=store.timezone,
    )  # fmt: skip
    return OutboundDelivery(
        id=f"msg_test_{secrets.token_hex(8)}",
        event_type=BALANCE_CHANGED,
        payload=payload,
        created_at=now,
        attempt=1,
        store=StoreInfo(store.key, store.name, store.timezone, store.locale),
        contact=contact,
    )


def _without_query(url: str) -> str:
    """Endpoints sometimes carry a token in the query string: never print it."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}{parts.path}" if parts.hostname else ""
