"""Salla's API client against the Salla sandbox over real HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.worker.platforms.conftest import FrozenClock, MemoryStore
from worker.errors import (
    NeedsReauthorization,
    PermanentError,
    TemporarilyBlocked,
    TransientError,
)
from worker.http import USER_AGENT, build_client
from worker.platforms.salla.balance import snapshot_from_entries
from worker.platforms.salla.client import (
    BLOCK_SECONDS,
    MAX_PAGES,
    POINTS_PATH,
    SallaApi,
    json_body,
    next_page_number,
    refresh_tokens,
    retry_after_seconds,
)
from worker.platforms.salla.schemas import Pagination, PointsEntry, PointsPage
from worker.sandbox.salla import (
    DEMO_ACCESS_TOKEN,
    DEMO_CLIENT_ID,
    DEMO_CUSTOMER,
    DEMO_MERCHANT,
    DEMO_REFRESH_TOKEN,
    SallaSandboxState,
    points_entry,
    sample_history,
)
from worker.sandbox.server import RunningServer, serve_in_thread


def history(count: int, points: int = 10, **fields: Any) -> list[dict[str, Any]]:
    """``count`` confirmed entries of ``points`` each, expiring in a year."""
    now = datetime.now(UTC)
    expiry = now + timedelta(days=365)
    return [points_entry(points, created=now, expiry=expiry, **fields) for _ in range(count)]


@pytest.fixture
def customer(sandbox_state: SallaSandboxState) -> str:
    """A customer with 130 entries of 10 points: three pages of 60."""
    sandbox_state.set_entries(DEMO_MERCHANT, DEMO_CUSTOMER, history(130))
    return DEMO_CUSTOMER


def points_requests(state: SallaSandboxState) -> list[Any]:
    return [seen for seen in state.requests() if seen.path.endswith(POINTS_PATH)]


def test_it_fetches_every_page(
    salla: SallaApi, store: MemoryStore, sandbox_state: SallaSandboxState, customer: str
) -> None:
    snapshot = salla.fetch_points(store, customer)

    assert snapshot.available == Decimal(1300)
    assert sandbox_state.request_count(POINTS_PATH, customer_id=customer) == 3
    assert [seen.page for seen in points_requests(sandbox_state)] == ["1", "2", "3"]
    assert {seen.per_page for seen in points_requests(sandbox_state)} == {"60"}
    assert store.quota_taken == {"customers": 3}
    assert [bucket for bucket, _ in store.rate_headers] == ["customers"] * 3
    assert store.rate_headers[-1][1]["x-ratelimit-remaining"] == "497"


def test_it_never_follows_the_http_next_link(
    salla: SallaApi,
    store: MemoryStore,
    sandbox: RunningServer,
    sandbox_state: SallaSandboxState,
    customer: str,
    http: httpx.Client,
) -> None:
    first_page = http.get(
        f"{sandbox.url}{POINTS_PATH}",
        params={"customer_id": customer, "per_page": 60},
        headers={"Authorization": f"Bearer {DEMO_ACCESS_TOKEN}"},
    ).json()
    assert first_page["pagination"]["links"]["next"].startswith("http://")
    assert "/admin/v2/" in first_page["pagination"]["links"]["next"]

    salla.fetch_points(store, customer)

    paths = [seen.path for seen in sandbox_state.requests()]
    assert paths == [POINTS_PATH] * 4  # ours, then 3 pages; the link's /admin/v2 never


def test_it_works_with_the_admin_v2_api_base(
    salla: SallaApi, store: MemoryStore, sandbox: RunningServer, customer: str
) -> None:
    store.api_base = f"{sandbox.url}/admin/v2/"

    assert salla.fetch_points(store, customer).available == Decimal(1300)


def test_it_sends_user_agent_accept_and_the_bearer_token(
    salla: SallaApi, store: MemoryStore, sandbox_state: SallaSandboxState, customer: str
) -> None:
    salla.fetch_points(store, customer)

    for seen in points_requests(sandbox_state):
        assert seen.user_agent == USER_AGENT
        assert seen.accept == "application/json"
        assert seen.token == DEMO_ACCESS_TOKEN
        assert seen.accept_language == "ar"  # the only documented labels are Arabic
        assert seen.status == 200


def test_it_reads_the_balance_from_arabic_labels(
    salla: SallaApi, store: MemoryStore, sandbox_state: SallaSandboxState, clock: FrozenClock
) -> None:
    sandbox_state.set_entries(DEMO_MERCHANT, DEMO_CUSTOMER, sample_history(clock.utc()))
    salla.clock = clock.utc

    snapshot = salla.fetch_points(store, DEMO_CUSTOMER)

    # 70 entries in cycles of 8: confirmed unexpired with points left are
    # 100 (×9), 250−50 (×9) and 20 (×8); pending 80 (×9).
    assert snapshot.available == Decimal(100 * 9 + 200 * 9 + 20 * 8)
    assert snapshot.pending == Decimal(80 * 9)
    assert snapshot.unknown_statuses == ()
    assert points_requests(sandbox_state)[0].accept_language == "ar"


def test_it_knows_no_english_label_because_none_is_published(
    store: MemoryStore, sandbox: RunningServer, sandbox_state: SallaSandboxState
) -> None:
    sandbox_state.set_entries(DEMO_MERCHANT, DEMO_CUSTOMER, history(2))
    english = store.http.get(
        f"{sandbox.url}{POINTS_PATH}",
        params={"customer_id": DEMO_CUSTOMER},
        headers={"Authorization": f"Bearer {DEMO_ACCESS_TOKEN}", "Accept-Language": "en"},
    ).json()
    assert {entry["status"] for entry in english["data"]} == {"Confirmed"}

    labels = [PointsEntry(name="x", points=Decimal(1), used_points=Decimal(0), status="Confirmed")]
    snapshot = snapshot_from_entries(labels, timezone="Asia/Riyadh", now=datetime.now(UTC))
    assert snapshot.unknown_statuses == ("Confirmed",) and snapshot.available == 0


def test_it_refreshes_once_on_401_and_hands_back_both_new_tokens(
    salla: SallaApi,
    store: MemoryStore,
    sandbox_state: SallaSandboxState,
    customer: str,
    clock: FrozenClock,
) -> None:
    sandbox_state.expire_access_token(DEMO_MERCHANT)

    snapshot = salla.fetch_points(store, customer)

    assert snapshot.available == Decimal(1300)
    assert [refresh.outcome for refresh in sandbox_state.refreshes()] == ["rotated"]
    access, refresh = sandbox_state.tokens(DEMO_MERCHANT)
    assert store.credentials() == {"access_token": access, "refresh_token": refresh}
    assert refresh != DEMO_REFRESH_TOKEN
    assert [update.token_expires_at for update in store.updates] == [
        clock.utc() + timedelta(days=14)
    ]
    assert [seen.status for seen in points_requests(sandbox_state)] == [401, 200, 200, 200]


def test_it_needs_reauthorization_when_the_refreshed_token_is_refused_too(
    salla: SallaApi, store: MemoryStore, sandbox_state: SallaSandboxState, customer: str
) -> None:
    sandbox_state.fail_next(2, status=401, path=POINTS_PATH)

    with pytest.raises(NeedsReauthorization, match="Invalid-token"):
        salla.fetch_points(store, customer)

    assert len(sandbox_state.refreshes()) == 1
    assert len(store.updates) == 1


def test_it_needs_reauthorization_when_the_refresh_token_was_already_used(
    salla: SallaApi,
    store: MemoryStore,
    sandbox_state: SallaSandboxState,
    customer: str,
    http: httpx.Client,
) -> None:
    # Another process spent the refresh token; this store still holds the old pair.
    refresh_tokens(http, salla.token_url, salla.client_id, salla.client_secret, store.credentials())

    with pytest.raises(NeedsReauthorization, match="invalid_grant"):
        salla.fetch_points(store, customer)

    assert [refresh.outcome for refresh in sandbox_state.refreshes()] == ["rotated", "reused"]
    assert sandbox_state.tokens(DEMO_MERCHANT) == (None, None)  # Salla revoked both


def test_it_does_not_blame_the_merchant_for_our_client_secret(
    store: MemoryStore, sandbox: RunningServer, sandbox_state: SallaSandboxState, customer: str
) -> None:
    sandbox_state.expire_access_token(DEMO_MERCHANT)
    salla = SallaApi(f"{sandbox.url}/oauth2/token", DEMO_CLIENT_ID, "wrong-secret")

    with pytest.raises(PermanentError, match="invalid_client") as raised:
        salla.fetch_points(store, customer)

    assert not isinstance(raised.value, NeedsReauthorization)
    assert sandbox_state.tokens(DEMO_MERCHANT)[1] == DEMO_REFRESH_TOKEN  # not spent


def test_it_passes_on_429_with_the_delay_salla_asks_for(
    salla: SallaApi, store: MemoryStore, sandbox_state: SallaSandboxState, customer: str
) -> None:
    sandbox_state.set_rate_limit(1, 45)

    with pytest.raises(TransientError) as raised:
        salla.fetch_points(store, customer)

    assert raised.value.retry_after == 45
    assert [seen.status for seen in points_requests(sandbox_state)] == [200, 429]
    assert store.rate_headers[-1][1]["retry-after"] == "45"


def test_it_waits_until_the_rate_limit_reset_without_retry_after(
    salla: SallaApi, store: MemoryStore, sandbox_state: SallaSandboxState, customer: str
) -> None:
    sandbox_state.fail_next(1, status=429)  # X-RateLimit-Reset only: now + the 600 s window

    with pytest.raises(TransientError) as raised:
        salla.fetch_points(store, customer)

    assert raised.value.retry_after == 600


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "17"}, 17.0),
        ({"Retry-After": "17", "X-RateLimit-Reset": "1700000100"}, 17.0),
        ({"X-RateLimit-Reset": "1700000042"}, 42.0),
        ({"X-RateLimit-Reset": "1699999000"}, 1.0),
        ({"X-RateLimit-Reset": "30"}, 30.0),
        ({"Retry-After": "soon"}, 60.0),
        ({}, 60.0),
    ],
)
def test_it_computes_retry_after(headers: dict[str, str], expected: float) -> None:
    now = datetime.fromtimestamp(1_700_000_000, UTC)

    assert retry_after_seconds(headers, now) == expected


@pytest.mark.parametrize("status", [500, 502, 503])
def test_it_retries_later_on_5xx(
    salla: SallaApi,
    store: MemoryStore,
    sandbox_state: SallaSandboxState,
    customer: str,
    status: int,
) -> None:
    sandbox_state.fail_next(1, status=status)

    with pytest.raises(TransientError, match=str(status)):
        salla.fetch_points(store, customer)

    assert salla.fetch_points(store, customer).available == Decimal(1300)


def test_it_retries_later_on_a_timeout(
    salla: SallaApi, sandbox: RunningServer, sandbox_state: SallaSandboxState, customer: str
) -> None:
    sandbox_state.set_delay(0.5)
    with build_client(timeout=0.1, allow_private=True) as impatient:
        store = MemoryStore(api_base=sandbox.url, http=impatient, credentials={"access_token": "x"})

        with pytest.raises(TransientError, match="timed out"):
            salla.fetch_points(store, customer)


def test_it_retries_later_when_salla_cannot_be_reached(
    salla: SallaApi, http: httpx.Client, sandbox_state: SallaSandboxState
) -> None:
    with serve_in_thread(lambda environ, start_response: []) as gone:
        closed_port_url = gone.url
    store = MemoryStore(api_base=closed_port_url, http=http, credentials={"access_token": "x"})

    with pytest.raises(TransientError, match="ConnectError"):
        salla.fetch_points(store, DEMO_CUSTOMER)


def test_it_stops_on_422_with_salla_s_message(
    salla: SallaApi, store: MemoryStore, sandbox_state: SallaSandboxState
) -> None:
    with pytest.raises(PermanentError) as raised:
        salla.fetch_points(store, "")

    assert "422" in str(raised.value)
    assert "alert.invalid_fields" in str(raised.value)
    assert "customer_id" in str(raised.value)
    assert DEMO_ACCESS_TOKEN not in str(raised.value)


def test_it_stops_on_404_for_an_unknown_customer(salla: SallaApi, store: MemoryStore) -> None:
    with pytest.raises(PermanentError, match="404.*not_found"):
        salla.fetch_points(store, "404404")


def test_it_stops_with_a_clear_error_when_the_waf_refuses(
    salla: SallaApi, sandbox: RunningServer, customer: str
) -> None:
    with httpx.Client() as bare:
        del bare.headers["User-Agent"]
        store = MemoryStore(api_base=sandbox.url, http=bare, credentials={"access_token": "x"})

        with pytest.raises(PermanentError, match="firewall.*403, non-JSON text/html body"):
            salla.fetch_points(store, customer)


def test_it_backs_off_from_a_temporary_block_and_holds_the_whole_store(
    salla: SallaApi, store: MemoryStore, sandbox_state: SallaSandboxState, customer: str
) -> None:
    sandbox_state.fail_next(1, status=403)

    with pytest.raises(TemporarilyBlocked, match="blocked access for now.*forbidden") as raised:
        salla.fetch_points(store, customer)

    assert isinstance(raised.value, TransientError) and raised.value.retry_after == BLOCK_SECONDS
    assert store.rate_headers[-1] == ("customers", {"retry-after": f"{BLOCK_SECONDS:.0f}"})


def test_it_waits_as_long_as_a_block_s_retry_after_says(
    salla: SallaApi, store: MemoryStore, sandbox_state: SallaSandboxState, customer: str
) -> None:
    sandbox_state.fail_next(1, status=403, retry_after=1200)

    with pytest.raises(TemporarilyBlocked) as raised:
        salla.fetch_points(store, customer)

    assert raised.value.retry_after == 1200


def test_it_stops_on_a_non_json_success() -> None:
    response = httpx.Response(
        200, text="<html>maintenance</html>", headers={"Content-Type": "text/html"}
    )

    with pytest.raises(PermanentError, match="not JSON") as raised:
        json_body(response, "loyalty points response")

    assert "maintenance" not in str(raised.value)


def test_it_refuses_a_page_it_did_not_ask_for() -> None:
    page = PointsPage(entries=(), pagination=Pagination(current_page=1, total_pages=3))

    with pytest.raises(PermanentError, match="page 1 when asked for page 2"):
        next_page_number(page, 2)


def test_it_stops_a_server_that_never_ends() -> None:
    page = PointsPage(entries=(), pagination=Pagination(current_page=1, total_pages=MAX_PAGES + 1))

    with pytest.raises(PermanentError, match="pages"):
        next_page_number(page, 1)


def test_it_fetches_an_empty_history_in_one_request(
    salla: SallaApi, store: MemoryStore, sandbox_state: SallaSandboxState
) -> None:
    sandbox_state.set_entries(DEMO_MERCHANT, "55", [])

    snapshot = salla.fetch_points(store, "55")

    assert (snapshot.available, snapshot.next_expiry_at) == (Decimal(0), None)
    assert sandbox_state.request_count(POINTS_PATH, customer_id="55") == 1


def test_it_retries_the_token_refresh_later_on_5xx(
    salla: SallaApi, http: httpx.Client, sandbox_state: SallaSandboxState
) -> None:
    sandbox_state.fail_next(1, status=502, path="/oauth2/token")
    credentials = {"refresh_token": DEMO_REFRESH_TOKEN}

    with pytest.raises(TransientError, match="502"):
        refresh_tokens(http, salla.token_url, DEMO_CLIENT_ID, salla.client_secret, credentials)

    update = refresh_tokens(http, salla.token_url, DEMO_CLIENT_ID, salla.client_secret, credentials)
    assert update.credentials["access_token"] == sandbox_state.tokens(DEMO_MERCHANT)[0]


def test_it_needs_reauthorization_without_a_refresh_token(
    salla: SallaApi, http: httpx.Client, sandbox_state: SallaSandboxState
) -> None:
    with pytest.raises(NeedsReauthorization, match="reinstall"):
        refresh_tokens(http, salla.token_url, DEMO_CLIENT_ID, salla.client_secret, {})

    assert sandbox_state.refreshes() == []
