"""Zid's receiving rules and what each event means, as pure functions."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.worker.platforms.zid_support import (
    PREVIOUS_SECRET,
    SECRET,
    known_store,
    webhook,
)
from worker.config import load_settings
from worker.errors import BadPayload, Unauthorized
from worker.platforms.zid import samples, webhooks
from worker.platforms.zid.examples import ORDER_VARIANTS
from worker.platforms.zid.samples import encode, sample_resource
from worker.platforms.zid.subscriptions import BasicCredentials
from worker.platforms.zid.webhooks import SUBSCRIBED_EVENTS, plan, receive
from worker.sandbox.zid import DEMO_STORE

CUSTOMER = "7823146"
ORDER = encode(sample_resource("order.create", DEMO_STORE, CUSTOMER))
APP_TOKEN = "app-events-path-token"


def test_it_accepts_the_registered_basic_credentials() -> None:
    event = receive(webhook(ORDER), known_store(SECRET))
    assert (event.event_type, event.store_ref, event.ignored_reason) == (
        "order.create",
        DEMO_STORE,
        None,
    )


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Basic",
        "Basic ",
        "Basic !!!not-base64!!!",
        BasicCredentials("relay-test", "wrong password").header,
        SECRET.replace("Basic ", "Bearer "),
        SECRET + "x",
        SECRET[:-1],
        "Basic ✓ café",
        "\x00\x01",
    ],
)
def test_it_refuses_missing_bad_and_malformed_headers(authorization: str | None) -> None:
    with pytest.raises(Unauthorized):
        receive(webhook(ORDER, authorization), known_store(SECRET))


def test_it_verifies_before_parsing_the_body() -> None:
    with pytest.raises(Unauthorized):
        receive(webhook(b"not json at all", "Basic nope"), known_store(SECRET))


def test_it_accepts_both_credentials_while_they_rotate() -> None:
    stores = known_store(SECRET, PREVIOUS_SECRET)
    assert receive(webhook(ORDER, SECRET), stores).store_ref == DEMO_STORE
    assert receive(webhook(ORDER, PREVIOUS_SECRET), stores).store_ref == DEMO_STORE
    with pytest.raises(Unauthorized):
        receive(webhook(ORDER, BasicCredentials("relay-older", "x").header), stores)


def test_it_ignores_surrounding_whitespace_in_the_header() -> None:
    assert receive(webhook(ORDER, f"  {SECRET} "), known_store(SECRET)).store_ref == DEMO_STORE


def test_it_refuses_an_unknown_store() -> None:
    stores = known_store(SECRET)
    with pytest.raises(Unauthorized):
        receive(webhook(ORDER, path=("999", "order.create")), stores)
    assert stores.asked == ["999"]


def test_it_refuses_a_store_without_registered_credentials() -> None:
    with pytest.raises(Unauthorized, match="no webhook credentials"):
        receive(webhook(ORDER), known_store())


@pytest.mark.parametrize(
    "path",
    [
        (),
        (DEMO_STORE,),
        (DEMO_STORE, "order.create", "extra"),
        (" ", "order.create"),
        ("9" * 256, "order.create"),
        (DEMO_STORE, "order create"),
        (DEMO_STORE, "x" * 101),
        (DEMO_STORE, "order.create;drop"),
    ],
)
def test_it_refuses_a_path_that_is_not_store_and_event(path: tuple[str, ...]) -> None:
    stores = known_store(SECRET)
    with pytest.raises(Unauthorized):
        receive(webhook(ORDER, path=path), stores)
    assert stores.asked == []  # refused before any lookup


@pytest.mark.parametrize("body", [b"[]", b'"order"', b"12", b"not json", b"\xff\xfe", b""])
def test_it_refuses_a_verified_body_that_is_not_an_object(body: bytes) -> None:
    with pytest.raises(BadPayload):
        receive(webhook(body), known_store(SECRET))


def test_it_gives_a_retried_delivery_the_same_dedupe_key() -> None:
    stores = known_store(SECRET, PREVIOUS_SECRET)
    first = receive(webhook(ORDER, SECRET), stores)
    again = receive(webhook(ORDER, PREVIOUS_SECRET), stores)
    other_event = receive(webhook(ORDER, path=(DEMO_STORE, "order.status.update")), stores)
    other_body = receive(webhook(ORDER + b" "), stores)
    assert first.dedupe_key == again.dedupe_key
    assert len({first.dedupe_key, other_event.dedupe_key, other_body.dedupe_key}) == 3


def test_it_keys_dedupe_by_store() -> None:
    assert webhooks.dedupe_key("1", "order.create", ORDER) != webhooks.dedupe_key(
        "2", "order.create", ORDER
    )


@pytest.mark.parametrize("event", ["product.update", "abandoned_cart.created", "category.delete"])
def test_it_acknowledges_other_events_as_ignored(event: str) -> None:
    received = receive(webhook(b"{}", path=(DEMO_STORE, event)), known_store(SECRET))
    assert received.event_type == event
    assert received.ignored_reason == f"event {event!r} does not affect points"


def test_it_ignores_events_of_an_uninstalled_store() -> None:
    received = receive(webhook(ORDER), known_store(SECRET, status="uninstalled"))
    assert received.ignored_reason == "store has uninstalled the app"


@pytest.mark.parametrize(
    "event", ["order.create", "order.status.update", "order.payment_status.update"]
)
@pytest.mark.parametrize("customer_id", [CUSTOMER, int(CUSTOMER)])
def test_it_plans_a_settled_refresh_for_order_events(event: str, customer_id: str | int) -> None:
    body = encode({"id": 1, "customer": {"id": customer_id, "name": "Sara"}})
    assert plan(event, body).customer_ids == (CUSTOMER,)
    assert plan(event, body).settle is True


@pytest.mark.parametrize(
    "event", ["customer.create", "customer.update", "customer.merchant.update", "customer.login"]
)
def test_it_plans_a_refresh_for_customer_events(event: str) -> None:
    result = plan(event, encode(sample_resource(event, DEMO_STORE, CUSTOMER)))
    assert (result.customer_ids, result.settle, result.ignored_reason) == ((CUSTOMER,), False, None)


@pytest.mark.parametrize(
    "body", [{"id": 1, "customer": None}, {"id": 1}, {"id": 1, "customer": {"id": True}}]
)
def test_it_ignores_orders_without_a_customer(body: dict[str, object]) -> None:
    assert plan("order.create", encode(body)).ignored_reason == (
        "event names no customer (guest order?)"
    )


def test_it_plans_nothing_for_other_events() -> None:
    assert plan("product.create", b"{}").customer_ids == ()


@pytest.mark.parametrize("event", samples.EVENT_NAMES)
def test_it_builds_samples_the_receiver_accepts(event: str) -> None:
    secret = APP_TOKEN if event.startswith("app.") else SECRET
    delivery = samples.build(event, DEMO_STORE, CUSTOMER, secret)
    path = tuple(delivery.path.removeprefix("/webhooks/zid/").split("/"))
    headers = {name.lower(): value for name, value in delivery.headers.items()}
    inbound = webhook(delivery.body, headers.get("authorization"), path)
    received = receive(inbound, known_store(SECRET), APP_TOKEN)
    assert (received.event_type, received.store_ref) == (event, DEMO_STORE)
    expected = (CUSTOMER,) if event in SUBSCRIBED_EVENTS else ()
    assert plan(event, delivery.body).customer_ids == expected


def test_it_signs_samples_with_the_stores_newest_secret(tmp_path: Path) -> None:
    settings = load_settings({"RELAY_DATA_DIR": str(tmp_path), "RELAY_SECRET_KEY": "k"})
    credentials = {"webhook_secrets": [SECRET, PREVIOUS_SECRET]}
    assert samples.default_secret(settings, credentials) == SECRET
    assert samples.default_secret(settings, {}) is None


@pytest.mark.parametrize("flag", [1, True, "1", "true"])
@pytest.mark.parametrize("order", ORDER_VARIANTS)
def test_it_ignores_guest_customers_with_a_reason(flag: object, order: dict[str, object]) -> None:
    body = encode(order | {"is_guest_customer": flag})
    assert plan("order.create", body).ignored_reason == webhooks.GUEST
    assert plan("order.create", body).customer_ids == ()


@pytest.mark.parametrize("flag", [0, False, "0", None])
def test_it_refreshes_customers_who_are_not_guests(flag: object) -> None:
    body = encode(ORDER_VARIANTS[1] | {"is_guest_customer": flag})
    assert plan("order.status.update", body).customer_ids == ("2083543",)


def app_webhook(body: bytes, token: str = APP_TOKEN) -> webhooks.InboundWebhook:
    return webhook(body, None, ("app", token))


def test_it_accepts_app_events_on_the_secret_path_and_reads_event_and_store() -> None:
    body = encode(sample_resource("app.market.application.uninstall", "507530", None))
    event = receive(app_webhook(body), known_store(), APP_TOKEN)
    assert (event.event_type, event.store_ref, event.ignored_reason) == (
        "app.market.application.uninstall",
        "507530",
        None,
    )


@pytest.mark.parametrize("token", ["", "wrong", APP_TOKEN + "x"])
def test_it_refuses_app_events_on_a_wrong_path(token: str) -> None:
    body = encode(sample_resource("app.market.application.install", "507530", None))
    with pytest.raises(Unauthorized):
        receive(app_webhook(body, token), known_store(), APP_TOKEN)


def test_it_refuses_app_events_when_no_token_is_configured() -> None:
    body = encode(sample_resource("app.market.application.install", "507530", None))
    with pytest.raises(Unauthorized, match="ZID_APP_WEBHOOK_TOKEN"):
        receive(app_webhook(body, ""), known_store(), "")


@pytest.mark.parametrize(
    "body",
    [b"[]", b"{", encode({"store_id": 1}), encode({"event_name": "order.create", "store_id": 1}),
     encode({"event_name": "app.market.application.install"})],
)  # fmt: skip
def test_it_answers_400_to_app_events_that_name_no_event_or_store(body: bytes) -> None:
    with pytest.raises(BadPayload):
        receive(app_webhook(body), known_store(), APP_TOKEN)


def test_it_ignores_app_events_of_another_app() -> None:
    body = encode(sample_resource("app.market.application.uninstall", "507530", None))
    event = receive(app_webhook(body), known_store(), APP_TOKEN, app_id="999")
    assert event.ignored_reason == "app event for another app id"


@pytest.mark.parametrize(
    ("event", "status"),
    [
        ("app.market.application.authorized", "active"),
        ("app.market.application.install", "active"),
        ("app.market.subscription.renew", "active"),
        ("app.market.application.uninstall", "uninstalled"),
        ("app.market.subscription.suspended", "paused"),
        ("app.market.subscription.expired", "paused"),
    ],
)
def test_it_plans_the_store_status_an_app_event_brings(event: str, status: str) -> None:
    update = plan(event, encode(sample_resource(event, "507530", None))).store_update
    assert update is not None and update.status == status
    assert (update.status_reason is None) == (status == "active")
