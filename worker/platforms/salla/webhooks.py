"""Salla webhooks: verification and what each event means for us.

Reference: PROVIDERS.md (Salla: webhook authenticity, envelope and events).
The merchant id is read from the body *before* verification only to choose
which secrets to try (a store's own secret overrides the app-wide ones);
nothing else of an unverified body is used.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from worker.errors import BadPayload, Unauthorized
from worker.platforms.base import (
    EventPlan,
    InboundWebhook,
    ReceivedEvent,
    StoreLookup,
    StoreUpdate,
)
from worker.platforms.common import external_id
from worker.points import CustomerContact

AUTHORIZE = "app.store.authorize"
UNINSTALLED = "app.uninstalled"
ORDER_EVENTS = frozenset(
    {
        "order.created",
        "order.updated",
        "order.status.updated",
        "order.cancelled",
        "order.refunded",
        "order.deleted",
        "order.products.updated",
        "order.payment.updated",
        "order.coupon.updated",
        "order.total.price.updated",
        "invoice.created",
    }
)
CUSTOMER_EVENTS = frozenset({"customer.created", "customer.updated", "customer.login"})
APP_EVENTS = frozenset({AUTHORIZE, UNINSTALLED})
HANDLED = ORDER_EVENTS | CUSTOMER_EVENTS | APP_EVENTS


def receive(
    webhook: InboundWebhook, lookup: StoreLookup, app_secrets: tuple[str, ...]
) -> ReceivedEvent:
    document = _json_or_none(webhook.body)
    merchant = _merchant(document)
    known = lookup(merchant) if merchant else None
    secrets = known.webhook_secrets if known and known.webhook_secrets else app_secrets
    verify(webhook.headers, webhook.body, secrets)
    if document is None or not isinstance(document.get("event"), str):
        raise BadPayload("body is not a Salla event (JSON object with an 'event')")
    event_type: str = document["event"]
    ignored = _ignored_reason(event_type, merchant, known.status if known else None)
    return ReceivedEvent(
        event_type=event_type[:100],
        store_ref=merchant,
        dedupe_key=_dedupe_key(merchant, webhook.body),
        ignored_reason=ignored,
        # An order right after app.store.authorize: the store is being registered.
        waiting_for_store=known is None and ignored is None and event_type not in APP_EVENTS,
    )


def verify(headers: Mapping[str, str], body: bytes, secrets: tuple[str, ...]) -> None:
    if not secrets:
        raise Unauthorized("no webhook secret is configured for this store")
    strategy = headers.get("x-salla-security-strategy", "Signature").strip().lower()
    if strategy == "signature":
        _verify_signature(headers.get("x-salla-signature", ""), body, secrets)
    elif strategy == "token":
        _verify_token(headers.get("authorization", ""), secrets)
    else:
        raise Unauthorized("unknown X-Salla-Security-Strategy")


def _verify_signature(given: str, body: bytes, secrets: tuple[str, ...]) -> None:
    given_bytes = given.strip().lower().encode("ascii", "replace")
    for secret in secrets:
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest().encode()
        if hmac.compare_digest(expected, given_bytes):
            return
    raise Unauthorized("bad or missing X-Salla-Signature")


def _verify_token(authorization: str, secrets: tuple[str, ...]) -> None:
    token = authorization.strip()
    if token[:7].lower() == "bearer ":
        token = token[7:].strip()
    given = token.encode("utf-8", "replace")
    for secret in secrets:
        if hmac.compare_digest(secret.encode(), given):
            return
    raise Unauthorized("bad or missing Authorization token")


def _ignored_reason(event_type: str, merchant: str | None, store_status: str | None) -> str | None:
    if event_type not in HANDLED:
        return f"event {event_type!r} does not affect points"
    if event_type in APP_EVENTS:
        return None
    if merchant is None:
        return "unknown merchant"
    if store_status == "uninstalled":
        return "store has uninstalled the app"
    return None


def _dedupe_key(merchant: str | None, body: bytes) -> str:
    # Salla sends no delivery id: the same merchant and byte-identical body is a retry.
    digest = hashlib.sha256(b"salla\x00" + (merchant or "").encode() + b"\x00" + body)
    return digest.hexdigest()


def _json_or_none(body: bytes) -> dict[str, Any] | None:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return document if isinstance(document, dict) else None


def _merchant(document: Mapping[str, Any] | None) -> str | None:
    merchant = document.get("merchant") if document else None
    return external_id(merchant)


def plan(event_type: str, body: bytes) -> EventPlan:
    document = _json_or_none(body) or {}
    data = document.get("data")
    data = data if isinstance(data, dict) else {}
    if event_type == AUTHORIZE:
        return EventPlan(store_update=_authorization(data))
    if event_type == UNINSTALLED:
        return EventPlan(store_update=StoreUpdate(status="uninstalled"))
    customer = _customer_id(event_type, data)
    if customer is None:
        return EventPlan(ignored_reason="event names no customer (guest order?)")
    return EventPlan(
        customer_ids=(customer,),
        settle=event_type in ORDER_EVENTS,
        contact=_contact(data if event_type in CUSTOMER_EVENTS else data.get("customer")),
    )


def _contact(block: Any) -> CustomerContact | None:
    """Email, mobile and name from a Salla customer block (the points API has none)."""
    if not isinstance(block, dict):
        return None
    names = [block.get(key) for key in ("first_name", "last_name")]
    name = " ".join(n.strip() for n in names if isinstance(n, str) and n.strip()) or None
    return CustomerContact(
        email=_text(block.get("email")), phone=_text(block.get("mobile")), name=name
    )


def _text(value: Any) -> str | None:
    return value.strip()[:255] if isinstance(value, str) and value.strip() else None


def _customer_id(event_type: str, data: Mapping[str, Any]) -> str | None:
    if event_type in CUSTOMER_EVENTS:
        return external_id(data.get("id"))
    customer = data.get("customer")
    if isinstance(customer, dict):
        return external_id(customer.get("id"))
    return external_id(data.get("customer_id"))


def _authorization(data: Mapping[str, Any]) -> StoreUpdate:
    access, refresh = data.get("access_token"), data.get("refresh_token")
    if not isinstance(access, str) or not access:
        raise BadPayload("app.store.authorize without an access_token")
    credentials: dict[str, Any] = {"access_token": access}
    if isinstance(refresh, str) and refresh:
        credentials["refresh_token"] = refresh
    return StoreUpdate(
        status="active", credentials=credentials, token_expires_at=_expires(data.get("expires"))
    )


def _expires(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except (ValueError, OverflowError, OSError):
        return None
