"""The state behind the Zid sandbox (``worker.sandbox.zid``).

Tests and the demo drive a ``ZidSandboxState``: stores with their three tokens,
customers' balances and histories in the SDK fixture's shape
(``history_entry``), customer tokens for the storefront endpoint, webhook
subscriptions, trouble to inject (failures, delay, a per-store budget) and what
happened (requests, token refreshes). Every method takes the state's lock: the
sandbox is threaded.
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

from worker.sandbox.trouble import SandboxTrouble
from worker.sandbox.zid_records import (
    DEMO_AUTHORIZATION,
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_CUSTOMER,
    DEMO_CUSTOMER_TOKEN,
    DEMO_MANAGER_TOKEN,
    DEMO_REDIRECT_URI,
    DEMO_REFRESH_TOKEN,
    DEMO_STORE,
    AnswerStyle,
    RegisteredWebhook,
    TokenRefresh,
    ZidRequest,
    history_entry,
)


@dataclass
class _Customer:
    available: int = 0
    pending: int = 0
    used: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)  # newest first


@dataclass
class _Store:
    authorization: str | None
    manager_token: str | None
    refresh_token: str | None
    customers: dict[str, _Customer] = field(default_factory=dict)
    customer_tokens: dict[str, str] = field(default_factory=dict)  # token → customer id
    webhooks: list[RegisteredWebhook] = field(default_factory=list)


class ZidSandboxState(SandboxTrouble[ZidRequest]):
    """Stores, tokens, balances, webhooks, injected trouble and a log; thread-safe."""

    def __init__(
        self,
        *,
        client_id: str = DEMO_CLIENT_ID,
        client_secret: str = DEMO_CLIENT_SECRET,
        redirect_uri: str = DEMO_REDIRECT_URI,
        rate_limit: int = 60,
        rate_window: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client_id, self.client_secret, self.redirect_uri = (
            client_id,
            client_secret,
            redirect_uri,
        )
        super().__init__(rate_limit=rate_limit, rate_window=rate_window, clock=clock)
        self._stores: dict[str, _Store] = {}
        self._spent: dict[str, str] = {}  # used refresh token → store
        self._refreshes: list[TokenRefresh] = []
        self._style = AnswerStyle()

    @classmethod
    def with_demo_store(cls, now: datetime | None = None) -> ZidSandboxState:
        """The demo store with its tokens, and a customer with a varied history and a token."""
        state = cls()
        state.add_store(DEMO_STORE)
        moment = now or datetime.now(UTC)
        state.add_points(DEMO_STORE, DEMO_CUSTOMER, 400, expires_in_days=200, now=moment)
        state.add_points(DEMO_STORE, DEMO_CUSTOMER, 150, expires_in_days=5, now=moment)
        state.add_points(DEMO_STORE, DEMO_CUSTOMER, 80, pending=True, now=moment)
        state.redeem(DEMO_STORE, DEMO_CUSTOMER, 100, now=moment)
        state.add_customer_token(DEMO_STORE, DEMO_CUSTOMER, DEMO_CUSTOMER_TOKEN)
        return state

    # --- driving it ---

    def add_store(
        self,
        store_id: str,
        *,
        authorization: str = DEMO_AUTHORIZATION,
        manager_token: str = DEMO_MANAGER_TOKEN,
        refresh_token: str = DEMO_REFRESH_TOKEN,
    ) -> None:
        with self._lock:
            self._stores[store_id] = _Store(authorization, manager_token, refresh_token)

    def set_customer(
        self,
        store_id: str,
        customer_id: str,
        *,
        available: int = 0,
        pending: int = 0,
        used: int = 0,
        history: list[dict[str, Any]] | None = None,
    ) -> None:
        """Replace a customer's balances and history (entries in the SDK's shape, newest first)."""
        customer = _Customer(available, pending, used, copy.deepcopy(history or []))
        with self._lock:
            self._stores[store_id].customers[customer_id] = customer

    def add_points(
        self,
        store_id: str,
        customer_id: str,
        points: int,
        *,
        expires_in_days: int = 365,
        pending: bool = False,
        now: datetime | None = None,
    ) -> dict[str, Any]:
        """Credit points, as the loyalty program does for an order (pending until it completes)."""
        moment = now or datetime.now(UTC)
        status = "pending" if pending else "active"
        entry = history_entry(
            points, date=moment, expiry=moment + timedelta(days=expires_in_days), status=status
        )
        with self._lock:
            customer = self._stores[store_id].customers.setdefault(customer_id, _Customer())
            customer.history.insert(0, entry)
            if pending:
                customer.pending += points
            else:
                customer.available += points
        return copy.deepcopy(entry)

    def redeem(
        self, store_id: str, customer_id: str, points: int, *, now: datetime | None = None
    ) -> None:
        entry = history_entry(points, date=now or datetime.now(UTC), direction="-", status="used")
        with self._lock:
            customer = self._stores[store_id].customers.setdefault(customer_id, _Customer())
            customer.history.insert(0, entry | {"type": "redeem", "reason": "Order discount"})
            customer.available -= points
            customer.used += points

    def add_customer_token(self, store_id: str, customer_id: str, token: str | None = None) -> str:
        """A storefront login for the customer: the token sent as X-CUSTOMER-TOKEN."""
        token = token or f"sandbox-zid-ct-{secrets.token_urlsafe(12)}"
        with self._lock:
            self._stores[store_id].customer_tokens[token] = customer_id
        return token

    def expire_token(self, store_id: str) -> None:
        """Both access tokens stop working; the refresh token still works."""
        with self._lock:
            store = self._stores[store_id]
            store.authorization = store.manager_token = None

    def set_style(self, style: AnswerStyle) -> None:
        with self._lock:
            self._style = style

    # --- reading it ---

    def tokens(self, store_id: str) -> tuple[str | None, str | None, str | None]:
        """The store's live (authorization, manager, refresh) tokens; None once expired."""
        with self._lock:
            store = self._stores[store_id]
            return store.authorization, store.manager_token, store.refresh_token

    def webhooks(self, store_id: str) -> list[RegisteredWebhook]:
        with self._lock:
            return list(self._stores[store_id].webhooks)

    def request_count(self, path_end: str | None = None) -> int:
        return sum(
            1 for seen in self.requests() if path_end is None or seen.path.endswith(path_end)
        )

    def refreshes(self) -> list[TokenRefresh]:
        with self._lock:
            return list(self._refreshes)

    @property
    def style(self) -> AnswerStyle:
        with self._lock:
            return self._style

    # --- used by the app ---

    def manager_store(self, authorization: str, manager_token: str) -> str | None:
        """The store both tokens belong to, or None."""
        with self._lock:
            for store_id, store in self._stores.items():
                if _same(store.authorization, authorization) and _same(
                    store.manager_token, manager_token
                ):
                    return store_id
        return None

    def storefront_customer(
        self, store_id: str, authorization: str, customer_token: str
    ) -> str | None:
        with self._lock:
            store = self._stores.get(store_id)
            if store is None or not _same(store.authorization, authorization):
                return None
            return store.customer_tokens.get(customer_token)

    def customer(self, store_id: str, customer_id: str) -> dict[str, Any] | None:
        """The customer's balances and history, or None when the store has no such customer."""
        with self._lock:
            found = self._stores[store_id].customers.get(customer_id)
            if found is None:
                return None
            return {
                "available": found.available,
                "pending": found.pending,
                "used": found.used,
                "history": copy.deepcopy(found.history),
            }

    def add_webhook(self, store_id: str, webhook: RegisteredWebhook) -> bool:
        """Register; False when the same event, target and app are already registered."""
        with self._lock:
            store = self._stores[store_id]
            key = (webhook.event, webhook.target_url, webhook.original_id)
            if any((w.event, w.target_url, w.original_id) == key for w in store.webhooks):
                return False
            store.webhooks.append(webhook)
            return True

    def delete_webhooks(self, store_id: str, original_id: str) -> int:
        with self._lock:
            store = self._stores[store_id]
            kept = [w for w in store.webhooks if w.original_id != original_id]
            deleted, store.webhooks = len(store.webhooks) - len(kept), kept
            return deleted

    def client_matches(self, client_id: str, client_secret: str) -> bool:
        given = f"{client_id}\x00{client_secret}".encode()
        return hmac.compare_digest(given, f"{self.client_id}\x00{self.client_secret}".encode())

    def exchange(self, refresh_token: str) -> TokenRefresh:
        """The refresh grant: rotate all three tokens, or revoke them when one is reused."""
        with self._lock:
            owner = next(
                (sid for sid, s in self._stores.items() if _same(s.refresh_token, refresh_token)),
                None,
            )
            if owner is not None:
                outcome = self._rotate(owner, refresh_token)
            elif refresh_token in self._spent:
                outcome = self._revoke(self._spent[refresh_token], refresh_token)
            else:
                outcome = TokenRefresh(refresh_token, "unknown")
            self._refreshes.append(outcome)
            return outcome

    def _rotate(self, store_id: str, refresh_token: str) -> TokenRefresh:
        store = self._stores[store_id]
        store.authorization = f"sandbox-zid-au-{secrets.token_urlsafe(18)}"
        store.manager_token = f"sandbox-zid-mt-{secrets.token_urlsafe(18)}"
        store.refresh_token = f"sandbox-zid-rt-{secrets.token_urlsafe(18)}"
        self._spent[refresh_token] = store_id
        tokens = (store.authorization, store.manager_token, store.refresh_token)
        return TokenRefresh(refresh_token, "rotated", store_id, tokens)

    def _revoke(self, store_id: str, refresh_token: str) -> TokenRefresh:
        store = self._stores[store_id]
        store.authorization = store.manager_token = store.refresh_token = None
        return TokenRefresh(refresh_token, "reused", store_id)


def _same(expected: str | None, given: str) -> bool:
    if expected is None or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace"))
