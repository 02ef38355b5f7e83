"""Zid's published example bodies for every event the Zid receiver handles.

Zid puts the event name in neither the body nor a header (the event is in our
receiving path, ``/webhooks/zid/<store id>/<event>``): a store event's body is
the resource itself — an Order for ``order.*``, a Customer for ``customer.*``.
App events (configured in Zid's Partner Dashboard) carry ``event_name`` and
``store_id`` in the body.

Each entry is copied from the source named above it; where Zid publishes no
body for an event, the comment says so and names the closest published object
used instead. Long lists (``products``, ``histories``, a customer's ``orders``)
are cut where the source shows them; nothing else is changed. The variants the
sources show are all kept: customer ids as strings (Zid's webhook Order schema)
and as numbers (the API examples and the SDK), ``is_guest_customer`` as 0.
"""

from __future__ import annotations

from typing import Any

# --- store events: orders --------------------------------------------------------------------

# Reference: https://docs.zid.sa/webhook-events-order (the Order schema linked from
# https://docs.zid.sa/webhooks for order.create, order.status.update and
# order.payment_status.update; its example: customer.id a *string*, "mobile" with "+").
ORDER_SCHEMA_EXAMPLE: dict[str, Any] = {
    "id": 25304285,
    "code": "8OVNEhyqcf",
    "store_id": 251073,
    "order_url": "https://zid.store/osama/o/6IJWXOYLuR/inv",
    "store_name": "Osama's Store",
    "shipping_method_code": "custom",
    "store_url": "https://zid.store/osama/",
    "order_status": {"name": "Delivery in progress", "code": "new"},
    "currency_code": "KWD",
    "is_marketplace_order": False,
    "customer": {
        "id": "2083543",
        "name": "Osama",
        "email": "example.user@email.com",
        "mobile": "+966501234567",
        "note": " ",
        "verified": "1",
        "type": "individual",
    },
    "shipping": {
        "method": {
            "id": "SHM-123456",
            "name": "Express Delivery",
            "code": "EXP_DEL",
            "estimated_delivery_time": "3-5 Business Days",
            "icon": "https://cdn.example.com/icons/shipping/express_delivery.png",
            "is_system_option": False,
            "waybill": "WB-12345678",
            "had_errors_while_fetching_waybill": False,
            "waybill_tracking_id": "TRACK-12345678",
            "has_waybill_and_packing_list": False,
            "tracking": {
                "number": "TRACK-12345678",
                "status": "In Transit",
                "url": "https://example.com/track?number=TRACK-12345678",
            },
            "order_shipping_status": None,
            "inventory_address": ["string"],
            "courier": "FedEx",
            "return_shipment": "RET-12345678",
        },
        "address": {
            "formatted_address": "Masked Address",
            "street": "Masked Street",
            "district": "Masked District",
            "city": {"id": 1, "name": "Other"},
            "country": {"id": 184, "name": "السعودية", "code": "SA"},
        },
    },
    "payment": {
        "method": {
            "name": "بطاقة مدى البنكية",
            "code": "zidpay",
            "type": "cc",
            "payment_network": "Visa",
        },
        "invoice": [
            {
                "code": "sub_totals_before_vat",
                "value": "0.00000000000000",
                "value_string": "0.000 KWD",
                "title": "المجموع غير شامل الضريبة",
            }
        ],
    },
    "is_potential_fraud": False,
    "created_at": "2023-07-04 09:12:36",
    "updated_at": "2023-07-04 09:14:28",
    "invoice_link": "https://zid-testing-907587157081.s3-accelerate.amazonaws.com/pdf/order_44834593.pdf",
    "products_count": 1,
    "products_sum_total_string": "30.00 SAR",
    "language": "ar",
}

# Reference: Zid's "Get Order by ID" example, the same Order object
# (https://apidog.com/apidoc/shared/7c0c7772-6e1f-4280-8172-b19e78cfd371/api-12479054, the
# ``order`` of its answer): customer.id a *number*, ``is_guest_customer`` 0, ``payment_status``.
ORDER_API_EXAMPLE: dict[str, Any] = {
    "id": 44834593,
    "code": "dyV6hS0VZi",
    "store_id": 3,
    "order_url": "https://osama.zid.store/o/dyV6hS0VZi/inv",
    "store_name": "Elite Backpacks",
    "shipping_method_code": "zid_app_market.2159",
    "store_url": "https://osama.zid.store/",
    "order_status": {"name": "جديد", "code": "new"},
    "currency_code": "KWD",
    "customer": {
        "id": 2083543,
        "name": "AbdulrhmanEssa",
        "email": "abdulrhmanaissa@hotmail.com",
        "mobile": "966550448447",
        "note": "",
        "verified": 1,
        "type": "individual",
    },
    "has_different_consignee": 0,
    "is_guest_customer": 0,
    "is_gift_order": 0,
    "gift_card_details": None,
    "is_quick_checkout_order": False,
    "order_total": "0.00000000000000",
    "order_total_string": "0.000 KWD",
    "has_different_transaction_currency": True,
    "transaction_reference": None,
    "transaction_amount": 0,
    "transaction_amount_string": "0.00 SAR",
    "issue_date": "05-12-2024 | 03:27 م",
    "payment_status": "paid",
    "is_potential_fraud": False,
    "source": "المتجر الإلكتروني",
    "source_code": "catalog",
    "is_reseller_transaction": False,
    "created_at": "2024-12-05 12:27:15",
    "updated_at": "2024-12-05 12:27:22",
    "is_on_demand": False,
    "tags": [],
    "requires_shipping": True,
    "should_merchant_set_shipping_method": False,
}

# Reference: zidsa/sdk-python tests/fixtures/order_detail.json (``order``, products and
# histories cut): the official SDK's Order, customer.id a number, payment "pending".
ORDER_SDK_EXAMPLE: dict[str, Any] = {
    "id": 39018491,
    "invoice_number": 39018491,
    "code": "zrDH30DWiX",
    "store_id": 1,
    "order_url": "https://teststore.zidtest.com/o/zrDH30DWiX/inv",
    "store_name": "Test Store",
    "shipping_method_code": None,
    "store_url": "https://teststore.zidtest.com/",
    "order_status": {"name": "New", "code": "new"},
    "display_status": {"id": 1, "code": "new", "color": "#3498db", "name": "New"},
    "currency_code": "SAR",
    "customer": {
        "id": 257,
        "name": "Test User 5",
        "email": "testuser5@example.com",
        "mobile": "966500000005",
        "note": "",
        "type": "individual",
    },
    "has_different_consignee": 0,
    "is_guest_customer": 0,
    "is_gift_order": 0,
    "gift_card_details": None,
    "is_quick_checkout_order": False,
    "order_total": "100.00000000000000",
    "order_total_string": "100.00 SAR",
    "has_different_transaction_currency": False,
    "transaction_reference": None,
    "transaction_amount": 100,
    "transaction_amount_string": "100.00 SAR",
    "issue_date": "31-01-2026 | 03:56 ص",
    "payment_status": "pending",
    "is_potential_fraud": False,
    "source": "Merchant Admin",
    "source_code": "md",
    "is_reseller_transaction": False,
    "created_at": "2026-01-30 15:56:02",
    "updated_at": "2026-01-30 15:56:06",
    "products_count": 1,
    "products_sum_total_string": "100.00 SAR",
    "language": "en",
}

# --- store events: customers -----------------------------------------------------------------

# Not published as a webhook body: https://docs.zid.sa/webhooks links customer.create,
# customer.update and customer.login to the "Customer schema" and customer.merchant.update to
# a "Payload" with no example. Zid's Customer object as its official SDK fixture holds it:
# Reference: zidsa/sdk-python tests/fixtures/customer_detail.json (``customer``, ``orders`` cut).
# The customer id is ``id`` (a number there; strings are accepted too).
CUSTOMER_SDK_EXAMPLE: dict[str, Any] = {
    "id": 218,
    "name": "Test User 1",
    "email": "testuser1@example.com",
    "mobile": "966500000006",
    "gender": "male",
    "birth_date": "1999-05-05",
    "verified": True,
    "is_active": True,
    "is_cod_enabled": True,
    "type": "business",
    "business_name": "Test Business 1",
    "tax_number": None,
    "commercial_registration": "111111",
    "source": None,
    "points": {
        "id": "23b3d445-e6c8-4d3f-aee8-957ebde2517d",
        "external_id": "9727666",
        "store_id": "2261600a-4d09-4f6f-ae3a-0a0f5431f733",
        "customer_id": 218,
        "loyalty_provider": "gameball",
        "points": 32600,
        "pending_points": 32600,
        "pending_negative_points": 0,
        "total_positive_points": 32600,
        "total_negative_points": 0,
        "created_at": "2024-09-02T13:22:43.000000Z",
        "updated_at": "2024-09-05T11:04:55.000000Z",
        "deleted_at": None,
        "status": 5,
    },
    "order_total_payments": "17326.58",
    "last_order_date": None,
    "created_at": "2021-01-19T12:24:26.000000Z",
    "updated_at": "2026-01-14T16:10:20.000000Z",
    "nickname": "Test User 1",
    "pivotEmail": "testuser1@example.com",
    "pivotMobile": "966500000006",
    "order_counts": 21,
}

# --- app events (Partner Dashboard) ----------------------------------------------------------

# Reference: https://docs.zid.sa/app-events-878234m0 ("1. App Authorized", verbatim).
APP_AUTHORIZED_EXAMPLE: dict[str, Any] = {
    "app_id": 1292,
    "store_id": 507530,
    "store_uuid": "d78468cd-4b44-4fee-a00d-76561f35787c",
    "store_url": "https://wyatt.com.sa/",
    "plan_name": "النمو",
    "status": "authorized",
    "start_date": "2025-02-21T08:05:29.000000Z",
    "end_date": "2025-03-22T08:05:29.000000Z",
    "amount_paid": 79.01,
    "old_plan_name": None,
    "merchant_email": "info@ehmp.com.sa",
    "merchant_phone_no": "966554349999",
    "event_name": "app.market.application.authorized",
    "plan_type": "Paid",
    "plan_id": 904,
    "payment_date": "2025-02-21T08:05:29.000000Z",
}

# Reference: https://docs-v2.zid.dev/partner-dashboard/subscription-events ("Sample Webhook
# Request", verbatim but the merchant e-mail Zid's page masks): "all the webhook events shares
# the same request structure" — install, uninstall and every app.market.subscription.* event.
APP_SUBSCRIPTION_EXAMPLE: dict[str, Any] = {
    "app_id": 65,
    "status": "active",
    "end_date": "2021-11-11T19:36:36.000000Z",
    "store_id": 12594,
    "plan_name": "Super 30",
    "plan_type": "Paid",
    "store_url": "http://zid.store/abcd/",
    "event_name": "app.market.subscription.active",
    "start_date": "2021-10-13T19:36:36.000000Z",
    "amount_paid": 1150,
    "old_plan_name": None,
    "merchant_email": "merchant@example.com",
    "merchant_phone_no": "966501666607",
}


def app_event(event_name: str) -> dict[str, Any]:
    """Not published per event: the shared structure above with this ``event_name``.

    Zid publishes no separate body for install, uninstall or the other subscription
    events, only that they share one structure; the ``status`` value each sends is not
    published either, so nothing here reads it.
    """
    return APP_SUBSCRIPTION_EXAMPLE | {"event_name": event_name}


EXAMPLES: dict[str, dict[str, Any]] = {
    "order.create": ORDER_SCHEMA_EXAMPLE,
    "order.status.update": ORDER_API_EXAMPLE,
    "order.payment_status.update": ORDER_SDK_EXAMPLE,
    "customer.create": CUSTOMER_SDK_EXAMPLE,
    "customer.update": CUSTOMER_SDK_EXAMPLE,
    "customer.merchant.update": CUSTOMER_SDK_EXAMPLE,
    "customer.login": CUSTOMER_SDK_EXAMPLE,
    "app.market.application.authorized": APP_AUTHORIZED_EXAMPLE,
    "app.market.subscription.active": APP_SUBSCRIPTION_EXAMPLE,
    "app.market.application.install": app_event("app.market.application.install"),
    "app.market.application.uninstall": app_event("app.market.application.uninstall"),
    "app.market.subscription.warning": app_event("app.market.subscription.warning"),
    "app.market.subscription.suspended": app_event("app.market.subscription.suspended"),
    "app.market.subscription.expired": app_event("app.market.subscription.expired"),
    "app.market.subscription.renew": app_event("app.market.subscription.renew"),
    "app.market.subscription.upgrade": app_event("app.market.subscription.upgrade"),
    "app.market.subscription.refunded": app_event("app.market.subscription.refunded"),
}

# Every order example, for tests that run each event over each documented variant.
ORDER_VARIANTS: tuple[dict[str, Any], ...] = (
    ORDER_SCHEMA_EXAMPLE,
    ORDER_API_EXAMPLE,
    ORDER_SDK_EXAMPLE,
)
