"""Every receiver rule, against real PostgreSQL / SQLite and real Redis."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from tests.conftest import SALLA_SECRET, quiet_broker, relay_env
from tests.factories import MERCHANT, add_salla_store, encode, salla_event, salla_headers
from web import create_app
from web.ingest import _Pending
from worker.config import Settings, load_settings
from worker.pipeline import inbox
from worker.platforms.base import ReceivedEvent
from worker.runtime import Runtime
from worker.storage.models import InboxEvent


@pytest.fixture
def app(runtime: Runtime, settings: Settings) -> Flask:
    return create_app(settings)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def queue(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    quiet_broker(redis_url)
    yield client
    client.close()


def post(client: FlaskClient, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    response = client.post("/webhooks/salla", data=body, headers=headers)
    return response.status_code, response.get_json()


def inbox_rows(runtime: Runtime) -> list[InboxEvent]:
    with runtime.sessions() as session:
        return list(session.scalars(select(InboxEvent)))


def test_it_stores_and_enqueues_a_signed_event(
    client: FlaskClient, runtime: Runtime, queue: redis.Redis
) -> None:
    add_salla_store(runtime)
    body = encode(salla_event())
    status, answer = post(client, body, salla_headers(body, SALLA_SECRET))
    assert (status, answer["status"]) == (200, "accepted")
    [row] = inbox_rows(runtime)
    assert (row.status, row.store_ref, inbox.body_of(runtime, row)) == ("pending", MERCHANT, body)
    assert queue.llen("events") == 1


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Salla-Signature": "0" * 64},
        {"X-Salla-Signature": "not hex at all ✓"},
        {"X-Salla-Security-Strategy": "Token", "Authorization": "Bearer wrong"},
        {"X-Salla-Security-Strategy": "Magic", "X-Salla-Signature": "x"},
    ],
)
def test_it_rejects_missing_or_bad_signatures(
    client: FlaskClient, runtime: Runtime, headers: dict[str, str], queue: redis.Redis
) -> None:
    add_salla_store(runtime)
    status, answer = post(client, encode(salla_event()), headers)
    assert status == 401 and "error" in answer
    assert inbox_rows(runtime) == [] and queue.llen("events") == 0


@pytest.mark.parametrize("authorization", [SALLA_SECRET, f"Bearer {SALLA_SECRET}"])
def test_it_accepts_the_token_strategy(
    client: FlaskClient, runtime: Runtime, authorization: str
) -> None:
    add_salla_store(runtime)
    headers = {"X-Salla-Security-Strategy": "Token", "Authorization": authorization}
    status, _ = post(client, encode(salla_event()), headers)
    assert status == 200 and len(inbox_rows(runtime)) == 1


def test_it_accepts_the_previous_secret_during_rotation(
    runtime: Runtime, tmp_path: Path, database_url: str, redis_url: str
) -> None:
    env = relay_env(tmp_path, database_url, redis_url, SALLA_WEBHOOK_SECRET="new-secret")
    env["SALLA_WEBHOOK_SECRET_PREVIOUS"] = SALLA_SECRET
    client = create_app(load_settings(env)).test_client()
    add_salla_store(runtime)
    for secret in ("new-secret", SALLA_SECRET):
        body = encode(salla_event("customer.updated", data={"id": secret}))
        assert post(client, body, salla_headers(body, secret))[0] == 200
    body = encode(salla_event("customer.login"))
    assert post(client, body, salla_headers(body, "third-secret"))[0] == 401


def test_it_lets_a_store_secret_override_the_app_secret(
    client: FlaskClient, runtime: Runtime
) -> None:
    add_salla_store(runtime, webhook_secrets=("store-secret",))
    body = encode(salla_event())
    assert post(client, body, salla_headers(body, SALLA_SECRET))[0] == 401
    assert post(client, body, salla_headers(body, "store-secret"))[0] == 200


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'{"merchant": 1}', b'{"event": 5}'])
def test_it_answers_400_for_signed_bodies_that_are_not_events(
    client: FlaskClient, runtime: Runtime, body: bytes, queue: redis.Redis
) -> None:
    status, answer = post(client, body, salla_headers(body, SALLA_SECRET))
    assert status == 400 and "event" in answer["error"]
    assert inbox_rows(runtime) == [] and queue.llen("events") == 0


def test_it_answers_413_for_oversized_bodies(client: FlaskClient, runtime: Runtime) -> None:
    body = encode(salla_event(data={"blob": "x" * (256 * 1024)}))
    status, _ = post(client, body, salla_headers(body, SALLA_SECRET))
    assert status == 413 and inbox_rows(runtime) == []


def test_it_acknowledges_a_duplicate_without_processing_it_again(
    client: FlaskClient, runtime: Runtime, queue: redis.Redis
) -> None:
    add_salla_store(runtime)
    body = encode(salla_event())
    headers = salla_headers(body, SALLA_SECRET)
    assert post(client, body, headers)[1]["status"] == "accepted"
    status, answer = post(client, body, headers)
    assert (status, answer["status"]) == (200, "duplicate")
    assert len(inbox_rows(runtime)) == 1 and queue.llen("events") == 1


@pytest.mark.parametrize(
    ("event", "merchant", "reason"),
    [
        ("product.created", MERCHANT, "does not affect points"),
        ("order.created", "1" * 256, "unknown merchant"),
    ],
)
def test_it_records_events_it_does_not_act_on_as_ignored(
    client: FlaskClient,
    runtime: Runtime,
    queue: redis.Redis,
    event: str,
    merchant: str,
    reason: str,
) -> None:
    add_salla_store(runtime)
    body = encode(salla_event(event, merchant=merchant))
    status, answer = post(client, body, salla_headers(body, SALLA_SECRET))
    assert (status, answer["status"]) == (200, "ignored") and reason in answer["reason"]
    [row] = inbox_rows(runtime)
    assert row.status == "ignored" and queue.llen("events") == 0


def test_it_answers_503_when_the_database_is_unreachable(
    tmp_path: Path, redis_url: str, queue: redis.Redis
) -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=1"
    client = create_app(load_settings(relay_env(tmp_path, url, redis_url))).test_client()
    body = encode(salla_event())
    response = client.post("/webhooks/salla", data=body, headers=salla_headers(body, SALLA_SECRET))
    assert response.status_code == 503 and response.headers["Retry-After"].isdigit()
    assert queue.llen("events") == 0


def test_it_answers_503_when_the_broker_is_unreachable_but_keeps_the_event(
    runtime: Runtime, tmp_path: Path, database_url: str
) -> None:
    env = relay_env(tmp_path, database_url, "redis://127.0.0.1:1/0")
    client = create_app(load_settings(env)).test_client()
    add_salla_store(runtime)
    body = encode(salla_event())
    headers = salla_headers(body, SALLA_SECRET)
    response = client.post("/webhooks/salla", data=body, headers=headers)
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert [row.status for row in inbox_rows(runtime)] == ["pending"]


def test_it_answers_404_for_an_unknown_platform(client: FlaskClient) -> None:
    assert client.post("/webhooks/nowhere", data=b"{}").status_code == 404


def test_it_counts_rows_in_metrics(client: FlaskClient, runtime: Runtime) -> None:
    add_salla_store(runtime)
    body = encode(salla_event())
    post(client, body, salla_headers(body, SALLA_SECRET))
    text = client.get("/metrics").get_data(as_text=True)
    assert 'relay_rows{status="pending",table="inbox"} 1.0' in text
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(InboxEvent)) == 1


def test_it_group_commits_concurrent_webhooks_without_losing_or_doubling(
    app: Flask, runtime: Runtime, queue: redis.Redis
) -> None:
    add_salla_store(runtime)
    bodies = [encode(salla_event("customer.updated", data={"id": i % 20})) for i in range(60)]

    def send(body: bytes) -> tuple[int, dict[str, str]]:
        return post(app.test_client(), body, salla_headers(body, SALLA_SECRET))

    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(send, bodies))
    statuses = [answer["status"] for status, answer in answers if status == 200]
    assert len(statuses) == 60
    assert statuses.count("accepted") == 20 and statuses.count("duplicate") == 40
    rows = inbox_rows(runtime)
    assert len(rows) == 20 and len({row.dedupe_key for row in rows}) == 20
    # One drain message for all of them (the bell stayed set), and that drain
    # claims every new row exactly once.
    [message] = [json.loads(m) for m in queue.lrange("events", 0, -1)]
    assert message["headers"]["task"] == "relay.drain_inbox"
    assert inbox.claim_pending(runtime, 100) == sorted(row.id for row in rows)
    assert inbox.claim_pending(runtime, 100) == []


@pytest.mark.parametrize("unstorable", ["\u0000", "\ud800"])
def test_a_signed_event_naming_an_unstorable_character_is_stored_not_refused(
    client: FlaskClient, runtime: Runtime, queue: redis.Redis, unstorable: str
) -> None:
    # JSON may spell a NUL ("\u0000", PostgreSQL text cannot hold one) or a lone
    # surrogate ("\ud800", no UTF-8 for it); either once made every retry fail.
    add_salla_store(runtime)
    document = salla_event()
    document["event"] = f"order.created{unstorable}"
    body = json.dumps(document).encode()
    status, answer = post(client, body, salla_headers(body, SALLA_SECRET))
    assert (status, answer["status"]) == (200, "ignored")
    [row] = inbox_rows(runtime)
    assert row.body == b"" and unstorable not in row.event_type  # ignored: no body kept


def test_a_merchant_id_with_control_characters_is_no_merchant(
    client: FlaskClient, runtime: Runtime, queue: redis.Redis
) -> None:
    add_salla_store(runtime)
    document = salla_event()
    document["merchant"] = "12345\u000009876"
    body = encode(document)
    status, answer = post(client, body, salla_headers(body, SALLA_SECRET))
    assert (status, answer["status"]) == (200, "ignored") and answer["reason"] == "unknown merchant"
    assert queue.llen("events") == 0


def test_a_zid_path_with_a_nul_is_unauthenticated(client: FlaskClient) -> None:
    response = client.post(
        "/webhooks/zid/30%0059/order.create", data=b"{}", headers={"Authorization": "Basic eDp5"}
    )
    assert response.status_code == 401 and "error" in response.get_json()


def test_a_merchant_of_300_digits_poisons_no_batch(
    app: Flask, runtime: Runtime, queue: redis.Redis
) -> None:
    # Once a signed integer merchant of 256+ digits overflowed store_ref's
    # varchar(255) and failed its whole group commit, every retry again.
    add_salla_store(runtime)
    poison = [encode(salla_event(merchant=str(10**300 + n))) for n in range(20)]
    legit = [encode(salla_event("customer.updated", data={"id": n})) for n in range(20)]

    def send(body: bytes) -> tuple[int, dict[str, str]]:
        return post(app.test_client(), body, salla_headers(body, SALLA_SECRET))

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(
            pool.map(send, [b for pair in zip(poison, legit, strict=True) for b in pair])
        )
    assert [(s, a["status"]) for s, a in answers[1::2]] == [(200, "accepted")] * 20
    assert {(s, a["status"], a["reason"]) for s, a in answers[::2]} == {
        (200, "ignored", "unknown merchant")
    }


def test_a_row_the_database_refuses_is_refused_alone(app: Flask, runtime: Runtime) -> None:
    rows = [
        inbox.row("salla", body, event)
        for body, event in (
            (b"{}", ReceivedEvent("customer.updated", MERCHANT, f"{n:064x}")) for n in range(5)
        )
    ]
    rows[2] = rows[2] | {"event_type": None}  # NOT NULL: no validation let it through
    writer = app.extensions["relay.receiver"].writer
    outcomes = writer._store([_Pending(row) for row in rows])
    assert [outcome.refused for outcome in outcomes] == [False, False, True, False, False]
    stored = {row.dedupe_key for row in inbox_rows(runtime)}
    assert stored == {row["dedupe_key"] for n, row in enumerate(rows) if n != 2}
