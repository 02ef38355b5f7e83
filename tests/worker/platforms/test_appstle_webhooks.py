"""Appstle's (Svix) receiving rules and what each event means, as pure functions."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest

from tests.worker.platforms.appstle_support import (
    CUSTOMER,
    WHSEC,
    WHSEC_PREVIOUS,
    Stores,
    inbound,
    known_shop,
)
from worker.config import Settings
from worker.errors import BadPayload, Unauthorized
from worker.platforms.appstle import samples
from worker.platforms.appstle.webhooks import (
    HANDLED,
    LOYALTY_EVENTS,
    POINT_EVENTS,
    dedupe_key,
    plan,
    receive,
)
from worker.platforms.base import InboundWebhook, ReceivedEvent, SampleDelivery
from worker.sandbox.appstle import DEMO_SHOP, sign_appstle_webhook
from worker.signing import new_secret

EARNED = "loyalty.earned"


def delivery(
    event: str = EARNED,
    secret: str = WHSEC,
    body: bytes | None = None,
    msg_id: str | None = None,
    timestamp: int | None = None,
    prefix: str = "svix-",
) -> SampleDelivery:
    return sign_appstle_webhook(
        event, CUSTOMER, secret=secret, body=body, msg_id=msg_id, timestamp=timestamp,
        prefix=prefix,
    )  # fmt: skip


def received(webhook: InboundWebhook, stores: Stores | None = None) -> ReceivedEvent:
    return receive(webhook, stores or known_shop(WHSEC))


def test_it_accepts_a_signed_loyalty_event() -> None:
    sent = delivery()
    event = received(inbound("appstle", sent))
    assert (event.event_type, event.store_ref, event.ignored_reason) == (EARNED, DEMO_SHOP, None)
    assert event.headers == {
        "svix-id": sent.headers["svix-id"],
        "svix-timestamp": sent.headers["svix-timestamp"],
    }


def test_it_accepts_the_white_labelled_webhook_header_names() -> None:
    sent = delivery(prefix="webhook-")
    assert "svix-id" not in sent.headers
    event = received(inbound("appstle", sent))
    assert (event.event_type, event.ignored_reason) == (EARNED, None)
    assert event.headers == {
        "webhook-id": sent.headers["webhook-id"],
        "webhook-timestamp": sent.headers["webhook-timestamp"],
    }


def test_it_reads_each_header_from_svix_first_then_webhook() -> None:
    sent = delivery()
    mixed = {"svix_signature": None, "webhook_signature": sent.headers["svix-signature"]}
    assert received(inbound("appstle", sent, **mixed)).ignored_reason is None
    wrong_svix = {"webhook_signature": sent.headers["svix-signature"], "svix_signature": "v1,AAAA"}
    with pytest.raises(Unauthorized):  # the svix- name wins, as in Svix's own verifier
        received(inbound("appstle", sent, **wrong_svix))


def test_it_dedupes_one_message_under_either_header_name() -> None:
    svix = delivery(msg_id="msg_same")
    unbranded = delivery(msg_id="msg_same", prefix="webhook-")
    assert received(inbound("appstle", svix)).dedupe_key == (
        received(inbound("appstle", unbranded)).dedupe_key
    )


@pytest.mark.parametrize("part", ["id", "timestamp", "signature"])
def test_it_refuses_a_missing_header_under_both_names(part: str) -> None:
    sent = delivery(prefix="webhook-")
    with pytest.raises(Unauthorized, match=f"svix-{part}"):
        received(inbound("appstle", sent, **{f"webhook_{part}": None}))


def test_it_accepts_every_secret_of_a_rotating_shop() -> None:
    stores = known_shop(WHSEC, WHSEC_PREVIOUS)
    assert received(inbound("appstle", delivery(secret=WHSEC_PREVIOUS)), stores).store_ref
    assert received(inbound("appstle", delivery(secret=WHSEC)), stores).store_ref
    with pytest.raises(Unauthorized):
        received(inbound("appstle", delivery(secret=new_secret())), stores)


@pytest.mark.parametrize(
    "headers",
    [
        {"svix_signature": None},
        {"svix_id": None},
        {"svix_timestamp": None},
        {"svix_signature": ""},
        {"svix_signature": "v1,"},
        {"svix_signature": "v1,!!!not-base64!!!"},
        {"svix_signature": "v2,AAAA"},
        {"svix_signature": "garbage"},
        {"svix_signature": "v1,✓"},
        {"svix_timestamp": "yesterday"},
        {"svix_timestamp": "١٧٠٠٠٠٠٠٠٠"},
        {"svix_timestamp": "-1"},
        {"svix_timestamp": "9" * 40},
        {"svix_id": "another-id"},  # signed over the id: a changed id breaks it
    ],
)
def test_it_refuses_missing_bad_and_malformed_headers(headers: dict[str, str | None]) -> None:
    with pytest.raises(Unauthorized):
        received(inbound("appstle", delivery(), **headers))


def test_it_refuses_a_stale_or_future_timestamp() -> None:
    for skew in (-301, 301):
        with pytest.raises(Unauthorized, match="timestamp"):
            received(inbound("appstle", delivery(timestamp=int(time.time()) + skew)))
    assert received(inbound("appstle", delivery(timestamp=int(time.time()) - 200))).store_ref


def test_it_refuses_a_signature_of_other_bytes() -> None:
    sent = delivery()
    tampered = dataclasses.replace(sent, body=sent.body.replace(b'"points":50', b'"points":5000'))
    with pytest.raises(Unauthorized):
        received(inbound("appstle", tampered))


def test_it_refuses_an_unknown_shop_it_cannot_verify() -> None:
    stores = Stores()
    with pytest.raises(Unauthorized):
        received(inbound("appstle", delivery()), stores)
    assert stores.asked == [DEMO_SHOP]


@pytest.mark.parametrize(
    "path",
    [(), ("evil.example.com",), (DEMO_SHOP, "extra"), ("a b.myshopify.com",), ("✓",)],
)
def test_it_refuses_a_path_that_is_not_one_shop(path: tuple[str, ...]) -> None:
    stores = known_shop(WHSEC)
    with pytest.raises(Unauthorized):
        received(dataclasses.replace(inbound("appstle", delivery()), path=path), stores)
    assert stores.asked == []


def test_it_reads_the_shop_in_the_path_lower_cased() -> None:
    webhook = dataclasses.replace(inbound("appstle", delivery()), path=(DEMO_SHOP.upper(),))
    assert received(webhook).store_ref == DEMO_SHOP


@pytest.mark.parametrize("stored", [(), ("shpss_a-shopify-client-secret",), ("whsec_!!!",)])
def test_it_refuses_a_shop_without_a_usable_whsec_secret(stored: tuple[str, ...]) -> None:
    with pytest.raises(Unauthorized, match="whsec_"):
        received(inbound("appstle", delivery()), known_shop(*stored))


def test_it_skips_secrets_that_are_not_appstles() -> None:
    stores = known_shop("shpss_a-shopify-client-secret", "whsec_!!!", WHSEC)
    assert received(inbound("appstle", delivery()), stores).store_ref == DEMO_SHOP


def test_it_verifies_before_parsing_the_body() -> None:
    with pytest.raises(Unauthorized):
        received(inbound("appstle", delivery(), svix_signature="v1,AAAA"))
    with pytest.raises(BadPayload):
        received(inbound("appstle", delivery(body=b"[1, 2]")))


def test_it_records_other_event_types_as_ignored() -> None:
    event = received(inbound("appstle", delivery("loyalty.reward-expired")))
    assert event.ignored_reason == "event 'loyalty.reward-expired' does not affect points"


@pytest.mark.parametrize("document", [{"data": {}}, {"type": 7}, {"type": "../x y"}])
def test_it_records_an_event_without_a_type_as_ignored(document: dict[str, object]) -> None:
    event = received(inbound("appstle", delivery(body=json.dumps(document).encode())))
    assert (event.event_type, event.ignored_reason) == ("unknown", "event has no type")


def test_it_reads_the_type_from_event_type_too() -> None:
    body = json.dumps({"eventType": "loyalty.redeemed", "data": {}}).encode()
    assert received(inbound("appstle", delivery(body=body))).event_type == "loyalty.redeemed"


def test_it_ignores_events_of_an_uninstalled_shop() -> None:
    stores = known_shop(WHSEC, status="uninstalled")
    event = received(inbound("appstle", delivery()), stores)
    assert event.ignored_reason == "store has uninstalled the app"


def test_it_dedupes_on_the_svix_id_per_shop() -> None:
    first = delivery(msg_id="msg_1")
    retry = delivery(msg_id="msg_1", timestamp=int(time.time()) + 5)
    assert received(inbound("appstle", first)).dedupe_key == (
        received(inbound("appstle", retry)).dedupe_key
    )
    assert dedupe_key(DEMO_SHOP, "msg_1") != dedupe_key(DEMO_SHOP, "msg_2")
    assert dedupe_key(DEMO_SHOP, "msg_1") != dedupe_key("other.myshopify.com", "msg_1")


# --- plan ----------------------------------------------------------------------------------


def encoded(data: object, event: str = EARNED) -> bytes:
    return json.dumps({"type": event, "data": data}).encode()


@pytest.mark.parametrize("event", sorted(HANDLED))
def test_it_refreshes_the_customer_without_settling(event: str) -> None:
    result = plan(event, delivery(event).body)
    assert (result.customer_ids, result.settle, result.ignored_reason) == ((CUSTOMER,), False, None)


@pytest.mark.parametrize(
    "data",
    [
        {"customerId": int(CUSTOMER)},
        {"customerId": CUSTOMER},
        {"customer": {"id": int(CUSTOMER)}},
        {"shopifyCustomerId": f"gid://shopify/Customer/{CUSTOMER}"},
        {"customerId": None, "customer": {"id": CUSTOMER}, "customerEmail": "a@b.co"},
    ],
)
def test_it_finds_the_customer_id_where_appstle_may_put_it(data: object) -> None:
    assert plan(EARNED, encoded(data)).customer_ids == (CUSTOMER,)


@pytest.mark.parametrize(
    "data",
    [
        {"customerEmail": "Sara@Example.com"},
        {"email": "SARA@example.com"},
        {"customerId": None, "customer": {"email": "sara@example.com"}},
    ],
)
def test_it_falls_back_to_the_email_lower_cased(data: object) -> None:
    assert plan(EARNED, encoded(data)).customer_ids == ("email:sara@example.com",)


def test_it_reads_a_flat_event_without_data() -> None:
    body = json.dumps({"type": EARNED, "customerId": int(CUSTOMER)}).encode()
    assert plan(EARNED, body).customer_ids == (CUSTOMER,)


def test_it_ignores_an_event_naming_no_customer() -> None:
    assert plan(EARNED, encoded({"points": 5})).ignored_reason == (
        "event names no customer id or email"
    )
    assert plan(EARNED, b"not json").ignored_reason


def test_it_handles_both_documented_families() -> None:
    assert len(LOYALTY_EVENTS) == 8 and len(POINT_EVENTS) == 11
    for event in ("loyalty.sign-up", "point.cancelled", "vip.tier_downgraded", "reward.used"):
        assert received(inbound("appstle", delivery(event))).ignored_reason is None


def test_it_plans_nothing_for_other_events() -> None:
    assert plan("loyalty.reward-expired", encoded({"customerId": 1})).customer_ids == ()


# --- samples -------------------------------------------------------------------------------


@pytest.mark.parametrize("event", samples.EVENT_NAMES)
def test_it_builds_samples_the_receiver_accepts(event: str) -> None:
    sent = samples.build(event, DEMO_SHOP, CUSTOMER, WHSEC)
    assert sent.path == f"/webhooks/appstle/{DEMO_SHOP}"
    assert received(inbound("appstle", sent)).event_type == event


def test_it_signs_samples_with_the_shops_appstle_secret() -> None:
    settings = Settings(Path("."), "sqlite://", "memory://", "k")
    stored = {"appstle_webhook_secrets": [WHSEC, WHSEC_PREVIOUS], "webhook_secrets": ["x"]}
    assert samples.default_secret(settings, stored) == WHSEC
    assert samples.default_secret(settings, {"webhook_secrets": ["x"]}) is None
