"""A drain's chunk is processed with set-based statements, in the order events came:
the same rows as one by one, a fixed handful of statements however long the chunk."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from tests.listening import listening
from tests.pipeline_world import SallaWorld
from worker.pipeline import inbox
from worker.storage.models import CustomerPoints, InboxEvent, RefreshJob

pytestmark = pytest.mark.parametrize("world", ["salla"], indirect=True)


@contextmanager
def counted(engine: Engine) -> Iterator[list[str]]:
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.strip() and not statement.startswith("BEGIN"):  # SQLite's own BEGIN
            statements.append(statement)

    with listening(engine, before_cursor_execute=seen):
        yield statements


def claimed(world: SallaWorld, count: int) -> list[int]:
    return inbox.claim_pending(world.runtime, count)


def test_a_chunk_costs_the_same_few_statements_however_long(world: SallaWorld) -> None:
    costs = []
    for size in (3, 30):
        for n in range(size):
            customer = {"id": 5000 + 100 * size + n, "email": "a@b.co"}
            world.post("order.created", id=100 + n, customer=customer)
        with counted(world.runtime.engine) as statements:
            due = inbox.process_many(world.runtime, world.platforms, claimed(world, size))
        assert len(due) == size
        costs.append(len(statements))
    assert costs[0] == costs[1] <= 10  # one by one: some 8 per event
    contacts = {(p.customer_id, p.contact is not None) for p in world.rows(CustomerPoints)}
    assert len(contacts) == 33 and all(known for _, known in contacts)


def test_a_chunk_coalesces_ignores_parks_and_fails_as_one_by_one_would(world: SallaWorld) -> None:
    first = world.post("customer.updated", id=7001)
    again = world.post("customer.updated", id=7001, email="new@example.com")
    guest = world.post("order.created", id=1, customer=None)
    elsewhere = world.post("customer.updated", merchant="4242", id=7002)
    due = inbox.process_many(world.runtime, world.platforms, claimed(world, 10))
    statuses = {e.id: e.status for e in world.rows(InboxEvent)}
    assert statuses == {first: "done", again: "done", guest: "ignored",
                        elsewhere: "waiting_for_store"}  # fmt: skip
    [job] = world.rows(RefreshJob)  # both events for 7001: one job
    assert [d.job_id for d in due] == [job.id] and job.customer_id == "7001"
    [points] = world.rows(CustomerPoints)
    assert world.runtime.cipher.open(points.contact)["email"] == "new@example.com"
    events = {e.id: e for e in world.rows(InboxEvent)}
    assert events[first].customer_id == "7001" and events[first].body  # kept for replay
    assert events[guest].customer_id is None and events[guest].body == b""


def test_an_uninstall_in_the_chunk_is_seen_by_the_events_after_it(world: SallaWorld) -> None:
    before = world.post("customer.updated", id=8001)
    uninstall = world.post("app.uninstalled")
    after = world.post("customer.updated", id=8002)
    due = inbox.process_many(world.runtime, world.platforms, claimed(world, 10))
    events = {e.id: e for e in world.rows(InboxEvent)}
    assert [events[i].status for i in (before, uninstall, after)] == ["done", "done", "ignored"]
    assert events[after].reason == "store has uninstalled the app"
    [job] = world.rows(RefreshJob)  # 8001's, ended by the uninstall; none for 8002
    assert (job.customer_id, job.status) == ("8001", "failed") and len(due) == 1


def test_an_unreadable_body_fails_alone(world: SallaWorld) -> None:
    good = world.post("customer.updated", id=9001)
    bad = world.post("customer.updated", id=9002)
    with world.runtime.transaction() as session:
        session.get_one(InboxEvent, bad).body = b"not a sealed body"
    inbox.process_many(world.runtime, world.platforms, claimed(world, 10))
    statuses = {e.id: e.status for e in world.rows(InboxEvent)}
    assert statuses == {good: "done", bad: "failed"}
    assert [j.customer_id for j in world.rows(RefreshJob)] == ["9001"]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_the_contact_rows_of_a_chunk_are_locked_in_key_order(world: SallaWorld) -> None:
    """Two drains locking overlapping customers take the locks in one order: no deadlock."""
    for n in (3, 1, 2):
        world.post("order.created", id=60 + n, customer={"id": 6000 + n, "email": "a@b.co"})
    with counted(world.runtime.engine) as statements:
        inbox.process_many(world.runtime, world.platforms, claimed(world, 10))
    [locking] = [s for s in statements if "customer_points" in s and "FOR UPDATE" in s]
    assert "ORDER BY customer_points.store_id, customer_points.customer_id" in locking


def test_a_contact_an_event_leaves_as_it_was_is_not_written_again(world: SallaWorld) -> None:
    """Fernet seals with a fresh IV each time: unchanged bytes mean nothing was written."""
    customer = {"id": 9001, "email": "same@example.com"}
    world.post("order.created", id=1, customer=customer)
    inbox.process_many(world.runtime, world.platforms, claimed(world, 10))
    [before] = world.rows(CustomerPoints)
    world.post("order.created", id=2, customer=customer)  # a drained chunk
    inbox.process_many(world.runtime, world.platforms, claimed(world, 10))
    world.process(world.post("order.created", id=3, customer=customer))  # one by one
    [after] = world.rows(CustomerPoints)
    assert after.contact == before.contact
    world.post("order.created", id=4, customer={**customer, "email": "new@example.com"})
    inbox.process_many(world.runtime, world.platforms, claimed(world, 10))
    [changed] = world.rows(CustomerPoints)
    assert world.runtime.cipher.open(changed.contact)["email"] == "new@example.com"


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_chunks_jobs_are_one_insert_of_arrays(world: SallaWorld) -> None:
    """PostgreSQL: the jobs' columns go as arrays of one ``INSERT … SELECT FROM unnest``,
    in key order, one text whatever the chunk's size; a job asked for twice in the
    chunk, or one already pending, is coalesced as before."""
    for n in (3, 1, 2, 1):
        world.post("order.created", id=70 + n, customer={"id": 7000 + n, "email": "a@b.co"})
    pending = world.post("order.created", id=80, customer={"id": 7003, "email": "a@b.co"})
    inbox.handle(world.runtime, world.platforms, pending)  # its job waits, pending
    before = {job.id for job in world.rows(RefreshJob)}
    with counted(world.runtime.engine) as statements:
        due = inbox.process_many(world.runtime, world.platforms, claimed(world, 10))
    inserts = [s for s in statements if s.startswith("INSERT INTO refresh_jobs")]
    assert len(inserts) == 1 and "FROM unnest(" in inserts[0]
    new = sorted(
        (job for job in world.rows(RefreshJob) if job.id not in before), key=lambda j: j.id
    )
    assert [job.customer_id for job in new] == ["7001", "7002"]
    assert sorted(d.job_id for d in due) == [job.id for job in new]


def test_a_chunk_reads_its_bodies_once_and_writes_its_statuses_together(
    world: SallaWorld,
) -> None:
    """The bodies (sealed, the largest column) are read once, to plan the events; the
    transaction that applies them locks the rows without them, and sets every row's
    status with one UPDATE per kind (a body kept for replay, or dropped)."""
    for n in range(5):
        world.post("order.created", id=300 + n, customer={"id": 6100 + n, "email": "a@b.co"})
    guest = world.post("order.created", id=399, customer=None)
    with counted(world.runtime.engine) as statements:
        due = inbox.process_many(world.runtime, world.platforms, claimed(world, 10))
    assert len(due) == 5
    reads = [s for s in statements if s.startswith("SELECT") and "FROM inbox_events" in s]
    assert [("inbox_events.body" in s) for s in reads] == [True, False]
    updates = [s for s in statements if s.startswith("UPDATE inbox_events")]
    assert len(updates) == 2 and sum("body=" in s for s in updates) == 1
    events = {e.id: e for e in world.rows(InboxEvent)}
    assert events[guest].status == "ignored" and events[guest].body == b""
    named = [e for e in events.values() if e.id != guest]
    assert all(e.status == "done" and e.customer_id and e.body for e in named)
    assert all(e.processed_at is not None for e in events.values())
