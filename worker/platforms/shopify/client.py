"""Appstle Loyalty's API, as far as one customer's points go.

One call per refresh: ``GET {api_base}/api/external/customer-loyalty`` with
the store's ``X-API-Key``. Appstle documents the customer parameter two ways:

- the API reference (https://developers.appstle.com/api-reference/customer-enrollment-&-profile/get-customer-loyalty-details,
  the page ``tests/fixtures/appstle/customer_loyalty_seed_003.json`` is copied
  from): ``customerId`` (a Shopify customer id) or ``customerEmail``;
- the quickstart (https://developers.appstle.com/loyalty/quickstart, step 2):
  ``?shop=<shop>.myshopify.com&customer_id=<id>``.

Which one the live API reads is not settled by the docs, so the reference form
(the precise contract) is sent first and, only when the answer says the
request was not understood (400, 404 or 422), the quickstart form once more.
The form that answered is remembered per shop for this process, so a store on
either form costs one call per refresh after the first. Both spellings are not
mixed into one request: Appstle documents "Provide either customerId OR
customerEmail, not both" for the same identifiers on ``/add-points``
(https://developers.appstle.com/api-reference/points-&-earn-rules/add-points-to-customer-account),
so a request naming a customer twice may be refused. An email ref has only the
reference form (``customerEmail``). Appstle documents no rate limits, so each
call takes one unit of the store's shared ``appstle`` budget first and reports
the answer's headers after. All HTTP goes through ``store.http`` (``worker.http``).

Failures: 429 (after ``Retry-After``, else 30 s), 408, 5xx, timeouts and
connection errors are ``TransientError``. 401/403 mean the API key is refused:
that is reported through ``store.refresh_credentials`` — there is nothing to
refresh, so the store is marked ``needs_reauth`` with the reason for ops,
unless another process stored a newer key meanwhile, which is then tried once.
404 (no such customer, in both forms) and any other status are
``PermanentError``. Appstle's error bodies are undocumented: messages carry the
status only, never a body.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from worker import http
from worker.errors import NeedsReauthorization, PermanentError
from worker.platforms.base import StoreApi, StoreUpdate
from worker.platforms.common import json_body, transport_errors
from worker.platforms.shopify.balance import snapshot_from_loyalty
from worker.platforms.shopify.identity import CUSTOMER_ID, email_of
from worker.platforms.shopify.schemas import load_customer_loyalty
from worker.points import PointsSnapshot

LOYALTY_PATH = "/api/external/customer-loyalty"
QUOTA_BUCKET = "appstle"
API_KEY = "appstle_api_key"
REFUSED = (401, 403)
# Answers meaning "this spelling of the customer was not understood": try the other form.
WRONG_FORM = (400, 404, 422)
# Reference: https://developers.appstle.com/api-reference/customer-enrollment-&-profile/get-customer-loyalty-details
REFERENCE_FORM = "customerId"  # the API reference
QUICKSTART_FORM = "shop+customer_id"  # https://developers.appstle.com/loyalty/quickstart
DEFAULT_RETRY_AFTER = 30.0

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class CustomerQuery:
    """How Appstle is asked for one customer: by id, or by email (then it is the contact)."""

    customer_id: str | None = None
    email: str | None = None

    @classmethod
    def for_ref(cls, ref: str) -> CustomerQuery:
        email = email_of(ref)
        if email:
            return cls(email=email)
        if CUSTOMER_ID.fullmatch(ref):
            return cls(customer_id=ref)
        raise PermanentError("customer ref is neither a Shopify customer id nor email:<address>")

    def forms(self, preferred: str | None = None) -> list[str]:
        """The documented spellings for this customer, the one known to work first."""
        if self.customer_id is None:
            return [REFERENCE_FORM]
        forms = [REFERENCE_FORM, QUICKSTART_FORM]
        return sorted(forms, key=lambda form: form != preferred)

    def params(self, form: str, shop: str) -> dict[str, str]:
        if self.customer_id is None:
            return {"customerEmail": self.email or ""}
        if form == QUICKSTART_FORM:
            # Reference: https://developers.appstle.com/loyalty/quickstart (step 2)
            return {"shop": shop, "customer_id": self.customer_id}
        return {"customerId": self.customer_id}


class AppstleApi:
    """What the Shopify and Appstle receivers need to read points: a clock, and which
    spelling of the customer each shop's API answered last (kept for this process)."""

    def __init__(self, *, clock: Clock = utc_now) -> None:
        self.clock = clock
        self._forms: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def fetch_points(self, store: StoreApi, customer_ref: str) -> PointsSnapshot:
        query = CustomerQuery.for_ref(customer_ref)
        loyalty = load_customer_loyalty(self.read_loyalty(store, query))
        return snapshot_from_loyalty(loyalty, now=self.clock(), email=query.email)

    def read_loyalty(self, store: StoreApi, query: CustomerQuery) -> Any:
        """The customer's loyalty document, asked in each documented form until one is read."""
        shop_key = (store.api_base, store.external_id)
        with self._lock:
            forms = query.forms(self._forms.get(shop_key))
        answers: list[httpx.Response] = []
        for form in forms:
            answers.append(read_once(store, query.params(form, store.external_id)))
            if answers[-1].status_code not in WRONG_FORM:
                break
        raise_for_status(_telling(answers))
        if query.customer_id is not None:  # an email has one form only: nothing learnt
            with self._lock:
                self._forms[shop_key] = form
        return json_body(answers[-1], "Appstle customer loyalty answer")


def _telling(answers: list[httpx.Response]) -> httpx.Response:
    """The answer to report: the last, unless every form was refused and one said 404
    (the form it understood found no such customer)."""
    found = [answer for answer in answers if answer.status_code == 404]
    last = answers[-1]
    return found[0] if last.status_code in WRONG_FORM and found else last


def read_once(store: StoreApi, params: Mapping[str, str]) -> httpx.Response:
    """One answer, the API key refused at most once per fetch."""
    response = _get(store, params, store.credentials())
    if response.status_code in REFUSED:
        newer = store.refresh_credentials(_refused_key(response.status_code))
        response = _get(store, params, newer)
        if response.status_code in REFUSED:
            raise NeedsReauthorization(_refusal(response.status_code))
    return response


def _get(
    store: StoreApi, params: Mapping[str, str], credentials: Mapping[str, Any]
) -> httpx.Response:
    url = f"{store.api_base.rstrip('/')}{LOYALTY_PATH}"
    headers = {"X-API-Key": api_key(credentials), "Accept": "application/json"}
    store.take_quota(QUOTA_BUCKET)
    with transport_errors("Appstle customer loyalty request"):
        # Reference: https://developers.appstle.com/api-reference/customer-enrollment-&-profile/get-customer-loyalty-details
        response = store.http.get(url, params=dict(params), headers=headers)
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
    if status == 404:
        raise PermanentError("Appstle has no loyalty record for this customer (HTTP 404)")
    wording = http.Wording("Appstle answered {status}", "Appstle rate limit reached (HTTP 429)")
    http.raise_for_status(status, response.headers, wording, rate_limit_wait=DEFAULT_RETRY_AFTER)
