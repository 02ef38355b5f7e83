"""The inbox and refresh-job query layers on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tests.worker.ops.support import START, add_event, add_jobs, store_and_sink
from worker.ops import NotFound, OpsError
from worker.ops.inbox import list_events, receivers, replay, show_event
from worker.ops.refresh import list_jobs, retry_jobs
from worker.runtime import Runtime
from worker.storage.models import InboxEvent, RefreshJob

BODY = json.dumps(
    {"event": "order.created", "merchant": 1234509876,
     "data": {"id": 1, "customer": {"id": 7, "email": "noura@example.com", "mobile": 555123987,
                                    "first_name": "Noura"}, "total": {"amount": 120}}}
).encode()  # fmt: skip


def test_it_lists_events_newest_first_by_status_event_store_and_time(runtime: Runtime) -> None:
    store, _ = store_and_sink(runtime)
    ids = [
        add_event(runtime, status, BODY, minute, event)
        for minute, (status, event) in enumerate(
            [("done", "order.created"), ("failed", "order.created"),
             ("done", "customer.updated"), ("pending", "order.created")]
        )
    ]  # fmt: skip
    with runtime.sessions() as session:
        every = list_events(session, limit=3)
        rest = list_events(session, cursor=every.next_cursor, limit=3)
        done = list_events(session, status="done", store=store.key)
        orders = list_events(session, event="order.created", since=START + timedelta(minutes=1))
    assert [row.id for row in every.items + rest.items] == list(reversed(ids))
    assert rest.next_cursor is None and [row.id for row in done.items] == [ids[2], ids[0]]
    assert [row.id for row in orders.items] == [ids[3], ids[1]]
    with runtime.sessions() as session, pytest.raises(OpsError, match="unknown inbox status"):
        list_events(session, status="lost")


def test_it_lists_one_platform_s_events(runtime: Runtime) -> None:
    salla = add_event(runtime, "done", BODY, 0)
    zid = add_event(runtime, "done", b"{}", 1, "order.create", platform="zid")
    with runtime.sessions() as session:
        assert [row.id for row in list_events(session, platform="zid").items] == [zid]
        assert [row.id for row in list_events(session, platform="salla").items] == [salla]
        with pytest.raises(OpsError, match="unknown platform 'nope'"):
            list_events(session, platform="nope")


def test_it_shows_a_body_decrypted_and_masked(runtime: Runtime) -> None:
    event_id = add_event(runtime, "done", BODY)
    with runtime.sessions() as session:
        detail = show_event(runtime, session, event_id)
        with pytest.raises(NotFound):
            show_event(runtime, session, event_id + 1)
    customer = detail.body["data"]["customer"]
    masked = {"email": "[masked]", "mobile": "[masked]", "first_name": "[masked]"}
    assert customer == {"id": 7} | masked
    assert detail.body["data"]["total"] == {"amount": 120} and detail.event.body_kept
    assert "noura" not in json.dumps(detail.body).lower()


def test_it_replays_finished_events_that_kept_a_body_once(runtime: Runtime) -> None:
    kept = add_event(runtime, "done", BODY)
    failed = add_event(runtime, "failed", BODY, 1)
    dropped = add_event(runtime, "ignored", BODY, 2)  # recorded ignored: no body kept
    pending = add_event(runtime, "pending", BODY, 3)
    assert replay(runtime, [kept, failed, dropped, pending]) == [kept, failed]
    assert replay(runtime, [kept, failed]) == []
    with runtime.sessions() as session:
        statuses = {row.id: row.status for row in session.query(InboxEvent)}
    assert statuses == {kept: "pending", failed: "pending", dropped: "ignored", pending: "pending"}


def test_it_knows_which_receivers_feed_a_store() -> None:
    assert receivers("shopify") == ["shopify", "appstle"] and receivers("salla") == ["salla"]


def test_it_lists_and_retries_failed_refresh_jobs_once(runtime: Runtime) -> None:
    store, _ = store_and_sink(runtime)
    ids = add_jobs(runtime, store, ["done", "failed", "pending", "failed", "held"])
    with runtime.sessions() as session:
        failed = list_jobs(session, status="failed", store=store.key)
        every = list_jobs(session, limit=2)
    assert [row.id for row in failed.items] == [ids[3], ids[1]]
    assert [row.id for row in every.items] == [ids[4], ids[3]] and every.next_cursor
    with runtime.transaction() as session:
        assert retry_jobs(session, status="failed") == [ids[1], ids[3]]
        assert retry_jobs(session, status="failed") == []
        assert retry_jobs(session, ids=[ids[0], ids[4]]) == [ids[4]]  # never a done job
        with pytest.raises(OpsError, match="ids or a status"):
            retry_jobs(session)
    with runtime.sessions() as session:
        jobs = {job.id: job for job in session.query(RefreshJob)}
    assert [jobs[i].status for i in ids] == ["done", "retrying", "pending", "retrying", "retrying"]
    assert jobs[ids[1]].attempts == 0
