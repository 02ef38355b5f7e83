"""Appstle Loyalty's own webhooks (sent through Svix): verification and meaning.

Reference: PROVIDERS.md (Appstle Loyalty) and Appstle's webhook page: every
event is ``{"type": "loyalty.earned", "data": {...}}`` and ``data`` carries
``customerId`` (the Shopify customer id) and ``customerEmail``.

Why the shop is in the path (``/webhooks/appstle/<shop>.myshopify.com``):
Appstle's envelope does not reliably name the shop, and Svix signs with one
``whsec_`` secret per endpoint, so the endpoint itself must say which store's
secret to verify with. The path is the only thing read before verification; a
path that is not exactly one shop domain, or names a shop we do not know, is
refused like a bad signature (401), so probing paths teaches nothing.

Verification is Standard Webhooks with Svix's header names (``svix-id``,
``svix-timestamp``, ``svix-signature``), a 5-minute timestamp tolerance and
every ``whsec_`` secret the store holds (rotation). Any malformed header is a
401. The dedupe key is the shop and ``svix-id``, which Svix keeps on retries.

What an event is about, tolerantly (the payload is thinly documented — a
guess to confirm on a live store): the type from ``type``, else
``eventType``; the customer from ``data.customerId``, ``data.customer.id`` or
``data.shopifyCustomerId``, else an email from ``data.customerEmail``,
``data.email`` or ``data.customer.email`` (then ``email:<address>``). A
``data`` that is missing or not an object is read from the top level. These
are points events already, so no settle re-checks are asked for.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

from worker.errors import BadPayload, Unauthorized
from worker.platforms.base import EventPlan, InboundWebhook, ReceivedEvent, StoreLookup
from worker.platforms.shopify.identity import customer_ref, json_object, shop_domain
from worker.sinks.signing import SECRET_PREFIX, InvalidSecret, decode_secret, verify

log = logging.getLogger(__name__)

# The credentials key of a shopify store holding Appstle's whsec_ secrets.
SECRETS_KEY = "appstle_webhook_secrets"
LOYALTY_EVENTS = frozenset(
    {
        "loyalty.earned",
        "loyalty.redeemed",
        "loyalty.sign-up",
        "loyalty.vip-tier-achieved",
        "loyalty.credits-earned",
        "loyalty.birthday-trigger",
        "loyalty.referral-reward",
        "loyalty.referred-reward",
    }
)
TOLERANCE_SECONDS = 300
EVENT_TYPE = re.compile(r"[A-Za-z0-9_.:\-]{1,100}")
KEPT_HEADERS = ("svix-id", "svix-timestamp")
HEADER_LIMIT = 200
PATH_HINT = "an Appstle webhook path is /webhooks/appstle/<shop>.myshopify.com"


def receive(webhook: InboundWebhook, lookup: StoreLookup) -> ReceivedEvent:
    shop = route(webhook.path)
    known = lookup(shop)
    if known is None:
        raise Unauthorized("unknown shop: no Appstle webhook secret to verify with")
    verify_svix(webhook, known.webhook_secrets)
    document = json_object(webhook.body)
    if document is None:
        raise BadPayload("body is not an Appstle event (a JSON object)")
    event_type = event_type_of(document)
    return ReceivedEvent(
        event_type=event_type or "unknown",
        store_ref=shop,
        dedupe_key=dedupe_key(shop, webhook.headers["svix-id"]),
        ignored_reason=ignored_reason(event_type, known.status),
        headers={name: webhook.headers[name][:HEADER_LIMIT] for name in KEPT_HEADERS},
    )


def verify_svix(webhook: InboundWebhook, stored: Iterable[str]) -> None:
    """Standard Webhooks under Svix's header names; raises ``Unauthorized`` (401)."""
    secrets = usable_secrets(stored)
    if not secrets:
        raise Unauthorized("no Appstle webhook secret (whsec_…) is stored for this shop")
    verify(
        secrets,
        webhook.headers,
        webhook.body,
        TOLERANCE_SECONDS,
        id_header="svix-id",
        timestamp_header="svix-timestamp",
        signature_header="svix-signature",
    )


def route(path: tuple[str, ...]) -> str:
    """The shop from the receiving path; anything else is refused as unauthenticated."""
    shop = shop_domain(path[0]) if len(path) == 1 else None
    if shop is None:
        raise Unauthorized(PATH_HINT)
    return shop


def usable_secrets(secrets: Iterable[str]) -> list[str]:
    """The ``whsec_`` secrets that decode; others are not Appstle's and are skipped."""
    usable = []
    for secret in secrets:
        if not secret.strip().startswith(SECRET_PREFIX):
            continue
        try:
            decode_secret(secret)
        except InvalidSecret:
            log.warning("an Appstle webhook secret is not whsec_ + base64; skipped")
            continue
        usable.append(secret.strip())
    return usable


def event_type_of(document: Mapping[str, Any]) -> str | None:
    for key in ("type", "eventType"):
        value = document.get(key)
        if isinstance(value, str) and EVENT_TYPE.fullmatch(value.strip()):
            return value.strip()
    return None


def ignored_reason(event_type: str | None, store_status: str) -> str | None:
    if event_type is None:
        return "event has no type"
    if event_type not in LOYALTY_EVENTS:
        return f"event {event_type!r} does not affect points"
    if store_status == "uninstalled":
        return "store has uninstalled the app"
    return None


def dedupe_key(shop: str, svix_id: str) -> str:
    parts = (b"appstle", shop.encode(), svix_id.strip().encode("utf-8", "replace"))
    return hashlib.sha256(b"\x00".join(parts)).hexdigest()


def plan(event_type: str, body: bytes) -> EventPlan:
    if event_type not in LOYALTY_EVENTS:
        return EventPlan(ignored_reason=f"event {event_type!r} does not affect points")
    customer = subject(json_object(body) or {})
    if customer is None:
        return EventPlan(ignored_reason="event names no customer id or email")
    return EventPlan(customer_ids=(customer,))


def subject(document: Mapping[str, Any]) -> str | None:
    """The customer an event is about: an id when one is given, else an email."""
    data = _mapping(document.get("data")) or document
    customer = _mapping(data.get("customer"))
    ids = (data.get("customerId"), customer.get("id"), data.get("shopifyCustomerId"))
    emails = (data.get("customerEmail"), data.get("email"), customer.get("email"))
    found = next((ref for value in ids if (ref := customer_ref(value)) is not None), None)
    return found or customer_ref(None, *emails)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
