"""Zid webhooks: verification and what each event means for us.

Reference: PROVIDERS.md (Zid: webhook authenticity; registration, events, payloads).
Zid signs nothing and puts no event name in the body, so every store has its
own receiving path, ``/webhooks/zid/<store id>/<event>``, registered once per
event with fresh Basic credentials (``worker.platforms.zid.subscriptions``).
The path is the only thing read before verification, and only to choose which
credentials to compare with; a path that is not exactly a store id and an event
name is refused like a bad password, so probing paths teaches an attacker nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from typing import Any

from worker.errors import BadPayload, Unauthorized
from worker.platforms.base import EventPlan, InboundWebhook, ReceivedEvent, StoreLookup
from worker.platforms.common import external_id

ORDER_EVENTS = ("order.create", "order.status.update", "order.payment_status.update")
CUSTOMER_EVENTS = (
    "customer.create",
    "customer.update",
    "customer.merchant.update",
    "customer.login",
)
# The events we subscribe to, in the order ``register-webhooks`` creates them.
SUBSCRIBED_EVENTS = ORDER_EVENTS + CUSTOMER_EVENTS
UNINSTALLED = "uninstalled"
EVENT_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,100}")


def receive(webhook: InboundWebhook, lookup: StoreLookup) -> ReceivedEvent:
    store_id, event_type = route(webhook.path)
    known = lookup(store_id)
    if known is None:
        raise Unauthorized("unknown Zid store")
    verify(webhook.headers.get("authorization"), known.webhook_secrets)
    if json_object(webhook.body) is None:
        raise BadPayload("body is not a Zid resource (a JSON object)")
    return ReceivedEvent(
        event_type=event_type,
        store_ref=store_id,
        dedupe_key=dedupe_key(store_id, event_type, webhook.body),
        ignored_reason=ignored_reason(event_type, known.status),
    )


def route(path: tuple[str, ...]) -> tuple[str, str]:
    """(store id, event) from the receiving path; anything else is refused as unauthenticated."""
    if len(path) != 2:
        raise Unauthorized("a Zid webhook path is /webhooks/zid/<store id>/<event>")
    store_id, event_type = external_id(path[0]), path[1]
    if store_id is None or not EVENT_NAME.fullmatch(event_type):
        raise Unauthorized("a Zid webhook path is /webhooks/zid/<store id>/<event>")
    return store_id, event_type


def verify(authorization: str | None, secrets: tuple[str, ...]) -> None:
    """The whole ``Authorization`` header against each stored header value, in constant time.

    Every secret is compared (no early exit) so the time taken does not say
    which of a rotating pair matched.
    """
    if not secrets:
        raise Unauthorized("no webhook credentials are registered for this Zid store")
    if not authorization:
        raise Unauthorized("missing Authorization header")
    given = authorization.strip().encode("utf-8", "replace")
    matched = False
    for secret in secrets:
        matched |= hmac.compare_digest(secret.strip().encode("utf-8", "replace"), given)
    if not matched:
        raise Unauthorized("bad Authorization header")


def ignored_reason(event_type: str, store_status: str | None) -> str | None:
    if event_type not in SUBSCRIBED_EVENTS:
        return f"event {event_type!r} does not affect points"
    if store_status == UNINSTALLED:
        return "store has uninstalled the app"
    return None


def dedupe_key(store_id: str, event_type: str, body: bytes) -> str:
    # Zid sends no delivery id: the same store, event and byte-identical body is a retry.
    parts = (b"zid", store_id.encode(), event_type.encode(), body)
    return hashlib.sha256(b"\x00".join(parts)).hexdigest()


def plan(event_type: str, body: bytes) -> EventPlan:
    if event_type not in SUBSCRIBED_EVENTS:
        return EventPlan(ignored_reason=f"event {event_type!r} does not affect points")
    customer = customer_id(event_type, json_object(body) or {})
    if customer is None:
        return EventPlan(ignored_reason="event names no customer (guest order?)")
    return EventPlan(customer_ids=(customer,), settle=event_type in ORDER_EVENTS)


def customer_id(event_type: str, resource: Mapping[str, Any]) -> str | None:
    """The customer an event is about: ``customer.id`` in an Order, ``id`` in a Customer."""
    if event_type in CUSTOMER_EVENTS:
        return external_id(resource.get("id"))
    customer = resource.get("customer")
    return external_id(customer.get("id")) if isinstance(customer, Mapping) else None


def json_object(body: bytes) -> dict[str, Any] | None:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return document if isinstance(document, dict) else None
