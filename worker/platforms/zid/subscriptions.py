"""A store's webhook subscriptions at Zid: one per event we handle, each with
its own target path and our fresh Basic credentials.

Reference: PROVIDERS.md (Zid: webhook authenticity; registration, events,
payloads). Zid puts no event name in the body, so each event gets its own
target URL, ``<public url>/webhooks/zid/<store id>/<event>``; it signs nothing,
so each registration carries a random username and password (top-level
``username``/``password``: a nested ``authentication{}`` is silently ignored)
that Zid sends back as ``Authorization: Basic …``.

Registering replaces ours: Zid deletes by ``original_id`` (our app id), which
removes every subscription of our app in the store at once.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
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
    # Reference: PROVIDERS.md Zid registration (GET v1/managers/webhooks)
    return load_subscriptions(calls.json(Call("GET", WEBHOOKS_PATH, "webhook list request")))


def ours(subscriptions: Sequence[WebhookSubscription], app_id: str) -> list[WebhookSubscription]:
    return [subscription for subscription in subscriptions if subscription.original_id == app_id]


def delete_ours(calls: ZidCalls, app_id: str) -> None:
    # Reference: PROVIDERS.md Zid registration (DELETE v1/managers/webhooks?original_id=…)
    params = {"original_id": app_id}
    calls.send(Call("DELETE", WEBHOOKS_PATH, "webhook delete request", params=params))


def create_subscription(
    calls: ZidCalls, *, event: str, url: str, app_id: str, credentials: BasicCredentials
) -> WebhookSubscription:
    body = {
        "event": event,
        "target_url": url,
        "original_id": app_id,
        "username": credentials.username,
        "password": credentials.password,
        "conditions": None,  # Zid wants null, not [], when there are none
    }
    # Reference: PROVIDERS.md Zid registration (POST v1/managers/webhooks)
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
) -> list[WebhookSubscription]:
    """Replace our subscriptions with one per event; return ours as Zid now lists them."""
    if ours(list_subscriptions(calls), app_id):
        delete_ours(calls, app_id)
    store_id = calls.store.external_id
    for event in events:
        url = target_url(public_url, store_id, event)
        create_subscription(calls, event=event, url=url, app_id=app_id, credentials=credentials)
    return ours(list_subscriptions(calls), app_id)
