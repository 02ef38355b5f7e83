"""Shopify's receiving rules and what each topic means, as pure functions."""

from __future__ import annotations

import base64
import dataclasses
import json
from pathlib import Path

import pytest

from tests.worker.platforms.appstle_support import (
    CUSTOMER,
    SHOPIFY_PREVIOUS,
    SHOPIFY_SECRET,
    Stores,
    inbound,
    known_shop,
)
from worker.config import Settings
from worker.errors import BadPayload, Unauthorized
from worker.platforms.base import InboundWebhook, ReceivedEvent, SampleDelivery, StoreUpdate
from worker.platforms.shopify import samples
from worker.platforms.shopify.samples import encode, hmac_header
from worker.platforms.shopify.webhooks import dedupe_key, plan, receive
from worker.sandbox.appstle import DEMO_SHOP

APP_SECRETS = (SHOPIFY_SECRET, SHOPIFY_PREVIOUS)


def delivery(
    topic: str = "orders/paid", customer: str | None = CUSTOMER, secret: str = SHOPIFY_SECRET
) -> SampleDelivery:
    return samples.build(topic, DEMO_SHOP, customer, secret)


def received(webhook: InboundWebhook, stores: Stores | None = None) -> ReceivedEvent:
    return receive(webhook, stores or known_shop(), APP_SECRETS)


def test_it_accepts_a_delivery_signed_with_the_app_secret() -> None:
    sent = delivery()
    event = received(inbound("shopify", sent))
    assert (event.event_type, event.store_ref, event.ignored_reason) == (
        "orders/paid", DEMO_SHOP, None,
    )  # fmt: skip
    assert event.headers["x-shopify-topic"] == "orders/paid"
    assert event.headers["x-shopify-triggered-at"] == sent.headers["X-Shopify-Triggered-At"]
    assert event.headers["x-shopify-event-id"] == sent.headers["X-Shopify-Event-Id"]


def test_it_accepts_the_previous_app_secret_while_it_rotates() -> None:
    event = received(inbound("shopify", delivery(secret=SHOPIFY_PREVIOUS)))
    assert event.ignored_reason is None


def test_it_prefers_a_shops_own_secret_over_the_apps() -> None:
    stores = known_shop("shop-own-secret")
    assert received(inbound("shopify", delivery(secret="shop-own-secret")), stores).store_ref
    with pytest.raises(Unauthorized):
        received(inbound("shopify", delivery(secret=SHOPIFY_SECRET)), stores)


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        "   ",
        "not base64 at all!",
        "YWJj",  # base64, but 3 bytes: not a SHA-256 digest
        base64.b64encode(b"\x00" * 32).decode(),
        "✓✓✓✓",
        "\x00\x01",
        "=" * 44,
    ],
)
def test_it_refuses_missing_bad_and_malformed_signatures(signature: str | None) -> None:
    with pytest.raises(Unauthorized):
        received(inbound("shopify", delivery(), x_shopify_hmac_sha256=signature))


def test_it_refuses_a_signature_of_other_bytes() -> None:
    sent = delivery()
    tampered = dataclasses.replace(sent, body=sent.body.replace(b"#9999", b"#1"))
    with pytest.raises(Unauthorized):
        received(inbound("shopify", tampered))


def test_it_refuses_everything_when_no_secret_is_configured() -> None:
    with pytest.raises(Unauthorized):
        receive(inbound("shopify", delivery()), known_shop(), ())


def test_it_verifies_before_parsing_the_body() -> None:
    sent = dataclasses.replace(delivery(), body=b"<xml/>")
    with pytest.raises(Unauthorized):
        received(inbound("shopify", sent))
    signed = inbound("shopify", sent, x_shopify_hmac_sha256=hmac_header(b"<xml/>", SHOPIFY_SECRET))
    with pytest.raises(BadPayload):
        received(signed)


def test_it_keeps_an_event_of_an_unknown_shop_waiting_for_it_once_verified() -> None:
    stores = Stores()
    event = received(inbound("shopify", delivery()), stores)
    assert (event.store_ref, event.ignored_reason) == (DEMO_SHOP, None)
    assert event.waiting_for_store and stores.asked == [DEMO_SHOP]


def test_it_reads_the_shop_domain_lower_cased() -> None:
    event = received(inbound("shopify", delivery(), x_shopify_shop_domain=DEMO_SHOP.upper()))
    assert event.store_ref == DEMO_SHOP and event.ignored_reason is None


@pytest.mark.parametrize("shop", [None, "", "evil.example.com", "a b.myshopify.com", "✓"])
def test_it_ignores_a_delivery_without_a_usable_shop_domain(shop: str | None) -> None:
    event = received(inbound("shopify", delivery(), x_shopify_shop_domain=shop))
    assert event.store_ref is None and "X-Shopify-Shop-Domain" in (event.ignored_reason or "")


@pytest.mark.parametrize("topic", ["products/update", "orders/edited", "shop/update"])
def test_it_records_other_topics_as_ignored(topic: str) -> None:
    event = received(inbound("shopify", delivery(topic)))
    assert event.event_type == topic
    assert event.ignored_reason == f"topic {topic!r} does not affect points"


@pytest.mark.parametrize("topic", [None, "", "orders", "../../etc", "x" * 200])
def test_it_ignores_a_missing_or_malformed_topic(topic: str | None) -> None:
    event = received(inbound("shopify", delivery(), x_shopify_topic=topic))
    assert event.event_type == "invalid"
    assert event.ignored_reason == "missing or malformed X-Shopify-Topic"


def test_it_ignores_events_of_an_uninstalled_shop_but_not_the_uninstall() -> None:
    stores = known_shop(status="uninstalled")
    assert received(inbound("shopify", delivery()), stores).ignored_reason == (
        "store has uninstalled the app"
    )
    assert received(inbound("shopify", delivery("app/uninstalled")), stores).ignored_reason is None


def test_it_dedupes_on_the_event_id_across_deliveries() -> None:
    """Shopify's documented duplicate key: one event, two deliveries (two webhook ids)."""
    first = delivery()
    again = {"x_shopify_event_id": first.headers["X-Shopify-Event-Id"]}
    twin = received(inbound("shopify", delivery(), **again))
    assert twin.dedupe_key == received(inbound("shopify", first)).dedupe_key
    assert received(inbound("shopify", delivery())).dedupe_key != twin.dedupe_key


def test_it_keys_an_event_id_per_topic_and_shop() -> None:
    key = dedupe_key(DEMO_SHOP, "orders/paid", "ev1", "w1", b"")
    assert key == dedupe_key(DEMO_SHOP, "orders/paid", " ev1 ", "w2", b"{}")
    assert key != dedupe_key(DEMO_SHOP, "orders/create", "ev1", "w1", b"")
    assert key != dedupe_key("other.myshopify.com", "orders/paid", "ev1", "w1", b"")


def test_it_falls_back_to_the_webhook_id_without_an_event_id() -> None:
    first, second = delivery(), delivery()
    same_id = {"x_shopify_webhook_id": first.headers["X-Shopify-Webhook-Id"]}
    no_event = {"x_shopify_event_id": None}
    assert received(inbound("shopify", first, **no_event)).dedupe_key == (
        received(inbound("shopify", second, **same_id, **no_event)).dedupe_key
    )
    assert received(inbound("shopify", second, **no_event)).dedupe_key != (
        received(inbound("shopify", first, **no_event)).dedupe_key
    )


def test_it_dedupes_on_the_body_without_any_id() -> None:
    sent = delivery()
    bare = {"x_shopify_webhook_id": None, "x_shopify_event_id": None}
    first = received(inbound("shopify", sent, **bare))
    retry = received(inbound("shopify", sent, **bare))
    topic = "orders/paid"
    assert (
        first.dedupe_key == retry.dedupe_key == dedupe_key(DEMO_SHOP, topic, None, None, sent.body)
    )
    body = b'{"id": 1}'
    key = dedupe_key(DEMO_SHOP, topic, None, None, body)
    assert key == dedupe_key(DEMO_SHOP, topic, " ", "  ", body)
    assert key != dedupe_key(DEMO_SHOP, topic, None, None, b'{"id": 2}')
    assert key != dedupe_key("other.myshopify.com", topic, None, None, body)
    assert key != dedupe_key(DEMO_SHOP, "orders/create", None, None, body)


def test_it_keys_one_webhook_id_per_shop() -> None:
    assert dedupe_key(DEMO_SHOP, "t/x", None, "abc", b"") != (
        dedupe_key("other.myshopify.com", "t/x", None, "abc", b"")
    )


# --- plan ----------------------------------------------------------------------------------


def body(topic: str, customer: str | None = CUSTOMER) -> bytes:
    return delivery(topic, customer).body


@pytest.mark.parametrize("topic", sorted(samples.ORDER_TOPICS))
def test_it_refreshes_the_orders_customer_and_settles(topic: str) -> None:
    assert plan(topic, body(topic)).customer_ids == (CUSTOMER,)
    assert plan(topic, body(topic)).settle


@pytest.mark.parametrize("topic", ["customers/create", "customers/update"])
def test_it_refreshes_the_customer_itself_without_settling(topic: str) -> None:
    result = plan(topic, body(topic))
    assert (result.customer_ids, result.settle) == ((CUSTOMER,), False)


def test_it_falls_back_to_the_email_lower_cased() -> None:
    order = json.loads(body("orders/create"))
    order["customer"] = {"id": None, "email": "Sara@Example.COM"}
    assert plan("orders/create", encode(order)).customer_ids == ("email:sara@example.com",)
    order["customer"] = None
    order["email"] = "Guest@Example.com"
    assert plan("orders/create", encode(order)).customer_ids == ("email:guest@example.com",)
    customer = {"id": "not-a-number", "email": "X@Y.io"}
    assert plan("customers/update", encode(customer)).customer_ids == ("email:x@y.io",)


def test_it_reads_ids_as_numbers_strings_or_gids() -> None:
    for value in (int(CUSTOMER), CUSTOMER, f"gid://shopify/Customer/{CUSTOMER}"):
        assert plan("customers/create", encode({"id": value})).customer_ids == (CUSTOMER,)


def test_it_ignores_an_event_naming_no_customer() -> None:
    order = {"id": 1, "customer": None, "email": "not an address"}
    assert plan("orders/paid", encode(order)).ignored_reason == (
        "event names no customer id or email"
    )
    assert plan("orders/paid", b"not json").ignored_reason


def test_it_refreshes_a_refund_only_when_it_names_a_customer() -> None:
    refund = json.loads(body("refunds/create"))
    assert "order_id" in refund
    assert "order_id" in (plan("refunds/create", encode(refund)).ignored_reason or "")
    refund["customer"] = {"id": int(CUSTOMER)}
    result = plan("refunds/create", encode(refund))
    assert (result.customer_ids, result.settle) == ((CUSTOMER,), True)


def test_it_marks_the_store_uninstalled() -> None:
    assert plan("app/uninstalled", body("app/uninstalled")).store_update == StoreUpdate(
        status="uninstalled"
    )


def test_it_plans_nothing_for_other_topics() -> None:
    assert plan("products/update", body("products/update")).ignored_reason


# --- samples -------------------------------------------------------------------------------


@pytest.mark.parametrize("topic", samples.EVENT_NAMES)
def test_it_builds_samples_the_receiver_accepts(topic: str) -> None:
    event = received(inbound("shopify", delivery(topic)))
    assert event.event_type == topic and event.store_ref == DEMO_SHOP


def test_it_signs_samples_with_the_shops_secret_first() -> None:
    settings = Settings(
        Path("."), "sqlite://", "memory://", "k", shopify_webhook_secrets=APP_SECRETS
    )
    assert samples.default_secret(settings, {"webhook_secrets": ["own"]}) == "own"
    assert samples.default_secret(settings, {}) == SHOPIFY_SECRET
