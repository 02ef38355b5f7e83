"""Appstle Loyalty's own webhooks (sent through Svix): verification and meaning.

Reference: https://developers.appstle.com/loyalty/webhooks (Svix, the
``loyalty.*`` events, the common ``data`` fields) and
https://developers.loyalty.appstle.com/webhooks (the ``point.*``, ``vip.*``
and ``reward.*`` events); what is and is not published is set out in
``worker.platforms.appstle.examples``. Both families are handled: each event
means a customer's points, tier or rewards may have changed, so it asks for
a refresh (no settle re-checks: these are points events already). Other types
are recorded and acknowledged.

Why the shop is in the path (``/webhooks/appstle/<shop>.myshopify.com``):
Appstle's envelope does not reliably name the shop, and Svix signs with one
``whsec_`` secret per endpoint, so the endpoint itself must say which store's
secret to verify with. The path is the only thing read before verification; a
path that is not exactly one shop domain, or names a shop we do not know, is
refused like a bad signature (401), so probing paths teaches nothing.

Verification is Standard Webhooks, a 5-minute timestamp tolerance and every
``whsec_`` secret the store holds (rotation). The headers come under Svix's
names (``svix-id``, ``svix-timestamp``, ``svix-signature``) or, for Svix
accounts with white-labelled headers, the ``webhook-`` prefix: "Professional
and Enterprise tier customers can have the headers white-labeled to use the
``webhook-`` prefix instead of the ``svix-`` prefix … The Svix libraries
support both" (https://docs.svix.com/receiving/verifying-payloads/how-manual).
As Svix's own verifier does (svix/svix-webhooks ``javascript/src/webhook.ts``),
each of the three is read from ``svix-*`` first, else ``webhook-*``. Any
malformed header is a 401. The dedupe key is the shop and the message id,
which Svix keeps on retries, whichever name it came under.

What an event is about, tolerantly (no complete body is published): the type
from ``type``, else ``event`` or ``eventType``; the customer from
``data.customerId``, ``data.customer_id``, ``data.shopifyCustomerId`` or
``data.customer.id`` (a number, digits or a customer GID), else an email from
``data.customerEmail``, ``data.email`` or ``data.customer.email`` (then
``email:<address>``). A ``data`` that is missing or not an object is read
from the top level.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

from worker.errors import BadPayload, Unauthorized
from worker.platforms.appstle import examples
from worker.platforms.base import EventPlan, InboundWebhook, ReceivedEvent, StoreLookup
from worker.platforms.shopify.identity import customer_ref, json_object, shop_domain
from worker.signing import SECRET_PREFIX, InvalidSecret, decode_secret, verify

log = logging.getLogger(__name__)

# The credentials key of a shopify store holding Appstle's whsec_ secrets.
SECRETS_KEY = "appstle_webhook_secrets"
LOYALTY_EVENTS = frozenset(examples.LOYALTY_EVENTS)
POINT_EVENTS = frozenset(examples.POINT_EVENTS + examples.VIP_EVENTS + examples.REWARD_EVENTS)
HANDLED = LOYALTY_EVENTS | POINT_EVENTS
TOLERANCE_SECONDS = 300
EVENT_TYPE = re.compile(r"[A-Za-z0-9_.:\-]{1,100}")
# Standard Webhooks header names: Svix's, then the unbranded ones.
PREFIXES = ("svix-", "webhook-")
KEPT_HEADERS = ("id", "timestamp")
TYPE_KEYS = ("type", "event", "eventType")
HEADER_LIMIT = 200
PATH_HINT = "an Appstle webhook path is /webhooks/appstle/<shop>.myshopify.com"


def receive(webhook: InboundWebhook, lookup: StoreLookup) -> ReceivedEvent:
    shop = route(webhook.path)
    known = lookup(shop)
    if known is None:
        raise Unauthorized("unknown shop: no Appstle webhook secret to verify with")
    headers = standard_headers(webhook.headers)
    verify_svix(headers, webhook.body, known.webhook_secrets)
    document = json_object(webhook.body)
    if document is None:
        raise BadPayload("body is not an Appstle event (a JSON object)")
    event_type = event_type_of(document)
    return ReceivedEvent(
        event_type=event_type or "unknown",
        store_ref=shop,
        dedupe_key=dedupe_key(shop, headers["webhook-id"]),
        ignored_reason=ignored_reason(event_type, known.status),
        headers=kept_headers(webhook.headers),
    )


def standard_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """``webhook-id/-timestamp/-signature``, each from its ``svix-`` name when present."""
    found = {}
    for part in ("id", "timestamp", "signature"):
        value = next((headers[p + part] for p in PREFIXES if headers.get(p + part)), None)
        if value is None:
            raise Unauthorized(f"missing svix-{part} (or webhook-{part}) header")
        found[f"webhook-{part}"] = value
    return found


def kept_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The message id and timestamp under the names they came with, for diagnostics."""
    return {
        prefix + part: headers[prefix + part][:HEADER_LIMIT]
        for prefix in PREFIXES
        for part in KEPT_HEADERS
        if headers.get(prefix + part)
    }


def verify_svix(headers: Mapping[str, str], body: bytes, stored: Iterable[str]) -> None:
    """Standard Webhooks over the normalised headers; raises ``Unauthorized`` (401)."""
    secrets = usable_secrets(stored)
    if not secrets:
        raise Unauthorized("no Appstle webhook secret (whsec_…) is stored for this shop")
    verify(secrets, headers, body, TOLERANCE_SECONDS)


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
    for key in TYPE_KEYS:
        value = document.get(key)
        if isinstance(value, str) and EVENT_TYPE.fullmatch(value.strip()):
            return value.strip()
    return None


def ignored_reason(event_type: str | None, store_status: str) -> str | None:
    if event_type is None:
        return "event has no type"
    if event_type not in HANDLED:
        return f"event {event_type!r} does not affect points"
    if store_status == "uninstalled":
        return "store has uninstalled the app"
    return None


def dedupe_key(shop: str, message_id: str) -> str:
    parts = (b"appstle", shop.encode(), message_id.strip().encode("utf-8", "replace"))
    return hashlib.sha256(b"\x00".join(parts)).hexdigest()


def plan(event_type: str, body: bytes) -> EventPlan:
    if event_type not in HANDLED:
        return EventPlan(ignored_reason=f"event {event_type!r} does not affect points")
    customer = subject(json_object(body) or {})
    if customer is None:
        return EventPlan(ignored_reason="event names no customer id or email")
    return EventPlan(customer_ids=(customer,))


def subject(document: Mapping[str, Any]) -> str | None:
    """The customer an event is about: an id when one is given, else an email."""
    data = _mapping(document.get("data")) or document
    customer = _mapping(data.get("customer"))
    ids = (
        data.get("customerId"),
        data.get("customer_id"),
        data.get("shopifyCustomerId"),
        customer.get("id"),
    )
    emails = (data.get("customerEmail"), data.get("email"), customer.get("email"))
    found = next((ref for value in ids if (ref := customer_ref(value)) is not None), None)
    return found or customer_ref(None, *emails)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
