"""Salla's Merchant API, as far as loyalty points go, and its OAuth token refresh.

All HTTP goes through ``store.http`` (``worker.http``: timeouts, User-Agent,
``Accept: application/json`` — Salla's WAF answers an HTML 403 without them).
Pages are requested by number until ``currentPage == totalPages``; the
``links.next`` Salla returns is ``http://`` and is never followed. A 401 gets
one token refresh per fetch, run through ``store.refresh_credentials`` so that
of all the workers only one spends the single-use refresh token.

Points are asked for in Arabic (``Accept-Language: ar``, Salla's default,
https://docs.salla.dev/421122m0): the only status label Salla documents is
Arabic (``مؤكدة``, https://docs.salla.dev/12250577e0); no English label is
published, so none is relied on.

Failures: 429, 408, 5xx, timeouts and connection errors are ``TransientError``
(429 with the delay Salla asked for). A JSON 403 is Salla's temporary block
after sustained overuse ("Exceeding rate limits or exhibiting unusual behavior
may result in temporary access restrictions", https://docs.salla.dev/421125m0;
403 ``forbidden``, "access refused or temporarily blocked", in
SallaApp/salla-partners-agent-kit .agents/skills/salla-api-core/SKILL.md): a
``TemporarilyBlocked`` (transient) that holds the whole store's budget for ``BLOCK_SECONDS`` (or
the ``Retry-After`` given). An HTML 403 is Salla's firewall refusing a request
without ``User-Agent``/``Accept: application/json`` — our HTTP seam's defaults
are wrong, no wait fixes that: ``PermanentError``. 401 after a refresh and a
refused refresh token are ``NeedsReauthorization``; anything else is
``PermanentError`` carrying Salla's error code and message, truncated.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from worker import http
from worker.errors import (
    NeedsReauthorization,
    PermanentError,
    TemporarilyBlocked,
)
from worker.platforms import common
from worker.platforms.base import StoreApi, StoreUpdate
from worker.platforms.common import transport_errors
from worker.platforms.salla.balance import snapshot_from_entries
from worker.platforms.salla.quick import load_page
from worker.platforms.salla.schemas import (
    PointsEntry,
    PointsPage,
    error_summary,
    load_token_grant,
)
from worker.points import PointsSnapshot

POINTS_PATH = "/customers/loyalty/points"
PER_PAGE = 60  # the docs say at most 60; the OpenAPI schema says 65
MAX_PAGES = 200  # 12,000 entries: past this the server is looping, not paginating
QUOTA_BUCKET = "customers"
DEFAULT_RETRY_AFTER = 60.0
BLOCK_SECONDS = 600.0  # a temporary block's length is not published: wait one customer window
LANGUAGE = "ar"

Refresh = Callable[[dict[str, Any]], StoreUpdate]
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class SallaApi:
    """What ``SallaPlatform`` needs to read points: our OAuth client and a clock."""

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        clock: Clock = utc_now,
    ) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self.client_secret = client_secret
        self.clock = clock

    def fetch_points(self, store: StoreApi, customer_id: str) -> PointsSnapshot:
        reader = PointsReader(store, self.refresher(store.http), self.clock)
        entries = reader.all_entries(customer_id)
        return snapshot_from_entries(entries, timezone=store.timezone, now=self.clock())

    def refresher(self, http: httpx.Client) -> Refresh:
        """``refresh_tokens`` bound to our client, for ``store.refresh_credentials``."""
        return functools.partial(
            refresh_tokens,
            http,
            self.token_url,
            self.client_id,
            self.client_secret,
            clock=self.clock,
        )


class PointsReader:
    """One fetch of a customer's history: the credentials in use, refreshed at most once."""

    def __init__(self, store: StoreApi, refresh: Refresh, clock: Clock) -> None:
        self.store = store
        self.refresh = refresh
        self.clock = clock
        self.credentials = store.credentials()
        self.refreshed = False

    def all_entries(self, customer_id: str) -> list[PointsEntry]:
        entries: list[PointsEntry] = []
        number: int | None = 1
        while number is not None:
            page = self.page(customer_id, number)
            entries.extend(page.entries)
            number = next_page_number(page, number)
        return entries

    def page(self, customer_id: str, number: int) -> PointsPage:
        response = self._get(customer_id, number)
        if response.status_code == 401:
            response = self._retry_with_new_token(customer_id, number, response)
        if is_temporary_block(response):
            self._hold_store(response)
        raise_for_status(response, self.clock())
        document = json_body(response, "loyalty points response")
        if isinstance(document, Mapping) and document.get("success") is False:
            raise PermanentError(f"Salla answered success=false ({error_summary(document)})")
        return load_page(document)

    def _retry_with_new_token(
        self, customer_id: str, number: int, refused: httpx.Response
    ) -> httpx.Response:
        if not self.refreshed:
            self.credentials = self.store.refresh_credentials(self.refresh)
            self.refreshed = True
            refused = self._get(customer_id, number)
            if refused.status_code != 401:
                return refused
        raise NeedsReauthorization(
            f"Salla refused the access token after a refresh ({error_detail(refused)})"
        )

    def _hold_store(self, blocked: httpx.Response) -> None:
        """Make every worker wait out the block, not only this job."""
        wait = http.retry_after(blocked.headers, default=BLOCK_SECONDS) or BLOCK_SECONDS
        self.store.observe_rate_headers(QUOTA_BUCKET, {"Retry-After": f"{wait:.0f}"})

    def _get(self, customer_id: str, number: int) -> httpx.Response:
        url = f"{self.store.api_base.rstrip('/')}{POINTS_PATH}"
        query: dict[str, str | int] = {
            "customer_id": customer_id,
            "page": number,
            "per_page": PER_PAGE,
        }
        self.store.take_quota(QUOTA_BUCKET)
        with transport_errors("Salla loyalty points request"):
            # Reference: https://docs.salla.dev/12250577e0 (GET /customers/loyalty/points)
            # The URL is built whole, so httpx parses it once (with ``params=`` it
            # parses the URL and then the URL with its query again).
            whole = httpx.URL(url, params=query)
            response = self.store.http.get(whole, headers=self._headers())
        self.store.observe_rate_headers(QUOTA_BUCKET, response.headers)
        return response

    def _headers(self) -> dict[str, str]:
        token = self.credentials.get("access_token")
        if not isinstance(token, str) or not token:
            raise NeedsReauthorization("no Salla access token is stored for this store")
        return {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            "Accept-Language": LANGUAGE,
        }


def next_page_number(page: PointsPage, asked: int) -> int | None:
    """The page to ask for next, or None when this was the last one."""
    pagination = page.pagination
    if pagination.current_page != asked:
        raise PermanentError(
            f"Salla answered page {pagination.current_page} when asked for page {asked}"
        )
    if pagination.current_page >= pagination.total_pages:
        return None
    if pagination.total_pages > MAX_PAGES:
        raise PermanentError(
            f"Salla reports {pagination.total_pages} pages of points history (limit {MAX_PAGES})"
        )
    return asked + 1


def refresh_tokens(
    http: httpx.Client,
    token_url: str,
    client_id: str,
    client_secret: str,
    credentials: dict[str, Any],
    *,
    clock: Clock = utc_now,
) -> StoreUpdate:
    """Spend the (single-use) refresh token; the caller must persist both new tokens."""
    refresh_token = credentials.get("refresh_token")
    if not isinstance(refresh_token, str) or not refresh_token:
        raise NeedsReauthorization("no Salla refresh token is stored; the merchant must reinstall")
    form = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": client_id,
        "client_secret": client_secret,
    }
    with transport_errors("Salla token refresh"):
        # Reference: https://docs.salla.dev/421118m0 (Refresh Token Endpoint
        # https://accounts.salla.sa/oauth2/token) and SallaApp/salla-partners-agent-kit
        # .agents/skills/salla-app-auth/references/token-refresh.md (form-encoded, single use)
        response = http.post(token_url, data=form, headers={"Accept": "application/json"})
    raise_for_token_status(response, clock())
    grant = load_token_grant(json_body(response, "token response"))
    return StoreUpdate(
        credentials={"access_token": grant.access_token, "refresh_token": grant.refresh_token},
        token_expires_at=grant.expires_at(clock()),
    )


def raise_for_token_status(response: httpx.Response, now: datetime) -> None:
    if response.status_code not in (400, 401):
        raise_for_status(response, now)
        return
    detail = error_detail(response)
    if detail.startswith("invalid_client"):
        # Our app's credentials are wrong: no merchant can fix that by reinstalling.
        raise PermanentError(f"Salla refused our OAuth client ({detail})")
    raise NeedsReauthorization(f"Salla refused the refresh token ({detail})")


def raise_for_status(response: httpx.Response, now: datetime) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    detail = error_detail(response)
    if is_temporary_block(response):
        delay = http.retry_after(response.headers, default=BLOCK_SECONDS)
        raise TemporarilyBlocked(f"Salla blocked access for now (403, {detail})", retry_after=delay)
    if status == 403:
        raise PermanentError(f"Salla's firewall refused the request (403, {detail})")
    wording = http.Wording(
        "Salla answered {status} ({detail})", rate_limited="Salla rate limit reached ({detail})",
        detail=detail,
    )  # fmt: skip
    http.raise_for_status(
        status, response.headers, wording, rate_limit_wait=DEFAULT_RETRY_AFTER, reset=True, now=now
    )


def is_temporary_block(response: httpx.Response) -> bool:
    """A 403 in Salla's JSON error shape (the firewall's 403 is an HTML page)."""
    if response.status_code != 403:
        return False
    try:
        return isinstance(response.json(), Mapping)
    except ValueError:
        return False


def retry_after_seconds(headers: Mapping[str, str], now: datetime) -> float:
    """Retry-After, else X-RateLimit-Reset (epoch seconds) minus now, else 60 s."""
    return http.retry_after(headers, default=DEFAULT_RETRY_AFTER, reset=True, now=now) or 0.0


def error_detail(response: httpx.Response) -> str:
    """Salla's error code and message, or what kind of body came instead; never the body."""
    return common.error_detail(response, error_summary)


def json_body(response: httpx.Response, what: str) -> Any:
    return common.json_body(response, f"Salla {what}")
