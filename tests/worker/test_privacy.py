"""Data at rest and privacy requests, through the real receiver over HTTP, the
platform sandboxes, a capture sink and the CLI, on SQLite and PostgreSQL: no
token, email or phone is stored in clear, and a forgotten customer leaves no row."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from tests.conftest import SALLA_SECRET, relay_env
from tests.factories import MERCHANT, add_salla_store, add_webhook_sink, encode, salla_headers
from tests.pipeline_support import all_rows, process_event
from tests.privacy_support import found_in_clear, unsealed
from tests.worker.platforms.appstle_support import SHOPIFY_SECRET, credentials
from web import create_app
from worker import privacy
from worker import runtime as runtime_module
from worker.cli.app import main
from worker.customers import HASHED_PREFIX
from worker.pipeline import inbox, refresh
from worker.pipeline.snapshots import remember_contact
from worker.platforms import build_platforms
from worker.platforms.base import Platform, StoreUpdate
from worker.platforms.shopify import compliance
from worker.platforms.shopify import samples as shopify_samples
from worker.points import CustomerContact
from worker.runtime import Runtime
from worker.sandbox.appstle import DEMO_SHOP, AppstleSandboxState, create_appstle_sandbox
from worker.sandbox.capture import create_capture_app
from worker.sandbox.salla import create_salla_sandbox
from worker.sandbox.salla_state import SallaSandboxState, points_entry
from worker.sandbox.server import RunningServer
from worker.signing import new_secret
from worker.storage.models import CustomerPoints, DataRequest, InboxEvent, RefreshJob, Store
from worker.stores import save_store

Serve = Callable[[Any], RunningServer]
NOW = datetime.now(UTC)
SALLA_CUSTOMER = "1979797979"  # distinctive: found in no other row by chance
EMAIL, PHONE = "huda.private@example.com", "0555123987"
SHOPIFY_CUSTOMER = "7390123456789"
SHOPPER = "sara.shopper@example.com"
KNOWN_SHOPPER = {"id": int(SHOPIFY_CUSTOMER), "email": SHOPPER}


@dataclasses.dataclass
class World:
    runtime: Runtime
    platforms: dict[str, Platform]
    url: str  # the receiver, over real HTTP
    salla_store: Store
    shopify_store: Store
    appstle: AppstleSandboxState
    env: dict[str, str]

    def salla(self, event: str, data: dict[str, Any]) -> httpx.Response:
        body = encode(
            {"event": event, "merchant": int(MERCHANT), "created_at": "now", "data": data}
        )
        headers = salla_headers(body, SALLA_SECRET)
        return httpx.post(f"{self.url}/webhooks/salla", content=body, headers=headers)

    def shopify(self, topic: str, document: dict[str, Any]) -> httpx.Response:
        body = shopify_samples.encode(document)
        headers = shopify_samples.signed_headers(topic, DEMO_SHOP, body, SHOPIFY_SECRET)
        return httpx.post(f"{self.url}/webhooks/shopify", content=body, headers=headers)

    def process(self, response: httpx.Response) -> None:
        assert response.status_code == 200, response.text
        process_event(self.runtime, self.platforms, int(response.json()["id"]))

    def cli(self, *args: str) -> Result:
        return CliRunner().invoke(main, list(args), env=self.env, catch_exceptions=False)


@pytest.fixture
def world(runtime: Runtime, serve: Serve, tmp_path: Path, redis_url: str) -> World:
    salla = SallaSandboxState()
    salla.add_merchant(MERCHANT, access_token="access-1", refresh_token="refresh-1")
    expiry = NOW + timedelta(days=300)
    salla.set_entries(MERCHANT, SALLA_CUSTOMER, [points_entry(700, created=NOW, expiry=expiry)])
    salla_api = serve(create_salla_sandbox(salla))
    appstle = AppstleSandboxState()
    appstle.add_shop(DEMO_SHOP, credentials()["appstle_api_key"])
    appstle.set_customer(DEMO_SHOP, SHOPIFY_CUSTOMER, email=SHOPPER, available=120, tier="Gold")
    appstle_api = serve(create_appstle_sandbox(appstle))
    env = relay_env(tmp_path, runtime.settings.database_url, redis_url)
    env["SHOPIFY_WEBHOOK_SECRETS"] = SHOPIFY_SECRET
    settings = dataclasses.replace(runtime.settings, shopify_webhook_secrets=(SHOPIFY_SECRET,))
    receiver = serve(create_app(settings))
    runtime_module.configure(runtime.settings)
    salla_store = add_salla_store(runtime, api_base=salla_api.url)
    with runtime.transaction() as session:
        update = StoreUpdate(status="active", credentials=credentials())
        shop = save_store(runtime, session, "shopify", DEMO_SHOP, update, api_base=appstle_api.url)
    secret = new_secret()
    capture = serve(create_capture_app(secret))
    for store in (salla_store, shop):
        add_webhook_sink(runtime, store, f"{capture.url}/loyalty", secret)
    platforms = build_platforms(settings)
    return World(runtime, platforms, receiver.url, salla_store, shop, appstle, env)


def salla_customer() -> dict[str, Any]:
    return {"id": int(SALLA_CUSTOMER), "first_name": "Huda", "email": EMAIL, "mobile": PHONE}


def shopify_example(topic: str, customer: str | None = None, **fields: Any) -> dict[str, Any]:
    """Shopify's published payload for ``topic``, for the demo shop (and this customer)."""
    document = compliance.sample(topic, DEMO_SHOP, customer)
    if fields:
        document["customer"] |= fields
    return document


# --- at rest ---------------------------------------------------------------


def test_it_never_stores_an_authorize_body_with_its_tokens_in_clear(world: World) -> None:
    data = {"access_token": "tok-access-CLEAR", "refresh_token": "tok-refresh-CLEAR",
            "expires": int(NOW.timestamp()) + 86400, "scope": "offline_access"}  # fmt: skip
    sent = world.salla("app.store.authorize", data)
    assert sent.status_code == 200
    assert found_in_clear(world.runtime, "tok-access-CLEAR", "tok-refresh-CLEAR") == []
    [row] = [
        e for e in all_rows(world.runtime, InboxEvent) if e.event_type == "app.store.authorize"
    ]
    assert (
        json.loads(inbox.body_of(world.runtime, row))["data"]["access_token"] == "tok-access-CLEAR"
    )
    world.process(sent)
    assert (
        world.runtime.cipher.open(_store(world, world.salla_store.id).credentials)["access_token"]
        == "tok-access-CLEAR"
    )
    [row] = [
        e for e in all_rows(world.runtime, InboxEvent) if e.event_type == "app.store.authorize"
    ]
    assert (row.status, row.body) == ("done", b"")
    assert found_in_clear(world.runtime, "tok-access-CLEAR", "tok-refresh-CLEAR") == []


def test_it_keeps_no_email_or_phone_of_an_event_in_clear(world: World) -> None:
    sent = world.salla("customer.updated", salla_customer())
    assert found_in_clear(world.runtime, EMAIL, PHONE, "Huda") == []
    world.process(sent)
    assert found_in_clear(world.runtime, EMAIL, PHONE, "Huda") == []
    [row] = all_rows(world.runtime, InboxEvent)  # kept for replay, sealed, under its customer
    assert (row.status, row.customer_id) == ("done", SALLA_CUSTOMER) and row.body != b""


def test_it_keeps_a_customer_known_by_email_under_a_keyed_hash(world: World) -> None:
    world.process(world.shopify("customers/update", {"id": None, "email": SHOPPER.upper()}))
    [points] = all_rows(world.runtime, CustomerPoints)
    assert points.customer_id.startswith(HASHED_PREFIX) and points.available == 120
    assert world.runtime.cipher.open(points.contact)["email"] == SHOPPER
    [asked] = world.appstle.requests()
    assert (asked.customer_email, asked.customer_id) == (SHOPPER, None)  # queried by the address
    assert found_in_clear(world.runtime, SHOPPER) == []
    # The same address is the same customer: a second event refreshes the same row.
    world.process(world.shopify("customers/update", {"id": None, "email": SHOPPER}))
    assert [row.customer_id for row in all_rows(world.runtime, CustomerPoints)] == [
        points.customer_id
    ]


def test_it_reads_old_bodies_and_keeps_customer_ids_after_the_key_rotates(
    world: World, runtime: Runtime
) -> None:
    world.process(world.shopify("customers/update", {"id": None, "email": SHOPPER}))
    [before] = all_rows(runtime, CustomerPoints)
    waiting = world.salla("customer.updated", salla_customer())  # sealed with the old key
    keys = "a-new-key," + runtime.settings.secret_key
    new = runtime_module.configure(dataclasses.replace(runtime.settings, secret_key=keys))
    process_event(new, world.platforms, _accepted(waiting))
    again = world.shopify("customers/update", {"id": None, "email": SHOPPER})
    process_event(new, world.platforms, _accepted(again))
    ids = sorted(row.customer_id for row in all_rows(new, CustomerPoints))
    assert ids == sorted([before.customer_id, SALLA_CUSTOMER])
    new.engine.dispose()


def _accepted(response: httpx.Response) -> int:
    assert response.status_code == 200, response.text
    return int(response.json()["id"])


def _store(world: World, store_id: int) -> Store:
    with world.runtime.sessions() as session:
        return session.get_one(Store, store_id)


# --- forgetting and exporting ------------------------------------------------


def test_it_forgets_a_salla_customer_from_every_table(world: World) -> None:
    world.process(world.salla("customer.updated", salla_customer()))
    world.process(world.salla("order.created", {"id": 5551, "customer": salla_customer()}))
    pending = world.salla("customer.login", salla_customer())  # not processed yet
    assert found_in_clear(world.runtime, SALLA_CUSTOMER)  # the customer is there to forget
    result = world.cli(
        "privacy", "forget", "--store", f"salla:{MERCHANT}", "--customer", SALLA_CUSTOMER
    )
    assert result.exit_code == 0 and "customer_points 1" in result.output, result.output
    assert found_in_clear(world.runtime, SALLA_CUSTOMER, EMAIL, PHONE, "Huda") == []
    process_event(world.runtime, world.platforms, int(pending.json()["id"]))
    assert all_rows(world.runtime, CustomerPoints) == []  # the erased event refreshes no one


def test_it_forgets_a_customer_named_by_email_from_the_cli(world: World) -> None:
    world.process(world.salla("customer.updated", salla_customer()))  # contact holds EMAIL
    world.process(world.shopify("customers/update", {"id": None, "email": SHOPPER}))  # a hash
    for store, address in (
        (f"salla:{MERCHANT}", EMAIL),
        (f"shopify:{DEMO_SHOP}", f"email:{SHOPPER}"),
    ):
        result = world.cli("privacy", "forget", "--store", store, "--customer", address.upper())
        assert result.exit_code == 0 and "customer_points 1" in result.output, result.output
    assert all_rows(world.runtime, CustomerPoints) == []
    assert found_in_clear(world.runtime, SALLA_CUSTOMER, EMAIL, PHONE, SHOPPER) == []


def test_it_exports_a_customer_as_json(world: World, tmp_path: Path) -> None:
    world.process(world.salla("customer.updated", salla_customer()))
    out = tmp_path / "export.json"
    store = f"salla:{MERCHANT}"
    result = world.cli(
        "privacy", "export", "--store", store, "--customer", SALLA_CUSTOMER, "--out", str(out)
    )
    assert result.exit_code == 0 and "exported 1 customer record(s)" in result.output
    document = json.loads(out.read_text(encoding="utf-8"))
    [customer] = document["customers"]
    assert (document["store"], customer["customer_id"]) == (store, SALLA_CUSTOMER)
    assert customer["points"]["available"] == 700 and customer["changes"]
    assert customer["deliveries"] and customer["contact"]["email"] == EMAIL
    printed = world.cli("privacy", "export", "--store", store, "--customer", SALLA_CUSTOMER)
    assert json.loads(printed.output)["customers"][0]["customer_id"] == SALLA_CUSTOMER


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["forget", "--store", "salla:404", "--customer", "1"], "no store salla:404"),
        (["forget", "--store", f"salla:{MERCHANT}"], "either --customer or --whole-store"),
        (["forget", "--store", "nocolon", "--customer", "1"], "store key"),
        (["export", "--store", f"salla:{MERCHANT}", "--customer", " "], "customer id"),
        (["export", "--store", f"salla:{MERCHANT}", "--customer", "1",
          "--out", "/nonexistent/x.json"], "cannot write /nonexistent/x.json"),
    ],
)  # fmt: skip
def test_it_answers_a_bad_privacy_command_with_one_line(
    world: World, args: list[str], message: str
) -> None:
    result = world.cli("privacy", *args)
    assert result.exit_code != 0 and message in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert "Traceback" not in result.output and len(errors) == 1


# --- Shopify's compliance webhooks, over HTTP -----------------------------


def test_it_forgets_a_customer_on_customers_redact(world: World) -> None:
    world.process(
        world.shopify("customers/update", {"id": int(SHOPIFY_CUSTOMER), "email": SHOPPER})
    )
    world.process(world.shopify("customers/update", {"id": None, "email": SHOPPER}))
    redact = shopify_example("customers/redact", id=int(SHOPIFY_CUSTOMER), email=SHOPPER)
    world.process(world.shopify("customers/redact", redact))
    assert all_rows(world.runtime, CustomerPoints) == []
    assert found_in_clear(world.runtime, SHOPPER, SHOPIFY_CUSTOMER, "555-625-1199") == []
    assert _store(world, world.shopify_store.id).status == "active"  # the shop stays


def test_it_erases_a_processed_body_kept_for_replay_on_customers_redact(world: World) -> None:
    world.process(
        world.shopify("customers/update", {"id": int(SHOPIFY_CUSTOMER), "email": SHOPPER})
    )
    [kept] = all_rows(world.runtime, InboxEvent)
    assert (kept.status, kept.customer_id) == ("done", SHOPIFY_CUSTOMER) and kept.body != b""
    redact = shopify_example("customers/redact", id=int(SHOPIFY_CUSTOMER), email=SHOPPER)
    world.process(world.shopify("customers/redact", redact))
    erased = {row.id: row for row in all_rows(world.runtime, InboxEvent)}[kept.id]
    assert (erased.body, erased.customer_id, erased.reason) == (b"", None, privacy.ERASED)


def test_it_forgets_the_shop_on_shop_redact_after_uninstall(world: World) -> None:
    world.process(
        world.shopify("customers/update", {"id": int(SHOPIFY_CUSTOMER), "email": SHOPPER})
    )
    world.process(world.shopify("app/uninstalled", {"id": 1, "domain": DEMO_SHOP}))
    world.process(world.shopify("shop/redact", shopify_example("shop/redact")))
    with world.runtime.sessions() as session:
        assert session.get(Store, world.shopify_store.id) is None
    assert found_in_clear(world.runtime, SHOPPER, SHOPIFY_CUSTOMER, "appstle") == []
    [kept] = [e for e in all_rows(world.runtime, InboxEvent) if e.platform == "shopify"]
    assert (kept.event_type, kept.status, kept.body) == ("shop/redact", "done", b"")
    assert _store(world, world.salla_store.id).status == "active"  # other stores untouched


def test_it_records_a_data_request_for_the_merchant_to_export(world: World, tmp_path: Path) -> None:
    world.process(
        world.shopify("customers/update", {"id": int(SHOPIFY_CUSTOMER), "email": SHOPPER})
    )
    request = shopify_example("customers/data_request", id=int(SHOPIFY_CUSTOMER), email=SHOPPER)
    world.process(world.shopify("customers/data_request", request))
    [recorded] = all_rows(world.runtime, DataRequest)
    assert (recorded.customer_id, recorded.request_ref) == (SHOPIFY_CUSTOMER, "9999")
    waiting = world.cli("privacy", "requests")
    assert f"--customer {SHOPIFY_CUSTOMER}" in waiting.output
    assert "relay_data_requests_waiting 1.0" in httpx.get(f"{world.url}/metrics").text
    out = tmp_path / "request.json"
    args = ["--store", f"shopify:{DEMO_SHOP}", "--customer", SHOPIFY_CUSTOMER, "--out", str(out)]
    assert world.cli("privacy", "export", *args).exit_code == 0
    [customer] = json.loads(out.read_text(encoding="utf-8"))["customers"]
    assert (
        customer["points"]["tier"] == "Gold"
        and customer["data_requests"][0]["request_ref"] == "9999"
    )
    assert world.cli("privacy", "requests").output.strip() == "no data requests waiting"
    assert found_in_clear(world.runtime, SHOPPER, "555-625-1199") == []


def test_it_answers_a_forged_compliance_webhook_with_401(world: World) -> None:
    body = shopify_samples.encode(shopify_example("customers/redact"))
    headers = shopify_samples.signed_headers("customers/redact", DEMO_SHOP, body, "not-the-secret")
    answer = httpx.post(f"{world.url}/webhooks/shopify", content=body, headers=headers)
    assert answer.status_code == 401 and all_rows(world.runtime, InboxEvent) == []


def test_it_drops_a_refresh_that_ends_after_its_customer_was_forgotten(world: World) -> None:
    [due, *_] = inbox.handle(
        world.runtime, world.platforms, _accepted(world.shopify("customers/update", KNOWN_SHOPPER))
    )
    world.appstle.set_delay(1.0)  # the fetch is in flight while the customer is forgotten
    with ThreadPoolExecutor(max_workers=1) as pool:
        running = pool.submit(refresh.run, world.runtime, world.platforms, due.job_id)
        while not any(job.status == "working" for job in all_rows(world.runtime, RefreshJob)):
            time.sleep(0.02)
        with world.runtime.transaction() as session:
            store = session.get_one(Store, world.shopify_store.id)
            privacy.forget_customer(
                world.runtime, session, world.platforms, store, [SHOPIFY_CUSTOMER]
            )
        assert running.result() == []
    assert all_rows(world.runtime, CustomerPoints) == []
    assert found_in_clear(world.runtime, SHOPIFY_CUSTOMER) == []


def test_it_forgets_by_id_the_same_person_kept_under_their_address(world: World) -> None:
    world.process(world.shopify("customers/update", {"id": None, "email": SHOPPER}))  # a hash
    world.process(world.shopify("customers/update", KNOWN_SHOPPER))  # by id
    with world.runtime.transaction() as session:  # the contact a platform gave for the id
        contact = CustomerContact(email=SHOPPER)
        remember_contact(world.runtime, session, world.shopify_store.id, SHOPIFY_CUSTOMER, contact)
    assert len(all_rows(world.runtime, CustomerPoints)) == 2
    store = f"shopify:{DEMO_SHOP}"
    result = world.cli("privacy", "forget", "--store", store, "--customer", SHOPIFY_CUSTOMER)
    assert result.exit_code == 0 and "customer_points 2" in result.output, result.output
    assert found_in_clear(world.runtime, SHOPIFY_CUSTOMER, SHOPPER) == []


def test_it_forgets_a_whole_store_from_the_cli(world: World) -> None:
    world.process(world.salla("customer.updated", salla_customer()))
    world.salla("customer.login", salla_customer())  # still waiting in the inbox
    result = world.cli("privacy", "forget", "--store", f"salla:{MERCHANT}", "--whole-store")
    assert result.exit_code == 0 and "stores 1" in result.output, result.output
    assert found_in_clear(world.runtime, MERCHANT, SALLA_CUSTOMER, EMAIL, PHONE) == []
    assert _store(world, world.shopify_store.id).status == "active"


@pytest.mark.parametrize(
    ("platform", "external_id"),
    [("salla", "5550001"), ("zid", "3059"), ("shopify", "other-shop.myshopify.com")],
)
def test_it_forgets_a_customer_of_any_platform(
    world: World, platform: str, external_id: str
) -> None:
    customer, email, phone = "cust-424242", "any.platform@example.com", "+966500000042"
    with world.runtime.transaction() as session:
        store = save_store(world.runtime, session, platform, external_id, StoreUpdate())
        contact = CustomerContact(email=email, phone=phone, name="Noura")
        remember_contact(world.runtime, session, store.id, customer, contact)
        refresh.request(world.runtime.settings, session, store.id, customer, settle=True)
    result = world.cli(
        "privacy", "forget", "--store", f"{platform}:{external_id}", "--customer", customer
    )
    assert result.exit_code == 0 and "customer_points 1" in result.output, result.output
    assert found_in_clear(world.runtime, customer, email, phone, "Noura") == []


def test_it_stops_processing_an_event_erased_while_it_was_claimed(world: World) -> None:
    inbox_id = _accepted(world.salla("customer.login", salla_customer()))
    with world.runtime.transaction() as session:
        assert inbox.claim(session, inbox_id)  # a worker has it
    store = f"salla:{MERCHANT}"
    result = world.cli("privacy", "forget", "--store", store, "--customer", SALLA_CUSTOMER)
    assert "inbox_events 1" in result.output, result.output
    assert inbox.process(world.runtime, world.platforms, inbox_id) == []
    [row] = all_rows(world.runtime, InboxEvent)
    assert (row.status, row.reason, row.body) == ("ignored", privacy.ERASED, b"")
    assert all_rows(world.runtime, RefreshJob) == []


def test_it_fails_a_body_no_configured_key_decrypts_with_a_reason(
    world: World, runtime: Runtime
) -> None:
    inbox_id = _accepted(world.salla("customer.login", salla_customer()))
    other = runtime_module.configure(dataclasses.replace(runtime.settings, secret_key="other"))
    assert process_event(other, world.platforms, inbox_id) == []
    [row] = all_rows(other, InboxEvent)
    assert row.status == "failed" and "RELAY_SECRET_KEY differs" in (row.reason or "")
    other.engine.dispose()


def test_it_triggers_a_compliance_webhook_that_forgets_the_customer(world: World) -> None:
    world.process(world.shopify("customers/update", KNOWN_SHOPPER))
    result = world.cli(
        "trigger", "shopify", "customers/redact", "--store", DEMO_SHOP,
        "--customer", SHOPIFY_CUSTOMER, "--url", world.url, "--secret", SHOPIFY_SECRET,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    [redact] = [e for e in all_rows(world.runtime, InboxEvent) if e.status == "pending"]
    process_event(world.runtime, world.platforms, redact.id)
    assert all_rows(world.runtime, CustomerPoints) == []
    assert found_in_clear(world.runtime, SHOPIFY_CUSTOMER) == []


def test_it_lets_a_claimed_event_of_a_forgotten_shop_go(world: World) -> None:
    claimed = _accepted(world.shopify("customers/update", KNOWN_SHOPPER))
    with world.runtime.transaction() as session:
        assert inbox.claim(session, claimed)  # a worker has it
    world.process(world.shopify("shop/redact", shopify_example("shop/redact")))
    assert inbox.process(world.runtime, world.platforms, claimed) == []
    assert all_rows(world.runtime, CustomerPoints) == all_rows(world.runtime, RefreshJob) == []


def test_the_audit_reads_past_sealed_values_but_not_clear_text(runtime: Runtime) -> None:
    token = runtime.cipher.seal({"name": "x"}).decode("latin-1")
    by_chance = token[:20] + "HuDa" + token[20:]  # base64 that happens to spell a name
    assert "huda" not in unsealed(f"config {by_chance}").lower()
    assert "huda" in unsealed(f"{token} Huda {token}").lower()
