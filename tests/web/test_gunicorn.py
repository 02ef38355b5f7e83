"""The receiver as production serves it: gunicorn with ``web.gunicorn_conf`` on
PostgreSQL and Redis (gevent workers), over real HTTP from many clients at once."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import redis
from sqlalchemy import select

from tests.conftest import SALLA_SECRET
from tests.factories import MERCHANT, add_salla_store
from tests.web.conftest import Served
from web import gunicorn_conf
from worker import dispatch
from worker.pipeline import inbox
from worker.platforms.salla import samples
from worker.runtime import Runtime
from worker.storage.models import InboxEvent


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_gevent_workers_group_commit_a_burst_and_ring_once(
    served: Served, runtime: Runtime
) -> None:
    url, log = served
    add_salla_store(runtime)
    bodies = [
        samples.encode(samples.sample_event("customer.updated", MERCHANT, str(9000 + n)))
        for n in range(60)
    ]

    def send(body: bytes) -> httpx.Response:
        headers = samples.signed_headers(body, SALLA_SECRET)
        return httpx.post(f"{url}/webhooks/salla", content=body, headers=headers, timeout=30)

    with ThreadPoolExecutor(max_workers=30) as pool:
        answers = list(pool.map(send, bodies + bodies[:10]))  # ten platform retries too
    statuses = [(a.status_code, a.json()["status"]) for a in answers]
    assert statuses.count((200, "accepted")) == 60 and statuses.count((200, "duplicate")) == 10
    forged = httpx.post(
        f"{url}/webhooks/salla", content=bodies[0], headers={"X-Salla-Signature": "0" * 64}
    )
    assert forged.status_code == 401 and "error" in forged.json()
    with runtime.sessions() as session:
        rows = list(session.scalars(select(InboxEvent)))
    assert len(rows) == 60 and {inbox.body_of(runtime, row) for row in rows} == set(bodies)
    broker = redis.Redis.from_url(runtime.settings.broker_url)
    tasks = [json.loads(m)["headers"]["task"] for m in broker.lrange("events", 0, -1)]
    broker.close()
    assert tasks == [dispatch.DRAIN_INBOX]  # no drain ran: the bell kept it at one
    assert "Using worker: gevent" in log.read_text()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"DATABASE_URL": "postgresql+psycopg://db/relay"}, "gevent"),
        ({"DATABASE_URL": "postgres://db/relay"}, "gevent"),
        ({"DATABASE_URL": "sqlite:///var/relay.sqlite3"}, "gthread"),
        ({}, "gthread"),
        ({"DATABASE_URL": "postgres://db/relay", "RELAY_WEB_WORKER_CLASS": "gthread"}, "gthread"),
    ],
)
def test_the_worker_class_follows_the_database(env: dict[str, str], expected: str) -> None:
    assert gunicorn_conf.choose_worker_class(env) == expected
