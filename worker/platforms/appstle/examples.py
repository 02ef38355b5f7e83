"""Appstle Loyalty's webhook events, as far as Appstle publishes them.

Appstle has two developer sites, and they list two families of events:

- https://developers.appstle.com/loyalty/webhooks ("powered by Svix"):
  ``loyalty.sign-up``, ``loyalty.earned``, ``loyalty.redeemed``,
  ``loyalty.credits-earned``, ``loyalty.vip-tier-achieved``,
  ``loyalty.birthday-trigger``, ``loyalty.referral-reward``,
  ``loyalty.referred-reward``. "All events follow the same envelope", and
  "every event's ``data`` object includes" ``customerId`` (Number, the Shopify
  customer id), ``customerEmail`` (String), ``note`` (String) and ``points``
  (Number).
- https://developers.loyalty.appstle.com/webhooks: ``point.earned``,
  ``point.redeemed``, ``point.expired``, ``point.pending``,
  ``point.cancelled``; ``vip.tier_upgraded``, ``vip.tier_downgraded``,
  ``vip.tier_expired``; ``reward.created``, ``reward.used``,
  ``reward.expired`` — with a description and a trigger each.

Not published: a complete example body for any event (the envelope example
on the first page was not in the copy we could read, and the second page
shows none). So the bodies below are built only from published pieces, each
named beside it, and the receiver accepts every variant those pieces allow:
the type under ``type`` (Standard Webhooks' ``{type, timestamp, data}``,
https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md)
or ``event`` / ``eventType``; the customer at ``data.customerId``,
``data.customer_id``, ``data.shopifyCustomerId``, ``data.customer.id`` or at
the top level when there is no ``data``; the id as a number, digits or a
``gid://shopify/Customer/<id>``; else an email (``customerEmail``, ``email``).
``VARIANTS`` holds those spellings for the tests.
"""

from __future__ import annotations

import copy
from typing import Any

# The common data fields (developers.appstle.com/loyalty/webhooks), with the example
# values Appstle publishes for the same fields on POST /api/external/add-points:
# customerId 67890, customerEmail "customer@example.com", points 50, and its note.
# Reference: https://developers.appstle.com/api-reference/points-&-earn-rules/add-points-to-customer-account
_LOYALTY_DATA: dict[str, Any] = {
    "customerId": 67890,
    "customerEmail": "customer@example.com",
    "note": "Compensation for delayed shipping - Order #1234",
    "points": 50,
}

# Not published as a webhook body: Appstle's published point transaction object
# (storefront API, "Get customer point transaction history", transaction-by-shop example).
# Reference: https://developers.loyalty.appstle.com/storefront-api-swagger/storefront-apis
_POINT_TRANSACTION: dict[str, Any] = {
    "id": 12345,
    "shop": "example-store.myshopify.com",
    "customerId": 67890,
    "points": 50,
    "pointType": "EARNED",
    "note": "Points earned for purchase",
    "status": "APPROVED",
    "transactionRule": "ORDER_PLACED",
    "createAt": "2025-01-15T10:30:00Z",
    "spentAmount": 99.99,
}

LOYALTY_EVENTS = (
    "loyalty.sign-up",
    "loyalty.earned",
    "loyalty.redeemed",
    "loyalty.credits-earned",
    "loyalty.vip-tier-achieved",
    "loyalty.birthday-trigger",
    "loyalty.referral-reward",
    "loyalty.referred-reward",
)
POINT_EVENTS = (
    "point.earned",
    "point.redeemed",
    "point.expired",
    "point.pending",
    "point.cancelled",
)
VIP_EVENTS = ("vip.tier_upgraded", "vip.tier_downgraded", "vip.tier_expired")
REWARD_EVENTS = ("reward.created", "reward.used", "reward.expired")
EXAMPLE_CUSTOMER = "67890"


def _envelope(event: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"type": event, "timestamp": "2025-01-15T10:30:00Z", "data": copy.deepcopy(data)}


EXAMPLES: dict[str, dict[str, Any]] = {
    # Reference: https://developers.appstle.com/loyalty/webhooks (event types, common data fields)
    **{event: _envelope(event, _LOYALTY_DATA) for event in LOYALTY_EVENTS},
    # Reference: https://developers.loyalty.appstle.com/webhooks (event types only)
    # Not published: the body; data is Appstle's published point transaction object.
    **{event: _envelope(event, _POINT_TRANSACTION) for event in POINT_EVENTS},
    # Reference: https://developers.loyalty.appstle.com/webhooks (event types only)
    # Not published: the body; data carries the common customer fields of the other family.
    **{event: _envelope(event, _LOYALTY_DATA) for event in VIP_EVENTS + REWARD_EVENTS},
}

# Every place and spelling the published pieces allow for the customer of one event
# (customer 67890): the receiver must read each as that customer.
VARIANTS: dict[str, dict[str, Any]] = {
    "data.customerId number": {"type": "point.earned", "data": {"customerId": 67890}},
    "data.customerId digits": {"type": "point.earned", "data": {"customerId": "67890"}},
    "data.customerId gid": {
        "type": "point.earned",
        "data": {"customerId": "gid://shopify/Customer/67890"},
    },
    "data.customer_id": {"type": "point.earned", "data": {"customer_id": 67890}},
    "data.shopifyCustomerId": {"type": "point.earned", "data": {"shopifyCustomerId": 67890}},
    "data.customer.id": {"type": "vip.tier_upgraded", "data": {"customer": {"id": 67890}}},
    "top level, no data": {"type": "reward.created", "customerId": 67890, "points": 50},
    "type under event": {"event": "point.expired", "data": {"customerId": 67890}},
    "type under eventType": {"eventType": "loyalty.earned", "data": {"customerId": 67890}},
}
