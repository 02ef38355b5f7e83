"""The HubSpot sink over real HTTP, against the HubSpot sandbox; its budget in a real database."""

from __future__ import annotations

import socket
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from flask import Flask

from tests.factories import add_salla_store
from tests.worker.sinks.test_crm import CREATED_AT, EMAIL, balance_change
from worker.errors import PermanentError, TransientError
from worker.pipeline import outbox
from worker.points import BALANCE_CHANGED
from worker.quota import DatabaseBudget, RateLimited
from worker.runtime import Runtime
from worker.sandbox.hubspot import (
    DEMO_TOKEN,
    HubSpotSandboxState,
    RecordedRequest,
    create_hubspot_sandbox,
)
from worker.sinks.base import Budget, RejectedResult, SendResult, SinkContext, SkippedResult
from worker.sinks.crm import PROPERTIES
from worker.sinks.hubspot import HubSpotSink, budget_headers, hubspot_value, upsert_batch
from worker.sinks.skips import SkippedDelivery
from worker.storage.models import CustomerPoints, Delivery, Sink

Serve = Callable[[Flask], str]
CONTACT_PATH = f"/crm/v3/objects/contacts/{EMAIL}"
ABSOLUTE_VALUES = {
    "loyalty_relay_points_balance": "3110",
    "loyalty_relay_pending_points": "720",
    "loyalty_relay_next_expiry_date": "1795651200000",  # 2026-11-26T00:00:00Z
    "loyalty_relay_next_expiry_points": "900",
    "loyalty_relay_tier": "Gold",
    "loyalty_relay_last_change_at": "1795425611000",  # 2026-11-23T09:20:11Z
}


class Portal:
    """A HubSpot sandbox served on 127.0.0.1, and sinks pointed at it."""

    def __init__(self, serve: Serve, http: httpx.Client, *, set_up: bool = True) -> None:
        self.state = HubSpotSandboxState()
        if set_up:  # as `hubspot setup` leaves a portal
            for spec in PROPERTIES:
                self.state.define_property(spec.name, spec.type)
        self.url = serve(create_hubspot_sandbox(self.state))
        self.http = http

    def sink(
        self, *, token: str = DEMO_TOKEN, budget: Budget | None = None, **config: Any
    ) -> HubSpotSink:
        return HubSpotSink(
            {"token": token, "api_base": self.url, **config}, SinkContext(self.http, budget)
        )

    def requests(self) -> list[RecordedRequest]:
        return self.state.requests()


@pytest.fixture
def portal(serve: Serve, http: httpx.Client) -> Portal:
    return Portal(serve, http)


def test_it_updates_the_contact_found_by_email_with_absolute_values(portal: Portal) -> None:
    portal.state.add_contact(EMAIL, loyalty_relay_tier="Silver")

    result = portal.sink().send(balance_change())

    assert result == SendResult(200, "HubSpot contact updated")
    [patch] = portal.requests()
    assert (patch.method, patch.path, patch.query) == (
        "PATCH",
        CONTACT_PATH,
        {"idProperty": "email"},
    )
    assert patch.headers["authorization"] == f"Bearer {DEMO_TOKEN}"
    assert patch.headers["content-type"] == "application/json"
    assert patch.body == {"properties": ABSOLUTE_VALUES}
    assert portal.state.contacts[EMAIL]["loyalty_relay_tier"] == "Gold"


def test_it_clears_properties_with_an_empty_string(portal: Portal) -> None:
    portal.state.add_contact(EMAIL, loyalty_relay_tier="Silver")

    portal.sink().send(balance_change(tier=None, next_expiry_date=None))

    [patch] = portal.requests()
    assert patch.body["properties"]["loyalty_relay_tier"] == ""
    assert patch.body["properties"]["loyalty_relay_next_expiry_date"] == ""
    assert "loyalty_relay_tier" not in portal.state.contacts[EMAIL]


def test_it_skips_a_contact_hubspot_does_not_have(portal: Portal) -> None:
    with pytest.raises(SkippedDelivery, match="no HubSpot contact has this email") as caught:
        portal.sink().send(balance_change())

    assert [r.method for r in portal.requests()] == ["PATCH"]
    assert portal.state.contacts == {}
    assert EMAIL not in caught.value.reason


def test_it_creates_a_missing_contact_when_asked(portal: Portal) -> None:
    result = portal.sink(create_missing=True).send(balance_change())

    assert result == SendResult(201, "HubSpot contact created")
    patch, create = portal.requests()
    assert (patch.status, create.method, create.path) == (404, "POST", "/crm/v3/objects/contacts")
    assert create.body == {"properties": {"email": EMAIL, **ABSOLUTE_VALUES}}
    assert portal.state.contacts[EMAIL]["loyalty_relay_points_balance"] == "3110"


def test_it_skips_a_customer_without_an_email_without_calling(portal: Portal) -> None:
    with pytest.raises(SkippedDelivery, match="no email address"):
        portal.sink(create_missing=True).send(balance_change(None))

    assert portal.requests() == []


def test_it_updates_an_excluded_customer(portal: Portal) -> None:
    portal.state.add_contact(EMAIL)

    assert portal.sink().send(balance_change(excluded=True)).status_code == 200


def test_it_backs_off_on_429_and_blocks_the_token_for_every_worker(
    portal: Portal, runtime: Runtime
) -> None:
    portal.state.add_contact(EMAIL)
    portal.state.fail_next(1, status=429, retry_after=30)
    budget = DatabaseBudget(runtime.transaction)

    with pytest.raises(RateLimited, match="^HubSpot rate limit reached$") as first:
        portal.sink(budget=budget).send(balance_change())
    with pytest.raises(RateLimited) as second:  # another worker, same token
        portal.sink(budget=DatabaseBudget(runtime.transaction)).send(balance_change())

    assert isinstance(first.value, TransientError) and first.value.retry_after == 30.0
    assert second.value.retry_after is not None and 28 < second.value.retry_after <= 30
    assert [r.status for r in portal.requests()] == [429]  # the second never left


def test_it_waits_out_hubspots_window_when_a_429_names_no_delay(portal: Portal) -> None:
    portal.state.fail_next(1, status=429)

    with pytest.raises(RateLimited) as caught:
        portal.sink().send(balance_change())

    assert caught.value.retry_after == 10.0  # X-HubSpot-RateLimit-Interval-Milliseconds


def test_it_reads_hubspots_rate_limit_headers_into_the_budget() -> None:
    spent = httpx.Response(
        200,
        headers={
            "X-HubSpot-RateLimit-Remaining": "0",
            "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
        },
    )
    daily = httpx.Response(429, json={"errorType": "RATE_LIMIT", "policyName": "DAILY"})

    assert budget_headers(spent) == {"x-ratelimit-remaining": "0", "retry-after": "10"}
    assert budget_headers(httpx.Response(200, headers={"X-HubSpot-RateLimit-Remaining": "97"})) == {
        "x-ratelimit-remaining": "97"
    }
    assert budget_headers(daily) == {"retry-after": "3600"}


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_it_retries_a_hubspot_server_error(portal: Portal, status: int) -> None:
    portal.state.fail_next(1, status=status, retry_after=7)

    with pytest.raises(TransientError, match=f"^HubSpot answered {status} ") as caught:
        portal.sink().send(balance_change())

    assert caught.value.retry_after == 7.0


def test_it_retries_when_hubspot_is_out_of_reach(http: httpx.Client) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    sink = HubSpotSink({"token": DEMO_TOKEN, "api_base": closed}, SinkContext(http))

    with pytest.raises(TransientError, match="could not reach HubSpot"):
        sink.send(balance_change())


def test_it_stops_on_a_rejected_token(portal: Portal) -> None:
    with pytest.raises(PermanentError) as caught:
        portal.sink(token="pat-na1-revoked").send(balance_change())

    assert str(caught.value) == "HubSpot token rejected (401 Unauthorized)"
    assert portal.requests()[0].status == 401


def test_it_says_to_run_setup_when_hubspot_lacks_the_properties(
    serve: Serve, http: httpx.Client
) -> None:
    portal = Portal(serve, http, set_up=False)  # `hubspot setup` never ran
    portal.state.add_contact(EMAIL)

    with pytest.raises(PermanentError) as caught:
        portal.sink().send(balance_change())

    assert str(caught.value) == (
        "HubSpot lacks our properties: run `loyalty-relay hubspot setup --sink ID` once"
    )
    assert portal.requests()[0].status == 400


def test_it_finds_a_contact_whose_email_needs_escaping(portal: Portal) -> None:
    portal.state.add_contact("sara+vip@example.com")

    assert portal.sink().send(balance_change("sara+vip@example.com")).status_code == 200
    assert portal.requests()[0].path == "/crm/v3/objects/contacts/sara+vip@example.com"


def test_it_sends_non_latin_values_as_they_are(portal: Portal) -> None:
    portal.state.add_contact(EMAIL)

    portal.sink().send(balance_change(tier="ذهبي"))

    assert portal.state.contacts[EMAIL]["loyalty_relay_tier"] == "ذهبي"


def test_it_never_puts_the_token_or_email_in_an_error(portal: Portal) -> None:
    odd = "sara.ali@localhost"  # usable for us, refused by HubSpot, which repeats it
    failures = []
    for status in (None, 401, 429, 503):
        if status:
            portal.state.fail_next(1, status=status)
        with pytest.raises((PermanentError, TransientError)) as caught:
            portal.sink(create_missing=True).send(balance_change(odd))
        failures.append(str(caught.value))

    assert failures[0].startswith("HubSpot answered 400 Bad Request")
    assert "Email address [redacted] is invalid" in failures[0]
    assert not [text for text in failures if odd in text or DEMO_TOKEN in text]


def test_it_formats_values_as_hubspot_requires() -> None:
    assert hubspot_value(date(2026, 11, 26)) == "1795651200000"  # midnight UTC
    assert hubspot_value(CREATED_AT) == "1795425611000"
    assert hubspot_value(datetime(2026, 11, 23, 12, 20, 11, 250000, tzinfo=UTC)) == "1795436411250"
    assert (hubspot_value(12.5), hubspot_value("Gold"), hubspot_value(None)) == ("12.5", "Gold", "")


def test_it_refuses_a_bad_config() -> None:
    with pytest.raises(ValueError, match="Unknown field"):
        HubSpotSink.validate_config({"token": DEMO_TOKEN, "tokne": "x"})
    assert HubSpotSink.validate_config({"token": f" {DEMO_TOKEN} "}) == {
        "token": DEMO_TOKEN,
        "create_missing": False,
        "api_base": "https://api.hubapi.com",
    }


# --- batches ---------------------------------------------------------------------------


def test_it_upserts_250_deliveries_in_3_calls_of_at_most_100(portal: Portal) -> None:
    deliveries = [balance_change(f"c{n}@example.com", index=n) for n in range(250)]

    results = upsert_batch(portal.sink(create_missing=True), deliveries)

    assert results == [SendResult(200, "HubSpot contact upserted")] * 250
    calls = portal.requests()
    assert [(r.method, r.path, r.status) for r in calls] == [
        ("POST", "/crm/v3/objects/contacts/batch/upsert", 200)
    ] * 3
    assert [len(r.body["inputs"]) for r in calls] == [100, 100, 50]
    assert calls[2].body["inputs"][-1] == {
        "idProperty": "email",
        "id": "c249@example.com",
        "properties": ABSOLUTE_VALUES,
    }
    assert len(portal.state.contacts) == 250


def test_it_skips_unknown_contacts_in_a_batch_unless_asked_to_create(portal: Portal) -> None:
    for known in ("a@example.com", "c@example.com"):
        portal.state.add_contact(known)
    emails = ["a@example.com", "b@example.com", "C@example.com", None]
    deliveries = [balance_change(email, index=n) for n, email in enumerate(emails)]

    results = upsert_batch(portal.sink(), deliveries)

    assert results == [
        SendResult(200, "HubSpot contact upserted"),
        SkippedResult(404, "no HubSpot contact has this email (create_missing is off)"),
        SendResult(200, "HubSpot contact upserted"),
        SkippedResult(None, "the customer has no email address"),
    ]
    read, upsert = portal.requests()
    assert read.path.endswith("/batch/read") and read.body == {
        "idProperty": "email",
        "properties": ["email"],
        "inputs": [{"id": "a@example.com"}, {"id": "b@example.com"}, {"id": "C@example.com"}],
    }
    assert [entry["id"] for entry in upsert.body["inputs"]] == ["a@example.com", "C@example.com"]
    assert "b@example.com" not in portal.state.contacts


def test_it_sends_one_input_per_email_the_latest_winning(portal: Portal) -> None:
    older = balance_change(index=1, balance_after=100)
    newer = balance_change(EMAIL.upper(), index=2, balance_after=200)

    results = upsert_batch(portal.sink(create_missing=True), [older, newer])

    assert results == [SendResult(200, "HubSpot contact upserted")] * 2
    [upsert] = portal.requests()
    [entry] = upsert.body["inputs"]
    assert entry["properties"]["loyalty_relay_points_balance"] == "200"


def test_it_reports_what_hubspot_refused_in_a_batch(portal: Portal) -> None:
    deliveries = [balance_change("ok@example.com"), balance_change("odd@localhost", index=1)]

    results = upsert_batch(portal.sink(create_missing=True), deliveries)

    assert results[0] == SendResult(207, "HubSpot contact upserted")
    assert results[1] == RejectedResult(
        207, "HubSpot refused this contact: Email address [redacted] is invalid"
    )


def test_it_raises_for_a_batch_call_that_failed_as_a_whole(portal: Portal) -> None:
    portal.state.fail_next(1, status=503, path="/batch/upsert")

    with pytest.raises(TransientError, match="503"):
        upsert_batch(portal.sink(create_missing=True), [balance_change()])


def test_it_is_refused_a_batch_of_more_than_100(portal: Portal, http: httpx.Client) -> None:
    inputs = [
        {"idProperty": "email", "id": f"c{n}@example.com", "properties": {}} for n in range(101)
    ]

    answer = http.post(
        f"{portal.url}/crm/v3/objects/contacts/batch/upsert",
        json={"inputs": inputs},
        headers={"Authorization": f"Bearer {DEMO_TOKEN}"},
    )

    assert answer.status_code == 400 and answer.json()["category"] == "VALIDATION_ERROR"


# --- through the outbox ----------------------------------------------------------------


def queue_for_hubspot(runtime: Runtime, portal: Portal, email: str | None) -> str:
    """A store with a hubspot sink and a known customer, and one change queued for it."""
    store = add_salla_store(runtime)
    change = balance_change()
    with runtime.transaction() as session:
        config = runtime.cipher.seal({"token": DEMO_TOKEN, "api_base": portal.url})
        session.add(Sink(store_id=store.id, kind="hubspot", config=config, kinds=[BALANCE_CHANGED]))
        session.add(CustomerPoints(
            store_id=store.id, customer_id=change.payload["customer_id"], available=Decimal(3110),
            pending=Decimal(720), used=Decimal(0), next_expiry_points=Decimal(900),
            contact=runtime.cipher.seal({"email": email}),
        ))  # fmt: skip
    with runtime.transaction() as session:
        [due] = outbox.create_deliveries(session, store, None, change.payload)
    return due.delivery_id


def test_it_is_delivered_through_the_outbox(portal: Portal, runtime: Runtime) -> None:
    portal.state.add_contact(EMAIL)
    delivery_id = queue_for_hubspot(runtime, portal, EMAIL)

    assert outbox.deliver(runtime, delivery_id) == []

    with runtime.sessions() as session:
        row = session.get_one(Delivery, delivery_id)
    assert (row.status, row.last_status_code, row.last_error) == ("delivered", 200, None)
    [patch] = portal.requests()
    assert patch.path == CONTACT_PATH and patch.body["properties"]["loyalty_relay_tier"] == "Gold"


def test_it_leaves_the_skip_reason_on_the_outbox_row(portal: Portal, runtime: Runtime) -> None:
    delivery_id = queue_for_hubspot(runtime, portal, None)

    outbox.deliver(runtime, delivery_id)

    with runtime.sessions() as session:
        row = session.get_one(Delivery, delivery_id)
    assert (row.status, row.last_error) == ("skipped", "the customer has no email address")
    assert portal.requests() == []


def test_it_sends_a_burst_of_due_deliveries_as_one_batch_upsert(
    portal: Portal, runtime: Runtime
) -> None:
    store = add_salla_store(runtime)
    emails = [f"customer{i}@example.com" for i in range(5)]
    with runtime.transaction() as session:
        config = runtime.cipher.seal({"token": DEMO_TOKEN, "api_base": portal.url,
                                      "create_missing": True})  # fmt: skip
        session.add(Sink(store_id=store.id, kind="hubspot", config=config, kinds=[BALANCE_CHANGED]))
        for i, email in enumerate(emails):
            session.add(CustomerPoints(
                store_id=store.id, customer_id=str(i), available=Decimal(10 * i),
                pending=Decimal(0), used=Decimal(0), next_expiry_points=Decimal(0),
                contact=runtime.cipher.seal({"email": email}),
            ))  # fmt: skip
    with runtime.transaction() as session:
        due = [
            d
            for i in range(5)
            for d in outbox.create_deliveries(
                session, store, None, balance_change().payload | {"customer_id": str(i)}
            )
        ]
    assert outbox.deliver(runtime, due[0].delivery_id) == []
    [upsert] = portal.requests()
    assert upsert.path.endswith("/batch/upsert")
    assert sorted(entry["id"] for entry in upsert.body["inputs"]) == sorted(emails)
    with runtime.sessions() as session:
        assert {row.status for row in session.query(Delivery)} == {"delivered"}
    assert all(outbox.deliver(runtime, d.delivery_id) == [] for d in due[1:])
    assert len(portal.requests()) == 1  # the other messages found nothing left to send
