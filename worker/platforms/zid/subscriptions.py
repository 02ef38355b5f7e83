"""A store's webhook subscriptions at Zid: one per event we handle, each with
its own target path and our fresh Basic credentials.

Reference: https://docs.zid.sa/webhooks (events; the body is the resource) and
zidsa/sdk-python zid/resources/webhooks.py (registration). Not published by Zid
in a source we could read: that a subscription's top-level ``username`` and
``password`` come back as Basic auth (reported by integrators; Zid announced Basic
Auth for all webhooks). Zid puts no event name in the body, so each event gets its own
target URL, ``<public url>/webhooks/zid/<store id>/<event>``; it signs nothing,
so each registration carries a random username and password (top-level
``username``/``password``: a nested ``authentication{}`` is silently ignored)
that Zid sends back as ``Authorization: Basic …``.

Registering replaces ours: Zid deletes by ``original_id`` (our app id), which
removes every subscription of our app in the store at once.

Conditions (``--condition status=delivered``) narrow ``order.create`` and
``order.status.update``, the only events that take them; the keys and values
are Zid's documented ones (Reference: https://docs.zid.sa/webhooks, "Event
Conditions"; zidsa/sdk-python ``zid/models/webhook.py`` ``WebhookConditions``).
Every other subscription, and one without conditions, sends ``null`` (not ``[]``).
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from worker.platforms.zid.client import Call, ZidCalls
from worker.platforms.zid.schemas import (
    WebhookSubscription,
    load_subscription,
    load_subscriptions,
)
from worker.platforms.zid.webhooks import SUBSCRIBED_EVENTS

WEBHOOKS_PATH = "/managers/webhooks"
KEPT_SECRETS = 2  # the new header and the one before it, while Zid switches over
CONDITION_EVENTS = ("order.create", "order.status.update")
ORDER_STATUSES = ("new", "preparing", "ready", "inDelivery", "delivered", "cancelled")
PAYMENT_METHODS = ("Cash On Delivery", "Credit Card", "Bank Transfer")
Conditions = dict[str, dict[str, str | int]]  # event → Zid's conditions object


def parse_conditions(specs: Sequence[str]) -> Conditions:
    """``[EVENT:]KEY=VALUE`` each; without EVENT, for both events that take conditions.

    Raises ``ValueError`` with a readable message for anything Zid does not document.
    """
    conditions: Conditions = {}
    for spec in specs:
        events, key, value = _condition(spec)
        for event in events:
            conditions.setdefault(event, {})[key] = value
    return conditions


def _condition(spec: str) -> tuple[tuple[str, ...], str, str | int]:
    head, colon, rest = spec.partition(":")
    target, pair = (head.strip(), rest) if colon and "=" not in head else ("", spec)
    key, equals, raw = pair.partition("=")
    key, raw = key.strip(), raw.strip()
    if target and target not in CONDITION_EVENTS:
        raise ValueError(f"only {' and '.join(CONDITION_EVENTS)} take conditions, not {target!r}")
    if not equals or not raw:
        raise ValueError(f"{spec!r} is not KEY=VALUE (e.g. status=delivered)")
    events = (target,) if target else CONDITION_EVENTS
    return events, key, _condition_value(key, raw)


def _condition_value(key: str, raw: str) -> str | int:
    if key == "status":
        return _one_of(key, raw, ORDER_STATUSES)
    if key == "payment_method":
        return _one_of(key, raw, PAYMENT_METHODS)
    if key == "delivery_option_id":
        if not raw.isdigit():
            raise ValueError(
                f"delivery_option_id is Zid's delivery option id (a number), not {raw!r}"
            )
        return int(raw)
    raise ValueError(
        f"Zid's conditions are status, delivery_option_id and payment_method, not {key!r}"
    )


def _one_of(key: str, raw: str, allowed: tuple[str, ...]) -> str:
    match = next((value for value in allowed if value.casefold() == raw.casefold()), None)
    if match is None:
        raise ValueError(
            f"{key} is one of {', '.join(allowed)} (Zid's documented values), not {raw!r}"
        )
    return match


@dataclass(frozen=True)
class BasicCredentials:
    """What Zid will send back to us; only ``header`` is ever stored."""

    username: str
    password: str

    @classmethod
    def generate(cls) -> BasicCredentials:
        return cls(f"relay-{secrets.token_hex(6)}", secrets.token_urlsafe(32))

    @property
    def header(self) -> str:
        pair = f"{self.username}:{self.password}".encode()
        return f"Basic {base64.b64encode(pair).decode()}"


def target_url(public_url: str, store_id: str, event: str) -> str:
    return f"{public_url.rstrip('/')}/webhooks/zid/{quote(store_id, safe='')}/{event}"


def rotated_secrets(current: Any, newest: str) -> list[str]:
    """The newest header first, then the previous one; older ones are dropped."""
    previous = [s for s in current if isinstance(s, str)] if isinstance(current, list) else []
    return [newest, *[s for s in previous if s != newest]][:KEPT_SECRETS]


def list_subscriptions(calls: ZidCalls) -> list[WebhookSubscription]:
    # Reference: zidsa/sdk-python zid/resources/webhooks.py (list: GET v1/managers/webhooks)
    return load_subscriptions(calls.json(Call("GET", WEBHOOKS_PATH, "webhook list request")))


def ours(subscriptions: Sequence[WebhookSubscription], app_id: str) -> list[WebhookSubscription]:
    return [subscription for subscription in subscriptions if subscription.original_id == app_id]


def delete_ours(calls: ZidCalls, app_id: str) -> None:
    # Reference: zidsa/sdk-python zid/resources/webhooks.py (delete by original_id)
    params = {"original_id": app_id}
    calls.send(Call("DELETE", WEBHOOKS_PATH, "webhook delete request", params=params))


def create_subscription(
    calls: ZidCalls,
    *,
    event: str,
    url: str,
    app_id: str,
    credentials: BasicCredentials,
    conditions: Mapping[str, str | int] | None = None,
) -> WebhookSubscription:
    body = {
        "event": event,
        "target_url": url,
        "original_id": app_id,
        "username": credentials.username,
        "password": credentials.password,
        "conditions": dict(conditions) if conditions else None,  # null, not [], when none
    }
    # Reference: zidsa/sdk-python zid/resources/webhooks.py, https://docs.zid.sa/create-a-webhook
    return load_subscription(
        calls.json(Call("POST", WEBHOOKS_PATH, "webhook create request", body=body))
    )


def register(
    calls: ZidCalls,
    *,
    app_id: str,
    public_url: str,
    credentials: BasicCredentials,
    events: Sequence[str] = SUBSCRIBED_EVENTS,
    conditions: Conditions | None = None,
) -> list[WebhookSubscription]:
    """Replace our subscriptions with one per event; return ours as Zid now lists them."""
    if ours(list_subscriptions(calls), app_id):
        delete_ours(calls, app_id)
    store_id = calls.store.external_id
    for event in events:
        url = target_url(public_url, store_id, event)
        create_subscription(
            calls,
            event=event,
            url=url,
            app_id=app_id,
            credentials=credentials,
            conditions=(conditions or {}).get(event),
        )
    return ours(list_subscriptions(calls), app_id)
