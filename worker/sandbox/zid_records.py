"""What the Zid sandbox (``worker.sandbox.zid``) is made of: the demo's names
and tokens, the records its state keeps and hands out (requests seen, token
refreshes, registered webhooks, injected failures, answer styles), and history
entries in the shape of Zid's SDK fixture."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

DEMO_STORE = "3059"
DEMO_CUSTOMER = "7823146"
DEMO_AUTHORIZATION = "sandbox-zid-authorization"
DEMO_MANAGER_TOKEN = "sandbox-zid-manager-token"
DEMO_REFRESH_TOKEN = "sandbox-zid-refresh-token"
DEMO_CUSTOMER_TOKEN = "sandbox-zid-customer-token"
DEMO_CLIENT_ID = "sandbox-zid-client-id"
DEMO_CLIENT_SECRET = "sandbox-zid-client-secret"
DEMO_REDIRECT_URI = "https://relay.example.com/zid/callback"
DEMO_APP_ID = "sandbox-zid-app"
TOKEN_LIFETIME = 365 * 24 * 3600  # Zid's tokens last about a year
STATUSES = {"active": "Active", "pending": "Pending", "expired": "Expired", "used": "Used"}


@dataclass(frozen=True)
class ZidRequest:
    """One request as the sandbox saw it, with the answer's status."""

    method: str
    path: str
    status: int
    store_id: str | None  # the Store-Id header
    customer_id: str | None  # ``customerId`` or the history path's id
    authorization: str
    manager_token: str | None
    customer_token: str | None
    role: str | None
    accept_language: str | None


@dataclass(frozen=True)
class TokenRefresh:
    """One call to the token endpoint: ``rotated``, ``reused`` (all revoked) or ``unknown``."""

    refresh_token: str
    outcome: str
    store_id: str | None = None
    tokens: tuple[str, str, str] | None = None  # (authorization, manager token, refresh token)


@dataclass(frozen=True)
class AnswerStyle:
    """How the details endpoint spells its answer (Zid's real one is misspelled)."""

    spelling: str = "misspelled"  # or "correct": available_points / used_points
    points_balance: bool = True  # False: leave points_balance out
    numbers_as_strings: bool = False
    # The details answer carries the customer's history (zidsa/sdk-python
    # tests/fixtures/loyalty_customer.json); False: it does not, as on a points-history-only API.
    history_in_details: bool = True
    # Errors as ``message{…}`` (the SDK's reading) or as the documented envelope
    # ``{status, success: false, error: {code, message, fields}}``
    # (zidsa/zid-agent-skill references/error-handling.md): "message" or "envelope".
    errors: str = "message"


@dataclass(frozen=True)
class RegisteredWebhook:
    """A subscription as Zid holds it, with the credentials it will send."""

    id: str
    event: str
    target_url: str
    original_id: str
    conditions: Any
    username: str | None
    password: str | None

    @property
    def authorization(self) -> str | None:
        """The Authorization header Zid sends to ``target_url``."""
        if self.username is None or self.password is None:
            return None
        pair = f"{self.username}:{self.password}".encode()
        return f"Basic {base64.b64encode(pair).decode()}"

    def listed(self, store_id: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "event": self.event,
            "target_url": self.target_url,
            "store_id": store_id,
            "conditions": self.conditions,
            "original_id": self.original_id,
            "subscriber": "5f4dcc3b5aa765d61d8327deb882cf99",
            "active": True,
        }


def history_entry(
    points: int,
    *,
    date: datetime,
    expiry: datetime | None = None,
    direction: str = "+",
    status: str = "active",
    order_number: int | None = None,
) -> dict[str, Any]:
    """One history entry in the shape of the SDK fixture (``tests/fixtures/zid/details.json``)."""
    return {
        "date": _iso(date),
        "reason": None,
        "points": points,
        "direction": direction,
        "type": "reward" if direction == "+" else "expiry",
        "order_number": order_number,
        "order_code": None,
        "expiry_date": _iso(expiry) if expiry else None,
        "point_status": STATUSES.get(status, status.title()),
        "point_status_code": status,
        "collection_method": "Reward for a placed order",
    }


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
