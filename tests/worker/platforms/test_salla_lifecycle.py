"""A Salla store's life (subscription, trial, uninstall, authorize) and what ops
see, against the Salla sandbox and a signed-webhook capture server over real
HTTP, on SQLite and PostgreSQL. The sandbox's request log proves which API
calls were made; the capture server proves what was delivered."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient

from tests.conftest import SALLA_SECRET, relay_env
from tests.factories import CUSTOMER, MERCHANT, add_salla_store, add_webhook_sink
from tests.pipeline_support import all_rows
from web import create_app
from worker.cli.app import main
from worker.pipeline import inbox, outbox, refresh
from worker.platforms import build_platforms
from worker.platforms.base import Platform
from worker.platforms.salla import samples
from worker.platforms.salla.client import POINTS_PATH
from worker.runtime import Runtime
from worker.sandbox.capture import CaptureLog, capture_log, create_capture_app
from worker.sandbox.salla import create_salla_sandbox
from worker.sandbox.salla_state import SallaSandboxState, points_entry
from worker.sandbox.server import RunningServer
from worker.signing import new_secret
from worker.storage.models import Delivery, InboxEvent, RateBudget, RefreshJob, Store

Serve = Callable[[Any], RunningServer]
NOW = datetime.now(UTC)
MERCHANT_DEFAULTS = {"debounce_seconds": 5.0, "settle_delays": (60.0, 600.0)}


@dataclasses.dataclass
class World:
    runtime: Runtime
    platforms: dict[str, Platform]
    salla: SallaSandboxState
    capture: CaptureLog
    client: FlaskClient
    store: Store
    env: dict[str, str]

    def post(self, event: str, customer: str | None = CUSTOMER) -> int:
        delivery = samples.build(event, MERCHANT, customer, SALLA_SECRET)
        response = self.client.post(delivery.path, data=delivery.body, headers=delivery.headers)
        assert response.status_code == 200, response.get_json()
        return max(all_rows(self.runtime, InboxEvent), key=lambda row: row.id).id

    def handle(self, event: str, customer: str | None = CUSTOMER) -> list[refresh.Due]:
        return inbox.handle(self.runtime, self.platforms, self.post(event, customer))

    def process(self, event: str) -> None:
        """The event, then its first refresh as if its debounce had passed, then delivery."""
        first = self.handle(event)[0].job_id
        with self.runtime.transaction() as session:
            session.get_one(RefreshJob, first).due_at = datetime.now(UTC)
        outbox.send_own(self.runtime, refresh.run(self.runtime, self.platforms, first))

    def points_calls(self) -> int:
        return self.salla.request_count(POINTS_PATH)

    def store_row(self) -> Store:
        with self.runtime.sessions() as session:
            return session.get_one(Store, self.store.id)

    def stores_list(self) -> str:
        result = CliRunner().invoke(main, ["stores", "list"], env=self.env)
        assert result.exit_code == 0, result.output
        return result.output


@pytest.fixture
def world(runtime: Runtime, serve: Serve, tmp_path: Path, redis_url: str) -> World:
    salla = SallaSandboxState()
    salla.add_merchant(MERCHANT, access_token="access-1", refresh_token="refresh-1")
    salla.set_entries(MERCHANT, CUSTOMER, [entry(900)])
    api = serve(create_salla_sandbox(salla))
    secret = new_secret()
    capture_app = create_capture_app(secret)
    sink = serve(capture_app)
    client = create_app(runtime.settings).test_client()
    store = add_salla_store(runtime, api_base=api.url)
    add_webhook_sink(runtime, store, f"{sink.url}/loyalty", secret)
    merchant = dataclasses.replace(runtime.settings, **MERCHANT_DEFAULTS)  # type: ignore[arg-type]
    return World(
        dataclasses.replace(runtime, settings=merchant),
        build_platforms(merchant),
        salla,
        capture_log(capture_app),
        client,
        store,
        relay_env(tmp_path, runtime.settings.database_url, redis_url),
    )


def entry(points: int, **fields: Any) -> dict[str, Any]:
    expiry = NOW + timedelta(days=200)
    return points_entry(points, created=NOW - timedelta(days=1), expiry=expiry, **fields)


def test_it_pauses_a_store_whose_subscription_expired_and_calls_nothing(world: World) -> None:
    waiting = world.handle("order.created")  # now, and two settle re-checks later
    world.handle("app.subscription.expired")

    store = world.store_row()
    assert (store.status, store.status_reason) == ("paused", "subscription expired")
    jobs = all_rows(world.runtime, RefreshJob)
    assert len(jobs) == len(waiting) == 3
    assert {(job.status, job.last_error) for job in jobs} == {
        ("failed", "store is paused: subscription expired")
    }
    later = world.post("order.updated")
    assert inbox.handle(world.runtime, world.platforms, later) == []
    event = next(e for e in all_rows(world.runtime, InboxEvent) if e.id == later)
    assert (event.status, event.reason) == ("ignored", "store is paused: subscription expired")
    for due in waiting:
        refresh.run(world.runtime, world.platforms, due.job_id)
    assert world.points_calls() == 0 and world.capture.received() == []
    assert "paused" in world.stores_list() and "subscription expired" in world.stores_list()


def test_a_job_claimed_after_the_pause_makes_no_call(world: World) -> None:
    [due] = world.handle("customer.updated")
    with world.runtime.transaction() as session:  # paused between the request and the run
        store = session.get_one(Store, world.store.id)
        store.status, store.status_reason = "paused", "trial expired"
        session.get_one(RefreshJob, due.job_id).due_at = datetime.now(UTC)

    assert refresh.run(world.runtime, world.platforms, due.job_id) == []

    [job] = all_rows(world.runtime, RefreshJob)
    assert (job.status, job.last_error) == ("failed", "store is paused: trial expired")
    assert world.points_calls() == 0


@pytest.mark.parametrize("resume", ["app.subscription.renewed", "app.store.authorize"])
def test_it_resumes_a_paused_store(world: World, resume: str) -> None:
    world.handle("app.trial.expired")
    world.handle(resume, customer=None)

    assert (world.store_row().status, world.store_row().status_reason) == ("active", None)
    if resume == "app.store.authorize":  # Salla's sample tokens are not the sandbox's
        world.salla.add_merchant(MERCHANT, access_token=_stored_token(world), refresh_token="r")
        world.salla.set_entries(MERCHANT, CUSTOMER, [entry(900)])
    world.process("customer.login")
    assert world.points_calls() == 1
    assert [received.data["balance_after"] for received in world.capture.received()] == [900]


def test_an_uninstalled_store_needs_a_new_authorization(world: World) -> None:
    world.handle("app.uninstalled")
    world.handle("app.subscription.started")  # no tokens: does not bring it back

    assert world.store_row().status == "uninstalled"
    later = world.post("order.refunded")
    inbox.handle(world.runtime, world.platforms, later)
    event = next(e for e in all_rows(world.runtime, InboxEvent) if e.id == later)
    assert event.reason == "store has uninstalled the app"
    world.handle("app.store.authorize")
    assert world.store_row().status == "active"
    assert world.points_calls() == 0


def test_it_holds_a_balance_with_an_unknown_label_and_shows_it_to_ops(world: World) -> None:
    world.salla.set_entries(MERCHANT, CUSTOMER, [entry(900), entry(50, status="مجمدة")])

    world.process("customer.login")

    [job] = all_rows(world.runtime, RefreshJob)
    assert job.status == "held" and "مجمدة" in (job.last_error or "")
    assert world.capture.received() == [] and all_rows(world.runtime, Delivery) == []
    assert "NEEDS ATTENTION: 1 customer(s)" in world.stores_list()
    metrics = world.client.get("/metrics").get_data(as_text=True)
    assert f'relay_customers_needing_attention{{store="salla:{MERCHANT}"}} 1.0' in metrics
    assert 'relay_rows{status="held",table="refresh"} 1.0' in metrics

    world.salla.set_entries(MERCHANT, CUSTOMER, [entry(900)])  # the label is gone
    world.process("customer.updated")

    assert [received.data["balance_after"] for received in world.capture.received()] == [900]
    assert "NEEDS ATTENTION" not in world.stores_list()
    metrics = world.client.get("/metrics").get_data(as_text=True)
    assert "relay_customers_needing_attention{" not in metrics


def test_a_temporary_block_backs_off_counts_a_try_and_holds_the_store(world: World) -> None:
    world.salla.fail_next(1, status=403)
    [due] = world.handle("customer.login")
    with world.runtime.transaction() as session:
        session.get_one(RefreshJob, due.job_id).due_at = datetime.now(UTC)

    with pytest.raises(refresh.Reschedule) as later:
        refresh.run(world.runtime, world.platforms, due.job_id)

    assert later.value.countdown >= 600
    [job] = all_rows(world.runtime, RefreshJob)
    assert (job.status, job.attempts) == ("retrying", 1) and "blocked" in (job.last_error or "")
    [budget] = all_rows(world.runtime, RateBudget)  # every worker waits the block out
    assert budget.blocked_until and budget.blocked_until > datetime.now(UTC) + timedelta(
        seconds=590
    )


def _stored_token(world: World) -> str:
    token: str = world.runtime.cipher.open(world.store_row().credentials)["access_token"]
    return token
