"""Sample Salla deliveries, shaped like Salla's documented webhooks, for
``loyalty-relay trigger`` and the demo. Reference: PROVIDERS.md (envelope)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

from worker.config import Settings
from worker.platforms.base import SampleDelivery

EVENT_NAMES = (
    "order.created",
    "order.updated",
    "order.status.updated",
    "order.cancelled",
    "order.refunded",
    "customer.created",
    "customer.updated",
    "customer.login",
    "app.store.authorize",
    "app.uninstalled",
)


def sample_event(event: str, merchant: str, customer: str | None = None) -> dict[str, Any]:
    return {
        "event": event,
        "merchant": int(merchant) if merchant.isdigit() else merchant,
        "created_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "data": _data(event, customer),
    }


def _data(event: str, customer: str | None) -> dict[str, Any]:
    customer_id = int(customer) if customer and customer.isdigit() else customer
    if event.startswith("order."):
        return {
            "id": int(time.time() * 1000) % 10**10,
            "reference_id": 12345678,
            "status": {"slug": "completed", "name": "تم التنفيذ"},
            "customer": {"id": customer_id, "first_name": "Sara", "email": "sara@example.com"},
        }
    if event.startswith("customer."):
        return {"id": customer_id, "first_name": "Sara", "email": "sara@example.com"}
    if event == "app.store.authorize":
        return {
            "access_token": "sandbox-access-token",
            "refresh_token": "sandbox-refresh-token",
            "expires": int(time.time()) + 14 * 86400,
            "scope": "customers.read offline_access",
            "token_type": "bearer",
        }
    return {}


def encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def signed_headers(body: bytes, secret: str, strategy: str = "Signature") -> dict[str, str]:
    headers = {"Content-Type": "application/json", "X-Salla-Security-Strategy": strategy}
    if strategy == "Token":
        headers["Authorization"] = f"Bearer {secret}"
    else:
        headers["X-Salla-Signature"] = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return headers


def build(event: str, store_id: str, customer: str | None, secret: str) -> SampleDelivery:
    body = encode(sample_event(event, store_id, customer))
    return SampleDelivery("/webhooks/salla", body, signed_headers(body, secret))


def default_secret(settings: Settings, credentials: Mapping[str, Any]) -> str | None:
    """The secret Salla would sign with: the store's own, else the app's."""
    own = credentials.get("webhook_secrets") or ()
    return next(iter(own), None) or next(iter(settings.salla_webhook_secrets), None)
