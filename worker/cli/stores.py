"""``loyalty-relay stores add|list``: register stores, show them without secrets."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click
from sqlalchemy import select

from worker.cli.kit import check_timezone, check_url, open_runtime, save, secret_option
from worker.pipeline import dispatcher, refresh
from worker.platforms.base import StoreUpdate
from worker.storage.models import Store


@click.group()
def stores() -> None:
    """Register and inspect stores."""


@stores.group()
def add() -> None:
    """Register a store (or update one): credentials are encrypted at rest."""


@add.command("salla")
@click.option("--merchant-id", required=True, help="Salla merchant (store) id.")
@secret_option("--access-token", envvar="SALLA_ACCESS_TOKEN", required=True)
@secret_option("--refresh-token", envvar="SALLA_REFRESH_TOKEN")
@click.option("--expires-at", type=int, help="Access token expiry, unix timestamp.")
@click.option("--api-base", callback=check_url, help="Merchant API base (default: Salla's).")
@click.option(
    "--webhook-secret",
    multiple=True,
    envvar="SALLA_STORE_WEBHOOK_SECRETS",
    show_envvar=True,
    help="This store's own webhook secret(s); the variable holds them space-separated.",
)
@click.option("--name")
@click.option("--timezone", callback=check_timezone, help="Store time zone (default Asia/Riyadh).")
@click.option("--locale", type=click.Choice(["ar", "en"]), help="Default customer language.")
def add_salla(
    merchant_id: str,
    access_token: str,
    refresh_token: str | None,
    expires_at: int | None,
    api_base: str | None,
    webhook_secret: tuple[str, ...],
    name: str | None,
    timezone: str | None,
    locale: str | None,
) -> None:
    """Register a Salla store."""
    if not merchant_id.strip().isdigit():
        raise click.BadParameter("a Salla merchant id is a number", param_hint="--merchant-id")
    credentials: dict[str, Any] = {"access_token": access_token}
    if refresh_token:
        credentials["refresh_token"] = refresh_token
    if webhook_secret:
        credentials["webhook_secrets"] = list(webhook_secret)
    expires = datetime.fromtimestamp(expires_at, UTC) if expires_at else None
    update = StoreUpdate(status="active", credentials=credentials, token_expires_at=expires)
    fields = {"api_base": api_base, "name": name, "timezone": timezone, "locale": locale}
    save("salla", merchant_id.strip(), update, fields)


@stores.command("list")
def list_stores() -> None:
    """Stores with their status and whatever needs ops' attention; never their secrets."""
    runtime = open_runtime()
    with runtime.sessions() as session:
        rows = list(session.scalars(select(Store).order_by(Store.platform, Store.external_id)))
        held = refresh.needing_attention(session)
        backlogs = dispatcher.backlog_by_store(session, runtime.settings, datetime.now(UTC))
    if not rows:
        click.echo("no stores yet: loyalty-relay stores add salla --help")
        return
    click.echo(
        f"{'STORE':<28} {'STATUS':<13} {'TIME ZONE':<16} {'TOKEN EXPIRES':<20} "
        f"{'BACKLOG':>7} {'DRAINS IN':<10} REASON"
    )
    for store in rows:
        expires = (
            store.token_expires_at.strftime("%Y-%m-%d %H:%M") if store.token_expires_at else "-"
        )
        click.echo(
            f"{store.key:<28} {store.status:<13} {store.timezone:<16} {expires:<20} "
            f"{_backlog(backlogs.get(store.id))} {_reason(store, held.get(store.id, 0))}"
        )


def _backlog(backlog: dispatcher.Backlog | None) -> str:
    """Refresh jobs not finished, and how long the store's budget takes to drain them."""
    if backlog is None:
        return f"{0:>7} {'-':<10}"
    seconds = backlog.drain_seconds
    drains = "-" if seconds is None else _duration(seconds)
    return f"{backlog.waiting + backlog.in_flight:>7} {drains:<10}"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _reason(store: Store, held: int) -> str:
    """The status reason, and customers whose balance is held (an unknown points label)."""
    parts = [store.status_reason] if store.status_reason else []
    if held:
        parts.append(
            f"NEEDS ATTENTION: {held} customer(s) held on unknown points labels "
            "(see refresh jobs with status 'held')"
        )
    return "; ".join(parts)
