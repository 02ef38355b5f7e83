"""The Klaviyo sink over real HTTP, against the Klaviyo sandbox; its budgets in a real database."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import httpx
import pytest
from flask import Flask
from sqlalchemy import select

from tests.worker.sinks.test_crm import CREATED_AT, EMAIL, balance_change
from worker import quota
from worker.errors import PermanentError, TransientError
from worker.quota import DatabaseBudget, RateLimited
from worker.runtime import Runtime
from worker.sandbox.hubspot import RecordedRequest
from worker.sandbox.klaviyo import DEMO_API_KEY, KlaviyoSandboxState, create_klaviyo_sandbox
from worker.sinks.base import Budget, SendResult, SinkContext
from worker.sinks.klaviyo import KlaviyoSink, klaviyo_value
from worker.sinks.skips import SkippedDelivery
from worker.storage.models import RateBudget, utcnow

Serve = Callable[[Flask], str]
JSON_API = "application/vnd.api+json"
ABSOLUTE_VALUES = {
    "loyalty_relay_points_balance": 3110,
    "loyalty_relay_pending_points": 720,
    "loyalty_relay_next_expiry_date": "2026-11-26",
    "loyalty_relay_next_expiry_points": 900,
    "loyalty_relay_tier": "Gold",
    "loyalty_relay_last_change_at": "2026-11-23T09:20:11Z",
}


class Account:
    """A Klaviyo sandbox served on 127.0.0.1, and sinks pointed at it."""

    def __init__(self, serve: Serve, http: httpx.Client) -> None:
        self.state = KlaviyoSandboxState()
        self.url = serve(create_klaviyo_sandbox(self.state))
        self.http = http

    def sink(
        self, *, api_key: str = DEMO_API_KEY, budget: Budget | None = None, **config: Any
    ) -> KlaviyoSink:
        return KlaviyoSink(
            {"api_key": api_key, "api_base": self.url, **config}, SinkContext(self.http, budget)
        )

    def requests(self) -> list[RecordedRequest]:
        return self.state.requests()


@pytest.fixture
def account(serve: Serve, http: httpx.Client) -> Account:
    return Account(serve, http)


def test_it_upserts_the_profile_by_email_with_absolute_values(account: Account) -> None:
    result = account.sink().send(balance_change())

    assert result == SendResult(201, "Klaviyo profile created")
    [post] = account.requests()
    assert (post.method, post.path, post.query, post.status) == (
        "POST",
        "/api/profile-import",
        {},
        201,
    )
    headers = {name: post.headers[name] for name in ("authorization", "revision", "content-type")}
    assert headers == {
        "authorization": f"Klaviyo-API-Key {DEMO_API_KEY}",
        "revision": "2026-07-15",
        "content-type": JSON_API,
    }
    assert post.headers["accept"] == JSON_API
    assert post.body == {
        "data": {"type": "profile", "attributes": {"email": EMAIL, "properties": ABSOLUTE_VALUES}}
    }


def test_it_counts_created_and_updated_both_as_success(account: Account) -> None:
    sink = account.sink()

    first = sink.send(balance_change())
    second = sink.send(balance_change(balance_after=3200))

    assert (first, second) == (
        SendResult(201, "Klaviyo profile created"),
        SendResult(200, "Klaviyo profile updated"),
    )
    profile = account.state.profiles[EMAIL]
    assert profile["properties"]["loyalty_relay_points_balance"] == 3200


def test_it_clears_properties_with_null(account: Account) -> None:
    account.state.add_profile(EMAIL, loyalty_relay_tier="Silver")

    account.sink().send(balance_change(tier=None))

    [post] = account.requests()
    assert post.body["data"]["attributes"]["properties"]["loyalty_relay_tier"] is None
    assert "loyalty_relay_tier" not in account.state.profiles[EMAIL]["properties"]


def test_it_sends_the_configured_revision(account: Account) -> None:
    account.sink(revision="2026-04-15").send(balance_change())

    assert account.requests()[0].headers["revision"] == "2026-04-15"


def test_it_skips_a_customer_without_an_email_without_calling(account: Account) -> None:
    with pytest.raises(SkippedDelivery, match="no email address"):
        account.sink().send(balance_change(None))

    assert account.requests() == []


def test_it_updates_an_excluded_customer(account: Account) -> None:
    assert account.sink().send(balance_change(excluded=True)).status_code == 201


def test_it_retries_after_klaviyos_delay_and_pauses_both_budgets(
    account: Account, runtime: Runtime
) -> None:
    account.state.fail_next(1, status=429, retry_after=20)

    with pytest.raises(RateLimited, match="^Klaviyo rate limit reached$") as first:
        account.sink(budget=DatabaseBudget(runtime.transaction)).send(balance_change())
    with pytest.raises(RateLimited) as second:  # another worker, same key
        account.sink(budget=DatabaseBudget(runtime.transaction)).send(balance_change())

    assert isinstance(first.value, TransientError) and first.value.retry_after == 20.0
    assert second.value.retry_after is not None and 18 < second.value.retry_after <= 20
    assert [r.status for r in account.requests()] == [429]
    with runtime.transaction() as session:  # the steady budget waits as well as the burst one
        waits = [quota.take(session, key, limit, window, utcnow())
                 for key, limit, window in account.sink().budgets]  # fmt: skip
    assert all(18 < wait <= 20 for wait in waits)


def test_it_shares_two_budgets_per_key_never_naming_it(account: Account, runtime: Runtime) -> None:
    account.sink(budget=DatabaseBudget(runtime.transaction)).send(balance_change())

    with runtime.sessions() as session:
        keys = sorted(session.scalars(select(RateBudget.key)))
    assert [key.rsplit(":", 1)[1] for key in keys] == ["1s", "60s"]
    assert keys[0].removesuffix(":1s") == keys[1].removesuffix(":60s")
    assert not [key for key in keys if DEMO_API_KEY in key]
    assert [limits for _, *limits in account.sink().budgets] == [[75, 1.0], [700, 60.0]]


@pytest.mark.parametrize("status", [500, 502, 503])
def test_it_retries_a_klaviyo_server_error(account: Account, status: int) -> None:
    account.state.fail_next(1, status=status)

    with pytest.raises(TransientError, match=f"^Klaviyo answered {status} "):
        account.sink().send(balance_change())


def test_it_stops_on_a_rejected_api_key(account: Account) -> None:
    with pytest.raises(PermanentError) as caught:
        account.sink(api_key="pk_revoked_key").send(balance_change())

    assert str(caught.value) == "Klaviyo API key rejected (401 Unauthorized)"
    assert account.requests()[0].status == 401


def test_it_never_puts_the_key_or_email_in_an_error(account: Account) -> None:
    odd = "sara.ali@localhost"  # usable for us, refused by Klaviyo, which repeats it
    failures = []
    for status in (None, 401, 429, 503):
        if status:
            account.state.fail_next(1, status=status)
        with pytest.raises((PermanentError, TransientError)) as caught:
            account.sink().send(balance_change(odd))
        failures.append(str(caught.value))

    assert failures[0] == "Klaviyo answered 400 Bad Request: Invalid email address: [redacted]"
    assert not [text for text in failures if odd in text or DEMO_API_KEY in text]


def test_it_formats_values_as_klaviyo_reads_them() -> None:
    assert klaviyo_value(date(2026, 11, 26)) == "2026-11-26"
    assert klaviyo_value(CREATED_AT) == "2026-11-23T09:20:11Z"
    assert (klaviyo_value(12.5), klaviyo_value("Gold"), klaviyo_value(None)) == (12.5, "Gold", None)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"api_key": DEMO_API_KEY, "revision": "v3"}, "revision: give a revision date"),
        ({"api_key": DEMO_API_KEY, "apikey": "x"}, "apikey: Unknown field."),
        ({"revision": "2026-07-15"}, "api_key: Missing data for required field."),
    ],
)
def test_it_refuses_a_bad_config(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        KlaviyoSink.validate_config(config)

    assert DEMO_API_KEY not in str(caught.value)


def test_it_fills_in_the_defaults() -> None:
    assert KlaviyoSink.validate_config({"api_key": DEMO_API_KEY}) == {
        "api_key": DEMO_API_KEY,
        "revision": "2026-07-15",
        "api_base": "https://a.klaviyo.com",
    }
    assert KlaviyoSink.validate_config({"api_key": "k", "revision": "2026-10-15.pre"})["revision"]
