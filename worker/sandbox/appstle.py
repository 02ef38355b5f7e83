"""A local Appstle Loyalty: the customer-loyalty endpoint, and signed Appstle webhooks.

Reference: https://developers.appstle.com/api-reference/customer-enrollment-&-profile/get-customer-loyalty-details
(``GET /api/external/customer-loyalty`` and its answer, copied in
``tests/fixtures/appstle/customer_loyalty_seed_003.json``) and
https://developers.appstle.com/loyalty/quickstart (the same call as
``?shop=…&customer_id=…``). The client is given ``http://127.0.0.1:PORT`` as
its API base. Like Appstle as documented, it:

- wants ``X-API-Key`` (401 for a missing or unknown key; the key names the shop);
- reads the customer in the forms it is set to accept (``forms``; both by
  default, one only to stand for an API that reads one spelling): the
  reference's exactly one of ``customerId`` (digits) or ``customerEmail``, or
  the quickstart's ``shop`` (the key's shop) with ``customer_id``; a request
  in no accepted form, or naming the customer in both, is a 400 ("either …
  not both", as Appstle documents for the same identifiers on ``/add-points``);
  it matches emails case-insensitively and answers 404 for an unknown customer;
- answers in the seed's shape, decimals included, with ``expiringPointsAmount``
  and ``pointsExpireAt`` when points are due to expire, and the customer's
  ``customerStatus`` (``EXCLUDED`` … as set);
- counts a budget per key and answers 429 with ``Retry-After`` past it
  (Appstle documents no limits: the budget is ours to choose in tests);
- answers injected failures (5xx, 429, 401) and delays first.

Error bodies imitate a Java service's default error document and mean nothing
to the client, which must treat them as opaque. ``sign_appstle_webhook`` makes
a correctly signed (Svix) Appstle webhook for the receiver, its body built
from ``worker.platforms.appstle.examples`` like ``trigger``'s.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask, Response, current_app, request

from worker.platforms.appstle import samples
from worker.platforms.base import SampleDelivery
from worker.sandbox.trouble import InjectedFailure, SandboxTrouble, serve_trouble

DEMO_SHOP = "relay-demo.myshopify.com"
DEMO_API_KEY = "sandbox-appstle-api-key"
DEMO_CUSTOMER = "7390123456789"
DEMO_EMAIL = "sara@example.com"
DEMO_WEBHOOK_SECRET = "whsec_c2FuZGJveC1hcHBzdGxlLXdlYmhvb2stc2VjcmV0LTMyYg=="
LOYALTY_PATH = "/api/external/customer-loyalty"
EXTENSION = "appstle_sandbox"
REFERENCE = "reference"  # customerId / customerEmail
QUICKSTART = "quickstart"  # shop + customer_id
BOTH_FORMS = frozenset({REFERENCE, QUICKSTART})

__all__ = [
    "DEMO_API_KEY",
    "DEMO_CUSTOMER",
    "DEMO_EMAIL",
    "DEMO_SHOP",
    "DEMO_WEBHOOK_SECRET",
    "BOTH_FORMS",
    "QUICKSTART",
    "REFERENCE",
    "AppstleRequest",
    "AppstleSandboxState",
    "LoyaltyCustomer",
    "create_appstle_sandbox",
    "sandbox_state",
    "sign_appstle_webhook",
]


@dataclass(frozen=True)
class AppstleRequest:
    """One request as the sandbox saw it, with the answer's status."""

    method: str
    path: str
    status: int
    api_key: str | None
    customer_id: str | None  # from ``customerId`` or ``customer_id``
    customer_email: str | None
    form: str | None = None  # which documented form the request used, if any


@dataclass(frozen=True)
class LoyaltyCustomer:
    """What Appstle knows of one customer; ``expire_at`` with ``expiring`` is the next expiry."""

    customer_id: str
    email: str | None = None
    available: float = 0.0
    pending: float = 0.0
    credited: float = 0.0
    tier: str | None = None
    status: str = "ACTIVE"
    expiring: float | None = None
    expire_at: datetime | None = None


class AppstleSandboxState(SandboxTrouble[AppstleRequest]):
    """Shops and their API keys, customers, injected trouble and a log; thread-safe."""

    def __init__(
        self,
        *,
        rate_limit: int = 1000,
        rate_window: float = 60.0,
        clock: Callable[[], float] = time.time,
        forms: frozenset[str] = BOTH_FORMS,
    ) -> None:
        super().__init__(rate_limit=rate_limit, rate_window=rate_window, clock=clock)
        self.forms = forms
        self._keys: dict[str, str] = {}  # API key → shop
        self._customers: dict[str, dict[str, LoyaltyCustomer]] = {}  # shop → id → customer

    @classmethod
    def with_demo_store(cls, now: datetime | None = None) -> AppstleSandboxState:
        """The demo shop and key; one customer with 250.5 points, 40 expiring in 3 days."""
        moment = now or datetime.now(UTC)
        state = cls()
        state.add_shop(DEMO_SHOP, DEMO_API_KEY)
        state.set_customer(
            DEMO_SHOP, DEMO_CUSTOMER, email=DEMO_EMAIL, available=250.5, pending=50,
            tier="Gold", expiring=40, expire_at=moment + timedelta(days=3),
        )  # fmt: skip
        return state

    # --- driving it ---

    def add_shop(self, shop: str, api_key: str) -> None:
        with self._lock:
            self._keys[api_key] = shop
            self._customers.setdefault(shop, {})

    def revoke_key(self, api_key: str) -> None:
        with self._lock:
            self._keys.pop(api_key, None)

    def set_customer(
        self,
        shop: str,
        customer_id: str,
        *,
        email: str | None = None,
        available: float = 0.0,
        pending: float = 0.0,
        credited: float | None = None,
        tier: str | None = None,
        status: str = "ACTIVE",
        expiring: float | None = None,
        expire_at: datetime | None = None,
    ) -> LoyaltyCustomer:
        """Create or replace a customer (``credited`` defaults to available + pending)."""
        customer = LoyaltyCustomer(
            customer_id, email, available, pending,
            available + pending if credited is None else credited,
            tier, status, expiring, expire_at,
        )  # fmt: skip
        with self._lock:
            self._customers[shop][customer_id] = customer
        return customer

    def add_points(self, shop: str, customer_id: str, points: float) -> LoyaltyCustomer:
        """Credit available points, as Appstle does when an order is paid or fulfilled."""
        with self._lock:
            current = self._customers[shop].get(customer_id) or LoyaltyCustomer(customer_id)
            updated = replace(
                current, available=current.available + points, credited=current.credited + points
            )
            self._customers[shop][customer_id] = updated
            return updated

    # --- reading it ---

    def customer(self, shop: str, customer_id: str) -> LoyaltyCustomer | None:
        with self._lock:
            return self._customers.get(shop, {}).get(customer_id)

    # --- used by the app ---

    def shop_for(self, api_key: str) -> str | None:
        with self._lock:
            return self._keys.get(api_key) if api_key else None

    def find(self, shop: str, *, customer_id: str = "", email: str = "") -> LoyaltyCustomer | None:
        with self._lock:
            customers = self._customers.get(shop, {})
            if customer_id:
                return customers.get(customer_id)
            wanted = email.strip().lower()
            return next((c for c in customers.values() if (c.email or "").lower() == wanted), None)


# --- the app ----------------------------------------------------------------------------------


def create_appstle_sandbox(state: AppstleSandboxState | None = None) -> Flask:
    """The sandbox app; without ``state`` it serves ``AppstleSandboxState.with_demo_store()``."""
    app = Flask(__name__)
    sandbox = state if state is not None else AppstleSandboxState.with_demo_store()
    app.extensions[EXTENSION] = sandbox
    serve_trouble(app, sandbox, _failure_answer, _seen)

    app.add_url_rule(LOYALTY_PATH, view_func=_customer_loyalty, methods=["GET"])
    return app


def sandbox_state(app: Flask) -> AppstleSandboxState:
    state: AppstleSandboxState = app.extensions[EXTENSION]
    return state


def _customer_loyalty() -> Response:
    state = sandbox_state(current_app)
    api_key = request.headers.get("X-API-Key", "").strip()
    shop = state.shop_for(api_key)
    if shop is None:
        return _error(401, "Unauthorized")
    wait = state.take_budget(api_key).retry_after
    if wait is not None:
        return _error(429, "Too Many Requests", retry_after=wait)
    wanted = customer_wanted(shop, state.forms)
    if wanted is None:
        return _error(400, "Bad Request")
    customer = state.find(shop, customer_id=wanted[0], email=wanted[1])
    if customer is None:
        return _error(404, "Not Found")
    return _json(200, loyalty_document(customer))


def request_form() -> str | None:
    """Which documented spelling names the customer: one exactly, else None."""
    reference = bool(_arg("customerId") or _arg("customerEmail"))
    quickstart = bool(_arg("customer_id") or _arg("shop"))
    if reference == quickstart:
        return None
    return REFERENCE if reference else QUICKSTART


def customer_wanted(shop: str, forms: frozenset[str]) -> tuple[str, str] | None:
    """(customer id, email) asked for in an accepted form, or None (a 400)."""
    form = request_form()
    if form is None or form not in forms:
        return None
    if form == QUICKSTART:
        wanted = _arg("customer_id")
        return (wanted, "") if _arg("shop") == shop and wanted.isdigit() else None
    customer_id, email = _arg("customerId"), _arg("customerEmail")
    if bool(customer_id) == bool(email) or (customer_id and not customer_id.isdigit()):
        return None
    return customer_id, email


def _arg(name: str) -> str:
    return request.args.get(name, "").strip()


def loyalty_document(customer: LoyaltyCustomer) -> dict[str, Any]:
    """The API reference's answer for ``customer``, expiry fields when points expire."""
    document: dict[str, Any] = {
        "availablePoints": customer.available,
        "pendingPoints": customer.pending,
        "creditedPoints": customer.credited,
        "spentAmount": 1250.99,
        "storeCreditBalance": 25,
        "currentVipTier": customer.tier,
        "vipTierExpiredAt": "2027-12-31T23:59:59Z" if customer.tier else None,
        "achievableTierId": 2,
        "createAt": "2024-01-15T10:00:00Z",
        "rewardedForNewsLetter": True,
        "rewardedForCreatingAccount": True,
        "referredCompleted": 3,
        "referralLink": "https://relay-demo.example/r/abc123",
        "customerStatus": customer.status,
        "dob": "1990-05-15",
        "rewards": [_reward()],
    }
    if customer.expire_at is not None:
        document["expiringPointsAmount"] = customer.expiring
        document["pointsExpireAt"] = _iso(customer.expire_at)
    return document


def _reward() -> dict[str, Any]:
    return {
        "id": 12345, "discountCode": "LOYALTY10OFF", "discountType": "PERCENTAGE",
        "discountValue": 10, "status": "UNUSED", "expiryDate": "2027-06-30T23:59:59Z",
        "pointsRedeemed": 100,
    }  # fmt: skip


def _failure_answer(failure: InjectedFailure) -> Response:
    reasons = {401: "Unauthorized", 429: "Too Many Requests"}
    return _error(failure.status, reasons.get(failure.status, "Error"), failure.retry_after)


def _seen(status: int) -> AppstleRequest:
    return AppstleRequest(
        method=request.method,
        path=request.path,
        status=status,
        api_key=request.headers.get("X-API-Key"),
        customer_id=request.args.get("customerId") or request.args.get("customer_id"),
        customer_email=request.args.get("customerEmail"),
        form=request_form(),
    )


def _error(status: int, reason: str, retry_after: int | None = None) -> Response:
    document = {"timestamp": _iso(datetime.now(UTC)), "status": status, "error": reason}
    response = _json(status, document | {"path": request.path})
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _json(status: int, document: dict[str, Any]) -> Response:
    return Response(json.dumps(document), status, mimetype="application/json")


# --- webhooks ---------------------------------------------------------------------------------


def sign_appstle_webhook(
    event: str,
    customer: str | None,
    *,
    shop: str = DEMO_SHOP,
    secret: str = DEMO_WEBHOOK_SECRET,
    body: bytes | None = None,
    msg_id: str | None = None,
    timestamp: int | None = None,
    prefix: str = samples.SVIX,
) -> SampleDelivery:
    """An Appstle webhook signed as Svix signs it (``worker.signing.sign``), under
    Svix's header names or (``prefix="webhook-"``) the white-labelled ones."""
    document = samples.sample_event(event, customer, shop)
    payload = samples.encode(document) if body is None else body
    headers = samples.svix_headers(
        secret, payload, msg_id=msg_id, timestamp=timestamp, prefix=prefix
    )
    return SampleDelivery(samples.path_for(shop), payload, headers)
