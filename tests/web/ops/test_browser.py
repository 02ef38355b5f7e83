"""Done when: an operator, in a real browser, finds a dead delivery to a failing
sink, fixes the sink, clicks Retry and sees it delivered — and the sink received
it exactly once, with the same ``webhook-id`` it had refused.

Everything is real: Chromium over HTTP to the dashboard (served in-process by
werkzeug), Redis as the broker, a Celery worker process sending the delivery,
and a signed-webhook receiver on 127.0.0.1.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.security import generate_password_hash

from tests.conftest import quiet_broker, relay_env
from tests.factories import add_salla_store, add_webhook_sink
from tests.web.ops.browser import BreakableEndpoint, chromium_page
from tests.web.ops.conftest import OPERATOR, PASSWORD
from web import create_app
from worker.config import Settings, load_settings
from worker.pipeline import outbox
from worker.runtime import Runtime
from worker.sandbox.capture import capture_log, create_capture_app
from worker.sandbox.server import RunningServer
from worker.signing import new_secret
from worker.storage.models import Delivery

ROOT = Path(__file__).resolve().parents[3]
WAIT = 60.0


def browser_env(tmp_path: Path, database_url: str, redis_url: str) -> dict[str, str]:
    return relay_env(
        tmp_path,
        database_url,
        redis_url,
        RELAY_OPS_USERS=f"{OPERATOR}:{generate_password_hash(PASSWORD)}",
        RELAY_DELIVERY_MAX_ATTEMPTS="1",  # the first 500 buries it: dead at once
    )


@pytest.fixture
def settings(tmp_path: Path, database_url: str, redis_url: str) -> Settings:
    """The shared runtime, with the dashboard on and one attempt per delivery."""
    quiet_broker(redis_url)
    return load_settings(browser_env(tmp_path, database_url, redis_url))


@pytest.fixture
def celery_worker(runtime: Runtime, tmp_path: Path) -> Iterator[None]:
    """A Celery worker process on the deliveries queue, on the test's database and Redis."""
    env = browser_env(tmp_path, runtime.settings.database_url, runtime.settings.broker_url)
    command = [
        sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker",
        "--queues", "deliveries", "--concurrency", "1", "--pool", "solo",
        "--loglevel", "WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    worker = subprocess.Popen(command, env=os.environ | env, cwd=ROOT, start_new_session=True)
    yield
    os.killpg(worker.pid, signal.SIGTERM)
    try:
        worker.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)


def dead_delivery(runtime: Runtime, serve: Callable[[Any], RunningServer]) -> tuple[str, Any]:
    """A delivery that the failing sink has already buried, by the real outbox."""
    secret = new_secret()
    receiver = create_capture_app(secret)
    endpoint = BreakableEndpoint(receiver)
    sink = serve(endpoint)
    store = add_salla_store(runtime)
    add_webhook_sink(runtime, store, f"{sink.url}/loyalty", secret)
    payload = {"customer_id": "7", "kinds": ["points.balance_changed"], "balance_after": 5}
    with runtime.transaction() as session:
        [due] = outbox.create_deliveries(session, store, None, payload)
    outbox.deliver(runtime, due.delivery_id)
    with runtime.sessions() as session:
        assert session.get_one(Delivery, due.delivery_id).status == "dead"
    return due.delivery_id, endpoint


def test_an_operator_retries_a_dead_delivery_in_the_browser(
    runtime: Runtime, serve: Callable[[Any], RunningServer], celery_worker: None
) -> None:
    delivery_id, endpoint = dead_delivery(runtime, serve)
    dashboard = serve(create_app(runtime.settings))
    with chromium_page() as page:
        page.goto(f"{dashboard.url}/ops/")
        page.fill("#user", OPERATOR)
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.get_by_role("link", name="Deliveries").click()
        row = page.locator("tr", has_text=delivery_id)
        assert "dead" in row.inner_text() and "500" in row.inner_text()
        endpoint.broken = False  # the merchant fixed their endpoint
        row.get_by_role("button", name="Retry").click()
        assert "queued for delivery" in page.locator(".flash").inner_text()
        page.locator("a", has_text=delivery_id).click()
        wait_for_status(page, "delivered")
        attempts = page.locator("table tbody tr").all_inner_texts()
        assert "delivered" in attempts[-1] and "200" in attempts[-1]  # the attempt that went
    log = capture_log(endpoint.receiver)
    [received] = log.received()
    assert received.id == delivery_id and received.verified
    assert endpoint.refused() == [delivery_id] and len(log.requests()) == 1


def wait_for_status(page: Any, status: str) -> None:
    """Reload the detail page until the heading shows ``status`` (the worker is async)."""
    deadline = time.monotonic() + WAIT
    while status not in page.locator("h1").inner_text():
        assert time.monotonic() < deadline, f"still {page.locator('h1').inner_text()!r}"
        time.sleep(0.5)
        page.reload()
