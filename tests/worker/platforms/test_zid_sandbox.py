"""The Zid sandbox behaves like Zid where our code depends on it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from worker.sandbox.server import RunningServer, serve_in_thread
from worker.sandbox.zid import (
    DEMO_AUTHORIZATION,
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_CUSTOMER,
    DEMO_CUSTOMER_TOKEN,
    DEMO_MANAGER_TOKEN,
    DEMO_REDIRECT_URI,
    DEMO_REFRESH_TOKEN,
    DEMO_STORE,
    ZidSandboxState,
    create_zid_sandbox,
)

MANAGER = {
    "Authorization": f"Bearer {DEMO_AUTHORIZATION}",
    "X-Manager-Token": DEMO_MANAGER_TOKEN,
    "Store-Id": DEMO_STORE,
    "Role": "Manager",
}
SUBSCRIPTION = {"event": "order.create", "target_url": "https://r.example/x", "original_id": "app"}


@pytest.fixture
def state() -> ZidSandboxState:
    return ZidSandboxState.with_demo_store()


@pytest.fixture
def api(state: ZidSandboxState) -> Iterator[RunningServer]:
    with serve_in_thread(create_zid_sandbox(state)) as running:
        yield running


def get_details(http: httpx.Client, api: RunningServer, **headers: str) -> httpx.Response:
    url = f"{api.url}/v1/managers/loyalty-program/customers/details"
    return http.get(url, params={"customerId": DEMO_CUSTOMER}, headers=MANAGER | headers)


def test_it_serves_the_demo_customer_with_zids_misspellings(
    http: httpx.Client, api: RunningServer
) -> None:
    info = get_details(http, api).json()["loyalty_points_info"]
    assert (info["points_balance"], info["available_poitns"], info["used_poitns"]) == (
        450,
        450,
        100,
    )
    assert info["pending_points_balance"] == 80 and "available_points" not in info


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"X-Manager-Token": "wrong"}, 401),
        ({"Authorization": "Bearer wrong"}, 401),
        ({"Store-Id": "1"}, 401),
        ({"Role": "Customer"}, 403),
    ],
)
def test_it_checks_the_manager_headers(
    http: httpx.Client, api: RunningServer, headers: dict[str, str], status: int
) -> None:
    response = get_details(http, api, **headers)
    assert response.status_code == status and response.json()["status"] == "error"


def test_it_serves_storefront_points_only_to_a_logged_in_customer(
    http: httpx.Client, api: RunningServer
) -> None:
    url = f"{api.url}/v1/customers/loyalty-program/{DEMO_STORE}/points"
    headers = {"Authorization": f"Bearer {DEMO_AUTHORIZATION}"}
    good = http.get(url, headers=headers | {"X-CUSTOMER-TOKEN": DEMO_CUSTOMER_TOKEN})
    assert good.json()["points"] == {"available_poitns": 450, "used_poitns": 100}
    assert http.get(url, headers=headers | {"X-CUSTOMER-TOKEN": "x"}).status_code == 401


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"conditions": []}, "conditions"),
        ({"event": "order.created"}, "event"),
        ({"target_url": "ftp://x"}, "target url"),
        ({"original_id": ""}, "original id"),
    ],
)
def test_it_refuses_bad_subscriptions(
    http: httpx.Client, api: RunningServer, change: dict[str, Any], problem: str
) -> None:
    response = http.post(
        f"{api.url}/managers/webhooks", json=SUBSCRIPTION | change, headers=MANAGER
    )
    assert response.status_code == 422 and problem in response.json()["message"]["description"]


def test_it_keeps_top_level_credentials_and_ignores_nested_ones(
    http: httpx.Client, api: RunningServer, state: ZidSandboxState
) -> None:
    url = f"{api.url}/managers/webhooks"
    nested = SUBSCRIPTION | {"authentication": {"username": "u", "password": "p"}}
    assert http.post(url, json=nested, headers=MANAGER).status_code == 200
    top = SUBSCRIPTION | {"event": "order.status.update", "username": "u", "password": "p"}
    assert http.post(url, json=top, headers=MANAGER).status_code == 200
    assert [w.authorization for w in state.webhooks(DEMO_STORE)] == [None, "Basic dTpw"]
    assert http.post(url, json=top, headers=MANAGER).status_code == 422  # a duplicate


def test_it_deletes_only_the_named_apps_subscriptions(
    http: httpx.Client, api: RunningServer, state: ZidSandboxState
) -> None:
    url = f"{api.url}/managers/webhooks"
    http.post(url, json=SUBSCRIPTION, headers=MANAGER)
    http.post(url, json=SUBSCRIPTION | {"original_id": 4471}, headers=MANAGER)
    assert http.delete(url, params={"original_id": "app"}, headers=MANAGER).status_code == 200
    [left] = http.get(url, headers=MANAGER).json()["data"]
    assert left["original_id"] == "4471" and "password" not in left


def refresh(http: httpx.Client, api: RunningServer, token: str, **form: str) -> httpx.Response:
    body = {
        "grant_type": "refresh_token",
        "refresh_token": token,
        "client_id": DEMO_CLIENT_ID,
        "client_secret": DEMO_CLIENT_SECRET,
        "redirect_uri": DEMO_REDIRECT_URI,
    }
    return http.post(f"{api.url}/oauth/token", data=body | form)


def test_it_treats_refresh_tokens_as_single_use(
    http: httpx.Client, api: RunningServer, state: ZidSandboxState
) -> None:
    grant = refresh(http, api, DEMO_REFRESH_TOKEN).json()
    assert state.tokens(DEMO_STORE) == (
        grant["authorization"],
        grant["access_token"],
        grant["refresh_token"],
    )
    reused = refresh(http, api, DEMO_REFRESH_TOKEN)
    assert reused.status_code == 401 and reused.json()["error"] == "invalid_request"
    assert state.tokens(DEMO_STORE) == (None, None, None)  # a reuse revokes everything


@pytest.mark.parametrize("form", [{"client_secret": "wrong"}, {"redirect_uri": "https://x"}])
def test_it_refuses_a_wrong_client(
    http: httpx.Client, api: RunningServer, form: dict[str, str]
) -> None:
    refused = refresh(http, api, DEMO_REFRESH_TOKEN, **form)
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"


def test_it_answers_429_past_the_stores_budget(
    http: httpx.Client, api: RunningServer, state: ZidSandboxState
) -> None:
    state.set_rate_limit(2, 60)
    statuses = [get_details(http, api).status_code for _ in range(3)]
    limited = get_details(http, api)
    assert statuses == [200, 200, 429] and 1 <= int(limited.headers["Retry-After"]) <= 60
