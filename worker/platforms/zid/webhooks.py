"""Zid webhooks: verification and what each event means for us.

Reference: https://docs.zid.sa/webhooks (events, the Order and Customer schemas;
the body is the resource itself) and https://docs.zid.sa/app-events-878234m0
(app events). Examples of every body: ``worker.platforms.zid.examples``.

Store events. Zid signs nothing and puts no event name in the body, so every
store has its own receiving path, ``/webhooks/zid/<store id>/<event>``,
registered once per event with fresh Basic credentials
(``worker.platforms.zid.subscriptions``). The path is the only thing read before
verification, and only to choose which credentials to compare with; a path that
is not exactly a store id and an event name is refused like a bad password, so
probing paths teaches an attacker nothing.

App events (``app.market.application.*``, ``app.market.subscription.*``) are
configured once for the app in Zid's Partner Dashboard, which documents no
signature or credentials: they go to ``/webhooks/zid/app/<ZID_APP_WEBHOOK_TOKEN>``,
the secret path token compared in constant time before the body is read; the
body names the event (``event_name``), the store (``store_id``) and the app
(``app_id``, which must be ours when ``ZID_APP_ID`` is set).
"""

from __future__ import annotations

import hashlib
import hmac
import json
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
from worker.platforms.identifiers import external_id

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
APP_PATH = "app"
APP_EVENT_PREFIX = "app.market."
GUEST = "guest checkout (is_guest_customer): a guest has no loyalty account"

# What each app event does to the store. Reference: https://docs.zid.sa/app-events-878234m0
# (authorized: before installing; suspended: the subscription ended; expired: the 5-day grace
# period is over as well; refunded). Uninstalling revokes the store's tokens at once
# (zidsa/zid-agent-skill references/oauth-flow.md, "Uninstall handling"). Others (warning,
# rated, private.plan.request) change nothing and are recorded as ignored.
_ACTIVE = StoreUpdate(status="active")
APP_LIFECYCLE: dict[str, StoreUpdate] = {
    "app.market.application.authorized": _ACTIVE,
    "app.market.application.install": _ACTIVE,
    "app.market.subscription.active": _ACTIVE,
    "app.market.subscription.renew": _ACTIVE,
    "app.market.subscription.upgrade": _ACTIVE,
    "app.market.application.uninstall": StoreUpdate(
        status="uninstalled", status_reason="the merchant uninstalled the app at Zid"
    ),
    "app.market.subscription.suspended": StoreUpdate(
        status="paused", status_reason="Zid subscription suspended (the plan ended)"
    ),
    "app.market.subscription.expired": StoreUpdate(
        status="paused", status_reason="Zid subscription expired (grace period over)"
    ),
    "app.market.subscription.refunded": StoreUpdate(
        status="paused", status_reason="Zid subscription refunded"
    ),
}


def receive(
    webhook: InboundWebhook, lookup: StoreLookup, app_token: str = "", app_id: str = ""
) -> ReceivedEvent:
    if webhook.path[:1] == (APP_PATH,):
        return receive_app_event(webhook, app_token, app_id)
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


def receive_app_event(webhook: InboundWebhook, app_token: str, app_id: str) -> ReceivedEvent:
    """An app event: the secret path token first, then the body names event and store."""
    verify_app_token(webhook.path, app_token)
    document = json_object(webhook.body)
    if document is None:
        raise BadPayload("body is not a Zid app event (a JSON object)")
    event_type = document.get("event_name")
    if not isinstance(event_type, str) or not event_type.startswith(APP_EVENT_PREFIX):
        raise BadPayload("a Zid app event names an app.market.* event_name")
    if not EVENT_NAME.fullmatch(event_type):
        raise BadPayload("a Zid app event names an app.market.* event_name")
    store_id = external_id(document.get("store_id"))
    if store_id is None:
        raise BadPayload("a Zid app event names its store_id")
    return ReceivedEvent(
        event_type=event_type,
        store_ref=store_id,
        dedupe_key=dedupe_key(store_id, event_type, webhook.body),
        ignored_reason=app_ignored_reason(event_type, document.get("app_id"), app_id),
    )


def verify_app_token(path: tuple[str, ...], app_token: str) -> None:
    if not app_token:
        raise Unauthorized("ZID_APP_WEBHOOK_TOKEN is not set: app events are not accepted")
    given = path[1] if len(path) == 2 else ""
    if not hmac.compare_digest(given.encode("utf-8", "replace"), app_token.encode()):
        raise Unauthorized("bad Zid app event path")


def app_ignored_reason(event_type: str, sender: Any, app_id: str) -> str | None:
    if app_id and external_id(sender) != app_id:
        return "app event for another app id"
    if event_type not in APP_LIFECYCLE:
        return f"app event {event_type!r} does not change the store"
    return None


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
    if event_type in APP_LIFECYCLE:
        return EventPlan(store_update=APP_LIFECYCLE[event_type])
    if event_type not in SUBSCRIBED_EVENTS:
        return EventPlan(ignored_reason=f"event {event_type!r} does not affect points")
    resource = json_object(body) or {}
    if is_guest(resource):
        return EventPlan(ignored_reason=GUEST)
    customer = customer_id(event_type, resource)
    if customer is None:
        return EventPlan(ignored_reason="event names no customer (guest order?)")
    return EventPlan(customer_ids=(customer,), settle=event_type in ORDER_EVENTS)


def customer_id(event_type: str, resource: Mapping[str, Any]) -> str | None:
    """The customer an event is about: ``customer.id`` in an Order, ``id`` in a Customer."""
    if event_type in CUSTOMER_EVENTS:
        return external_id(resource.get("id"))
    customer = resource.get("customer")
    return external_id(customer.get("id")) if isinstance(customer, Mapping) else None


def is_guest(resource: Mapping[str, Any]) -> bool:
    """``is_guest_customer`` as Zid's Order object has it (0/1), or as a boolean or string.

    Reference: https://docs.zid.sa/webhook-events-order, zidsa/sdk-python
    tests/fixtures/order_detail.json (``"is_guest_customer": 0``).
    """
    flag = resource.get("is_guest_customer")
    if isinstance(flag, str):
        return flag.strip().casefold() in ("1", "true", "yes")
    return flag is True or (isinstance(flag, int) and flag == 1)


def json_object(body: bytes) -> dict[str, Any] | None:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return document if isinstance(document, dict) else None
