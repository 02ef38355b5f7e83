"""Shopify's mandatory compliance webhooks and what each asks of us.

Reference: https://shopify.dev/docs/apps/build/compliance/privacy-law-compliance
(every App Store app must subscribe to these three topics, handle a JSON POST,
answer 401 to a bad HMAC, and act on the request within 30 days). They arrive
signed like any Shopify webhook, with ``X-Shopify-Topic`` naming the topic.

- ``customers/redact``: delete what we hold about the customer → ``forget_customer``;
- ``shop/redact`` (48 hours after the shop uninstalled the app): delete the
  shop's data → ``forget_store``; it comes for an uninstalled store by design;
- ``customers/data_request``: the customer asked the merchant for their data →
  the request is recorded and the merchant exports it with
  ``loyalty-relay privacy export`` (``worker.privacy``).

A customer is named by ``customer.id`` and ``customer.email``; both are used,
since we may hold them under either (an event without an id is kept under the
email's hash).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from worker.platforms.base import (
    EXPORT_CUSTOMER,
    FORGET_CUSTOMER,
    FORGET_STORE,
    EventPlan,
    PrivacyRequest,
)
from worker.platforms.shopify.identity import customer_id, email_ref, json_object

CUSTOMERS_REDACT = "customers/redact"
SHOP_REDACT = "shop/redact"
DATA_REQUEST = "customers/data_request"
TOPICS = frozenset({CUSTOMERS_REDACT, SHOP_REDACT, DATA_REQUEST})
REQUEST_REF_LIMIT = 100

# The published payloads, copied as they are (``{shop}`` is Shopify's placeholder).
EXAMPLES: dict[str, dict[str, Any]] = {
    # Reference: Shopify/shopify-app-template-node web/gdpr.js (CUSTOMERS_DATA_REQUEST),
    # https://shopify.dev/docs/apps/build/compliance/privacy-law-compliance
    DATA_REQUEST: {
        "shop_id": 954889,
        "shop_domain": "{shop}.myshopify.com",
        "orders_requested": [299938, 280263, 220458],
        "customer": {"id": 191167, "email": "john@example.com", "phone": "555-625-1199"},
        "data_request": {"id": 9999},
    },
    # Reference: Shopify/shopify-app-template-node web/gdpr.js (CUSTOMERS_REDACT),
    # https://shopify.dev/docs/apps/build/compliance/privacy-law-compliance
    CUSTOMERS_REDACT: {
        "shop_id": 954889,
        "shop_domain": "{shop}.myshopify.com",
        "customer": {"id": 191167, "email": "john@example.com", "phone": "555-625-1199"},
        "orders_to_redact": [299938, 280263, 220458],
    },
    # Reference: Shopify/shopify-app-template-node web/gdpr.js (SHOP_REDACT),
    # https://shopify.dev/docs/apps/build/compliance/privacy-law-compliance
    SHOP_REDACT: {"shop_id": 954889, "shop_domain": "{shop}.myshopify.com"},
}


def sample(topic: str, shop: str, customer: str | None) -> dict[str, Any]:
    """The published payload for ``shop`` (and ``customer``: an id or an email), for
    ``loyalty-relay trigger`` and the tests: only the shop and the customer change."""
    body = copy.deepcopy(EXAMPLES[topic])
    body["shop_domain"] = shop
    if "customer" in body and customer:
        found = customer_id(customer)
        body["customer"]["id"] = int(found) if found else None
        if found is None and email_ref(customer):
            body["customer"]["email"] = customer.strip()
    return body


def plan(topic: str, body: bytes) -> EventPlan:
    if topic == SHOP_REDACT:
        return EventPlan(privacy=PrivacyRequest(FORGET_STORE))
    document = json_object(body) or {}
    refs = customer_refs(_mapping(document.get("customer")))
    if not refs:
        return EventPlan(ignored_reason=f"{topic} names no customer id or email")
    if topic == CUSTOMERS_REDACT:
        return EventPlan(privacy=PrivacyRequest(FORGET_CUSTOMER, refs))
    request = _mapping(document.get("data_request")).get("id")
    ref = str(request)[:REQUEST_REF_LIMIT] if isinstance(request, int | str) else None
    return EventPlan(privacy=PrivacyRequest(EXPORT_CUSTOMER, refs, ref))


def customer_refs(customer: Mapping[str, Any]) -> tuple[str, ...]:
    """The customer's id and email ref, those that are there."""
    found = (customer_id(customer.get("id")), email_ref(customer.get("email")))
    return tuple(ref for ref in found if ref is not None)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
