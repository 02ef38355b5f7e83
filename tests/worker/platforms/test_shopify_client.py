"""The Appstle client against the Appstle sandbox over real HTTP."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.worker.platforms.appstle_support import CUSTOMER, credentials
from tests.worker.platforms.conftest import FrozenClock, MemoryStore
from worker.errors import NeedsReauthorization, PermanentError, TransientError
from worker.platforms.base import StoreUpdate
from worker.platforms.shopify.client import LOYALTY_PATH, AppstleApi
from worker.points import ZERO, CustomerContact
from worker.sandbox.appstle import (
    DEMO_API_KEY,
    DEMO_SHOP,
    QUICKSTART,
    REFERENCE,
    AppstleSandboxState,
    create_appstle_sandbox,
)
from worker.sandbox.server import RunningServer, serve_in_thread

EMAIL = "Sara@Example.com"


@pytest.fixture
def state(clock: FrozenClock) -> AppstleSandboxState:
    """The demo shop; a customer with 250.5 points, 40 of them expiring in 3 days."""
    appstle = AppstleSandboxState(clock=clock)
    appstle.add_shop(DEMO_SHOP, DEMO_API_KEY)
    appstle.set_customer(
        DEMO_SHOP, CUSTOMER, email=EMAIL, available=250.5, pending=12.25, tier="Gold",
        expiring=40, expire_at=clock.utc() + timedelta(days=3),
    )  # fmt: skip
    return appstle


@pytest.fixture
def api(state: AppstleSandboxState) -> Iterator[RunningServer]:
    with serve_in_thread(create_appstle_sandbox(state)) as running:
        yield running


def memory_store(api_base: str, http: httpx.Client, **extra: Any) -> MemoryStore:
    store = MemoryStore(api_base=api_base, http=http, credentials=credentials(**extra))
    store.external_id = DEMO_SHOP
    return store


@pytest.fixture
def store(api: RunningServer, http: httpx.Client) -> MemoryStore:
    return memory_store(api.url, http)


@pytest.fixture
def appstle(clock: FrozenClock) -> AppstleApi:
    return AppstleApi(clock=clock.utc)


def test_it_reads_a_customer_by_id(
    appstle: AppstleApi, store: MemoryStore, state: AppstleSandboxState, clock: FrozenClock
) -> None:
    snapshot = appstle.fetch_points(store, CUSTOMER)
    assert (snapshot.available, snapshot.pending, snapshot.tier) == (
        Decimal("250.5"), Decimal("12.25"), "Gold",
    )  # fmt: skip
    assert snapshot.next_expiry_at == clock.utc() + timedelta(days=3)
    assert (snapshot.next_expiry_points, snapshot.excluded) == (Decimal(40), False)
    assert snapshot.contact == CustomerContact()
    [seen] = state.requests()
    assert (seen.path, seen.status, seen.api_key) == (LOYALTY_PATH, 200, DEMO_API_KEY)
    assert (seen.customer_id, seen.customer_email) == (CUSTOMER, None)
    assert store.quota_taken == {"appstle": 1} and store.rate_headers[0][0] == "appstle"


def test_it_reads_a_customer_by_email_and_keeps_it_as_the_contact(
    appstle: AppstleApi, store: MemoryStore, state: AppstleSandboxState
) -> None:
    snapshot = appstle.fetch_points(store, "email:sara@example.com")
    assert snapshot.available == Decimal("250.5")
    assert snapshot.contact == CustomerContact(email="sara@example.com")
    [seen] = state.requests()
    assert (seen.customer_id, seen.customer_email) == (None, "sara@example.com")


def test_it_keeps_decimals_exact(
    appstle: AppstleApi, store: MemoryStore, state: AppstleSandboxState
) -> None:
    state.set_customer(DEMO_SHOP, CUSTOMER, available=1234.5, pending=0.1)
    state.add_points(DEMO_SHOP, CUSTOMER, 0.25)
    snapshot = appstle.fetch_points(store, CUSTOMER)
    assert (snapshot.available, snapshot.pending) == (Decimal("1234.75"), Decimal("0.1"))


def test_it_ignores_an_expiry_in_the_past(
    appstle: AppstleApi, store: MemoryStore, state: AppstleSandboxState, clock: FrozenClock
) -> None:
    past = clock.utc() - timedelta(minutes=1)
    state.set_customer(DEMO_SHOP, CUSTOMER, available=100, expiring=40, expire_at=past)
    snapshot = appstle.fetch_points(store, CUSTOMER)
    assert (snapshot.next_expiry_at, snapshot.next_expiry_points) == (None, ZERO)


@pytest.mark.parametrize("status", ["EXCLUDED", "EXCLUDED_BY_CUSTOMER"])
def test_it_marks_excluded_customers(
    appstle: AppstleApi, store: MemoryStore, state: AppstleSandboxState, status: str
) -> None:
    state.set_customer(DEMO_SHOP, CUSTOMER, available=10, status=status)
    assert appstle.fetch_points(store, CUSTOMER).excluded


@pytest.mark.parametrize("status", [401, 403])
def test_it_reports_a_refused_key_through_the_store(
    appstle: AppstleApi, store: MemoryStore, state: AppstleSandboxState, status: int
) -> None:
    state.fail_next(1, status=status)
    with pytest.raises(NeedsReauthorization, match=f"refused the API key \\(HTTP {status}\\)"):
        appstle.fetch_points(store, CUSTOMER)
    assert len(state.requests()) == 1 and store.updates == []


def test_it_refuses_an_unknown_key_without_quoting_the_body(
    appstle: AppstleApi, api: RunningServer, http: httpx.Client
) -> None:
    store = memory_store(api.url, http, appstle_api_key="wrong-key")
    with pytest.raises(NeedsReauthorization) as refused:
        appstle.fetch_points(store, CUSTOMER)
    assert LOYALTY_PATH not in str(refused.value) and "timestamp" not in str(refused.value)


class OperatorFixedKey(MemoryStore):
    """A store whose key was replaced by an operator while the request was refused."""

    def refresh_credentials(
        self, refresh: Callable[[dict[str, Any]], StoreUpdate]
    ) -> dict[str, Any]:
        self._credentials["appstle_api_key"] = DEMO_API_KEY
        return self.credentials()


def test_it_retries_once_with_a_key_stored_meanwhile(
    appstle: AppstleApi, api: RunningServer, http: httpx.Client, state: AppstleSandboxState
) -> None:
    store = OperatorFixedKey(
        api_base=api.url, http=http, credentials=credentials(appstle_api_key="old")
    )
    assert appstle.fetch_points(store, CUSTOMER).available == Decimal("250.5")
    assert [seen.status for seen in state.requests()] == [401, 200]


def test_it_fails_without_a_stored_key_before_calling(
    appstle: AppstleApi, api: RunningServer, http: httpx.Client, state: AppstleSandboxState
) -> None:
    store = MemoryStore(api_base=api.url, http=http, credentials={})
    with pytest.raises(NeedsReauthorization, match="no Appstle API key"):
        appstle.fetch_points(store, CUSTOMER)
    assert state.requests() == []


def test_it_waits_as_long_as_a_429_asks(
    appstle: AppstleApi, store: MemoryStore, state: AppstleSandboxState
) -> None:
    state.fail_next(1, status=429, retry_after=12)
    with pytest.raises(TransientError) as limited:
        appstle.fetch_points(store, CUSTOMER)
    assert limited.value.retry_after == 12.0


def test_it_waits_30_seconds_after_a_429_without_retry_after(
    appstle: AppstleApi, store: MemoryStore, state: AppstleSandboxState
) -> None:
    state.fail_next(1, status=429)
    with pytest.raises(TransientError) as limited:
        appstle.fetch_points(store, CUSTOMER)
    assert limited.value.retry_after == 30.0


def test_it_waits_out_the_sandbox_budget(
    appstle: AppstleApi, store: MemoryStore, state: AppstleSandboxState, clock: FrozenClock
) -> None:
    state.set_rate_limit(1, 60)
    appstle.fetch_points(store, CUSTOMER)
    clock.now += 15
    with pytest.raises(TransientError, match="rate limit") as limited:
        appstle.fetch_points(store, CUSTOMER)
    assert limited.value.retry_after == 45.0


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
def test_it_retries_server_errors_later(
    appstle: AppstleApi, store: MemoryStore, state: AppstleSandboxState, status: int
) -> None:
    state.fail_next(1, status=status)
    with pytest.raises(TransientError, match=f"Appstle answered {status}") as failed:
        appstle.fetch_points(store, CUSTOMER)
    assert failed.value.retry_after is None
    assert appstle.fetch_points(store, CUSTOMER).available == Decimal("250.5")


def test_it_gives_up_on_an_unknown_customer(appstle: AppstleApi, store: MemoryStore) -> None:
    with pytest.raises(PermanentError, match="HTTP 404"):
        appstle.fetch_points(store, "999")
    with pytest.raises(PermanentError, match="HTTP 404"):
        appstle.fetch_points(store, "email:nobody@example.com")


def test_it_gives_up_on_other_client_errors(
    appstle: AppstleApi, store: MemoryStore, state: AppstleSandboxState
) -> None:
    state.fail_next(2, status=400)  # both documented forms refused
    with pytest.raises(PermanentError, match="Appstle answered 400$"):
        appstle.fetch_points(store, CUSTOMER)
    state.fail_next(1, status=403)
    with pytest.raises(NeedsReauthorization):
        appstle.fetch_points(store, CUSTOMER)


# --- the two documented spellings of the customer --------------------------------------------


def one_form_api(form: str, clock: FrozenClock) -> AppstleSandboxState:
    only = AppstleSandboxState(clock=clock, forms=frozenset({form}))
    only.add_shop(DEMO_SHOP, DEMO_API_KEY)
    only.set_customer(DEMO_SHOP, CUSTOMER, email=EMAIL, available=250.5)
    return only


def test_it_reads_an_api_that_knows_only_the_reference_form(
    appstle: AppstleApi, http: httpx.Client, clock: FrozenClock
) -> None:
    only = one_form_api(REFERENCE, clock)
    with serve_in_thread(create_appstle_sandbox(only)) as running:
        store = memory_store(running.url, http)
        assert appstle.fetch_points(store, CUSTOMER).available == Decimal("250.5")
        assert appstle.fetch_points(store, "email:sara@example.com").available == Decimal("250.5")
    assert [(seen.form, seen.status) for seen in only.requests()] == [
        (REFERENCE, 200), (REFERENCE, 200),
    ]  # fmt: skip
    assert store.quota_taken == {"appstle": 2}


def test_it_reads_an_api_that_knows_only_the_quickstart_form(
    appstle: AppstleApi, http: httpx.Client, clock: FrozenClock
) -> None:
    only = one_form_api(QUICKSTART, clock)
    with serve_in_thread(create_appstle_sandbox(only)) as running:
        store = memory_store(running.url, http)
        assert appstle.fetch_points(store, CUSTOMER).available == Decimal("250.5")
        assert appstle.fetch_points(store, CUSTOMER).available == Decimal("250.5")
    # The reference form once, refused; then the quickstart form, remembered for the shop.
    assert [(seen.form, seen.status) for seen in only.requests()] == [
        (REFERENCE, 400), (QUICKSTART, 200), (QUICKSTART, 200),
    ]  # fmt: skip
    assert all(seen.customer_id == CUSTOMER for seen in only.requests())


def test_it_reports_the_not_found_of_the_form_the_api_understood(
    appstle: AppstleApi, http: httpx.Client, clock: FrozenClock
) -> None:
    only = one_form_api(QUICKSTART, clock)
    with serve_in_thread(create_appstle_sandbox(only)) as running:
        with pytest.raises(PermanentError, match="HTTP 404"):
            appstle.fetch_points(memory_store(running.url, http), "999")
    assert [seen.status for seen in only.requests()] == [400, 404]


def test_it_never_names_the_customer_in_both_forms_at_once(
    appstle: AppstleApi, store: MemoryStore, state: AppstleSandboxState
) -> None:
    appstle.fetch_points(store, CUSTOMER)
    [seen] = state.requests()
    assert seen.form == REFERENCE


def test_it_refuses_a_customer_ref_it_cannot_ask_for(
    appstle: AppstleApi, store: MemoryStore
) -> None:
    with pytest.raises(PermanentError, match="neither"):
        appstle.fetch_points(store, "gid://shopify/Order/1")


def test_it_retries_when_appstle_is_unreachable(appstle: AppstleApi, http: httpx.Client) -> None:
    with serve_in_thread(create_appstle_sandbox()) as gone:
        url = gone.url
    with pytest.raises(TransientError, match="failed"):
        appstle.fetch_points(memory_store(url, http), CUSTOMER)


def test_it_retries_when_appstle_is_slow(
    appstle: AppstleApi, api: RunningServer, state: AppstleSandboxState
) -> None:
    state.set_delay(0.5)
    with httpx.Client(timeout=0.1) as impatient:
        with pytest.raises(TransientError, match="timed out"):
            appstle.fetch_points(memory_store(api.url, impatient), CUSTOMER)
