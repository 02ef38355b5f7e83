"""Sample Appstle webhooks for ``loyalty-relay trigger``, the sandbox, the demo and
the tests: Appstle's events as ``examples.py`` sets them out (the customer and
shop substituted), signed the Standard Webhooks way under Svix's header names
(or the unbranded ``webhook-`` ones). Reference: https://docs.svix.com/receiving/verifying-payloads/how-manual
(the headers and the signed content ``{id}.{timestamp}.{body}``)."""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from worker.config import Settings
from worker.platforms.appstle.examples import EXAMPLES
from worker.platforms.appstle.webhooks import SECRETS_KEY
from worker.platforms.base import SampleDelivery
from worker.platforms.shopify.identity import customer_id, email_ref
from worker.signing import sign

# What ``trigger`` offers: the events we handle, and one we acknowledge and ignore.
IGNORED_SAMPLE = "loyalty.reward-expired"
EVENT_NAMES = (*EXAMPLES, IGNORED_SAMPLE)
SAMPLE_EMAIL = "sara@example.com"
SVIX = "svix-"
UNBRANDED = "webhook-"


def sample_event(
    event: str, customer: str | None, shop: str | None = None, points: float | None = None
) -> dict[str, Any]:
    """Appstle's ``event`` about ``customer`` (a Shopify customer id or an email)."""
    document = copy.deepcopy(EXAMPLES.get(event, EXAMPLES["loyalty.earned"]))
    document["type"] = event
    document["timestamp"] = datetime.now(UTC).isoformat()
    data = document["data"]
    found = customer_id(customer)
    data["customerId"] = int(found) if found else None
    if "customerEmail" in data or not found:
        data["customerEmail"] = (
            customer.strip() if customer and email_ref(customer) else SAMPLE_EMAIL
        )
    if shop and "shop" in data:
        data["shop"] = shop
    if points is not None:
        data["points"] = points
    return document


def encode(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def svix_headers(
    secret: str,
    body: bytes,
    *,
    msg_id: str | None = None,
    timestamp: int | None = None,
    prefix: str = SVIX,
) -> dict[str, str]:
    """The id, timestamp and signature headers for ``body``, as Svix sends them."""
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        "Content-Type": "application/json",
        f"{prefix}id": msg_id,
        f"{prefix}timestamp": str(timestamp),
        f"{prefix}signature": sign(secret, msg_id, timestamp, body),
    }


def path_for(shop: str) -> str:
    return f"/webhooks/appstle/{shop}"


def build(event: str, store_id: str, customer: str | None, secret: str) -> SampleDelivery:
    """``store_id`` is the shop's ``*.myshopify.com`` domain; ``secret`` its ``whsec_`` secret."""
    body = encode(sample_event(event, customer, store_id))
    return SampleDelivery(path_for(store_id), body, svix_headers(secret, body))


def default_secret(settings: Settings, credentials: Mapping[str, Any]) -> str | None:
    """The newest ``whsec_`` secret stored for the shop's Appstle endpoint."""
    own = credentials.get(SECRETS_KEY) or ()
    return next((secret for secret in own if isinstance(secret, str)), None)
