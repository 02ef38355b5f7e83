"""Overview, Stores and Sinks as an operator sees them, on a real database."""

from __future__ import annotations

from datetime import timedelta

from flask.testing import FlaskClient
from sqlalchemy import update

from tests.factories import add_salla_store, add_webhook_sink
from tests.web.ops.conftest import csrf_token
from worker.pipeline import outbox
from worker.runtime import Runtime
from worker.storage.models import Delivery, InboxEvent, Sink, Store, utcnow

ARABIC_NAME = "متجر الورود"


def name_store(runtime: Runtime, store_id: int, name: str, **values: object) -> None:
    with runtime.transaction() as session:
        session.execute(update(Store).where(Store.id == store_id).values(name=name, **values))


def test_it_renders_an_arabic_store_name_in_its_own_direction(
    runtime: Runtime, operator: FlaskClient
) -> None:
    store = add_salla_store(runtime)
    name_store(runtime, store.id, ARABIC_NAME, status="needs_reauth", status_reason="401 من سلة")
    page = operator.get("/ops/stores").get_data(as_text=True)
    assert f'<td dir="auto">{ARABIC_NAME}</td>' in page
    assert "needs re-auth" in page
    assert f'<td dir="auto">{ARABIC_NAME}</td>' in operator.get("/ops/").get_data(as_text=True)


def test_it_escapes_what_a_store_calls_itself(runtime: Runtime, operator: FlaskClient) -> None:
    store = add_salla_store(runtime)
    name_store(runtime, store.id, "<script>alert(1)</script>")
    page = operator.get("/ops/stores").get_data(as_text=True)
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page


def test_it_shows_a_stores_last_webhook(runtime: Runtime, operator: FlaskClient) -> None:
    store = add_salla_store(runtime)
    received = utcnow().replace(microsecond=0) - timedelta(minutes=3)
    with runtime.transaction() as session:
        for status, minutes in (("done", 3), ("failed", 9)):
            session.add(InboxEvent(platform="salla", store_ref=store.external_id, event_type="x",
                                   dedupe_key=status, body=b"", status=status,
                                   received_at=utcnow().replace(microsecond=0)
                                   - timedelta(minutes=minutes)))  # fmt: skip
    page = operator.get("/ops/stores").get_data(as_text=True)
    assert received.strftime("%Y-%m-%d %H:%M:%S") in page


def test_it_pages_stores_by_id(runtime: Runtime, operator: FlaskClient) -> None:
    first = add_salla_store(runtime, "1")
    second = add_salla_store(runtime, "2")
    page = operator.get(f"/ops/stores?after={first.id}").get_data(as_text=True)
    assert second.key in page and f"<code>{first.key}</code>" not in page


def test_it_pauses_and_resumes_a_sink(runtime: Runtime, operator: FlaskClient) -> None:
    store = add_salla_store(runtime)
    sink = add_webhook_sink(runtime, store, "http://127.0.0.1:9/hooks", "whsec_x")
    token = csrf_token(operator, "/ops/sinks")
    answer = operator.post(f"/ops/sinks/{sink.id}/pause", data={"csrf_token": token})
    assert answer.status_code == 303
    with runtime.sessions() as session:
        paused = session.get_one(Sink, sink.id)
        assert paused.paused and paused.paused_by == "operator"
    assert "Resume" in operator.get("/ops/sinks").get_data(as_text=True)
    operator.post(f"/ops/sinks/{sink.id}/resume", data={"csrf_token": token})
    with runtime.sessions() as session:
        assert not session.get_one(Sink, sink.id).paused


def test_it_shows_a_breaker_open_with_its_reason(runtime: Runtime, operator: FlaskClient) -> None:
    store = add_salla_store(runtime)
    sink = add_webhook_sink(runtime, store, "http://127.0.0.1:9/hooks", "whsec_x")
    with runtime.transaction() as session:
        session.execute(
            update(Sink)
            .where(Sink.id == sink.id)
            .values(paused=True, paused_by="breaker", paused_reason="10 failures in a row",
                    consecutive_failures=10)
        )  # fmt: skip
    page = operator.get("/ops/sinks").get_data(as_text=True)
    assert "breaker open" in page and "10 failures in a row" in page


def test_it_counts_dead_deliveries_and_charts_the_delivered(
    runtime: Runtime, operator: FlaskClient
) -> None:
    store = add_salla_store(runtime)
    add_webhook_sink(runtime, store, "http://127.0.0.1:9/hooks", "whsec_x")
    payload = {"customer_id": "7", "kinds": ["points.balance_changed"]}
    with runtime.transaction() as session:
        dues = [outbox.create_deliveries(session, store, None, payload)[0] for _ in range(3)]
    now = utcnow()
    with runtime.transaction() as session:
        ids = [due.delivery_id for due in dues]
        session.execute(update(Delivery).where(Delivery.id == ids[0]).values(status="dead"))
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_(ids[1:]))
            .values(status="delivered", delivered_at=now, next_attempt_at=now)
        )
    page = operator.get("/ops/").get_data(as_text=True)
    assert '<div class="muted">dead deliveries</div>\n    <div class="big">1</div>' in page
    assert '<div class="muted">deliveries, last hour</div>\n    <div class="big">2</div>' in page
    assert "<polyline points=" in page
    assert '<span class="status status-dead">dead 1</span>' in page  # the tables' rows
    assert "<td>deliveries</td>" in page and "<td>events</td>" in page  # Celery's queues
