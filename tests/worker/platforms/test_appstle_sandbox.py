"""The Appstle sandbox behaves like the documented API, over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest

from tests.worker.platforms.appstle_support import CUSTOMER, fixture
from tests.worker.platforms.conftest import FrozenClock
from worker.sandbox.appstle import (
    DEMO_API_KEY,
    DEMO_CUSTOMER,
    DEMO_EMAIL,
    DEMO_SHOP,
    DEMO_WEBHOOK_SECRET,
    QUICKSTART,
    REFERENCE,
    AppstleSandboxState,
    create_appstle_sandbox,
    sign_appstle_webhook,
)
from worker.sandbox.server import serve_in_thread
from worker.signing import verify

PATH = "/api/external/customer-loyalty"


@pytest.fixture
def state(clock: FrozenClock) -> AppstleSandboxState:
    appstle = AppstleSandboxState(clock=clock)
    appstle.add_shop(DEMO_SHOP, DEMO_API_KEY)
    appstle.set_customer(DEMO_SHOP, CUSTOMER, email="Sara@Example.com", available=10)
    return appstle


@pytest.fixture
def client(state: AppstleSandboxState) -> Iterator[httpx.Client]:
    with serve_in_thread(create_appstle_sandbox(state)) as running:
        with httpx.Client(base_url=running.url, headers={"X-API-Key": DEMO_API_KEY}) as http:
            yield http


@pytest.mark.parametrize("key", [None, "", "wrong"])
def test_it_wants_a_known_api_key(client: httpx.Client, key: str | None) -> None:
    headers = {} if key is None else {"X-API-Key": key}
    with httpx.Client(base_url=str(client.base_url), headers=headers) as anonymous:
        assert anonymous.get(PATH, params={"customerId": CUSTOMER}).status_code == 401


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"customerId": CUSTOMER, "customerEmail": "sara@example.com"},
        {"customerId": "abc"},
        {"customerId": CUSTOMER, "shop": DEMO_SHOP, "customer_id": CUSTOMER},
        {"shop": DEMO_SHOP},
        {"shop": "other.myshopify.com", "customer_id": CUSTOMER},
    ],
)
def test_it_wants_exactly_one_customer_key(client: httpx.Client, params: dict[str, str]) -> None:
    assert client.get(PATH, params=params).status_code == 400


def test_it_reads_the_quickstart_form_too(client: httpx.Client) -> None:
    answer = client.get(PATH, params={"shop": DEMO_SHOP, "customer_id": CUSTOMER})
    assert answer.status_code == 200 and answer.json()["availablePoints"] == 10


@pytest.mark.parametrize(
    ("form", "params"),
    [
        (REFERENCE, {"shop": DEMO_SHOP, "customer_id": CUSTOMER}),
        (QUICKSTART, {"customerId": CUSTOMER}),
    ],
)
def test_it_can_stand_for_an_api_that_reads_one_form(
    state: AppstleSandboxState, form: str, params: dict[str, str]
) -> None:
    state.forms = frozenset({form})
    with serve_in_thread(create_appstle_sandbox(state)) as running:
        with httpx.Client(base_url=running.url, headers={"X-API-Key": DEMO_API_KEY}) as http:
            assert http.get(PATH, params=params).status_code == 400


def test_it_answers_in_the_seeds_shape(client: httpx.Client) -> None:
    answer = client.get(PATH, params={"customerId": CUSTOMER})
    assert answer.status_code == 200
    assert set(answer.json()) >= set(fixture("customer_loyalty_seed_003.json")) - {
        "rewardedForFacebook", "rewardedForInstagram", "rewardedForTwitter",
        "rewardedForPinterest", "rewardedForYoutube", "rewardedForTiktok", "rewardedForSms",
        "rewardedForSharingOnFacebook", "rewardedForSharingOnX",
    }  # fmt: skip
    assert "pointsExpireAt" not in answer.json()


def test_it_adds_the_expiry_fields_when_points_expire(
    client: httpx.Client, state: AppstleSandboxState, clock: FrozenClock
) -> None:
    when = clock.utc() + timedelta(days=2)
    state.set_customer(DEMO_SHOP, CUSTOMER, available=10, expiring=4.5, expire_at=when)
    document = client.get(PATH, params={"customerId": CUSTOMER}).json()
    assert document["expiringPointsAmount"] == 4.5
    assert document["pointsExpireAt"] == when.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_it_finds_customers_by_email_whatever_the_case(client: httpx.Client) -> None:
    answer = client.get(PATH, params={"customerEmail": "SARA@example.COM"})
    assert answer.status_code == 200 and answer.json()["availablePoints"] == 10
    assert client.get(PATH, params={"customerEmail": "x@example.com"}).status_code == 404
    assert client.get(PATH, params={"customerId": "1"}).status_code == 404


def test_it_counts_a_budget_per_key(
    client: httpx.Client, state: AppstleSandboxState, clock: FrozenClock
) -> None:
    state.set_rate_limit(2, 60)
    assert [client.get(PATH, params={"customerId": CUSTOMER}).status_code for _ in "ab"] == [
        200, 200,
    ]  # fmt: skip
    refused = client.get(PATH, params={"customerId": CUSTOMER})
    assert (refused.status_code, refused.headers["Retry-After"]) == (429, "60")
    clock.now += 60
    assert client.get(PATH, params={"customerId": CUSTOMER}).status_code == 200


def test_it_answers_injected_failures_first_and_logs_everything(
    client: httpx.Client, state: AppstleSandboxState
) -> None:
    state.fail_next(2, status=503)
    statuses = [client.get(PATH, params={"customerId": CUSTOMER}).status_code for _ in "abc"]
    assert statuses == [503, 503, 200]
    assert [seen.status for seen in state.requests()] == statuses
    assert {seen.customer_id for seen in state.requests()} == {CUSTOMER}


def test_it_serves_a_demo_store_by_default() -> None:
    with serve_in_thread(create_appstle_sandbox()) as running:
        answer = httpx.get(
            f"{running.url}{PATH}",
            params={"customerEmail": DEMO_EMAIL},
            headers={"X-API-Key": DEMO_API_KEY},
        )
    document = answer.json()
    assert (document["availablePoints"], document["currentVipTier"]) == (250.5, "Gold")
    assert document["expiringPointsAmount"] == 40 and DEMO_CUSTOMER


def test_it_signs_webhooks_as_svix_does() -> None:
    delivery = sign_appstle_webhook("loyalty.earned", CUSTOMER)
    assert delivery.path == f"/webhooks/appstle/{DEMO_SHOP}"
    verify(
        [DEMO_WEBHOOK_SECRET], delivery.headers, delivery.body,
        id_header="svix-id", timestamp_header="svix-timestamp", signature_header="svix-signature",
    )  # fmt: skip
