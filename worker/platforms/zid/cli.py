"""Zid's command line: ``stores add zid`` (``add_zid``) and ``zid register-webhooks``.

Registration is the only way Zid stores get authenticated webhooks (Zid signs no
body; see ``worker.platforms.zid.subscriptions``), so it is a command an operator can rerun at any
time to repair a store: it replaces our subscriptions and rotates the Basic
credentials, keeping the previous ones accepted while Zid switches over.
Credentials are never printed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import click
from sqlalchemy.exc import SQLAlchemyError

from worker.cli.kit import (
    check_timezone,
    check_url,
    credentials_error,
    open_runtime,
    parse_store_key,
    save,
    secret_option,
)
from worker.crypto import CredentialsError
from worker.errors import RelayError
from worker.platforms.base import StoreUpdate
from worker.platforms.zid import ZidPlatform
from worker.platforms.zid.client import bearer
from worker.platforms.zid.schemas import WebhookSubscription
from worker.platforms.zid.subscriptions import (
    BasicCredentials,
    Conditions,
    list_subscriptions,
    ours,
    parse_conditions,
    register,
    rotated_secrets,
    target_url,
)
from worker.platforms.zid.webhooks import SUBSCRIBED_EVENTS
from worker.runtime import Runtime
from worker.storage.models import Store
from worker.stores import ACTIVE, StoreContext, find_store, save_store

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


@click.command("zid")
@click.option("--store-id", required=True, help="Zid store id.")
@secret_option(
    "--authorization",
    envvar="ZID_AUTHORIZATION",
    required=True,
    help="The token sent as Authorization: Bearer.",
)
@secret_option(
    "--manager-token",
    envvar="ZID_MANAGER_TOKEN",
    required=True,
    help="The token sent as X-Manager-Token.",
)
@secret_option(
    "--refresh-token",
    envvar="ZID_REFRESH_TOKEN",
    help="OAuth refresh token (single use; rotated on refresh).",
)
@click.option("--api-base", callback=check_url, help="API base (default: ZID_API_BASE).")
@click.option("--name")
@click.option("--timezone", callback=check_timezone, help="Store time zone (default Asia/Riyadh).")
@click.option("--locale", type=click.Choice(["ar", "en"]), help="Default customer language.")
def add_zid(
    store_id: str,
    authorization: str,
    manager_token: str,
    refresh_token: str | None,
    api_base: str | None,
    name: str | None,
    timezone: str | None,
    locale: str | None,
) -> None:
    """Register a Zid store (then: loyalty-relay zid register-webhooks)."""
    if not store_id.strip().isdigit():
        raise click.BadParameter("a Zid store id is a number", param_hint="--store-id")
    credentials: dict[str, Any] = {
        "authorization": _token(bearer(authorization.strip()), "--authorization"),
        "manager_token": _token(manager_token, "--manager-token"),
    }
    if refresh_token and refresh_token.strip():
        credentials["refresh_token"] = refresh_token.strip()
    update = StoreUpdate(status=ACTIVE, credentials=credentials)
    fields = {"api_base": api_base, "name": name, "timezone": timezone, "locale": locale}
    save("zid", store_id.strip(), update, fields)


def _token(value: str, option: str) -> str:
    if not value.strip() or any(character.isspace() for character in value.strip()):
        raise click.BadParameter("a token is one word, not empty", param_hint=option)
    return value.strip()


@click.group("zid")
def zid() -> None:
    """Zid stores: webhook subscriptions."""


def _zid_store(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    platform, store_id = parse_store_key(value)
    if platform != "zid":
        raise click.BadParameter(f"{value!r} is not a Zid store key like zid:3059")
    return store_id


def _public_url(ctx: click.Context, param: click.Parameter, value: str) -> str:
    url = check_url(ctx, param, value) or ""
    parts = urlsplit(url)
    if parts.query or parts.fragment or not parts.hostname:
        raise click.BadParameter(
            f"{value!r} must be a bare base URL like https://relay.example.com"
        )
    if parts.scheme != "https" and parts.hostname not in LOCAL_HOSTS:
        raise click.BadParameter(f"{value!r} must be https:// (Zid sends credentials to it)")
    return url


def _conditions(_ctx: click.Context, _param: click.Parameter, value: tuple[str, ...]) -> Conditions:
    try:
        return parse_conditions(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@zid.command("register-webhooks")
@click.option("--store", "store_id", required=True, callback=_zid_store, help="zid:<store id>")
@click.option("--public-url", required=True, callback=_public_url, help="This receiver's URL.")
@click.option(
    "--condition",
    "conditions",
    multiple=True,
    callback=_conditions,
    metavar="[EVENT:]KEY=VALUE",
    help="Zid's conditions for order.create/order.status.update: status, "
    "delivery_option_id, payment_method (e.g. status=delivered). Repeatable.",
)
@click.option("--dry-run", is_flag=True, help="Show what would change; change nothing.")
def register_webhooks(
    store_id: str, public_url: str, conditions: Conditions, dry_run: bool
) -> None:
    """Create (or repair) the store's Zid webhook subscriptions, with new Basic credentials."""
    runtime = open_runtime()
    app_id = runtime.settings.zid_app_id
    if not app_id:
        raise click.UsageError("ZID_APP_ID is not set: Zid files our subscriptions under it")
    platform = ZidPlatform(runtime.settings)
    with one_line_errors():
        _active_store(runtime, store_id)
        if dry_run:
            _dry_run(runtime, platform, store_id, app_id, public_url, conditions)
            return
        credentials = BasicCredentials.generate()
        kept = _save_secret(runtime, store_id, credentials.header)
        calls = platform.api.calls(_context(runtime, platform, store_id))
        created = register(
            calls,
            app_id=app_id,
            public_url=public_url,
            credentials=credentials,
            conditions=conditions,
        )
    click.echo(f"zid:{store_id}: {len(created)} subscriptions of app {app_id}")
    _print_table(created)
    click.echo(f"new Basic credentials stored as the newest of {kept} accepted webhook secrets")


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Zid's and the database's failures as one line, never a traceback."""
    try:
        yield
    except RelayError as exc:
        raise click.ClickException(f"Zid: {exc}") from None
    except CredentialsError as exc:
        raise credentials_error(exc) from None
    except SQLAlchemyError as exc:
        raise click.ClickException(f"database error: {str(exc).splitlines()[0][:200]}") from None


def _active_store(runtime: Runtime, store_id: str) -> Store:
    with runtime.sessions() as session:
        store = find_store(session, "zid", store_id)
    if store is None:
        raise click.UsageError(f"no store zid:{store_id}: add it first with stores add zid")
    if store.status != ACTIVE:
        raise click.UsageError(f"store zid:{store_id} is {store.status}: add it again first")
    return store


def _context(runtime: Runtime, platform: ZidPlatform, store_id: str) -> StoreContext:
    """A context read now, so a token refresh during the run keeps the new secrets."""
    store = _active_store(runtime, store_id)
    return StoreContext(runtime, store, platform.quotas, platform.default_api_base)


def _save_secret(runtime: Runtime, store_id: str, header: str) -> int:
    """Store the new header before Zid has it, so its first delivery is accepted."""
    with runtime.transaction() as session:
        store = find_store(session, "zid", store_id)
        assert store is not None  # checked by _active_store; stores are never deleted
        current = runtime.cipher.open(store.credentials).get("webhook_secrets")
        kept = rotated_secrets(current, header)
        save_store(
            runtime, session, "zid", store_id, StoreUpdate(credentials={"webhook_secrets": kept})
        )
    return len(kept)


def _dry_run(
    runtime: Runtime,
    platform: ZidPlatform,
    store_id: str,
    app_id: str,
    public_url: str,
    conditions: Conditions,
) -> None:
    calls = platform.api.calls(_context(runtime, platform, store_id))
    existing = ours(list_subscriptions(calls), app_id)
    click.echo(f"dry run: nothing changes. zid:{store_id}, app {app_id}")
    click.echo(f"would delete {len(existing)} existing subscriptions of this app")
    _print_table(existing)
    click.echo(f"would create {len(SUBSCRIBED_EVENTS)} subscriptions:")
    for event in SUBSCRIBED_EVENTS:
        when = _when(conditions.get(event))
        click.echo(f"  {event:<28} {target_url(public_url, store_id, event)}{when}")
    click.echo("would store new Basic credentials as the newest webhook secret")


def _when(conditions: dict[str, str | int] | None) -> str:
    if not conditions:
        return ""
    return " when " + ", ".join(f"{key}={value}" for key, value in conditions.items())


def _print_table(subscriptions: Sequence[WebhookSubscription]) -> None:
    if not subscriptions:
        return
    click.echo(f"{'EVENT':<28} {'ACTIVE':<7} {'ID':<38} TARGET URL")
    for subscription in subscriptions:
        active = {True: "yes", False: "no", None: "?"}[subscription.active]
        click.echo(
            f"{subscription.event:<28} {active:<7} {subscription.id:<38} {subscription.target_url}"
        )
