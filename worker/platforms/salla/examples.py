"""Salla's published webhook examples, copied from Salla's documentation.

``EXAMPLES`` maps each event the receiver handles to the body Salla publishes for
it, copied faithfully (JSON ``true``/``false``/``null`` spelled as Python). Where
Salla's sample is not valid JSON (a missing comma after ``"description"`` in the
App Events samples, ``//`` comments in ``app.subscription.started``) the comma is
added and the comment dropped; nothing else is changed. Where Salla publishes
no sample of its own for an event, the entry says so and names the documented
model it shares. ``samples.py``, the sandboxes, the demo and
``tests/worker/platforms/test_salla_examples.py`` all start from these.
"""

from __future__ import annotations

import copy
from typing import Any


def _renamed(example: dict[str, Any], event: str) -> dict[str, Any]:
    """A documented body under another event name that Salla says shares its model."""
    return copy.deepcopy(example) | {"event": event}


# Reference: https://docs.salla.dev/433804m0#orders-webhook-events-model
# (Salla: Webhooks - Store Events - Order - "Orders Webhook Events Model", Example tab).
ORDER_CREATED: dict[str, Any] = {
    "event": "order.created",
    "merchant": 1305146709,
    "created_at": "Sun Jun 26 2022 12:21:48 GMT+0300",
    "data": {
        "id": 2116149737,
        "reference_id": 41027662,
        "urls": {
            "customer": "https://salla.sa/dev-wofftr4xsra5xtlv/order/DXZbOz68qjnYaOw04oBa35wVELBpJyxo",
            "admin": "https://s.salla.sa/orders/order/DXZbOz68qjnYaOw04oBa35wVELBpJyxo",
            "rating": "https://store-test.com/rating-link",
            "checkout": "https://store-test.com/checkout",
        },
        "date": {
            "date": "2022-06-26 12:21:45.000000",
            "timezone_type": 3,
            "timezone": "Asia/Riyadh",
        },
        "draft": False,
        "read": True,
        "source": "store",
        "source_device": "desktop",
        "source_details": {
            "type": "direct",
            "value": None,
            "device": "desktop",
            "user-agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) "
            "AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/102.0.0.0 Safari/537.36",
            "ip": "31.166.186.78",
        },
        "status": {
            "id": 566146469,
            "name": "بإنتظار المراجعة",
            "slug": "under_review",
            "customized": {"id": 986688842, "name": "بإنتظار المراجعة"},
        },
        "receipt_image": "https://cdn.salla.sa/jKxK/md4Pv5jeLEX52zWTboKSVr8VmlX5tNbiu9YF00C0.png",
        "payment_method": "bank",
        "currency": "SAR",
        "amounts": {
            "sub_total": {"amount": 186, "currency": "SAR"},
            "shipping_cost": {"amount": 15, "currency": "SAR"},
            "cash_on_delivery": {"amount": 0, "currency": "SAR"},
            "tax": {"percent": "0.00", "amount": {"amount": 0, "currency": "SAR"}},
            "discounts": [
                {
                    "title": "new offer",
                    "type": "special",
                    "code": "new offer",
                    "discount": "5.00",
                    "discounted_shipping": 0,
                }
            ],
            "total": {"amount": 196, "currency": "SAR"},
        },
        "shipping": {
            "id": 1833934431,
            "app_id": None,
            "company": "السعودية",
            "logo": "",
            "receiver": {
                "name": "Mohammed Ali",
                "email": "usertest@gmail.com",
                "phone": "999123456789",
            },
            "shipper": {
                "name": "Demo",
                "company_name": "dev-wofftr4xsra5xtlv",
                "email": "wofftr4xsra5xtlv@email.partners",
                "phone": "966500000000",
            },
            "pickup_address": {
                "country": "السعودية",
                "country_code": "SA",
                "city": "مكة",
                "shipping_address": "شارع عبدالله,السلام,23233, سنابل السلام, مكة,السعودية",
                "street_number": "شارع عبدالله",
                "block": "السلام",
                "postal_code": "23233",
                "geo_coordinates": {"lat": 21.3825905096851, "lng": 39.77319103068542},
            },
            "address": {
                "country": "SA",
                "country_code": "SA",
                "city": "جدة",
                "shipping_address": " شارع ابو امية الضمري، الحي الزهراء ،, جدة, السعودية",
                "street_number": "ابو امية الضمري",
                "block": "الزهراء",
                "postal_code": "",
                "geo_coordinates": {"lat": 0, "lng": 0},
            },
            "shipment": {"id": "0", "pickup_id": None, "tracking_link": "0", "label": []},
            "policy_options": [],
        },
        "shipments": [
            {
                "id": 649964784,
                "created_at": None,
                "type": "shipment",
                "courier_id": 802226618,
                "courier_name": "أوتو",
                "courier_logo": "https://salla-dev-portal.s3.eu-central-1.amazonaws.com/uploads/LUZaDEGwzFRDJKO7XVLXtix71Zb8Z2vBt6xwHrwZ.png",
                "shipping_number": None,
                "tracking_number": None,
                "pickup_id": None,
                "trackable": False,
                "tracking_link": None,
                "label": None,
                "payment_method": "cod",
                "source": "store",
                "status": "in_progress",
                "total": {"amount": 175.47, "currency": "SAR"},
                "cash_on_delivery": {"amount": 0, "currency": "SAR"},
                "is_international": True,
                "total_weight": {"value": 0.2, "units": "kg"},
                "shipping_route": {"id": 1867988940, "name": "Default Route"},
                "packages": [
                    {
                        "item_id": 2077288690,
                        "external_id": None,
                        "quantity": 1,
                        "weight": {"value": 0.2, "units": "kg"},
                    }
                ],
                "ship_from": {
                    "type": "branch",
                    "name": "المستودع الرئيسي التجريبي",
                    "email": "",
                    "phone": "966555855555",
                    "country": "السعودية",
                    "city": "Medina",
                    "region": {"id": 1473353380, "name": "منطقة الرياض", "code": "RD"},
                    "address_line": "3391 حسين بين عبدلله بين ضميرا,مسجد "
                    "الدرع,00000, 3391 حسين بين عبدلله بين "
                    "ضميرا, الدرق موثق, مدينة 42313 8700, "
                    "سعودي عربية, Medina,السعودية",
                    "street_number": "3391 حسين بين عبدلله بين ضميرا",
                    "block": "مسجد الدرع",
                    "short_address": "RHSA3184",
                    "building_number": "5436",
                    "additional_number": "8976",
                    "postal_code": "00000",
                    "latitude": 24.524655575978006,
                    "longitude": 39.56918120384216,
                    "branch_id": 1790435930,
                },
                "ship_to": {
                    "type": "address",
                    "name": "Test Username",
                    "email": "user@gmail.com",
                    "phone": "971501960991",
                    "country": "الامارات",
                    "city": "أبو ظبي",
                    "region": {"id": 1473353380, "name": "منطقة الرياض", "code": "RD"},
                    "address_line": " شارع ijaz street، الحي Shakhbout city "
                    "70633،, villa 24,, أبو ظبي, الامارات",
                    "street_number": "ijaz street",
                    "block": "Shakhbout city",
                    "short_address": "RHMA3184",
                    "building_number": "2846",
                    "additional_number": "7556",
                    "postal_code": "70633",
                    "latitude": 0,
                    "longitude": 0,
                },
                "meta": {
                    "app_id": 846904320,
                    "policy_options": {"dimensions": {"length": "", "width": "", "height": ""}},
                },
            }
        ],
        "can_cancel": True,
        "show_weight": False,
        "can_reorder": True,
        "is_pending_payment": False,
        "pending_payment_ends_at": 172796,
        "total_weight": "٠٫٢٥ كجم",
        "shipment_branch": [],
        "customer": {
            "id": 225167971,
            "first_name": "Mohammed",
            "last_name": "Ali",
            "mobile": 501806978,
            "mobile_code": "+966",
            "email": "usertest@gmail.com",
            "urls": {
                "customer": "https://salla.sa/dev-wofftr4xsra5xtlv/profile",
                "admin": "https://s.salla.sa/customers/l7mYBdgXA9xJwWZRZK8WD42GNkZbjvRO",
            },
            "avatar": "https://cdn.salla.sa/customer_profiles/5i6SUhu9dlF1fvL3EcV98U644eOlG9jcEipz6dOo.jpg",
            "gender": "female",
            "birthday": {
                "date": "1997-06-03 00:00:00.000000",
                "timezone_type": 3,
                "timezone": "Asia/Riyadh",
            },
            "city": "جدة",
            "country": "السعودية",
            "country_code": "SA",
            "currency": "SAR",
            "location": "",
            "updated_at": {
                "date": "2022-06-22 10:20:14.000000",
                "timezone_type": 3,
                "timezone": "Asia/Riyadh",
            },
        },
        "items": [
            {
                "id": 70815337,
                "name": "بيتزا",
                "sku": "54534534",
                "quantity": 1,
                "currency": "SAR",
                "weight": 0.25,
                "weight_label": "٠٫٢٥ كجم",
                "amounts": {
                    "price_without_tax": {"amount": 186, "currency": "SAR"},
                    "total_discount": {"amount": 5, "currency": "SAR"},
                    "tax": {"percent": "0.00", "amount": {"amount": 0, "currency": "SAR"}},
                    "total": {"amount": 186, "currency": "SAR"},
                },
                "notes": "",
                "product": {
                    "id": 720881993,
                    "type": "food",
                    "promotion": {"title": "اطلبها ساخنه", "sub_title": "بيتزا خضار مشكل"},
                    "status": "sale",
                    "is_available": True,
                    "sku": "54534534",
                    "name": "بيتزا",
                    "price": {"amount": 66, "currency": "SAR"},
                    "sale_price": {"amount": 45, "currency": "SAR"},
                    "currency": "SAR",
                    "url": "https://salla.sa/dev-wofftr4xsra5xtlv/بيتزا/p720881993",
                    "thumbnail": "https://cdn.salla.sa/bYQEn/buItWZf4OLbaTmL7vTMlDUWLOn20hfpq3QUbD2AB.jpg",
                    "has_special_price": False,
                    "regular_price": {"amount": 66, "currency": "SAR"},
                    "calories": "600.00",
                    "mpn": None,
                    "gtin": None,
                    "favorite": None,
                    "starting_price": None,
                },
                "options": [
                    {
                        "id": 1197801866,
                        "product_option_id": 60176141,
                        "name": "SIZE",
                        "type": "checkbox",
                        "value": [
                            {
                                "id": 408420634,
                                "name": "BIG",
                                "price": {"amount": 120, "currency": "SAR"},
                            }
                        ],
                    },
                    {
                        "id": 289546379,
                        "product_option_id": 1674915438,
                        "name": "الاضافات",
                        "type": "checkbox",
                        "value": [
                            {
                                "id": 152115913,
                                "name": "بصل",
                                "price": {"amount": 0, "currency": "SAR"},
                            },
                            {
                                "id": 1526610378,
                                "name": "فلفل",
                                "price": {"amount": 0, "currency": "SAR"},
                            },
                        ],
                    },
                ],
                "images": [],
                "codes": [],
                "files": [],
            }
        ],
        "product_reservations": [
            {"id": 1289748598, "from": "01:10", "to": "01:40", "date": "2023-04-18"}
        ],
        "bank": {
            "id": 326553500,
            "bank_name": "البنك الأهلي التجاري",
            "bank_id": 1473353380,
            "account_name": "Demo Account",
            "account_number": "000000608010167519",
            "iban_number": "SA2380000382608010130308",
            "status": "active",
        },
        "tags": [],
    },
    "pickup_branch": {
        "id": 1345871747,
        "name": "Branch",
        "status": "active",
        "location": {"lat": "37.78044939", "lng": "-97.8503951"},
        "contacts": {
            "phone": "+201099999999",
            "whatsapp": "+201099999999",
            "telephone": "+201099999999",
        },
        "preparation_time": "ساعة 30 دقيقة",
        "is_open": False,
        "closest_time": {"from": "08:00", "to": "17:00"},
        "working_hours": [
            {
                "name": "الأحد",
                "times": [{"from": "08:00", "to": "17:00"}, {"from": "19:00", "to": "23:30"}],
            }
        ],
        "is_cod_available": True,
        "is_default": True,
        "type": [],
        "cod_cost": "15",
        "country": {
            "id": 1473353380,
            "name": "السعودية",
            "name_en": "Saudi Arabia",
            "code": "SA",
            "mobile_code": "+966",
        },
        "city": {"id": 1, "name": "الرياض", "name_en": "Riyadh"},
    },
}

# Reference: https://docs.salla.dev/433804m0#order-status-updated-webhook-event-model
# ("Order Status Updated Webhook Event Model"): `data` is the status change, the order
# (and its customer) sits under `data.order`.
ORDER_STATUS_UPDATED: dict[str, Any] = {
    "event": "order.status.updated",
    "merchant": 193718979,
    "created_at": "Wed Aug 17 2022 23:59:38 GMT+0300",
    "data": {
        "id": 198290473,
        "status": "تم التنفيذ",
        "customized": None,
        "note": "تم إرسال تفاصيل الطلب  إلى بريد العميل",
        "created_at": {
            "date": "2022-08-17 23:59:38.000000",
            "timezone_type": 3,
            "timezone": "Asia/Riyadh",
        },
        "order": {
            "id": 629263027,
            "reference_id": 42264,
            "urls": {
                "customer": "https://web-f71c00b38eb7308ff0ec2198afc21531.salla.group/test/order/P4GV9LQN3veZl1PV6AWBR6rJ5kzEoxYd",
                "admin": "https://dashboard-f71c00b38eb7308ff0ec2198afc21531.salla.group/orders/order/P4GV9LQN3veZl1PV6AWBR6rJ5kzEoxYd",
                "rating": "https://store-test.com/rating-link",
                "checkout": "https://store-test.com/checkout",
            },
            "date": {
                "date": "2022-08-17 20:59:36.000000",
                "timezone_type": 3,
                "timezone": "Asia/Riyadh",
            },
            "source": "store",
            "source_device": "desktop",
            "source_details": {
                "type": "direct",
                "value": None,
                "device": "desktop",
                "user-agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X "
                "10_15_7) AppleWebKit/537.36 (KHTML, "
                "like Gecko) Chrome/102.0.5005.115 "
                "Safari/537.36",
                "ip": None,
            },
            "first_complete_at": {
                "date": "2022-08-17 23:59:36.000000",
                "timezone_type": 3,
                "timezone": "Asia/Riyadh",
            },
            "status": {"id": 1298199463, "name": "تم التنفيذ", "slug": "completed"},
            "payment_method": "cod",
            "currency": "SAR",
            "amounts": {
                "sub_total": {"amount": 246, "currency": "SAR"},
                "shipping_cost": {"amount": 33, "currency": "SAR"},
                "cash_on_delivery": {"amount": 1, "currency": "SAR"},
                "tax": {"percent": "0.00", "amount": {"amount": 0, "currency": "SAR"}},
                "discounts": [
                    {
                        "title": "منتج مجاني: عطر إترنتي مومنت من "
                        "كالفن كلاين للنساء، او دي بارفان، "
                        "100 مل",
                        "type": "loyalty_prize",
                        "code": "FREE_PRODUCT",
                        "discount": "126.00",
                        "currency": "SAR",
                    }
                ],
                "total": {"amount": 154, "currency": "SAR"},
            },
            "shipping": {
                "id": 147641223,
                "app_id": "618297749",
                "company": "محمول",
                "logo": "https://cdn.salla.sa/jKxK/y1fgSXdUBbKwKXb6jE3dbmx8zDozt5KuQJ9McXX9.png",
                "receiver": {
                    "name": "User Name",
                    "email": "test@user.name",
                    "phone": "96652318526",
                },
                "shipper": {
                    "name": "Mohammed Test",
                    "company_name": "Test",
                    "email": "Test@salla.sa",
                    "phone": "96652318526",
                },
                "pickup_address": {
                    "country": "السعودية",
                    "country_code": "SA",
                    "city": "المدينة المنورة",
                    "shipping_address": "Macca,Macca,1111, Macca, المدينة المنورة,السعودية",
                    "street_number": "Macca",
                    "block": "Macca",
                    "postal_code": "1111",
                    "geo_coordinates": {"lat": 24.45196726, "lng": 39.587448815},
                },
                "address": {
                    "country": "SA",
                    "country_code": "SA",
                    "city": "الرياض",
                    "shipping_address": " شارع Macca، الحي Macca 1111،, Macca,, الرياض, السعودية",
                    "street_number": "Macca",
                    "block": "Macca",
                    "postal_code": "1111",
                    "geo_coordinates": {"lat": 0, "lng": 0},
                },
                "shipment": {
                    "id": "SALLA000121",
                    "pickup_id": "SALLA000121001",
                    "tracking_link": "SALLA000121",
                    "label": [],
                },
                "policy_options": {
                    "return_police": "0",
                    "restore_items": "1",
                    "refund_loyalty_prize_points": "on",
                    "send_status_sms": True,
                    "companyServiceType": "",
                    "boxes": "1",
                },
            },
            "can_cancel": False,
            "show_weight": False,
            "can_reorder": False,
            "is_pending_payment": False,
            "pending_payment_ends_at": 0,
            "total_weight": "١ كجم",
            "shipment_branch": [
                {
                    "id": 2019138561,
                    "name": "الرئيسي",
                    "status": "active",
                    "is_default": True,
                    "type": {},
                }
            ],
            "customer": {
                "id": 1779795066,
                "name": "Test Salla",
                "mobile": "+96652318526",
                "email": "Test.2022@salla.sa",
                "avatar": "https://dashboard-f71c00b38eb7308ff0ec2198afc21531.salla.group/cp/assets/images/avatar_male.png",
                "country": "السعودية",
                "city": "الرياض",
            },
            "items": [
                {
                    "id": 2105258904,
                    "product_id": 2047473815,
                    "name": "سي كيه وان شوك من كالفن كلاين، فور هي، 100 مل",
                    "sku": "",
                    "quantity": 1,
                    "weight": 0.5,
                    "amounts": {
                        "price_without_tax": {"amount": 120, "currency": "SAR"},
                        "total_discount": {"amount": 0, "currency": "SAR"},
                        "tax": {"percent": "0.00", "amount": {"amount": 0, "currency": "SAR"}},
                        "total": {"amount": 120, "currency": "SAR"},
                    },
                },
                {
                    "id": 1329648281,
                    "product_id": 674027926,
                    "name": "عطر إترنتي مومنت من كالفن كلاين للنساء، او دي بارفان، 100 مل",
                    "sku": "",
                    "quantity": 1,
                    "weight": 0.5,
                    "amounts": {
                        "price_without_tax": {"amount": 126, "currency": "SAR"},
                        "total_discount": {"amount": 126, "currency": "SAR"},
                        "tax": {"percent": "0.00", "amount": {"amount": 0, "currency": "SAR"}},
                        "total": {"amount": 126, "currency": "SAR"},
                    },
                },
            ],
            "total": {"amount": 154, "currency": "SAR"},
        },
    },
}

# Reference: https://docs.salla.dev/doc-433813 ("Invoice Created Webhook Event Model": sent
# when an order is completed or restored). Salla's example shows `data` only.
INVOICE_CREATED_DATA: dict[str, Any] = {
    "id": 500681815,
    "invoice_number": "633544",
    "uuid": "39273ccf-ee77-4ca1-8df9-c93526ee17eb",
    "order_id": 1783506836,
    "invoice_reference_id": None,
    "type": "Tax Invoice",
    "date": "2025-05-19 12:05:05",
    "qr_code": None,
    "payment_method": "credit_card",
    "sub_total": {"amount": 834.76, "currency": "SAR"},
    "shipping_cost": {"amount": 0, "taxable": True, "currency": "SAR"},
    "cod_cost": {"amount": 0, "taxable": True, "currency": "SAR"},
    "discount": {"amount": 41.74, "currency": "SAR"},
    "tax": {"percent": 15, "amount": {"amount": 118.95, "currency": "SAR"}},
    "total": {"amount": 911.97, "currency": "SAR"},
    "shipping_cost_discount": {"amount": 0, "currency": "SAR"},
    "items": [
        {
            "id": 87236180,
            "item_id": 1114617540,
            "product_id": 515303061,
            "name": "زيت زيتون بكر قطفة أولى 4لتر",
            "sku": "PRO-001",
            "quantity": 4,
            "type": "product",
            "price": {"amount": 208.69, "currency": "SAR"},
            "discount": {"amount": 41.74, "currency": "SAR"},
            "tax": {"percent": 15, "amount": {"amount": 118.95, "currency": "SAR"}},
            "total": {"amount": 911.97, "currency": "SAR"},
        }
    ],
    "company": {
        "name": "my company",
        "tax_number": "311111231231233",
        "commercial_number": "1233212235",
    },
    "customer": {
        "id": 396470115,
        "first_name": "بدر",
        "last_name": "المطيري",
        "mobile": 555317835,
        "mobile_code": "+966",
        "email": "Abubadr512@gmail.com",
        "avatar": "https://cdn.assets.salla.network/prod/admin/cp/assets/images/avatar_male.png",
        "gender": "male",
        "birthday": {
            "date": "1980-08-12 00:00:00.000000",
            "timezone_type": 3,
            "timezone": "Asia/Riyadh",
        },
        "country_code": "SA",
        "currency": "SAR",
        "updated_at": {
            "date": "2025-05-19 12:01:31.000000",
            "timezone_type": 3,
            "timezone": "Asia/Riyadh",
        },
        "address": {
            "country": "السعودية",
            "city": "المدينة المنورة",
            "district": None,
            "street_name": "شاكر بن مكي",
            "additional_number": None,
            "building_number": None,
            "postal_code": "42251",
            "description": "بعد سوبرماركت الريم",
        },
    },
}

# Not published: the envelope of ``invoice.created``. It is Salla's envelope for every store
# event (https://docs.salla.dev/doc-421119: event, merchant, created_at, data); the merchant
# is the Orders example's, the time the invoice's own ``date``, in Salla's store-event format.
INVOICE_CREATED: dict[str, Any] = {
    "event": "invoice.created",
    "merchant": 1305146709,
    "created_at": "Mon May 19 2025 12:05:05 GMT+0300",
    "data": INVOICE_CREATED_DATA,
}

# Reference: https://docs.salla.dev/doc-433808
# ("Customer Webhook Events Model": one model for customer.created, customer.updated and
# customer.login). `mobile` is a number beside `mobile_code`.
CUSTOMER_LOGIN: dict[str, Any] = {
    "event": "customer.login",
    "merchant": 1305146709,
    "created_at": "Tue Jan 25 2022 12:36:49 GMT+0300",
    "data": {
        "id": 225167971,
        "first_name": "User",
        "last_name": "Mohammed",
        "mobile": 555555555,
        "mobile_code": "+966",
        "email": "test@gmail.com",
        "urls": {
            "customer": "https://salla.sa/dev-wofftr4xsra5xtlv/profile",
            "admin": "https://s.salla.sa/customers/l7mYBdgXA9xJwWZRZK8WD42GNkZbjvRO",
        },
        "avatar": "https://i.ibb.co/jyqRQfQ/avatar-male.webp",
        "gender": "female",
        "birthday": {
            "date": "1997-06-03 00:00:00.000000",
            "timezone_type": 3,
            "timezone": "Asia/Riyadh",
        },
        "city": "الرياض",
        "country": "السعودية",
        "country_code": "SA",
        "currency": "AED",
        "location": "14",
        "updated_at": {
            "date": "2022-01-24 14:26:55.000000",
            "timezone_type": 3,
            "timezone": "Asia/Riyadh",
        },
        "groups": [],
        "source": {
            "device": "desktop",
            "user-agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) "
            "AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.0.0 "
            "Safari/537.36",
            "ip": "127.0.0.1",
        },
        "is_notifications_enabled": True,
    },
}

# Reference: https://docs.salla.dev/doc-421413#app-store-authorize (App Events)
APP_STORE_AUTHORIZE: dict[str, Any] = {
    "event": "app.store.authorize",
    "merchant": 1234509876,
    "created_at": "2022-12-31 12:31:25",
    "data": {
        "access_token": "KGsnBcNNkR2AgHnrd0U9lCIjrUiukF_-Fb8OjRiEcog.NuZv_mJaB46jA2OHaxxxx",
        "expires": 1634819484,
        "refresh_token": "fWcceFWF9eFH4yPVOCaYHy-UolnU7iJNDH-dnZwakUE.bpSNQCNjbNg6hTxxxx",
        "scope": "settings.read branches.read offline_access",
        "token_type": "bearer",
    },
}

# Reference: https://docs.salla.dev/doc-421413#app-installation (App Events)
APP_INSTALLED: dict[str, Any] = {
    "event": "app.installed",
    "merchant": 1234509876,
    "created_at": "2022-12-31 12:31:25",
    "data": {
        "id": 6789012345,
        "app_name": "Shipping app",
        "description": "App Description",
        "app_type": "app",
        "app_scopes": [
            "settings.read",
            "customers.read_write",
            "orders.read_write",
            "carts.read",
            "branches.read_write",
            "categories.read_write",
            "brands.read_write",
            "products.read_write",
            "webhooks.read_write",
            "payments.read",
            "taxes.read_write",
            "specialoffers.read_write",
            "countries.read",
            "metadata.read_write",
            "offline_access",
        ],
        "installation_date": "2021-09-28 06:06:56",
        "store_type": "development",
    },
}

# Reference: https://docs.salla.dev/doc-421413#app-update (App Events)
APP_UPDATED: dict[str, Any] = {
    "event": "app.updated",
    "merchant": 1234509876,
    "created_at": "2022-12-31 12:31:25",
    "data": {
        "id": 6789012345,
        "app_name": "Shipping app",
        "description": "App Description",
        "app_type": "app",
        "categories": ["Accounting & Finance"],
        "app_scopes": ["settings.read", "branches.read", "offline_access"],
        "installation_date": "2021-10-06 16:16:49",
        "update_date": "2021-10-07 12:31:24",
        "store_type": "demo",
    },
}

# Reference: https://docs.salla.dev/doc-421413#app-uninstall (App Events)
APP_UNINSTALLED: dict[str, Any] = {
    "event": "app.uninstalled",
    "merchant": 1234509876,
    "created_at": "2022-12-31 12:31:25",
    "data": {
        "id": 6789012345,
        "app_name": "Cool app",
        "app_description": "This App provides a seamless, on-the-go shipping experience for "
        "businesses and individuals.",
        "app_type": "shipping",
        "categories": ["Shipping and Delivery"],
        "installation_date": "2021-10-06 16:16:49",
        "uninstallation_date": "2021-10-07 12:46:07",
        "refunded": False,
        "store_type": "live",
    },
}

# Reference: https://docs.salla.dev/doc-421413#app-trial-start (App Events)
APP_TRIAL_STARTED: dict[str, Any] = {
    "event": "app.trial.started",
    "merchant": 1234509876,
    "created_at": "2022-12-31 12:31:25",
    "data": {
        "id": 6789012345,
        "app_name": "Shipping app",
        "app_description": "App Description",
        "app_type": "app",
        "categories": ["Accounting & Finance"],
        "plan_name": "Diamond Plan",
        "plan_type": "one_time",
        "start_date": "2023-07-27",
        "end_date": "2023-07-28",
        "created_at": "2023-07-27 12:23:19",
        "features": [],
        "store_type": "development",
    },
}

# Reference: https://docs.salla.dev/doc-421413#app-trial-expire (App Events)
APP_TRIAL_EXPIRED: dict[str, Any] = {
    "event": "app.trial.expired",
    "merchant": 1234509876,
    "created_at": "2022-12-31 12:31:25",
    "data": {
        "id": 6789012345,
        "app_name": "Shipping app",
        "description": "App Description",
        "app_type": "app",
        "categories": ["Accounting & Finance"],
        "plan_name": "Diamond Plan",
        "plan_type": "one_time",
        "start_date": "2021-10-06T21:00:00.000000Z",
        "end_date": "2021-10-07T21:00:00.000000Z",
        "store_type": "demo",
    },
}

# Reference: https://docs.salla.dev/doc-421413#app-trial-canceled (App Events)
APP_TRIAL_CANCELED: dict[str, Any] = {
    "event": "app.trial.canceled",
    "merchant": 74955415,
    "created_at": "2023-07-27 12:32:17",
    "data": {
        "id": 2114981050,
        "app_name": "Shipping App",
        "app_description": "App Description",
        "app_type": "public",
        "categories": ["Accounting & Finance"],
        "plan_type": "recurring",
        "plan_name": None,
        "start_date": "2023-07-27",
        "end_date": "2023-07-28",
        "subscription_at": "2023-07-27 12:13:58",
        "created_at": "2023-07-27 12:32:17",
        "features": [],
        "store_type": "live",
    },
}

# Reference: https://docs.salla.dev/doc-421413#app-subscription-start (App Events)
APP_SUBSCRIPTION_STARTED: dict[str, Any] = {
    "event": "app.subscription.started",
    "merchant": 1234509876,
    "created_at": "2022-12-31 12:31:25",
    "data": {
        "id": 6789012345,
        "subscription_id": 1510766049,
        "app_name": "Shipping app",
        "description": "App Description",
        "app_type": "app",
        "categories": ["Marketing"],
        "plan_type": "recurring",
        "plan_name": None,
        "plan_period": "1",
        "start_date": "2021-10-09T21:00:00.000000Z",
        "end_date": "2022-10-09T21:00:00.000000Z",
        "coupon": {"name": "SPZGRDFS", "amount": "0.15"},
        "initialization_cost": 10,
        "price_before_discount": 5,
        "price": "20.00",
        "tax": "0.15",
        "tax_value": "3.00",
        "total": "23.00",
        "subscription_balance": "null",
        "features": [{"key": "Feature1", "quantity": 1}, {"key": "Feature3", "quantity": 5}],
        "store_type": "development",
        "promotion": {"id": 98784255, "requirement": 1, "reward": 1},
    },
}

# Reference: https://docs.salla.dev/doc-421413#app-subscription-canceled (App Events)
APP_SUBSCRIPTION_CANCELED: dict[str, Any] = {
    "event": "app.subscription.canceled",
    "merchant": 1234509876,
    "created_at": "2022-12-31 12:31:25",
    "data": {
        "id": 6789012345,
        "subscription_id": 1510766049,
        "app_name": "Shipping app",
        "description": "App Description",
        "app_type": "app",
        "categories": ["Marketing"],
        "plan_type": "recurring",
        "plan_name": None,
        "plan_period": "1",
        "start_date": "2021-10-09T21:00:00.000000Z",
        "end_date": "2021-11-09T21:00:00.000000Z",
        "coupon": {"name": "SPZGRDFS", "amount": "0.15"},
        "initialization_cost": 10,
        "price_before_discount": 5,
        "price": "20.00",
        "tax": "0.15",
        "tax_value": "3.00",
        "total": "23.00",
        "subscription_balance": "null",
        "features": [{"key": "Feature1", "quantity": 1}, {"key": "Feature3", "quantity": 5}],
        "store_type": "demo",
    },
}

# Reference: https://docs.salla.dev/doc-421413#app-subscription-expire (App Events)
APP_SUBSCRIPTION_EXPIRED: dict[str, Any] = {
    "event": "app.subscription.expired",
    "merchant": 1234509876,
    "created_at": "2022-12-31 12:31:25",
    "data": {
        "id": 6789012345,
        "subscription_id": 1510766049,
        "app_name": "Shipping app",
        "description": "App Description",
        "app_type": "app",
        "categories": ["Marketing"],
        "plan_type": "recurring",
        "plan_name": None,
        "plan_period": "1",
        "start_date": "2021-10-09T21:00:00.000000Z",
        "end_date": "2021-11-09T21:00:00.000000Z",
        "coupon": {"name": "SPZGRDFS", "amount": "0.15"},
        "initialization_cost": 10,
        "price_before_discount": 5,
        "price": "20.00",
        "tax": "0.15",
        "tax_value": "3.00",
        "total": "23.00",
        "subscription_balance": "null",
        "features": [{"key": "Feature1", "quantity": 1}, {"key": "Feature3", "quantity": 5}],
        "store_type": "live",
    },
}

# Reference: https://docs.salla.dev/doc-421413#app-subscription-renew (App Events)
APP_SUBSCRIPTION_RENEWED: dict[str, Any] = {
    "event": "app.subscription.renewed",
    "merchant": 1234509876,
    "created_at": "2022-12-31 12:31:25",
    "data": {
        "id": 6789012345,
        "subscription_id": 1510766049,
        "app_name": "Shipping app",
        "description": "App Description",
        "app_type": "app",
        "categories": ["Marketing"],
        "plan_type": "recurring",
        "plan_name": None,
        "plan_period": "1",
        "start_date": "2021-10-09T21:00:00.000000Z",
        "renew_date": "2021-11-09T21:00:00.000000Z",
        "end_date": "2021-12-09T21:00:00.000000Z",
        "coupon": {"name": "SPZGRDFS", "amount": "0.15"},
        "initialization_cost": 10,
        "price_before_discount": 5,
        "price": "20.00",
        "tax": "0.15",
        "tax_value": "3.00",
        "total": "23.00",
        "subscription_balance": "null",
        "features": [{"key": "Feature1", "quantity": 1}, {"key": "Feature3", "quantity": 5}],
        "store_type": "development",
    },
}

# Reference: https://docs.salla.dev/doc-421413#app-settings-updated (App Events)
APP_SETTINGS_UPDATED: dict[str, Any] = {
    "event": "app.settings.updated",
    "merchant": 1234509876,
    "created_at": "2022-12-31 12:31:25",
    "data": {
        "id": 6789012345,
        "app_name": "Shipping app",
        "app_description": "App Description",
        "app_type": "public",
        "settings": {
            "name": "Mohammed",
            "email": "Mohammed@Gmail.com",
            "subscription_num": 375853796,
            "door_to_door": True,
            "pickup_time": "09:00:00",
            "box_size": ["25x25", "10x10"],
            "ads_activated": "true",
        },
    },
}

# Which published body stands for which event. Salla publishes one example per *model*:
# the Orders model is shared by order.created, order.updated, order.refunded, order.deleted,
# order.products.updated, order.payment.updated, order.coupon.updated,
# order.total.price.updated, order.shipping.address.updated, order.cancelled and
# order.customer.updated (Salla Merchant API Change Log, 2.10.41 and 2.10.40, listing the
# events of https://docs.salla.dev/433804m0), and the Customer model by customer.created,
# customer.updated and customer.login (https://docs.salla.dev/doc-433808).
EXAMPLES: dict[str, dict[str, Any]] = {
    # Reference: https://docs.salla.dev/433804m0#orders-webhook-events-model
    "order.created": ORDER_CREATED,
    # Not published separately: the Orders model (https://docs.salla.dev/433804m0#orders-webhook-events-model).
    "order.updated": _renamed(ORDER_CREATED, "order.updated"),
    # Not published separately: the Orders model (https://docs.salla.dev/433804m0#orders-webhook-events-model).
    "order.cancelled": _renamed(ORDER_CREATED, "order.cancelled"),
    # Not published separately: the Orders model (https://docs.salla.dev/433804m0#orders-webhook-events-model).
    "order.refunded": _renamed(ORDER_CREATED, "order.refunded"),
    # Not published separately: the Orders model (https://docs.salla.dev/433804m0#orders-webhook-events-model).
    "order.deleted": _renamed(ORDER_CREATED, "order.deleted"),
    # Not published separately: the Orders model (https://docs.salla.dev/433804m0#orders-webhook-events-model).
    "order.products.updated": _renamed(ORDER_CREATED, "order.products.updated"),
    # Not published separately: the Orders model (https://docs.salla.dev/433804m0#orders-webhook-events-model).
    "order.payment.updated": _renamed(ORDER_CREATED, "order.payment.updated"),
    # Not published separately: the Orders model (https://docs.salla.dev/433804m0#orders-webhook-events-model).
    "order.coupon.updated": _renamed(ORDER_CREATED, "order.coupon.updated"),
    # Not published separately: the Orders model (https://docs.salla.dev/433804m0#orders-webhook-events-model).
    "order.total.price.updated": _renamed(ORDER_CREATED, "order.total.price.updated"),
    # Reference: https://docs.salla.dev/433804m0#order-status-updated-webhook-event-model
    "order.status.updated": ORDER_STATUS_UPDATED,
    # Reference: https://docs.salla.dev/doc-433813 (data) and doc-421119 (envelope)
    "invoice.created": INVOICE_CREATED,
    # Not published separately: the Customer model (https://docs.salla.dev/doc-433808).
    "customer.created": _renamed(CUSTOMER_LOGIN, "customer.created"),
    # Not published separately: the Customer model (https://docs.salla.dev/doc-433808).
    "customer.updated": _renamed(CUSTOMER_LOGIN, "customer.updated"),
    # Reference: https://docs.salla.dev/doc-433808
    "customer.login": CUSTOMER_LOGIN,
    # Reference: https://docs.salla.dev/doc-421413#app-store-authorize
    "app.store.authorize": APP_STORE_AUTHORIZE,
    # Reference: https://docs.salla.dev/doc-421413#app-installation
    "app.installed": APP_INSTALLED,
    # Reference: https://docs.salla.dev/doc-421413#app-update
    "app.updated": APP_UPDATED,
    # Reference: https://docs.salla.dev/doc-421413#app-uninstall
    "app.uninstalled": APP_UNINSTALLED,
    # Reference: https://docs.salla.dev/doc-421413#app-trial-start
    "app.trial.started": APP_TRIAL_STARTED,
    # Reference: https://docs.salla.dev/doc-421413#app-trial-expire
    "app.trial.expired": APP_TRIAL_EXPIRED,
    # Reference: https://docs.salla.dev/doc-421413#app-trial-canceled
    "app.trial.canceled": APP_TRIAL_CANCELED,
    # Reference: https://docs.salla.dev/doc-421413#app-subscription-start
    "app.subscription.started": APP_SUBSCRIPTION_STARTED,
    # Reference: https://docs.salla.dev/doc-421413#app-subscription-canceled
    "app.subscription.canceled": APP_SUBSCRIPTION_CANCELED,
    # Reference: https://docs.salla.dev/doc-421413#app-subscription-expire
    "app.subscription.expired": APP_SUBSCRIPTION_EXPIRED,
    # Reference: https://docs.salla.dev/doc-421413#app-subscription-renew
    "app.subscription.renewed": APP_SUBSCRIPTION_RENEWED,
    # Reference: https://docs.salla.dev/doc-421413#app-settings-updated
    "app.settings.updated": APP_SETTINGS_UPDATED,
}
