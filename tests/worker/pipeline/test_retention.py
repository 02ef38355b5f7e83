"""Retention with the defaults (14 days; dead deliveries and failures 30 days),
on SQLite and PostgreSQL: what is past the window goes, what is younger or
still in flight stays, whatever its age."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.factories import add_salla_store
from worker.config import ConfigError, load_settings
from worker.pipeline import retention
from worker.points import CHANGE_KINDS
from worker.runtime import Runtime
from worker.storage.models import Delivery, InboxEvent, PointsChange, RefreshJob, Sink, Store

NOW = datetime.now(UTC)


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def inbox_row(runtime: Runtime, name: str, status: str, age: float) -> None:
    when = days_ago(age)
    with runtime.transaction() as session:
        session.add(InboxEvent(
            platform="salla", event_type="order.created", dedupe_key=name, body=b"sealed",
            headers={}, status=status, received_at=when,
            processed_at=when if status in ("done", "ignored", "failed") else None,
        ))  # fmt: skip


def job(runtime: Runtime, store: Store, name: str, status: str, age: float) -> None:
    when = days_ago(age)
    finished = when if status in ("done", "failed", "held") else None
    with runtime.transaction() as session:
        session.add(RefreshJob(store_id=store.id, customer_id=name, slot="soon", due_at=when,
                               status=status, created_at=when, finished_at=finished))  # fmt: skip


def change(runtime: Runtime, store: Store, name: str, age: float) -> int:
    with runtime.transaction() as session:
        row = PointsChange(store_id=store.id, customer_id=name, kinds=["points.balance_changed"],
                           before={}, after={}, created_at=days_ago(age))  # fmt: skip
        session.add(row)
        session.flush()
        return row.id


def delivery(
    runtime: Runtime, store: Store, sink: Sink, name: str, status: str, age: float,
    change_id: int | None = None,
) -> None:  # fmt: skip
    when = days_ago(age)
    with runtime.transaction() as session:
        session.add(Delivery(
            id=name, sink_id=sink.id, change_id=change_id, store_id=store.id, customer_id="c",
            event_type="points.balance_changed", payload={}, status=status,
            next_attempt_at=when, created_at=when,
            delivered_at=when if status == "delivered" else None,
        ))  # fmt: skip


def sink_of(runtime: Runtime, store: Store) -> Sink:
    with runtime.transaction() as session:
        sink = Sink(store_id=store.id, kind="webhook", config=runtime.cipher.seal({}),
                    kinds=list(CHANGE_KINDS))  # fmt: skip
        session.add(sink)
        session.flush()
        return sink


def left(runtime: Runtime, key: Any) -> set[Any]:
    with runtime.sessions() as session:
        return set(session.scalars(select(key)))


def test_it_deletes_processed_inbox_rows_past_the_window_and_keeps_the_rest(
    runtime: Runtime,
) -> None:
    for name, status, age in [
        ("done-old", "done", 15), ("ignored-old", "ignored", 20), ("done-new", "done", 13),
        ("pending-ancient", "pending", 400), ("processing-old", "processing", 60),
        ("failed-20", "failed", 20), ("failed-31", "failed", 31),
    ]:  # fmt: skip
        inbox_row(runtime, name, status, age)
    deleted = retention.purge(runtime, NOW)
    assert deleted["inbox_events"] == 3
    assert left(runtime, InboxEvent.dedupe_key) == {
        "done-new", "pending-ancient", "processing-old", "failed-20",
    }  # fmt: skip


def test_it_deletes_finished_refresh_jobs_and_never_one_in_flight(runtime: Runtime) -> None:
    store = add_salla_store(runtime)
    for name, status, age in [
        ("done-old", "done", 15), ("done-new", "done", 10), ("pending-old", "pending", 90),
        ("retrying-old", "retrying", 90), ("working-old", "working", 90),
        ("held-old", "held", 90), ("failed-20", "failed", 20), ("failed-40", "failed", 40),
    ]:  # fmt: skip
        job(runtime, store, name, status, age)
    retention.purge(runtime, NOW)
    assert left(runtime, RefreshJob.customer_id) == {
        "done-new", "pending-old", "retrying-old", "working-old", "held-old", "failed-20",
    }  # fmt: skip


def test_it_keeps_dead_deliveries_longer_and_pending_ones_forever(runtime: Runtime) -> None:
    store = add_salla_store(runtime)
    sink = sink_of(runtime, store)
    for name, status, age in [
        ("delivered-old", "delivered", 15), ("skipped-old", "skipped", 15),
        ("delivered-new", "delivered", 13), ("dead-20", "dead", 20), ("dead-31", "dead", 31),
        ("pending-old", "pending", 365), ("retrying-old", "retrying", 365),
        ("sending-old", "sending", 365),
    ]:  # fmt: skip
        delivery(runtime, store, sink, name, status, age)
    deleted = retention.purge(runtime, NOW)
    assert deleted["deliveries"] == 3
    assert left(runtime, Delivery.id) == {
        "delivered-new", "dead-20", "pending-old", "retrying-old", "sending-old",
    }  # fmt: skip


def test_it_deletes_old_changes_no_delivery_refers_to(runtime: Runtime) -> None:
    store = add_salla_store(runtime)
    sink = sink_of(runtime, store)
    gone = change(runtime, store, "sent-old", 20)
    delivery(runtime, store, sink, "delivered-old", "delivered", 20, gone)
    waiting = change(runtime, store, "waiting-old", 20)
    delivery(runtime, store, sink, "retrying-old", "retrying", 20, waiting)
    change(runtime, store, "orphan-old", 20)
    change(runtime, store, "new", 1)
    retention.purge(runtime, NOW)
    assert left(runtime, PointsChange.customer_id) == {"waiting-old", "new"}


def test_it_deletes_in_small_batches_until_nothing_is_left(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "BATCH", 2)
    for n in range(5):
        inbox_row(runtime, f"done-{n}", "done", 30)
    inbox_row(runtime, "pending", "pending", 30)
    assert retention.purge(runtime, NOW)["inbox_events"] == 5
    assert left(runtime, InboxEvent.dedupe_key) == {"pending"}


def test_it_reads_the_retention_windows(tmp_path: Path) -> None:
    defaults = load_settings({"RELAY_DATA_DIR": str(tmp_path)})
    assert (defaults.retention_days, defaults.retention_dead_days) == (14, 30)
    env = {"RELAY_DATA_DIR": str(tmp_path), "RELAY_RETENTION_DAYS": "7",
           "RELAY_RETENTION_DEAD_DAYS": "90"}  # fmt: skip
    assert (load_settings(env).retention_days, load_settings(env).retention_dead_days) == (7, 90)
    with pytest.raises(ConfigError, match="RELAY_RETENTION_DAYS must be at least 1"):
        load_settings({"RELAY_DATA_DIR": str(tmp_path), "RELAY_RETENTION_DAYS": "0"})
    with pytest.raises(ConfigError, match="RELAY_RECONCILE_SHARE"):
        load_settings({"RELAY_DATA_DIR": str(tmp_path), "RELAY_RECONCILE_SHARE": "2"})
