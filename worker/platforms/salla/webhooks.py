"""Salla webhooks: verification and what each event means for us.

Reference: https://docs.salla.dev/doc-421119 (webhooks: envelope, security
strategies) and the published examples in ``examples.py`` (one per event).
Where each event names its customer, as Salla documents it:

- the Orders model (``order.created``, ``order.updated``, ``order.cancelled``,
  ``order.refunded``, ``order.deleted`` …) is the order itself: ``data.customer``;
- ``order.status.updated`` is the status change, the order under it:
  ``data.order.customer``;
- ``invoice.created`` is the invoice: ``data.customer`` (``data.order_id`` beside it);
- the Customer model (``customer.created|updated|login``) is the customer: ``data``.

Every variant is tried in that order for every order event (a status change
carrying its order, an order carrying ``customer_id``), so a shape Salla uses
for one event and we did not expect for another still finds the customer.

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
from worker.platforms.identifiers import external_id
from worker.points import CustomerContact

AUTHORIZE = "app.store.authorize"
UNINSTALLED = "app.uninstalled"
# Reference: https://docs.salla.dev/doc-421413 (App Events). What the app's lifecycle
# means for the store: an expired or canceled subscription or trial pauses it (no API
# calls, its events ignored) until a subscription starts or renews, or the merchant
# authorizes the app again.
LIFECYCLE: dict[str, StoreUpdate] = {
    "app.subscription.started": StoreUpdate(status="active"),
    "app.subscription.renewed": StoreUpdate(status="active"),
    "app.subscription.expired": StoreUpdate(status="paused", status_reason="subscription expired"),
    "app.subscription.canceled": StoreUpdate(
        status="paused", status_reason="subscription canceled"
    ),
    "app.trial.started": StoreUpdate(status="active"),
    "app.trial.expired": StoreUpdate(status="paused", status_reason="trial expired"),
    "app.trial.canceled": StoreUpdate(status="paused", status_reason="trial canceled"),
}
# App events acknowledged with nothing to change, and why.
APP_NOTICES: dict[str, str] = {
    # Salla sends app.store.authorize (the tokens) right after these two.
    "app.installed": "installed: the store is registered by app.store.authorize",
    "app.updated": "app updated: new tokens follow in app.store.authorize",
    "app.settings.updated": "app settings are not used by loyalty-relay",
}
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
APP_EVENTS = frozenset({AUTHORIZE, UNINSTALLED, *LIFECYCLE, *APP_NOTICES})
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
    return None  # a paused store's events are ignored by the pipeline's gate, with its reason


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
    if event_type in APP_EVENTS:
        return _app_plan(event_type, data)
    block = _customer_block(event_type, data)
    customer = _customer_id(event_type, data, block)
    if customer is None:
        return EventPlan(ignored_reason="event names no customer (guest order?)")
    return EventPlan(
        customer_ids=(customer,),
        settle=event_type in ORDER_EVENTS,
        contact=_contact(block),
    )


def _app_plan(event_type: str, data: Mapping[str, Any]) -> EventPlan:
    if event_type == AUTHORIZE:
        return EventPlan(store_update=_authorization(data))
    if event_type == UNINSTALLED:
        return EventPlan(store_update=StoreUpdate(status="uninstalled"))
    if event_type in APP_NOTICES:
        return EventPlan(ignored_reason=APP_NOTICES[event_type])
    if data.get("item_type") == "addon":
        # Not in Salla's App Events samples; SallaApp/salla-partners-agent-kit
        # (.agents/skills/salla-app-billing/references/subscription-events.md) says these
        # events also fire for add-ons, told apart by item_type. An add-on is not the plan.
        return EventPlan(ignored_reason="add-on subscription: the store's plan is unchanged")
    return EventPlan(store_update=LIFECYCLE[event_type])


def _customer_block(event_type: str, data: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The block describing the customer: ``data`` itself, ``data.customer`` or
    ``data.order.customer`` (see the module docstring)."""
    if event_type in CUSTOMER_EVENTS:
        return data
    for holder in (data, data.get("order")):
        if isinstance(holder, Mapping) and isinstance(holder.get("customer"), Mapping):
            customer: Mapping[str, Any] = holder["customer"]
            return customer
    return None


def _customer_id(
    event_type: str, data: Mapping[str, Any], block: Mapping[str, Any] | None
) -> str | None:
    if block is not None and (found := external_id(block.get("id"))) is not None:
        return found
    if event_type in CUSTOMER_EVENTS:
        return None
    order = data.get("order")
    for holder in (data, order if isinstance(order, Mapping) else {}):
        if (found := external_id(holder.get("customer_id"))) is not None:
            return found
    return None


def _contact(block: Mapping[str, Any] | None) -> CustomerContact | None:
    """Email, mobile and name from a Salla customer block (the points API has none).

    Salla spells a mobile two ways: a number beside ``mobile_code`` (customer and
    invoice events, ``order.created``'s customer: ``555555555`` + ``"+966"``) or one
    string with its code (``order.status.updated``'s customer: ``"+96652318526"``).
    Both become ``+<code><number>``. A name is ``name``, else first and last name.
    """
    if block is None:
        return None
    return CustomerContact(email=_text(block.get("email")), phone=_mobile(block), name=_name(block))


def _mobile(block: Mapping[str, Any]) -> str | None:
    raw = block.get("mobile")
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        return None
    number = "".join(ch for ch in str(raw) if ch.isdigit() or ch == "+").lstrip("0")
    if not number.strip("+"):
        return None
    if number.startswith("+"):
        return number[:32]
    code = block.get("mobile_code")
    digits = "".join(ch for ch in code if ch.isdigit()) if isinstance(code, str) else ""
    return f"+{digits}{number}"[:32] if digits else number[:32]


def _name(block: Mapping[str, Any]) -> str | None:
    if (name := _text(block.get("name"))) is not None:
        return name
    names = [block.get(key) for key in ("first_name", "last_name")]
    return " ".join(n.strip() for n in names if isinstance(n, str) and n.strip())[:255] or None


def _text(value: Any) -> str | None:
    return value.strip()[:255] if isinstance(value, str) and value.strip() else None


def _authorization(data: Mapping[str, Any]) -> StoreUpdate:
    access, refresh = data.get("access_token"), data.get("refresh_token")
    if not isinstance(access, str) or not access:
        raise BadPayload("app.store.authorize without an access_token")
    credentials: dict[str, Any] = {"access_token": access}
    if isinstance(refresh, str) and refresh:
        credentials["refresh_token"] = refresh
    return StoreUpdate(
        status="active", credentials=credentials, token_expires_at=_expires(data.get("expires"))
    )  # a new authorization reactivates a paused, uninstalled or refused store


def _expires(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except (ValueError, OverflowError, OSError):
        return None
