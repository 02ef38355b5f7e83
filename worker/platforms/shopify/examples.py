"""Shopify's published sample payloads for the topics the receiver handles.

Reference: https://shopify.dev/docs/api/webhooks (the webhook topic reference,
"Sample Payload" of each topic — the same bodies ``shopify app webhook trigger``
sends, fetched by Shopify/cli ``packages/app/src/cli/services/webhook/request-sample.ts``).

Each entry is an excerpt: the keys kept are copied verbatim (values, ids and
spelling as Shopify publishes them), the rest (line items, prices, addresses,
tax and shipping lines) is left out because nothing here reads it. Ids are
JSON numbers: Shopify's customer id 115310627314723954 is beyond 2**53, so it
must be read as an integer, never through a float.

``samples.py`` builds the ``trigger`` and demo bodies from these, substituting
only the customer's id and email.
"""

from __future__ import annotations

from typing import Any

# The Order sample shared by every orders/* topic: Shopify publishes the same
# order (820982911946154508, cancelled, voided) under each of them.
_ORDER: dict[str, Any] = {
    "id": 820982911946154508,
    "admin_graphql_api_id": "gid://shopify/Order/820982911946154508",
    "cancel_reason": "customer",
    "cancelled_at": "2021-12-31T19:00:00-05:00",
    "contact_email": "jon@example.com",
    "created_at": "2021-12-31T19:00:00-05:00",
    "currency": "USD",
    "email": "jon@example.com",
    "financial_status": "voided",
    "fulfillment_status": None,
    "name": "#9999",
    "number": 234,
    "order_number": 1234,
    "test": True,
    "updated_at": "2021-12-31T19:00:00-05:00",
    "customer": {
        "id": 115310627314723954,
        "created_at": None,
        "updated_at": None,
        "first_name": "John",
        "last_name": "Smith",
        "state": "disabled",
        "note": None,
        "verified_email": True,
        "multipass_identifier": None,
        "tax_exempt": False,
        "email": "john@example.com",
        "phone": None,
        "currency": "USD",
        "tax_exemptions": [],
        "admin_graphql_api_id": "gid://shopify/Customer/115310627314723954",
    },
}

# The Customer sample shared by customers/create and customers/update.
_CUSTOMER: dict[str, Any] = {
    "id": 706405506930370084,
    "created_at": "2021-12-31T19:00:00-05:00",
    "updated_at": "2021-12-31T19:00:00-05:00",
    "first_name": "Bob",
    "last_name": "Biller",
    "state": "disabled",
    "note": "This customer loves ice cream",
    "verified_email": True,
    "multipass_identifier": None,
    "tax_exempt": False,
    "email": "bob@biller.com",
    "phone": None,
    "currency": "USD",
    "addresses": [],
    "tax_exemptions": [],
    "admin_graphql_api_id": "gid://shopify/Customer/706405506930370084",
    "default_address": {
        "id": 12321,
        "customer_id": 706405506930370084,
        "first_name": "Bob",
        "last_name": "Biller",
        "default": True,
    },
}

EXAMPLES: dict[str, dict[str, Any]] = {
    # Reference: https://shopify.dev/docs/api/webhooks?reference=toml#list-orders/create
    "orders/create": _ORDER,
    # Reference: https://shopify.dev/docs/api/webhooks?reference=toml#list-orders/paid
    "orders/paid": _ORDER,
    # Reference: https://shopify.dev/docs/api/webhooks?reference=toml#list-orders/updated
    "orders/updated": _ORDER,
    # Reference: https://shopify.dev/docs/api/webhooks?reference=toml#list-orders/fulfilled
    "orders/fulfilled": _ORDER,
    # Reference: https://shopify.dev/docs/api/webhooks?reference=toml#list-orders/cancelled
    "orders/cancelled": _ORDER,
    # Reference: https://shopify.dev/docs/api/webhooks?reference=toml#list-refunds/create
    # A Refund names its order only (no customer): the order's own events refresh it.
    "refunds/create": {
        "id": 890088186047892319,
        "order_id": 820982911946154508,
        "created_at": "2021-12-31T19:00:00-05:00",
        "note": "Things were damaged",
        "user_id": 548380009,
        "processed_at": "2021-12-31T19:00:00-05:00",
    },
    # Reference: https://shopify.dev/docs/api/webhooks?reference=toml#list-customers/create
    "customers/create": _CUSTOMER,
    # Reference: https://shopify.dev/docs/api/webhooks?reference=toml#list-customers/update
    "customers/update": _CUSTOMER,
    # Reference: https://shopify.dev/docs/api/webhooks?reference=toml#list-app/uninstalled
    # The Shop resource; which shop it is comes from X-Shopify-Shop-Domain.
    "app/uninstalled": {
        "id": 548380009,
        "name": "Super Toys",
        "email": "super@supertoys.com",
        "domain": None,
        "province": "Tennessee",
        "country": "US",
        "address1": "190 MacLaren Street",
        "zip": "37178",
        "city": "Houston",
        "primary_locale": "en",
        "country_code": "US",
        "currency": "USD",
        "customer_email": "super@supertoys.com",
    },
}

# Which customer each example is about, as Shopify means it (None: the topic names none).
EXAMPLE_CUSTOMERS: dict[str, str | None] = {
    topic: (
        "115310627314723954"
        if topic.startswith("orders/")
        else "706405506930370084"
        if topic.startswith("customers/")
        else None
    )
    for topic in EXAMPLES
}
