"""``loyalty-relay sinks add|list``: where a store's changes go."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import click
from sqlalchemy import select

from worker.cli.common import open_runtime, parse_store_key
from worker.points import CHANGE_KINDS
from worker.sinks import get_sink
from worker.storage.models import Sink, Store
from worker.stores import find_store


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
@click.pass_context
def add(ctx: click.Context, store_key: str, kinds: list[str]) -> None:
    """Add a sink to a store."""
    platform, external_id = parse_store_key(store_key)
    ctx.obj = Target(platform, external_id, kinds)


@dataclass(frozen=True)
class Target:
    platform: str
    external_id: str
    kinds: list[str]


@add.command("webhook")
@click.option("--url", required=True, help="Endpoint receiving Standard Webhooks POSTs.")
@click.option("--secret", required=True, help="whsec_… signing secret (space-separate to rotate).")
@click.pass_obj
def add_webhook(target: Target, url: str, secret: str) -> None:
    """A signed webhook (Standard Webhooks) to any HTTPS endpoint."""
    try:
        config = get_sink("webhook").validate_config({"url": url, "secret": secret})
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    _add(target, "webhook", config)


def _add(target: Target, kind: str, config: dict[str, Any]) -> None:
    runtime = open_runtime()
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
        )
        session.add(sink)
        session.flush()
        click.echo(f"sink {sink.id} ({kind}) added to {store.key}")


@sinks.command("list")
def list_sinks() -> None:
    """Sinks with their store, kind and subscriptions; never their secrets."""
    runtime = open_runtime()
    with runtime.sessions() as session:
        rows = session.execute(select(Sink, Store).join(Store).order_by(Sink.id)).all()
        if not rows:
            click.echo("no sinks yet: loyalty-relay sinks add --help")
        for sink, store in rows:
            target = _without_query(runtime.cipher.open(sink.config).get("url", ""))
            state = "enabled" if sink.enabled else f"disabled ({sink.disabled_reason or 'by hand'})"
            click.echo(f"{sink.id:<5} {store.key:<26} {sink.kind:<8} {state:<9} {target}")
            click.echo(f"      kinds: {', '.join(sink.kinds)}")


def _without_query(url: str) -> str:
    """Endpoints sometimes carry a token in the query string: never print it."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}{parts.path}" if parts.hostname else ""
