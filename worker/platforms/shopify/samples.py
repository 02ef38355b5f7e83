"""Sample Shopify deliveries for ``loyalty-relay trigger``, the demo and the tests:
Shopify's published sample bodies (``examples.py``) with the store's customer
substituted, signed and headed as Shopify sends them.

Reference: https://shopify.dev/docs/apps/build/webhooks (the ``X-Shopify-*``
headers, the base64 HMAC of the raw body) and
https://shopify.dev/docs/apps/build/webhooks/ignore-duplicates (``X-Shopify-Event-Id``).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from worker.config import Settings
from worker.platforms.base import SampleDelivery
from worker.platforms.shopify import compliance
from worker.platforms.shopify.examples import EXAMPLES
from worker.platforms.shopify.identity import customer_id, email_ref
from worker.platforms.shopify.webhooks import CUSTOMER_TOPICS, ORDER_TOPICS, REFUND_TOPIC

API_VERSION = "2025-01"
# What ``trigger`` offers: the topics we handle, and one we acknowledge and ignore.
IGNORED_SAMPLE = "products/update"
EVENT_NAMES = (
    *sorted(ORDER_TOPICS),
    REFUND_TOPIC,
    *sorted(CUSTOMER_TOPICS),
    "app/uninstalled",
    *sorted(compliance.TOPICS),
    IGNORED_SAMPLE,
)
SAMPLE_EMAIL = "sara@example.com"
# Not a topic we handle, so no published sample is copied: an excerpt of a Product.
IGNORED_BODY: dict[str, Any] = {"id": 788032119674292922, "title": "Example T-Shirt"}


def sample_resource(topic: str, shop: str, customer: str | None) -> dict[str, Any]:
    """Shopify's sample body for ``topic``, about ``customer`` (an id or an email)."""
    if topic in compliance.TOPICS:
        return compliance.sample(topic, shop, customer)
    body = copy.deepcopy(EXAMPLES.get(topic, IGNORED_BODY))
    if topic in ORDER_TOPICS:
        _name_buyer(body, customer)
    elif topic in CUSTOMER_TOPICS:
        _name_customer(body, customer)
    return body


def _name_buyer(order: dict[str, Any], customer: str | None) -> None:
    email = _email(customer)
    order["email"] = order["contact_email"] = email
    _name_customer(order["customer"], customer)


def _name_customer(resource: dict[str, Any], customer: str | None) -> None:
    """The id as Shopify's number (and GID), or none when ``customer`` is an email."""
    found = customer_id(customer)
    resource["id"] = int(found) if found else None
    resource["admin_graphql_api_id"] = f"gid://shopify/Customer/{found}" if found else None
    resource["email"] = _email(customer)
    address = resource.get("default_address")
    if isinstance(address, dict):
        address["customer_id"] = resource["id"]


def _email(customer: str | None) -> str:
    return customer.strip() if customer and email_ref(customer) else SAMPLE_EMAIL


def encode(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def hmac_header(body: bytes, secret: str) -> str:
    """``X-Shopify-Hmac-Sha256``: base64 of the HMAC-SHA256 of the raw body."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def signed_headers(
    topic: str, shop: str, body: bytes, secret: str, *, event_id: str | None = None
) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Shop-Domain": shop,
        "X-Shopify-Webhook-Id": str(uuid.uuid4()),
        "X-Shopify-Event-Id": event_id or str(uuid.uuid4()),
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
