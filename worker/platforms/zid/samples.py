"""Sample Zid deliveries for ``loyalty-relay trigger`` and the demo: Zid's own
published examples (``worker.platforms.zid.examples``) with only the store and
customer ids substituted. A store event goes to the store's path with its Basic
credentials; an app event goes to ``/webhooks/zid/app/<ZID_APP_WEBHOOK_TOKEN>``
(pass the token as the secret)."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from worker.config import Settings
from worker.platforms.base import SampleDelivery
from worker.platforms.zid.examples import EXAMPLES
from worker.platforms.zid.subscriptions import target_url
from worker.platforms.zid.webhooks import APP_EVENT_PREFIX, APP_PATH, SUBSCRIBED_EVENTS

# What ``trigger`` offers: every documented example, and one event we acknowledge and ignore.
APP_EVENTS = tuple(event for event in EXAMPLES if event.startswith(APP_EVENT_PREFIX))
EVENT_NAMES = (*SUBSCRIBED_EVENTS, *APP_EVENTS, "product.update")


def sample_resource(event: str, store_id: str, customer: str | None) -> dict[str, Any]:
    """The body Zid would send for ``event``, for this store and customer."""
    example = EXAMPLES.get(event)
    if example is None:
        # Not published here: any other event's body is acknowledged and ignored unread.
        return {
            "id": "4e1b3c1a-5a51-4a4c-9f0e-0b6c1d2e3f40",
            "name": {"ar": "قهوة", "en": "Coffee"},
        }
    body = copy.deepcopy(example)
    if event.startswith("order."):
        body["store_id"] = _same_kind(body.get("store_id"), store_id)
        body["customer"]["id"] = _same_kind(body["customer"].get("id"), customer)
    elif event.startswith("customer."):
        body["id"] = _same_kind(body.get("id"), customer)
    else:
        body["store_id"] = _same_kind(body.get("store_id"), store_id)
    return body


def _same_kind(example: Any, value: str | None) -> Any:
    """``value`` as a number where the example has a number, else as a string."""
    if isinstance(example, int) and value is not None and value.isdigit():
        return int(value)
    return value


def encode(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def build(event: str, store_id: str, customer: str | None, secret: str) -> SampleDelivery:
    """``secret``: the Authorization header (``Basic …``) of a store event, or the app
    event path token."""
    body = encode(sample_resource(event, store_id, customer))
    headers = {"Content-Type": "application/json"}
    if event.startswith(APP_EVENT_PREFIX):
        return SampleDelivery(f"/webhooks/zid/{APP_PATH}/{secret}", body, headers)
    path = target_url("", store_id, event)
    return SampleDelivery(path, body, headers | {"Authorization": secret})


def default_secret(settings: Settings, credentials: Mapping[str, Any]) -> str | None:
    """The header Zid sends: the store's newest registered Basic credentials."""
    own = credentials.get("webhook_secrets") or ()
    return next((secret for secret in own if isinstance(secret, str)), None)
