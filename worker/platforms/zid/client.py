"""Zid's API as far as loyalty points go, and its OAuth token refresh.

Every call goes through ``ZidCalls``: it takes one unit of the store's shared
quota first (60 requests a minute per store, for every worker together), tells
the quota what the answer's headers said, and on a 401 refreshes the tokens
once, through ``store.refresh_credentials`` so that of all the workers only
one spends the refresh token. A 401 on the storefront endpoint is blamed on the
customer's token and refreshes nothing. All HTTP goes through ``store.http``
(``worker.http``).

Failures: 429 (after ``Retry-After``, else 60 s), 408, 5xx, timeouts and
connection errors are ``TransientError``; 401 or a redirect (3xx, Zid's way of
sending an unauthenticated caller to its login page) after a refresh, and a
refused refresh token, are ``NeedsReauthorization``; anything else is
``PermanentError`` carrying Zid's code and message, truncated — never a body.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

from worker import http
from worker.errors import NeedsReauthorization, PermanentError
from worker.platforms import common
from worker.platforms.base import StoreApi, StoreUpdate
from worker.platforms.common import transport_errors
from worker.platforms.zid.balance import log_disagreement, snapshot_from_balance
from worker.platforms.zid.schemas import (
    HistoryEntry,
    LoyaltyBalance,
    StorefrontPoints,
    error_summary,
    load_balance,
    load_history,
    load_storefront_points,
    load_token_grant,
)
from worker.points import ZERO, PointsSnapshot

DETAILS_PATH = "/managers/loyalty-program/customers/details"
HISTORY_PATH = "/managers/loyalty-program/points-history/{customer_id}"
STOREFRONT_PATH = "/customers/loyalty-program/{store_id}/points"
QUOTA_BUCKET = "api"
DEFAULT_RETRY_AFTER = 60.0

Refresh = Callable[[dict[str, Any]], StoreUpdate]
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Call:
    """One request: ``what`` names it in errors; a ``customer_token`` makes it a storefront call."""

    method: str
    path: str
    what: str
    params: Mapping[str, str] | None = None
    body: Mapping[str, Any] | None = None
    customer_token: str | None = None


class ZidCalls:
    """Calls for one unit of work on one store: the credentials in use, refreshed at most once."""

    def __init__(self, store: StoreApi, refresh: Refresh, language: str = "en") -> None:
        self.store = store
        self.refresh = refresh
        self.language = language
        self.credentials = store.credentials()
        self.refreshed = False

    def json(self, call: Call) -> Any:
        return json_body(self.send(call), call.what)

    def send(self, call: Call) -> httpx.Response:
        response = self._send_once(call)
        if refused_tokens(response):
            response = self._retry_with_new_token(call, response)
        raise_for_status(response, call.what)
        return response

    def _retry_with_new_token(self, call: Call, refused: httpx.Response) -> httpx.Response:
        if call.customer_token is not None:
            # Most likely the customer's token: not worth spending the store's refresh token.
            detail = error_detail(refused)
            raise PermanentError(f"Zid refused the customer token for the {call.what} ({detail})")
        if not self.refreshed:
            self.credentials = self.store.refresh_credentials(self.refresh)
            self.refreshed = True
            refused = self._send_once(call)
            if not refused_tokens(refused):
                return refused
        detail = error_detail(refused)
        raise NeedsReauthorization(f"Zid refused the store's tokens after a refresh ({detail})")

    def _send_once(self, call: Call) -> httpx.Response:
        url = f"{self.store.api_base.rstrip('/')}{call.path}"
        headers = self._headers(call)
        self.store.take_quota(QUOTA_BUCKET)
        with transport_errors(f"Zid {call.what}"):
            response = self.store.http.request(
                call.method, url, params=call.params, json=call.body, headers=headers
            )
        self.store.observe_rate_headers(QUOTA_BUCKET, response.headers)
        return response

    def _headers(self, call: Call) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {bearer(stored_token(self.credentials, 'authorization'))}",
            "Accept": "application/json",
            "Accept-Language": self.language,
        }
        if call.customer_token is not None:
            return headers | {"X-CUSTOMER-TOKEN": call.customer_token}
        return headers | {
            "X-Manager-Token": stored_token(self.credentials, "manager_token"),
            "Store-Id": self.store.external_id,
            "Role": "Manager",
        }


def refused_tokens(response: httpx.Response) -> bool:
    """401, or a redirect: Zid sends an unauthenticated caller to its login page, and its
    official SDK reads any 3xx as an authentication failure (zidsa/sdk-python
    ``zid/http.py``, ``_raise_for_status``: "received redirect to login")."""
    return response.status_code == 401 or 300 <= response.status_code < 400


def stored_token(credentials: Mapping[str, Any], name: str) -> str:
    token = credentials.get(name)
    if not isinstance(token, str) or not token.strip():
        raise NeedsReauthorization(f"no Zid {name.replace('_', ' ')} is stored for this store")
    return token.strip()


def bearer(token: str) -> str:
    """The token without a ``Bearer`` prefix, which people paste along with it."""
    return token[7:].strip() if token[:7].lower() == "bearer " else token


# --- loyalty points -------------------------------------------------------------------------


def read_balance(calls: ZidCalls, customer_id: str) -> LoyaltyBalance:
    # Reference: zidsa/sdk-python zid/resources/loyalty.py, tests/fixtures/loyalty_customer.json
    call = Call("GET", DETAILS_PATH, "loyalty details request", params={"customerId": customer_id})
    return load_balance(calls.json(call))


def read_history(calls: ZidCalls, customer_id: str) -> tuple[HistoryEntry, ...]:
    # Reference: https://docs.zid.sa/loyalty-program-1810991f0 (Customer Points History)
    path = HISTORY_PATH.format(customer_id=quote(customer_id, safe=""))
    return load_history(calls.json(Call("GET", path, "points history request")))


def history_for(
    calls: ZidCalls, customer_id: str, balance: LoyaltyBalance
) -> tuple[HistoryEntry, ...]:
    """The history the details answer carried, else one more call — only when it matters.

    Both spare the 60/min quota: Zid's details answer carries the history
    (zidsa/sdk-python tests/fixtures/loyalty_customer.json), and expiry dates only
    matter for points the customer has.
    """
    if balance.history is not None:
        return balance.history
    return read_history(calls, customer_id) if balance.available > ZERO else ()


def fetch_storefront_points(calls: ZidCalls, customer_token: str) -> StorefrontPoints:
    """The logged-in customer's points, when a storefront customer token is at hand."""
    path = STOREFRONT_PATH.format(store_id=quote(calls.store.external_id, safe=""))
    # GET v1/customers/loyalty-program/<STORE_ID>/points with X-CUSTOMER-TOKEN. Not published on
    # a page we can cite: Zid's theme docs on the loyalty program show the storefront widgets
    # (https://share.apidog.com/apidoc/docs-site/613905/loyalty-program), not this path.
    call = Call("GET", path, "storefront points request", customer_token=customer_token)
    return load_storefront_points(calls.json(call))


@dataclass(frozen=True)
class ZidOAuth:
    """Our OAuth client at Zid: what a refresh needs besides the store's refresh token."""

    token_url: str
    client_id: str
    client_secret: str
    redirect_uri: str

    def refresher(self, http: httpx.Client, clock: Clock = utc_now) -> Refresh:
        """``refresh_tokens`` bound to our client, for ``store.refresh_credentials``."""
        return functools.partial(refresh_tokens, http, self, clock=clock)


class ZidApi:
    """What ``ZidPlatform`` needs to read points: our OAuth client, a language and a clock."""

    def __init__(self, oauth: ZidOAuth, *, language: str = "en", clock: Clock = utc_now) -> None:
        self.oauth = oauth
        self.language = language
        self.clock = clock

    def calls(self, store: StoreApi) -> ZidCalls:
        return ZidCalls(store, self.oauth.refresher(store.http, self.clock), self.language)

    def fetch_points(self, store: StoreApi, customer_id: str) -> PointsSnapshot:
        calls = self.calls(store)
        balance = read_balance(calls, customer_id)
        log_disagreement(store.external_id, balance)
        history = history_for(calls, customer_id, balance)
        return snapshot_from_balance(balance, history, timezone=store.timezone, now=self.clock())

    def fetch_storefront_points(self, store: StoreApi, customer_token: str) -> StorefrontPoints:
        return fetch_storefront_points(self.calls(store), customer_token)


# --- tokens ---------------------------------------------------------------------------------


def refresh_tokens(
    http: httpx.Client, oauth: ZidOAuth, credentials: dict[str, Any], *, clock: Clock = utc_now
) -> StoreUpdate:
    """Spend the refresh token; the caller must persist all three new tokens."""
    refresh_token = credentials.get("refresh_token")
    if not isinstance(refresh_token, str) or not refresh_token:
        raise NeedsReauthorization("no Zid refresh token is stored; the merchant must reinstall")
    if not (oauth.client_id and oauth.client_secret):
        raise PermanentError("ZID_CLIENT_ID and ZID_CLIENT_SECRET are needed to refresh Zid tokens")
    form = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": oauth.client_id,
        "client_secret": oauth.client_secret,
        "redirect_uri": oauth.redirect_uri,
    }
    with transport_errors("Zid token refresh"):
        # Reference: zidsa/zid-agent-skill references/oauth-flow.md (Step 4: refresh_token grant)
        response = http.post(oauth.token_url, data=form, headers={"Accept": "application/json"})
    raise_for_token_status(response)
    grant = load_token_grant(json_body(response, "token response"))
    return StoreUpdate(
        credentials={
            "authorization": bearer(grant.authorization),
            "manager_token": grant.manager_token,
            "refresh_token": grant.refresh_token,
        },
        token_expires_at=grant.expires_at(clock()),
    )


def raise_for_token_status(response: httpx.Response) -> None:
    if response.status_code not in (400, 401):
        raise_for_status(response, "token refresh")
        return
    detail = error_detail(response)
    if detail.startswith("invalid_client"):
        # Our app's credentials are wrong: no merchant can fix that by reinstalling.
        raise PermanentError(f"Zid refused our OAuth client ({detail})")
    raise NeedsReauthorization(f"Zid refused the refresh token ({detail})")


# --- answers --------------------------------------------------------------------------------


def raise_for_status(response: httpx.Response, what: str) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    wording = http.Wording(
        f"Zid answered {{status}} to the {what} ({{detail}})",
        rate_limited="Zid rate limit reached ({detail})",
        reauthorize=f"Zid refused the store's tokens for the {what} ({{detail}})",
        detail=error_detail(response),
    )
    # A redirect is Zid sending us to its login page: the tokens are refused.
    http.raise_for_status(
        status, response.headers, wording, rate_limit_wait=DEFAULT_RETRY_AFTER,
        reauthorize=range(300, 400),
    )  # fmt: skip


def error_detail(response: httpx.Response) -> str:
    """Zid's error code and message, or what kind of body came instead; never the body."""
    if 300 <= response.status_code < 400:
        return f"HTTP {response.status_code}: a redirect, as to Zid's login page"
    return common.error_detail(response, error_summary)


def json_body(response: httpx.Response, what: str) -> Any:
    return common.json_body(response, f"Zid {what}")
