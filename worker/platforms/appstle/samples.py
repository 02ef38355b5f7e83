"""Sample Appstle loyalty webhooks, signed the Svix (Standard Webhooks) way, for
``loyalty-relay trigger``, the sandbox and the tests. Reference: PROVIDERS.md
(Appstle Loyalty) and Appstle's webhook page (``{"type", "data": {customerId,
customerEmail, note, points…}}``)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from worker.config import Settings
from worker.platforms.appstle.webhooks import LOYALTY_EVENTS, SECRETS_KEY
from worker.platforms.base import SampleDelivery
from worker.platforms.shopify.identity import customer_id, email_ref
from worker.sinks.signing import sign

# What ``trigger`` offers: the events we handle, and one we acknowledge and ignore.
EVENT_NAMES = (*sorted(LOYALTY_EVENTS), "loyalty.reward-expired")
SAMPLE_EMAIL = "sara@example.com"


def sample_event(event: str, customer: str | None, points: float = 50.0) -> dict[str, Any]:
    """The body Appstle would send; ``customer`` is a Shopify customer id or an email."""
    found = customer_id(customer)
    email = customer.strip() if customer and email_ref(customer) else SAMPLE_EMAIL
    data: dict[str, Any] = {
        "customerId": int(found) if found else None,
        "customerEmail": email,
        "note": f"sample {event}",
        "points": points,
    }
    if event == "loyalty.vip-tier-achieved":
        data["vipTier"] = "Gold"
    return {"type": event, "timestamp": datetime.now(UTC).isoformat(), "data": data}


def encode(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def svix_headers(
    secret: str, body: bytes, *, msg_id: str | None = None, timestamp: int | None = None
) -> dict[str, str]:
    """``svix-id``, ``svix-timestamp`` and ``svix-signature`` for ``body``, as Svix sends them."""
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        "Content-Type": "application/json",
        "svix-id": msg_id,
        "svix-timestamp": str(timestamp),
        "svix-signature": sign(secret, msg_id, timestamp, body),
    }


def path_for(shop: str) -> str:
    return f"/webhooks/appstle/{shop}"


def build(event: str, store_id: str, customer: str | None, secret: str) -> SampleDelivery:
    """``store_id`` is the shop's ``*.myshopify.com`` domain; ``secret`` its ``whsec_`` secret."""
    body = encode(sample_event(event, customer))
    return SampleDelivery(path_for(store_id), body, svix_headers(secret, body))


def default_secret(settings: Settings, credentials: Mapping[str, Any]) -> str | None:
    """The newest ``whsec_`` secret stored for the shop's Appstle endpoint."""
    own = credentials.get(SECRETS_KEY) or ()
    return next((secret for secret in own if isinstance(secret, str)), None)
