"""Sample Zid deliveries, shaped like Zid's Order and Customer objects, for
``loyalty-relay trigger`` and the demo. Reference: PROVIDERS.md (Zid:
registration, events, payloads — the body is the resource, the event is in the path)."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from worker.config import Settings
from worker.platforms.base import SampleDelivery
from worker.platforms.zid.subscriptions import target_url
from worker.platforms.zid.webhooks import SUBSCRIBED_EVENTS

# What ``trigger`` offers: the events we handle, and one we acknowledge and ignore.
EVENT_NAMES = (*SUBSCRIBED_EVENTS, "product.update")


def sample_resource(event: str, store_id: str, customer: str | None) -> dict[str, Any]:
    """The body Zid would send for ``event``: an Order, a Customer or a Product."""
    if event.startswith("order."):
        return sample_order(store_id, customer)
    if event.startswith("customer."):
        return sample_customer(customer)
    return {"id": "4e1b3c1a-5a51-4a4c-9f0e-0b6c1d2e3f40", "name": {"ar": "قهوة", "en": "Coffee"}}


def sample_order(store_id: str, customer: str | None) -> dict[str, Any]:
    number = int(time.time() * 1000) % 10**8
    return {
        "id": number,
        "code": f"x{number:x}",
        "store_id": int(store_id) if store_id.isdigit() else store_id,
        "order_status": {"name": "جاري التجهيز", "code": "preparing"},
        "payment_status": "paid",
        "customer": {
            "id": customer,  # Zid sends the customer id in orders as a string
            "name": "Sara",
            "email": "sara@example.com",
            "mobile": "966512345678",
        },
        "order_total": "230.00",
        "currency_code": "SAR",
        "created_at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def sample_customer(customer: str | None) -> dict[str, Any]:
    return {
        "id": int(customer) if customer and customer.isdigit() else customer,
        "name": "Sara",
        "email": "sara@example.com",
        "mobile": "966512345678",
        "verified": True,
        "created_at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def encode(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def build(event: str, store_id: str, customer: str | None, secret: str) -> SampleDelivery:
    """``secret`` is the whole Authorization header value, e.g. ``Basic dXNlcjpwYXNz``."""
    path = target_url("", store_id, event)
    body = encode(sample_resource(event, store_id, customer))
    headers = {"Content-Type": "application/json", "Authorization": secret}
    return SampleDelivery(path, body, headers)


def default_secret(settings: Settings, credentials: Mapping[str, Any]) -> str | None:
    """The header Zid sends: the store's newest registered Basic credentials."""
    own = credentials.get("webhook_secrets") or ()
    return next((secret for secret in own if isinstance(secret, str)), None)
