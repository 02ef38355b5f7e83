"""Appstle Loyalty's API, as far as one customer's points go.

One call per refresh: ``GET {api_base}/api/external/customer-loyalty`` with
the store's ``X-API-Key`` and exactly one of ``customerId`` (a Shopify
customer id) or ``customerEmail`` (a ref ``email:<address>``). Appstle
documents no rate limits, so each call takes one unit of the store's shared
``appstle`` budget first and reports the answer's headers after. All HTTP goes
through ``store.http`` (``worker.http``).

Failures: 429 (after ``Retry-After``, else 30 s), 408, 5xx, timeouts and
connection errors are ``TransientError``. 401/403 mean the API key is refused:
that is reported through ``store.refresh_credentials`` — there is nothing to
refresh, so the store is marked ``needs_reauth`` with the reason for ops,
unless another process stored a newer key meanwhile, which is then tried once.
404 (no such customer) and any other status are ``PermanentError``. Appstle's
error bodies are undocumented: messages carry the status only, never a body.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from worker.errors import NeedsReauthorization, PermanentError, TransientError
from worker.platforms.base import StoreApi, StoreUpdate
from worker.platforms.common import json_body, retry_after, transport_errors
from worker.platforms.shopify.balance import snapshot_from_loyalty
from worker.platforms.shopify.identity import CUSTOMER_ID, email_of
from worker.platforms.shopify.schemas import load_customer_loyalty
from worker.points import PointsSnapshot

LOYALTY_PATH = "/api/external/customer-loyalty"
QUOTA_BUCKET = "appstle"
API_KEY = "appstle_api_key"
REFUSED = (401, 403)
DEFAULT_RETRY_AFTER = 30.0
MAX_RETRY_AFTER = 3600.0

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class CustomerQuery:
    """How Appstle is asked for one customer: by id, or by email (then it is the contact)."""

    params: Mapping[str, str]
    email: str | None = None

    @classmethod
    def for_ref(cls, ref: str) -> CustomerQuery:
        email = email_of(ref)
        if email:
            return cls({"customerEmail": email}, email)
        if CUSTOMER_ID.fullmatch(ref):
            return cls({"customerId": ref})
        raise PermanentError("customer ref is neither a Shopify customer id nor email:<address>")


class AppstleApi:
    """What the Shopify and Appstle receivers need to read points: a clock, nothing else."""

    def __init__(self, *, clock: Clock = utc_now) -> None:
        self.clock = clock

    def fetch_points(self, store: StoreApi, customer_ref: str) -> PointsSnapshot:
        query = CustomerQuery.for_ref(customer_ref)
        loyalty = load_customer_loyalty(read_loyalty(store, query))
        return snapshot_from_loyalty(loyalty, now=self.clock(), email=query.email)


def read_loyalty(store: StoreApi, query: CustomerQuery) -> Any:
    """The customer's loyalty document, the API key refused at most once per fetch."""
    response = _get(store, query, store.credentials())
    if response.status_code in REFUSED:
        newer = store.refresh_credentials(_refused_key(response.status_code))
        response = _get(store, query, newer)
        if response.status_code in REFUSED:
            raise NeedsReauthorization(_refusal(response.status_code))
    raise_for_status(response)
    return json_body(response, "Appstle customer loyalty answer")


def _get(store: StoreApi, query: CustomerQuery, credentials: Mapping[str, Any]) -> httpx.Response:
    url = f"{store.api_base.rstrip('/')}{LOYALTY_PATH}"
    headers = {"X-API-Key": api_key(credentials), "Accept": "application/json"}
    store.take_quota(QUOTA_BUCKET)
    with transport_errors("Appstle customer loyalty request"):
        # Reference: seeds/003 (Appstle GET /api/external/customer-loyalty, X-API-Key)
        response = store.http.get(url, params=dict(query.params), headers=headers)
    store.observe_rate_headers(QUOTA_BUCKET, response.headers)
    return response


def api_key(credentials: Mapping[str, Any]) -> str:
    key = credentials.get(API_KEY)
    if not isinstance(key, str) or not key.strip():
        raise NeedsReauthorization("no Appstle API key is stored for this store")
    return key.strip()


def _refused_key(status: int) -> Callable[[dict[str, Any]], StoreUpdate]:
    """A "refresh" that cannot succeed: an API key is replaced by people, not by us."""

    def refuse(_credentials: dict[str, Any]) -> StoreUpdate:
        raise NeedsReauthorization(_refusal(status))

    return refuse


def _refusal(status: int) -> str:
    return (
        f"Appstle refused the API key (HTTP {status}); "
        "store a valid one with: stores add shopify --appstle-api-key …"
    )


def raise_for_status(response: httpx.Response) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    if status == 429:
        delay = retry_after_seconds(response.headers)
        raise TransientError("Appstle rate limit reached (HTTP 429)", retry_after=delay)
    if status >= 500 or status == 408:
        raise TransientError(f"Appstle answered {status}")
    if status == 404:
        raise PermanentError("Appstle has no loyalty record for this customer (HTTP 404)")
    raise PermanentError(f"Appstle answered {status}")


def retry_after_seconds(headers: Mapping[str, str]) -> float:
    return retry_after(headers, DEFAULT_RETRY_AFTER)
