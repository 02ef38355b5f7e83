"""Sample Salla deliveries for ``loyalty-relay trigger`` and the demo: Salla's
published examples (``examples.py``) with only the store and customer put in,
and — so that two triggers are two deliveries rather than one delivery and its
retry (Salla sends no delivery id; the receiver dedupes on the body) — the
event time and, for order events, the order id set to now."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

from worker.config import Settings
from worker.platforms.base import SampleDelivery
from worker.platforms.salla.examples import EXAMPLES

EVENT_NAMES = tuple(sorted(EXAMPLES))
# Salla's created_at as its store-event examples spell it ("Sun Jun 26 2022 12:21:48 GMT+0300").
CREATED_AT_FORMAT = "%a %b %d %Y %H:%M:%S GMT+0300"


def sample_event(event: str, merchant: str, customer: str | None = None) -> dict[str, Any]:
    document = copy.deepcopy(EXAMPLES[event])
    document["merchant"] = _number_if_digits(merchant)
    document["created_at"] = time.strftime(CREATED_AT_FORMAT, time.gmtime(time.time() + 3 * 3600))
    data = document["data"]
    if event.startswith("order."):
        order = data["order"] if event == "order.status.updated" else data
        order["id"] = int(time.time() * 1000) % 10**10
    holder = _customer_holder(event, data)
    if holder is not None:
        holder["id"] = _number_if_digits(customer) if customer else None
    return document


def _customer_holder(event: str, data: dict[str, Any]) -> dict[str, Any] | None:
    """Where the documented example names its customer (``webhooks`` module docstring)."""
    if event.startswith("customer."):
        return data
    if event == "order.status.updated":
        holder: dict[str, Any] = data["order"]["customer"]
        return holder
    if event.startswith(("order.", "invoice.")):
        customer: dict[str, Any] = data["customer"]
        return customer
    return None


def _number_if_digits(value: str | None) -> int | str | None:
    return int(value) if value and value.isdigit() else value


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
