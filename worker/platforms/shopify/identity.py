"""Who a Shopify event is about: the shop and the customer, as we keep them.

Shared by both receivers over Shopify stores (``shopify`` and ``appstle``), the
Appstle client and the command line, so that a shop or a customer is spelled
one way everywhere:

- a shop is its ``*.myshopify.com`` domain, lower-cased (Shopify's
  ``X-Shopify-Shop-Domain`` is always that domain, never a custom one);
- a customer is the Shopify customer id as decimal digits (a number, a string
  or a ``gid://shopify/Customer/<id>`` all give the same ref), or, when an
  event names no id, ``email:<address>`` lower-cased — Appstle's API looks a
  customer up by either (Appstle's "Get customer loyalty details",
  developers.appstle.com). An ``email:`` ref is transient: it is stored under a
  keyed hash and the address kept encrypted (``worker.customers``).
"""

from __future__ import annotations

import json
import re
from typing import Any

from worker.customers import EMAIL_PREFIX

SHOP_DOMAIN = re.compile(r"[a-z0-9][a-z0-9-]{0,99}\.myshopify\.com")
CUSTOMER_GID = re.compile(r"gid://shopify/Customer/([0-9]{1,20})")
CUSTOMER_ID = re.compile(r"[0-9]{1,20}")
# customer_id columns hold 255 characters; the prefix takes 6 of them.
EMAIL_LIMIT = 255 - len(EMAIL_PREFIX)
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def shop_domain(value: Any) -> str | None:
    """``my-shop.myshopify.com`` (lower-cased), or None for anything else."""
    if not isinstance(value, str):
        return None
    domain = value.strip().lower()
    return domain if SHOP_DOMAIN.fullmatch(domain) else None


def customer_id(value: Any) -> str | None:
    """A Shopify customer id as digits, from a number, digits or a customer GID."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value) if value > 0 else None
    if not isinstance(value, str):
        return None
    text = value.strip()
    gid = CUSTOMER_GID.fullmatch(text)
    if gid:
        return gid.group(1)
    return text if CUSTOMER_ID.fullmatch(text) and int(text) > 0 else None


def email_ref(value: Any) -> str | None:
    """``email:<address>`` lower-cased, or None when ``value`` is not an address."""
    if not isinstance(value, str):
        return None
    address = value.strip().lower()
    if len(address) > EMAIL_LIMIT or not EMAIL.fullmatch(address):
        return None
    return EMAIL_PREFIX + address


def customer_ref(id_value: Any, *emails: Any) -> str | None:
    """The id when there is one, else the first usable email."""
    found = customer_id(id_value)
    if found is not None:
        return found
    return next((ref for email in emails if (ref := email_ref(email)) is not None), None)


def email_of(ref: str) -> str | None:
    """The address inside an ``email:`` ref, or None for an id ref."""
    return ref[len(EMAIL_PREFIX) :] if ref.startswith(EMAIL_PREFIX) else None


def json_object(body: bytes) -> dict[str, Any] | None:
    """The body as a JSON object, or None: a body is only ever read after verification."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return document if isinstance(document, dict) else None
