"""The state behind the Salla sandbox (``worker.sandbox.salla``), and its sample data.

Tests and the demo drive a ``SallaSandboxState``: merchants and their tokens,
customers' histories in the seeds' shape (``points_entry``, ``sample_history``),
trouble to inject (failures, delay, rate budget) and what happened (requests,
token refreshes). Every method takes the state's lock: the sandbox is threaded.
"""

from __future__ import annotations

import copy
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from worker.sandbox.trouble import SandboxTrouble

DEMO_MERCHANT = "1234509876"
DEMO_CUSTOMER = "1257881496"
DEMO_ACCESS_TOKEN = "sandbox-access-token"
DEMO_REFRESH_TOKEN = "sandbox-refresh-token"
DEMO_CLIENT_ID = "sandbox-client-id"
DEMO_CLIENT_SECRET = "sandbox-client-secret"
STORE_ZONE = ZoneInfo("Asia/Riyadh")
TOKEN_LIFETIME = 14 * 24 * 3600  # Salla's access tokens last about 14 days
# Only مؤكدة is published (https://docs.salla.dev/12250577e0); the other three are the
# labels ``worker.platforms.salla.balance`` reads as pending, expired and cancelled.
CONFIRMED, PENDING, EXPIRED, CANCELLED = "مؤكدة", "قيد الانتظار", "منتهية", "ملغاة"
CUSTOM, ORDER_REWARD = "مخصصة", "مكافأة طلب"
ENGLISH = {
    CONFIRMED: "Confirmed",
    PENDING: "Pending",
    EXPIRED: "Expired",
    CANCELLED: "Cancelled",
    CUSTOM: "Custom",
    ORDER_REWARD: "Order reward",
}


@dataclass(frozen=True)
class SandboxRequest:
    """One request as the sandbox saw it, with the answer's status."""

    method: str
    path: str
    status: int
    customer_id: str | None
    page: str | None
    per_page: str | None
    token: str
    user_agent: str | None
    accept: str | None
    accept_language: str | None


@dataclass(frozen=True)
class TokenRefresh:
    """One call to the token endpoint: ``rotated``, ``reused`` (both revoked) or ``unknown``."""

    refresh_token: str
    outcome: str
    merchant_id: str | None = None
    access_token: str | None = None
    new_refresh_token: str | None = None


@dataclass
class _Merchant:
    access_token: str | None
    refresh_token: str | None
    customers: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


class SallaSandboxState(SandboxTrouble[SandboxRequest]):
    """Merchants, tokens, histories, injected trouble and a log; every method is thread-safe."""

    def __init__(
        self,
        *,
        client_id: str = DEMO_CLIENT_ID,
        client_secret: str = DEMO_CLIENT_SECRET,
        rate_limit: int = 500,
        rate_window: float = 600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(rate_limit=rate_limit, rate_window=rate_window, clock=clock)
        self.client_id, self.client_secret = client_id, client_secret
        self.token_lifetime = TOKEN_LIFETIME
        self._merchants: dict[str, _Merchant] = {}
        self._spent: dict[str, str] = {}  # used refresh token → merchant
        self._refreshes: list[TokenRefresh] = []

    @classmethod
    def with_demo_store(cls, now: datetime | None = None) -> SallaSandboxState:
        """One merchant with the demo tokens and one customer with 70 varied entries."""
        state = cls()
        state.add_merchant(
            DEMO_MERCHANT, access_token=DEMO_ACCESS_TOKEN, refresh_token=DEMO_REFRESH_TOKEN
        )
        state.set_entries(DEMO_MERCHANT, DEMO_CUSTOMER, sample_history(now))
        return state

    # --- driving it ---

    def add_merchant(self, merchant_id: str, *, access_token: str, refresh_token: str) -> None:
        with self._lock:
            self._merchants[merchant_id] = _Merchant(access_token, refresh_token)

    def set_entries(
        self, merchant_id: str, customer_id: str, entries: list[dict[str, Any]]
    ) -> None:
        """Replace a customer's history (seed-shaped dicts, newest first)."""
        with self._lock:
            self._merchants[merchant_id].customers[customer_id] = copy.deepcopy(entries)

    def add_points(
        self, merchant_id: str, customer_id: str, points: int, *, expires_in_days: int = 365
    ) -> dict[str, Any]:
        """Credit a confirmed entry, as the loyalty app does when an order completes."""
        now = datetime.now(STORE_ZONE)
        expiry = now + timedelta(days=expires_in_days)
        entry = points_entry(points, created=now, expiry=expiry, name=ORDER_REWARD, used_at={})
        with self._lock:
            history = self._merchants[merchant_id].customers.setdefault(customer_id, [])
            history.insert(0, entry)
        return copy.deepcopy(entry)

    def expire_access_token(self, merchant_id: str) -> None:
        with self._lock:
            self._merchants[merchant_id].access_token = None

    # --- reading it ---

    def tokens(self, merchant_id: str) -> tuple[str | None, str | None]:
        """The merchant's live (access, refresh) tokens; None once expired or revoked."""
        with self._lock:
            merchant = self._merchants[merchant_id]
            return merchant.access_token, merchant.refresh_token

    def entries(self, merchant_id: str, customer_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._merchants[merchant_id].customers.get(customer_id, []))

    def request_count(self, path: str | None = None, *, customer_id: str | None = None) -> int:
        return sum(
            1
            for seen in self.requests()
            if path in (None, seen.path) and customer_id in (None, seen.customer_id)
        )

    def refreshes(self) -> list[TokenRefresh]:
        with self._lock:
            return list(self._refreshes)

    # --- used by the app ---

    def merchant_for(self, access_token: str) -> str | None:
        with self._lock:
            for merchant_id, merchant in self._merchants.items():
                if access_token and merchant.access_token == access_token:
                    return merchant_id
        return None

    def history(self, merchant_id: str, customer_id: str) -> list[dict[str, Any]] | None:
        with self._lock:
            entries = self._merchants[merchant_id].customers.get(customer_id)
            return copy.deepcopy(entries) if entries is not None else None

    def client_matches(self, client_id: str, client_secret: str) -> bool:
        given = f"{client_id}\x00{client_secret}".encode()
        return hmac.compare_digest(given, f"{self.client_id}\x00{self.client_secret}".encode())

    def exchange(self, refresh_token: str) -> TokenRefresh:
        """The refresh grant: rotate both tokens, or revoke both when a token is reused."""
        with self._lock:
            owner = next(
                (mid for mid, m in self._merchants.items() if m.refresh_token == refresh_token),
                None,
            )
            if owner is not None and refresh_token:
                outcome = self._rotate(owner, refresh_token)
            elif refresh_token in self._spent:
                outcome = self._revoke(self._spent[refresh_token], refresh_token)
            else:
                outcome = TokenRefresh(refresh_token, "unknown")
            self._refreshes.append(outcome)
            return outcome

    def _rotate(self, merchant_id: str, refresh_token: str) -> TokenRefresh:
        merchant = self._merchants[merchant_id]
        merchant.access_token = f"sandbox-at-{secrets.token_urlsafe(18)}"
        merchant.refresh_token = f"sandbox-rt-{secrets.token_urlsafe(18)}"
        self._spent[refresh_token] = merchant_id
        return TokenRefresh(
            refresh_token, "rotated", merchant_id, merchant.access_token, merchant.refresh_token
        )

    def _revoke(self, merchant_id: str, refresh_token: str) -> TokenRefresh:
        merchant = self._merchants[merchant_id]
        merchant.access_token = merchant.refresh_token = None
        return TokenRefresh(refresh_token, "reused", merchant_id)


# --- sample data ------------------------------------------------------------------------------


def points_entry(
    points: int,
    *,
    created: datetime,
    expiry: datetime | None,
    status: str = CONFIRMED,
    used_points: int = 0,
    name: str = CUSTOM,
    order_id: int | str | None = None,
    used_at: str | dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One history entry in the seeds' shape; dates are written in the store's time."""
    local_created = created.astimezone(STORE_ZONE)
    return {
        "name": name,
        "points": points,
        "used_points": used_points,
        "status": status,
        "created_at": {
            "date": local_created.strftime("%Y-%m-%d %H:%M:%S.000000"),
            "timezone_type": 3,
            "timezone": str(STORE_ZONE),
        },
        "expiry_date": expiry.astimezone(STORE_ZONE).strftime("%Y-%m-%d %H:%M:%S")
        if expiry
        else None,
        "order_id": order_id,
        "used_at": used_at,
        "notes": None,
        "reference_id": order_id,
    }


# (status, points, used_points, expiry in days from now — None for no expiry)
_SAMPLES: tuple[tuple[str, int, int, int | None], ...] = (
    (CONFIRMED, 100, 0, 3),  # expiring within days
    (CONFIRMED, 250, 50, 200),  # partly used
    (PENDING, 80, 0, 365),  # order not completed yet
    (EXPIRED, 40, 0, -30),
    (CONFIRMED, 60, 0, -2),  # past its expiry, label not updated yet
    (CANCELLED, 30, 0, 100),
    (CONFIRMED, 500, 500, 90),  # fully used
    (CONFIRMED, 20, 0, None),  # never expires
)


def sample_history(now: datetime | None = None, count: int = 70) -> list[dict[str, Any]]:
    """``count`` varied entries relative to ``now``, newest first (70 make two pages of 60)."""
    moment = now or datetime.now(UTC)
    return [_sample_entry(index, moment) for index in range(count)]


def _sample_entry(index: int, now: datetime) -> dict[str, Any]:
    status, points, used, days = _SAMPLES[index % len(_SAMPLES)]
    expiry = None if days is None else now + timedelta(days=days, minutes=index)
    order_id: int | str | None = (7_000_000 + index, str(8_000_000 + index), None)[index % 3]
    used_at: str | dict[str, Any] | None = ({}, None)[index % 2]  # both seen in the seeds
    if used:
        used_at = (now - timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S")
    return points_entry(
        points,
        created=now - timedelta(days=index + 1),
        expiry=expiry,
        status=status,
        used_points=used,
        name=ORDER_REWARD if order_id is not None else CUSTOM,
        order_id=order_id,
        used_at=used_at,
    )
