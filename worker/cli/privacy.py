"""``loyalty-relay privacy forget|export|requests``: a customer's (or a store's)
privacy requests, for every platform. What is deleted and exported is
``worker.privacy``'s; Shopify's compliance webhooks run the same code."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from worker import privacy as privacy_module
from worker.cli.kit import credentials_error, fail, open_runtime, parse_store_key
from worker.crypto import CredentialsError
from worker.customers import EMAIL_PREFIX
from worker.platforms import build_platforms
from worker.runtime import Runtime
from worker.storage.models import DataRequest, Store
from worker.stores import find_store

CUSTOMER_LIMIT = 255
Result = TypeVar("Result")


@click.group()
def privacy() -> None:
    """Privacy requests: forget a customer or a store, export a customer's data."""


def check_customer(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """A platform's customer id, or an email address (found by its hash and in contacts)."""
    if value is None:
        return None
    text = value.strip()
    if not text or len(text) > CUSTOMER_LIMIT or any(c.isspace() for c in text):
        raise click.BadParameter("give the platform's customer id or the customer's email")
    if "@" not in text:
        return text  # an id, or a stored ``email:h:…`` ref as ``privacy requests`` shows it
    address = text.lower().removeprefix(EMAIL_PREFIX)
    return EMAIL_PREFIX + address


@privacy.command("forget")
@click.option("--store", "store_key", required=True, help="Store key, e.g. salla:1234509876.")
@click.option("--customer", callback=check_customer, help="Customer id or email address.")
@click.option("--whole-store", is_flag=True, help="Forget the store and all its data instead.")
def forget(store_key: str, customer: str | None, whole_store: bool) -> None:
    """Delete everything stored about a customer (or, with --whole-store, a store)."""
    if (customer is None) == (not whole_store):
        raise click.UsageError("give either --customer or --whole-store")

    def run(runtime: Runtime, session: Session, store: Store) -> dict[str, int]:
        platforms = build_platforms(runtime.settings)
        if customer is None:
            return privacy_module.forget_store(runtime, session, platforms, store)
        return privacy_module.forget_customer(runtime, session, platforms, store, [customer])

    counts = _with_store(store_key, run)
    deleted = ", ".join(f"{table} {count}" for table, count in counts.items() if count)
    click.echo(f"forgotten: {deleted or 'nothing was stored'}")


@privacy.command("export")
@click.option(
    "--store", "store_key", required=True, help="Store key, e.g. shopify:x.myshopify.com."
)
@click.option("--customer", required=True, callback=check_customer, help="Id or email address.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write JSON here.")
def export(store_key: str, customer: str, out: Path | None) -> None:
    """Everything stored about a customer, as JSON (for a data request)."""
    document = _with_store(
        store_key,
        lambda runtime, session, store: privacy_module.export_customer(
            runtime, session, store, [customer]
        ),
    )
    text = json.dumps(document, ensure_ascii=False, indent=2, sort_keys=True)
    if out is None:
        click.echo(text)
        return
    try:
        out.write_text(text + "\n", encoding="utf-8")
    except OSError as exc:
        raise fail(f"cannot write {out}: {exc.strerror}") from None
    click.echo(f"exported {len(document['customers'])} customer record(s) to {out}")


@privacy.command("requests")
@click.option("--store", "store_key", help="Only this store.")
def requests(store_key: str | None) -> None:
    """Customers' data requests not exported yet (Shopify customers/data_request)."""
    runtime = open_runtime()
    query = select(DataRequest, Store).join(Store, Store.id == DataRequest.store_id)
    query = query.where(DataRequest.exported_at.is_(None)).order_by(DataRequest.received_at)
    if store_key is not None:
        platform, external_id = parse_store_key(store_key)
        query = query.where(Store.platform == platform, Store.external_id == external_id)
    with runtime.sessions() as session:
        rows = [(request, store) for request, store in session.execute(query)]
    if not rows:
        click.echo("no data requests waiting")
        return
    for request, store in rows:
        click.echo(
            f"{request.received_at:%Y-%m-%d %H:%M} {store.key} customer {request.customer_id}: "
            f"loyalty-relay privacy export --store {store.key} --customer {request.customer_id}"
        )


def _with_store(store_key: str, run: Callable[[Runtime, Session, Store], Result]) -> Result:
    """Run ``run`` in one transaction on the named store; errors become one line."""
    platform, external_id = parse_store_key(store_key)
    runtime = open_runtime()
    try:
        with runtime.transaction() as session:
            store = find_store(session, platform, external_id)
            if store is None:
                raise fail(f"no store {platform}:{external_id} (see: loyalty-relay stores list)")
            return run(runtime, session, store)
    except CredentialsError as exc:
        raise credentials_error(exc) from None
    except SQLAlchemyError as exc:
        raise fail(f"database error: {type(exc).__name__}") from None
