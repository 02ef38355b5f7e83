"""What an operator may see of a stored body or payload: its shape, not the person.

Webhook bodies name customers (emails, phones, names, addresses) and some carry
tokens (Salla's ``app.store.authorize``). The ops views show the document with
every value under a personal or secret key replaced, and every other string
passed through the log scrubber (``worker.logs.scrub``), which catches an
address or a phone number written where no key announces it.
"""

from __future__ import annotations

import json
from typing import Any

from worker.logs import scrub

MASK = "[masked]"
# Keys whose values are a person or a secret, whatever the platform calls them.
PERSONAL = frozenset(
    {
        "email", "phone", "mobile", "mobile_code", "name", "first_name", "last_name",
        "full_name", "firstname", "lastname", "address", "address1", "address2", "street",
        "city", "zip", "postal_code", "birthday", "gender", "ip", "browser_ip",
        "customer_email", "customer_phone", "contact_email", "default_address",
        "access_token", "refresh_token", "token", "secret", "password", "authorization",
        "api_key", "client_secret", "webhook_secret", "credentials",
    }
)  # fmt: skip
BODY_LIMIT = 20_000  # characters of a body shown when it is not JSON


def masked(document: Any) -> Any:
    """``document`` with personal and secret values replaced (JSON-ready)."""
    if isinstance(document, dict):
        return {str(key): _masked_value(str(key), value) for key, value in document.items()}
    if isinstance(document, list):
        return [masked(item) for item in document]
    if isinstance(document, str):
        return scrub(document)
    return document


def _masked_value(key: str, value: Any) -> Any:
    if key.lower() in PERSONAL and value not in (None, "", [], {}):
        return MASK
    return masked(value)


def masked_body(body: bytes) -> Any:
    """A stored body as a masked document; text that is not JSON is scrubbed and cut."""
    text = body.decode("utf-8", errors="replace")
    try:
        return masked(json.loads(text))
    except ValueError:
        return scrub(text[:BODY_LIMIT])
