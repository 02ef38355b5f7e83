"""PNGs of the /ops dashboard for the README: ``python bench/screenshots.py``.

Not a test. Fills a scratch SQLite database with a demo installation (three
stores, one named in Arabic and one needing re-authorization; a sink whose
breaker opened; an hour of webhooks, refreshes and deliveries; a dead delivery
with its attempts), serves the dashboard on 127.0.0.1, logs in with headless
Chromium (``/usr/bin/chromium``, driven by Playwright) and saves the Overview,
Deliveries, Sinks and a delivery's detail page into ``docs/screenshots/``.
"""

from __future__ import annotations

import argparse
import random
import secrets
import sys
from datetime import datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory

import project  # noqa: F401  (before anything imports worker)
from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from web import create_app  # noqa: E402
from worker.config import load_settings  # noqa: E402
from worker.crypto import generate_key  # noqa: E402
from worker.pipeline import inbox  # noqa: E402
from worker.pipeline.outbox import new_delivery_id  # noqa: E402
from worker.platforms.base import ReceivedEvent  # noqa: E402
from worker.platforms.salla import samples  # noqa: E402
from worker.points import CHANGE_KINDS  # noqa: E402
from worker.runtime import Runtime, configure  # noqa: E402
from worker.sandbox.server import serve_in_thread  # noqa: E402
from worker.storage.migrate import upgrade  # noqa: E402
from worker.storage.models import (  # noqa: E402
    Delivery,
    DeliveryAttempt,
    InboxEvent,
    RateBudget,
    RefreshJob,
    Sink,
    Store,
    utcnow,
)

USER = "ops"
STORES = [  # platform, external id, name, status, reason
    ("salla", "1234509876", "متجر الورود", "active", None),
    ("zid", "88231", "Oud & Musk House", "needs_reauth", "refresh refused: 401 invalid_grant"),
    ("shopify", "demo-shop.myshopify.com", "مكتبة النور", "active", None),
]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    options = parser.parse_args()
    password = secrets.token_urlsafe(16)
    with TemporaryDirectory() as scratch:
        env = {
            "RELAY_DATA_DIR": scratch,
            "DATABASE_URL": f"sqlite:///{scratch}/demo.sqlite3",
            "RELAY_OPS_USERS": f"{USER}:{generate_password_hash(password)}",
            "RELAY_ALLOW_PRIVATE_URLS": "1",
            "RELAY_SECRET_KEY": generate_key(),
        }
        settings = load_settings(env)
        runtime = configure(settings)
        upgrade(runtime.engine)
        delivery_id = fill(runtime)
        with serve_in_thread(create_app(settings)) as server:
            shoot(server.url, password, delivery_id, options.out, options.chromium)
    print(f"saved to {options.out}")  # noqa: T201


def fill(runtime: Runtime) -> str:
    """The demo rows; returns the dead delivery's id."""
    rng = random.Random(12)
    now = utcnow()
    with runtime.transaction() as session:
        stores = [Store(platform=p, external_id=e, name=n, status=s, status_reason=r,
                        credentials=runtime.cipher.seal({"access_token": "demo"}))
                  for p, e, n, s, r in STORES]  # fmt: skip
        session.add_all(stores)
        session.flush()
        sinks = [_sink(runtime, store) for store in stores]
        session.add_all(sinks)
        session.flush()
        _breaker_open(sinks[1], now)
        session.add(RateBudget(key=f"store:{stores[0].id}:customers", tokens=12.0, updated_at=now))
        _hour_of_traffic(runtime, session, stores, sinks, rng, now)
        return _dead_delivery(session, stores[0], sinks[0], now)


def _sink(runtime: Runtime, store: Store) -> Sink:
    config = {"url": "https://crm.example.com/hooks/loyalty", "secret": "whsec_" + "A" * 32}
    return Sink(store_id=store.id, kind="webhook", config=runtime.cipher.seal(config),
                kinds=list(CHANGE_KINDS), last_success_at=utcnow())  # fmt: skip


def _breaker_open(sink: Sink, now: datetime) -> None:
    sink.paused, sink.paused_by, sink.consecutive_failures = True, "breaker", 10
    sink.paused_reason = "10 consecutive failures (last: HTTP 503)"
    sink.last_failure_at = now - timedelta(minutes=4)
    sink.probe_at = now + timedelta(minutes=6)


def _hour_of_traffic(
    runtime: Runtime,
    session: Session,
    stores: list[Store],
    sinks: list[Sink],
    rng: random.Random,
    now: datetime,
) -> None:
    """Webhooks, refreshes and deliveries spread over the last hour, busier lately."""
    for minute in range(60):
        start = now.replace(second=0, microsecond=0) - timedelta(minutes=59 - minute)
        at = min(now, start + timedelta(seconds=rng.randint(0, 59)))
        for n in range(rng.randint(2, 6) + minute // 8):
            index = rng.choice([0, 2])  # the zid store needs re-authorization: it is quiet
            store, sink, customer = stores[index], sinks[index], f"c{minute}-{n}"
            session.add(_webhook(runtime, store, f"{minute}-{n}", at))
            if n % 2 == 0:
                session.add(_finished_job(store, customer, at))
                _delivered(session, sink, customer, at, rng.randint(40, 180))


def _webhook(runtime: Runtime, store: Store, key: str, at: datetime) -> InboxEvent:
    body = samples.encode(samples.sample_event("order.status.updated", store.external_id, "7"))
    event = ReceivedEvent("order.status.updated", store.external_id, key)
    row = inbox.sealed(inbox.row(store.platform, body, event), runtime.cipher)
    return InboxEvent(**(row | {"status": "done", "received_at": at}))


def _finished_job(store: Store, customer: str, at: datetime) -> RefreshJob:
    return RefreshJob(
        store_id=store.id, customer_id=customer, slot="soon", status="done",
        due_at=at, finished_at=at,
    )  # fmt: skip


def _delivered(session: Session, sink: Sink, customer: str, at: datetime, ms: int) -> None:
    delivery = Delivery(
        id=new_delivery_id(), sink_id=sink.id, store_id=sink.store_id, customer_id=customer,
        event_type="points.balance_changed", payload={"kinds": ["points.balance_changed"]},
        status="delivered", attempts=1, created_at=at, next_attempt_at=at, delivered_at=at,
    )  # fmt: skip
    session.add(delivery)
    session.add(_attempt(delivery, 1, at, "delivered", 200, ms))


def _attempt(
    delivery: Delivery, number: int, at: datetime, outcome: str, code: int, ms: int
) -> DeliveryAttempt:
    return DeliveryAttempt(
        delivery_id=delivery.id, sink_id=delivery.sink_id, number=number, started_at=at,
        finished_at=at + timedelta(milliseconds=ms), outcome=outcome, status_code=code,
        error=None if code < 300 else f"HTTP {code} from the endpoint", duration_ms=ms,
    )  # fmt: skip


def _dead_delivery(session: Session, store: Store, sink: Sink, now: datetime) -> str:
    """A delivery the endpoint refused three times, naming a customer (shown masked)."""
    customer = {"name": "نورة العتيبي", "email": "noura@example.com", "phone": "+966512345678"}
    payload = {
        "platform": "salla", "store": store.key, "customer_id": "1257881496",
        "kinds": ["points.balance_changed"], "balance_before": 120, "balance_after": 520,
        "customer": customer,
    }  # fmt: skip
    dead = Delivery(
        id=new_delivery_id(), sink_id=sink.id, store_id=store.id, customer_id="1257881496",
        event_type="points.balance_changed", payload=payload, status="dead", attempts=3,
        created_at=now - timedelta(minutes=31), next_attempt_at=now - timedelta(minutes=12),
        last_status_code=500, last_error="gave up after 3 attempts: HTTP 500 from the endpoint",
    )  # fmt: skip
    session.add(dead)
    for number, (ago, code) in enumerate(((31, 503), (24, 500), (12, 500)), start=1):
        outcome = "dead" if number == 3 else "retrying"
        session.add(_attempt(dead, number, now - timedelta(minutes=ago), outcome, code, 240))
    return dead.id


def shoot(url: str, password: str, delivery_id: str, out: Path, chromium: str) -> None:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        page.goto(f"{url}/ops/login")
        page.fill("#user", USER)
        page.fill("#password", password)
        page.click("button[type=submit]")
        for name, path in (("overview", "/ops/"), ("deliveries", "/ops/deliveries?status=dead"),
                           ("sinks", "/ops/sinks"), ("stores", "/ops/stores"),
                           ("delivery", f"/ops/deliveries/{delivery_id}")):  # fmt: skip
            page.goto(f"{url}{path}")
            page.screenshot(path=str(out / f"{name}.png"), full_page=True)
        browser.close()


if __name__ == "__main__":
    main()
