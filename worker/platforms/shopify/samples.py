"""Sample Shopify deliveries, shaped like Shopify's Order, Refund, Customer and Shop
webhooks, for ``loyalty-relay trigger`` and the tests. Reference: PROVIDERS.md
(Appstle Loyalty: Shopify webhooks — headers and the base64 HMAC)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from worker.config import Settings
from worker.platforms.base import SampleDelivery
from worker.platforms.shopify.identity import customer_id, email_ref
from worker.platforms.shopify.webhooks import CUSTOMER_TOPICS, ORDER_TOPICS, REFUND_TOPIC

API_VERSION = "2025-01"
# What ``trigger`` offers: the topics we handle, and one we acknowledge and ignore.
EVENT_NAMES = (
    *sorted(ORDER_TOPICS),
    REFUND_TOPIC,
    *sorted(CUSTOMER_TOPICS),
    "app/uninstalled",
    "products/update",
)
SAMPLE_EMAIL = "sara@example.com"


def sample_resource(topic: str, shop: str, customer: str | None) -> dict[str, Any]:
    """The body Shopify would send for ``topic``; ``customer`` is an id or an email."""
    if topic.startswith("orders/"):
        return sample_order(customer)
    if topic == REFUND_TOPIC:
        return {"id": _number(), "order_id": _number(), "note": "damaged", "refund_line_items": []}
    if topic.startswith("customers/"):
        return _customer(customer)
    if topic == "app/uninstalled":
        return {"id": 548380009, "name": "Demo shop", "domain": shop, "myshopify_domain": shop}
    return {"id": _number(), "title": "Coffee", "vendor": "Demo", "status": "active"}


def sample_order(customer: str | None) -> dict[str, Any]:
    buyer = _customer(customer)
    return {
        "id": _number(),
        "name": f"#{_number() % 10_000}",
        "email": buyer["email"],
        "financial_status": "paid",
        "total_price": "230.00",
        "currency": "USD",
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "customer": buyer,
    }


def _customer(customer: str | None) -> dict[str, Any]:
    """A Customer object: the id as Shopify's number, or none when ``customer`` is an email."""
    found = customer_id(customer)
    email = customer.strip() if customer and email_ref(customer) else SAMPLE_EMAIL
    return {"id": int(found) if found else None, "email": email, "first_name": "Sara"}


def _number() -> int:
    return time.time_ns() // 1000 % 10**13


def encode(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def hmac_header(body: bytes, secret: str) -> str:
    """``X-Shopify-Hmac-Sha256``: base64 of the HMAC-SHA256 of the raw body."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def signed_headers(topic: str, shop: str, body: bytes, secret: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Shop-Domain": shop,
        "X-Shopify-Webhook-Id": str(uuid.uuid4()),
        "X-Shopify-Event-Id": str(uuid.uuid4()),
        "X-Shopify-Triggered-At": datetime.now(UTC).isoformat(),
        "X-Shopify-API-Version": API_VERSION,
        "X-Shopify-Hmac-Sha256": hmac_header(body, secret),
    }


def build(event: str, store_id: str, customer: str | None, secret: str) -> SampleDelivery:
    """``store_id`` is the shop's ``*.myshopify.com`` domain; ``secret`` the client secret."""
    body = encode(sample_resource(event, store_id, customer))
    return SampleDelivery("/webhooks/shopify", body, signed_headers(event, store_id, body, secret))


def default_secret(settings: Settings, credentials: Mapping[str, Any]) -> str | None:
    """The secret Shopify would sign with: the shop's own, else the app's client secret."""
    own = [secret for secret in credentials.get("webhook_secrets") or () if isinstance(secret, str)]
    return next(iter(own), None) or next(iter(settings.shopify_webhook_secrets), None)
