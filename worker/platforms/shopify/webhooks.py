"""Shopify webhooks: verification and what each topic means for Appstle's points.

Reference: https://shopify.dev/docs/apps/build/webhooks (about webhooks: the
``X-Shopify-*`` headers and HMAC verification) and
https://shopify.dev/docs/apps/build/webhooks/best-practices. Shopify signs the
raw body: ``X-Shopify-Hmac-Sha256`` is the base64 HMAC-SHA256 keyed with the
app's client secret (current and previous while it rotates; a store's own
``webhook_secrets`` override the app's). Only ``X-Shopify-Shop-Domain`` is read
before verification, and only to choose which secrets to try. Whatever is
wrong with the signature header — missing, not base64, the wrong length — is
``Unauthorized`` (401), never an exception that would become a 500.

Dedupe: Shopify's documented duplicate key is ``X-Shopify-Event-Id`` — "the
same value across more than one webhook indicates a duplicate"
(https://shopify.dev/docs/apps/build/webhooks/ignore-duplicates); one event
can reach us as several deliveries with different ``X-Shopify-Webhook-Id``s
(two subscriptions to one topic), so the event id is keyed first. Without an
event id the delivery's ``X-Shopify-Webhook-Id`` (stable across retries) is
the key, and without either the byte-identical body. Every key is per shop
and topic, so that one event fanned out to two topics loses neither. The trigger
time and ids are kept with the row for diagnostics only (Shopify does not
guarantee ordering, and an event never stops a refresh: the refresh reads the
current balance).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Any

from worker.errors import BadPayload, Unauthorized
from worker.platforms.base import (
    EventPlan,
    InboundWebhook,
    ReceivedEvent,
    StoreLookup,
    StoreUpdate,
)
from worker.platforms.shopify import compliance
from worker.platforms.shopify.identity import customer_id, customer_ref, json_object, shop_domain

UNINSTALLED = "app/uninstalled"
ORDER_TOPICS = frozenset(
    {"orders/create", "orders/paid", "orders/updated", "orders/fulfilled", "orders/cancelled"}
)
REFUND_TOPIC = "refunds/create"
CUSTOMER_TOPICS = frozenset({"customers/create", "customers/update"})
REFRESH_TOPICS = ORDER_TOPICS | CUSTOMER_TOPICS | {REFUND_TOPIC}
HANDLED = REFRESH_TOPICS | {UNINSTALLED} | compliance.TOPICS
TOPIC = re.compile(r"[a-z0-9_]{1,50}/[a-z0-9_/]{1,49}")
DIGEST_SIZE = hashlib.sha256().digest_size
KEPT_HEADERS = (
    "x-shopify-topic",
    "x-shopify-triggered-at",
    "x-shopify-event-id",
    "x-shopify-webhook-id",
    "x-shopify-api-version",
)
HEADER_LIMIT = 200


def receive(
    webhook: InboundWebhook, lookup: StoreLookup, app_secrets: tuple[str, ...]
) -> ReceivedEvent:
    shop = shop_domain(webhook.headers.get("x-shopify-shop-domain"))
    known = lookup(shop) if shop else None
    secrets = known.webhook_secrets if known and known.webhook_secrets else app_secrets
    verify(webhook.headers.get("x-shopify-hmac-sha256"), webhook.body, secrets)
    if json_object(webhook.body) is None:
        raise BadPayload("body is not a JSON object (is the subscription's format XML?)")
    topic = webhook.headers.get("x-shopify-topic", "").strip().lower()
    valid = TOPIC.fullmatch(topic) is not None
    ignored = ignored_reason(topic if valid else None, shop, known.status if known else None)
    return ReceivedEvent(
        event_type=topic if valid else "invalid",
        store_ref=shop,
        dedupe_key=dedupe_key(
            shop,
            topic,
            webhook.headers.get("x-shopify-event-id"),
            webhook.headers.get("x-shopify-webhook-id"),
            webhook.body,
        ),
        ignored_reason=ignored,
        headers=kept_headers(webhook.headers),
        waiting_for_store=known is None and ignored is None,
    )


def verify(given: str | None, body: bytes, secrets: tuple[str, ...]) -> None:
    """The base64 HMAC against each secret, in constant time and without an early exit."""
    if not secrets:
        raise Unauthorized("no Shopify client secret is configured for this shop")
    signature = _decoded(given)
    matched = False
    for secret in secrets:
        expected = hmac.new(secret.encode(), body, hashlib.sha256).digest()
        matched |= hmac.compare_digest(expected, signature)
    if not matched:
        raise Unauthorized("X-Shopify-Hmac-Sha256 does not match the body")


def _decoded(given: str | None) -> bytes:
    if not given or not given.strip():
        raise Unauthorized("missing X-Shopify-Hmac-Sha256 header")
    try:
        signature = base64.b64decode(given.strip(), validate=True)
    except (binascii.Error, ValueError):  # ValueError: non-ASCII characters
        raise Unauthorized("X-Shopify-Hmac-Sha256 is not base64") from None
    if len(signature) != DIGEST_SIZE:
        raise Unauthorized("X-Shopify-Hmac-Sha256 is not a SHA-256 digest")
    return signature


def ignored_reason(topic: str | None, shop: str | None, store_status: str | None) -> str | None:
    if topic is None:
        return "missing or malformed X-Shopify-Topic"
    if topic not in HANDLED:
        return f"topic {topic!r} does not affect points"
    if shop is None:
        return "missing or malformed X-Shopify-Shop-Domain"
    if store_status == "uninstalled" and topic not in {UNINSTALLED, *compliance.TOPICS}:
        return "store has uninstalled the app"
    return None


def dedupe_key(
    shop: str | None, topic: str, event_id: str | None, webhook_id: str | None, body: bytes
) -> str:
    """The event id, else the delivery id, else the byte-identical body identifies a repeat
    (of one topic: Shopify's samples for several order topics are the same bytes)."""
    parts = [b"shopify", (shop or "").encode(), topic.encode("utf-8", "replace")]
    event = (event_id or "").strip()
    delivery = (webhook_id or "").strip()
    if event:
        parts += [b"event", event.encode("utf-8", "replace")]
    elif delivery:
        parts += [b"id", delivery.encode("utf-8", "replace")]
    else:
        parts += [b"body", body]
    return hashlib.sha256(b"\x00".join(parts)).hexdigest()


def kept_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {name: headers[name][:HEADER_LIMIT] for name in KEPT_HEADERS if headers.get(name)}


def plan(event_type: str, body: bytes) -> EventPlan:
    if event_type == UNINSTALLED:
        return EventPlan(store_update=StoreUpdate(status="uninstalled"))
    if event_type in compliance.TOPICS:
        return compliance.plan(event_type, body)
    if event_type not in REFRESH_TOPICS:
        return EventPlan(ignored_reason=f"topic {event_type!r} does not affect points")
    resource = json_object(body) or {}
    if event_type == REFUND_TOPIC:
        return _refund_plan(resource)
    customer = subject(event_type, resource)
    if customer is None:
        return EventPlan(ignored_reason="event names no customer id or email")
    return EventPlan(customer_ids=(customer,), settle=event_type in ORDER_TOPICS)


def _refund_plan(refund: Mapping[str, Any]) -> EventPlan:
    """Refunds name their order, not its customer; the order's own events refresh them."""
    customer = _mapping(refund.get("customer"))
    found = customer_ref(customer.get("id"))
    if found is None:
        return EventPlan(ignored_reason="refund names only its order_id, no customer")
    return EventPlan(customer_ids=(found,), settle=True)


def subject(event_type: str, resource: Mapping[str, Any]) -> str | None:
    """The customer a topic is about: ``id`` of a Customer, ``customer.id`` of an Order.

    The id may come as a number, digits or only as ``admin_graphql_api_id``
    (``gid://shopify/Customer/<id>``); without any id, an email names them.
    """
    if event_type in CUSTOMER_TOPICS:
        return customer_ref(_id_of(resource), resource.get("email"))
    customer = _mapping(resource.get("customer"))
    return customer_ref(
        _id_of(customer),
        customer.get("email"),
        resource.get("email"),
        resource.get("contact_email"),
    )


def _id_of(resource: Mapping[str, Any]) -> Any:
    found = resource.get("id")
    return found if customer_id(found) is not None else resource.get("admin_graphql_api_id")


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
