"""The deliveries query layer on SQLite and PostgreSQL: keyset pages, filters,
masking, and retries/discards that move only the rows they may."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.worker.ops.support import START, add_deliveries, store_and_sink
from worker.ops import OpsError
from worker.ops.deliveries import discard, list_deliveries, retry, retry_matching, show_delivery
from worker.ops.pages import BadCursor
from worker.runtime import Runtime
from worker.storage.models import Delivery, DeliveryAttempt

STATES = ["delivered", "dead", "pending", "dead", "skipped", "retrying", "sending", "dead"]


def test_it_pages_newest_first_without_repeating_or_skipping(runtime: Runtime) -> None:
    _, sink = store_and_sink(runtime)
    ids = add_deliveries(runtime, sink, STATES)
    seen, cursor = [], None
    with runtime.sessions() as session:
        while True:
            page = list_deliveries(session, cursor=cursor, limit=3)
            seen += [row.id for row in page.items]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
    assert seen == list(reversed(ids))


def test_it_filters_by_status_sink_store_and_time(runtime: Runtime) -> None:
    store, sink = store_and_sink(runtime)
    ids = add_deliveries(runtime, sink, STATES)
    with runtime.sessions() as session:
        dead = list_deliveries(session, status="dead")
        by_sink = list_deliveries(session, status="dead", sink_id=sink.id, store=store.key)
        other_sink = list_deliveries(session, sink_id=sink.id + 1)
        recent = list_deliveries(session, since=START + timedelta(minutes=6))
    assert [row.id for row in dead.items] == [ids[7], ids[3], ids[1]]
    assert by_sink.items == dead.items and dead.next_cursor is None
    assert other_sink.items == ()
    with runtime.sessions() as session:  # a sink of another store: nothing, not an error
        assert list_deliveries(session, store=store.key, sink_id=sink.id + 1).items == ()
    assert [row.status for row in recent.items] == ["dead", "sending"]
    assert dead.items[0].store == "salla:1234509876"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"status": "lost"}, "unknown delivery status"),
        ({"store": "salla"}, "store key"),
        ({"store": "salla:404"}, "no store salla:404"),
        ({"cursor": "not-a-cursor"}, "not a cursor"),
    ],
)
def test_it_refuses_bad_filters_in_one_line(
    runtime: Runtime, kwargs: dict[str, str], message: str
) -> None:
    with runtime.sessions() as session, pytest.raises(OpsError, match=message) as refused:
        list_deliveries(session, **kwargs)  # type: ignore[arg-type]
    assert "\n" not in str(refused.value)
    assert isinstance(refused.value, BadCursor) == ("cursor" in kwargs)


def test_it_shows_a_delivery_masked_with_every_attempt(runtime: Runtime) -> None:
    _, sink = store_and_sink(runtime)
    contact = {"email": "huda@example.com", "name": "Huda"}
    payload = {"contact": contact, "note": "call +966 555 123 987"}
    [delivery_id] = add_deliveries(runtime, sink, ["dead"], payload=payload)
    with runtime.transaction() as session:
        for number, code in ((1, 503), (2, 500)):
            session.add(
                DeliveryAttempt(
                    delivery_id=delivery_id,
                    sink_id=sink.id,
                    number=number,
                    outcome="retrying",
                    status_code=code,
                    error=f"HTTP {code} for huda@example.com",
                    started_at=START + timedelta(seconds=number),
                )  # fmt: skip
            )
    with runtime.sessions() as session:
        detail = show_delivery(session, delivery_id)
    assert [(a.number, a.status_code) for a in detail.attempts] == [(1, 503), (2, 500)]
    assert detail.payload["contact"] == {"email": "[masked]", "name": "[masked]"}
    assert detail.payload["balance_after"] == 1000 and detail.sink_kind == "webhook"
    text = repr(detail)
    assert "huda@example.com" not in text and "555 123" not in text and "Huda" not in text


def test_it_retries_dead_and_retrying_rows_by_id_and_never_a_finished_one(
    runtime: Runtime,
) -> None:
    _, sink = store_and_sink(runtime)
    ids = add_deliveries(runtime, sink, ["dead", "retrying", "delivered", "skipped", "sending"])
    with runtime.transaction() as session:
        moved = retry(session, ids)
    with runtime.transaction() as session:
        again = retry(session, ids)
    assert moved == sorted(ids[:2]) and again == []
    rows = _rows(runtime)
    statuses = [rows[i].status for i in ids]
    assert statuses == ["pending", "pending", "delivered", "skipped", "sending"]
    assert rows[ids[0]].attempts == 0 and rows[ids[2]].attempts == 1


def test_it_retries_every_dead_row_matching_in_batches_once(runtime: Runtime) -> None:
    _, sink = store_and_sink(runtime)
    ids = add_deliveries(runtime, sink, STATES)
    with runtime.transaction() as session:
        first = retry_matching(session, sink_id=sink.id, batch=2)
        rest = retry_matching(session, sink_id=sink.id, batch=2)
        none = retry_matching(session, sink_id=sink.id, batch=2)
    assert first == sorted([ids[1], ids[3]]) and rest == [ids[7]] and none == []
    with runtime.transaction() as session:
        assert retry_matching(session, since=START + timedelta(minutes=8)) == []
    assert sum(row.status == "dead" for row in _rows(runtime).values()) == 0


def test_it_discards_rows_not_sent_yet(runtime: Runtime) -> None:
    _, sink = store_and_sink(runtime)
    ids = add_deliveries(runtime, sink, ["dead", "pending", "delivered", "sending"])
    with runtime.transaction() as session:
        assert discard(session, ids) == sorted(ids[:2])
    rows = _rows(runtime)
    assert rows[ids[0]].status == "skipped" and rows[ids[0]].last_error == "discarded by operator"
    assert (rows[ids[2]].status, rows[ids[3]].status) == ("delivered", "sending")


def _rows(runtime: Runtime) -> dict[str, Delivery]:
    with runtime.sessions() as session:
        return {row.id: row for row in session.query(Delivery)}
