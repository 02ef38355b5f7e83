"""Zid's API client against the Zid sandbox over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import httpx
import pytest

from tests.worker.platforms.conftest import FrozenClock, MemoryStore
from tests.worker.platforms.zid_support import demo_credentials
from worker.errors import NeedsReauthorization, PermanentError, TransientError
from worker.http import build_client
from worker.platforms.zid.client import DETAILS_PATH, ZidApi, ZidOAuth
from worker.sandbox.server import RunningServer, serve_in_thread
from worker.sandbox.zid import (
    DEMO_AUTHORIZATION,
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_MANAGER_TOKEN,
    DEMO_REDIRECT_URI,
    DEMO_REFRESH_TOKEN,
    DEMO_STORE,
    AnswerStyle,
    ZidSandboxState,
    create_zid_sandbox,
)

CUSTOMER = "7823146"


@pytest.fixture
def state(clock: FrozenClock) -> ZidSandboxState:
    """A Zid with the demo store; a customer with 900 points, 100 of them expiring in 3 days."""
    zid = ZidSandboxState(clock=clock)
    zid.add_store(DEMO_STORE)
    now = clock.utc()
    zid.add_points(DEMO_STORE, CUSTOMER, 800, expires_in_days=300, now=now)
    zid.add_points(DEMO_STORE, CUSTOMER, 100, expires_in_days=3, now=now)
    zid.add_points(DEMO_STORE, CUSTOMER, 40, pending=True, now=now)
    return zid


@pytest.fixture
def api(state: ZidSandboxState) -> Iterator[RunningServer]:
    with serve_in_thread(create_zid_sandbox(state)) as running:
        yield running


def memory_store(api_base: str, http: httpx.Client, **credentials: str) -> MemoryStore:
    store = MemoryStore(api_base=api_base, http=http, credentials=demo_credentials(**credentials))
    store.external_id = DEMO_STORE
    return store


@pytest.fixture
def store(api: RunningServer, http: httpx.Client) -> MemoryStore:
    return memory_store(api.url, http)


@pytest.fixture
def zid(api: RunningServer, clock: FrozenClock) -> ZidApi:
    oauth = ZidOAuth(
        f"{api.url}/oauth/token", DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_REDIRECT_URI
    )
    return ZidApi(oauth, clock=clock.utc)


def test_it_reads_the_balance_and_the_next_expiry(
    zid: ZidApi, store: MemoryStore, state: ZidSandboxState, clock: FrozenClock
) -> None:
    snapshot = zid.fetch_points(store, CUSTOMER)
    assert (snapshot.available, snapshot.pending, snapshot.used) == (900, 40, 0)
    assert snapshot.next_expiry_at == clock.utc() + timedelta(days=3)
    assert snapshot.next_expiry_points == 100
    # The details answer carries the history: one call, one unit of the 60/min quota.
    assert store.quota_taken == {"api": 1}
    assert [seen.path for seen in state.requests()] == [DETAILS_PATH]


def test_it_reads_the_history_when_the_details_do_not_carry_it(
    zid: ZidApi, store: MemoryStore, state: ZidSandboxState, clock: FrozenClock
) -> None:
    state.set_style(AnswerStyle(history_in_details=False))
    snapshot = zid.fetch_points(store, CUSTOMER)
    assert (snapshot.available, snapshot.next_expiry_points) == (900, 100)
    assert snapshot.next_expiry_at == clock.utc() + timedelta(days=3)
    assert store.quota_taken == {"api": 2}
    assert [bucket for bucket, _ in store.rate_headers] == ["api", "api"]


def test_it_sends_the_headers_zid_expects(
    zid: ZidApi, store: MemoryStore, state: ZidSandboxState
) -> None:
    state.set_style(AnswerStyle(history_in_details=False))
    zid.fetch_points(store, CUSTOMER)
    details, history = state.requests()
    assert (details.path, details.customer_id) == (DETAILS_PATH, CUSTOMER)
    assert history.path == f"/managers/loyalty-program/points-history/{CUSTOMER}"
    for seen in (details, history):
        assert (seen.status, seen.authorization, seen.manager_token) == (
            200,
            DEMO_AUTHORIZATION,
            DEMO_MANAGER_TOKEN,
        )
        assert (seen.store_id, seen.role, seen.accept_language) == (DEMO_STORE, "Manager", "en")


@pytest.mark.parametrize(
    "style",
    [
        AnswerStyle(spelling="correct"),
        AnswerStyle(spelling="correct", points_balance=False),
        AnswerStyle(spelling="misspelled", points_balance=False),
        AnswerStyle(numbers_as_strings=True),
        AnswerStyle(history_in_details=False, errors="envelope"),
    ],
)
def test_it_reads_both_spellings_and_loose_numbers(
    zid: ZidApi, store: MemoryStore, state: ZidSandboxState, style: AnswerStyle
) -> None:
    state.set_style(style)
    snapshot = zid.fetch_points(store, CUSTOMER)
    assert (snapshot.available, snapshot.pending, snapshot.next_expiry_points) == (900, 40, 100)


def test_it_skips_the_history_when_there_are_no_points(
    zid: ZidApi, store: MemoryStore, state: ZidSandboxState
) -> None:
    state.set_style(AnswerStyle(history_in_details=False))
    state.set_customer(DEMO_STORE, "42", pending=25)
    snapshot = zid.fetch_points(store, "42")
    assert (snapshot.available, snapshot.pending, snapshot.next_expiry_at) == (0, 25, None)
    assert state.request_count() == 1


def test_it_works_under_a_realistic_v1_base(
    zid: ZidApi, api: RunningServer, http: httpx.Client, state: ZidSandboxState
) -> None:
    assert zid.fetch_points(memory_store(f"{api.url}/v1", http), CUSTOMER).available == 900
    assert {seen.path[:4] for seen in state.requests()} == {"/v1/"}


def test_it_refreshes_an_expired_token_once_and_retries(
    zid: ZidApi, store: MemoryStore, state: ZidSandboxState
) -> None:
    state.expire_token(DEMO_STORE)
    assert zid.fetch_points(store, CUSTOMER).available == 900
    [refresh] = state.refreshes()
    assert (refresh.refresh_token, refresh.outcome) == (DEMO_REFRESH_TOKEN, "rotated")
    [update] = store.updates
    authorization, manager_token, refresh_token = state.tokens(DEMO_STORE)
    assert update.credentials == {
        "authorization": authorization,
        "manager_token": manager_token,
        "refresh_token": refresh_token,
    }
    assert update.token_expires_at is not None
    assert [seen.status for seen in state.requests()] == [401, 200, 200]  # details, token, details


def test_it_needs_reauthorization_when_the_refresh_token_is_refused(
    zid: ZidApi, store: MemoryStore, state: ZidSandboxState
) -> None:
    state.expire_token(DEMO_STORE)
    state.exchange(DEMO_REFRESH_TOKEN)  # someone else spent it: ours is now a reuse
    with pytest.raises(NeedsReauthorization, match="refused the refresh token"):
        zid.fetch_points(store, CUSTOMER)


def test_it_needs_reauthorization_without_a_refresh_token(
    zid: ZidApi, api: RunningServer, http: httpx.Client, state: ZidSandboxState
) -> None:
    state.expire_token(DEMO_STORE)
    store = memory_store(api.url, http, refresh_token="")
    with pytest.raises(NeedsReauthorization, match="no Zid refresh token"):
        zid.fetch_points(store, CUSTOMER)
    assert state.refreshes() == []


def test_it_refreshes_only_once_when_the_new_token_is_refused_too(
    zid: ZidApi, store: MemoryStore, state: ZidSandboxState
) -> None:
    state.fail_next(2, status=401, path=DETAILS_PATH)
    with pytest.raises(NeedsReauthorization, match="after a refresh"):
        zid.fetch_points(store, CUSTOMER)
    assert len(state.refreshes()) == 1


def test_it_refuses_our_oauth_client_as_permanent(
    api: RunningServer, store: MemoryStore, state: ZidSandboxState, clock: FrozenClock
) -> None:
    oauth = ZidOAuth(f"{api.url}/oauth/token", DEMO_CLIENT_ID, "wrong", DEMO_REDIRECT_URI)
    state.expire_token(DEMO_STORE)
    with pytest.raises(PermanentError, match="refused our OAuth client") as refused:
        ZidApi(oauth, clock=clock.utc).fetch_points(store, CUSTOMER)
    assert not isinstance(refused.value, NeedsReauthorization)


@pytest.mark.parametrize(("retry_after", "expected"), [(17, 17.0), (None, 60.0)])
def test_it_waits_as_told_on_a_429(
    zid: ZidApi,
    store: MemoryStore,
    state: ZidSandboxState,
    retry_after: int | None,
    expected: float,
) -> None:
    state.fail_next(1, status=429, retry_after=retry_after)
    with pytest.raises(TransientError, match="rate limit") as limited:
        zid.fetch_points(store, CUSTOMER)
    assert limited.value.retry_after == expected


def test_it_stops_at_the_stores_budget(
    zid: ZidApi, store: MemoryStore, state: ZidSandboxState
) -> None:
    state.set_style(AnswerStyle(history_in_details=False))
    state.set_rate_limit(1, 60)
    with pytest.raises(TransientError) as limited:
        zid.fetch_points(store, CUSTOMER)  # the details pass, the history is refused
    assert limited.value.retry_after == 60.0
    assert store.rate_headers[-1][1]["retry-after"] == "60"


@pytest.mark.parametrize("status", [500, 502, 503, 408])
def test_it_treats_server_errors_as_transient(
    zid: ZidApi, store: MemoryStore, state: ZidSandboxState, status: int
) -> None:
    state.fail_next(1, status=status)
    with pytest.raises(TransientError, match=f"answered {status}") as failed:
        zid.fetch_points(store, CUSTOMER)
    assert failed.value.retry_after is None


@pytest.mark.parametrize("errors", ["message", "envelope"])
def test_it_reports_an_unknown_customer_as_permanent(
    zid: ZidApi, store: MemoryStore, state: ZidSandboxState, errors: str
) -> None:
    state.set_style(AnswerStyle(errors=errors))
    with pytest.raises(PermanentError, match="404.*not_found: Customer not found") as failed:
        zid.fetch_points(store, "nobody")
    assert not isinstance(failed.value, NeedsReauthorization)


@pytest.mark.parametrize("status", [301, 302, 303, 307])
def test_it_treats_a_redirect_as_refused_tokens_and_refreshes_once(
    zid: ZidApi, store: MemoryStore, state: ZidSandboxState, status: int
) -> None:
    state.fail_next(1, status=status, path=DETAILS_PATH)
    assert zid.fetch_points(store, CUSTOMER).available == 900
    assert [refresh.outcome for refresh in state.refreshes()] == ["rotated"]


def test_it_needs_reauthorization_when_zid_keeps_redirecting(
    zid: ZidApi, store: MemoryStore, state: ZidSandboxState
) -> None:
    state.fail_next(2, status=302, path=DETAILS_PATH)
    with pytest.raises(NeedsReauthorization, match="302: a redirect") as refused:
        zid.fetch_points(store, CUSTOMER)
    assert "zid.sa/login" not in str(refused.value)
    assert len(state.refreshes()) == 1


def test_it_turns_network_failures_into_transient_errors(
    zid: ZidApi, state: ZidSandboxState, api: RunningServer
) -> None:
    state.set_delay(0.5)
    with build_client(timeout=0.1, allow_private=True) as impatient:
        with pytest.raises(TransientError, match="timed out"):
            zid.fetch_points(memory_store(api.url, impatient), CUSTOMER)
    state.set_delay(0)
    with build_client(timeout=1.0, allow_private=True) as http:
        with pytest.raises(TransientError, match="failed"):
            zid.fetch_points(memory_store("http://127.0.0.1:9", http), CUSTOMER)


def test_it_reads_storefront_points_with_a_customer_token(
    zid: ZidApi, store: MemoryStore, state: ZidSandboxState
) -> None:
    token = state.add_customer_token(DEMO_STORE, CUSTOMER)
    points = zid.fetch_storefront_points(store, token)
    assert (points.available, points.used) == (Decimal(900), Decimal(0))
    [seen] = state.requests()
    assert seen.path == f"/customers/loyalty-program/{DEMO_STORE}/points"
    assert (seen.customer_token, seen.authorization, seen.manager_token) == (
        token,
        DEMO_AUTHORIZATION,
        None,
    )


def test_it_reads_the_correct_spelling_on_the_storefront(
    zid: ZidApi, store: MemoryStore, state: ZidSandboxState
) -> None:
    state.set_style(AnswerStyle(spelling="correct"))
    token = state.add_customer_token(DEMO_STORE, CUSTOMER)
    assert zid.fetch_storefront_points(store, token).available == 900


def test_it_refuses_a_bad_customer_token_without_spending_a_refresh(
    zid: ZidApi, store: MemoryStore, state: ZidSandboxState
) -> None:
    with pytest.raises(PermanentError, match="customer token") as refused:
        zid.fetch_storefront_points(store, "not-a-customer-token")
    assert not isinstance(refused.value, NeedsReauthorization)
    assert state.refreshes() == [] and store.updates == []
