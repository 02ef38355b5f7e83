"""What a webhook's refresh costs the database, statement by statement.

A refresh's round trips to PostgreSQL are a large share of its CPU, on both sides
of the connection (``bench/worker.py`` prints them per refresh). The claim and the
delivered outcome each stand alone, one statement committed by itself; only the
snapshot, which writes several tables that must agree, needs a transaction, of
four statements: the job marked done (with the customer's earlier held jobs
resolved), the customer's row locked, the row written
with the change added and the sinks read, the delivery written with its attempt.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, update

from tests.factories import MERCHANT
from tests.listening import listening
from tests.pipeline_world import World, entry
from worker.pipeline import inbox, outbox, refresh
from worker.storage.models import Delivery, DeliveryAttempt, RefreshJob, Sink

pytestmark = pytest.mark.parametrize("world", ["salla"], indirect=True)


@dataclass
class Seen:
    alone: list[str] = field(default_factory=list)  # statements committed by themselves
    in_transactions: list[str] = field(default_factory=list)
    commits: int = 0


@contextmanager
def seen_by(engine: Engine) -> Iterator[Seen]:
    seen = Seen()

    def statement(connection: Any, _cursor: Any, sql: str, *_: Any) -> None:
        autocommit = bool(getattr(connection.connection.driver_connection, "autocommit", False))
        (seen.alone if autocommit else seen.in_transactions).append(" ".join(sql.split()))

    def commit(_connection: Any) -> None:
        seen.commits += 1

    with listening(engine, before_cursor_execute=statement, commit=commit):
        yield seen


def test_on_postgresql_the_claim_and_the_outcome_are_a_statement_each(world: World[Any]) -> None:
    if world.runtime.engine.dialect.name != "postgresql":
        pytest.skip("SQLite takes its write lock at BEGIN: every statement is in a transaction")
    inbox_id = world.post("order.created")  # the customer the sandbox knows
    (due,) = inbox.handle(world.runtime, world.platforms, inbox_id)
    with seen_by(world.runtime.engine) as seen:
        deliveries = refresh.run(world.runtime, world.platforms, due.job_id)
        outbox.send_own(world.runtime, deliveries)
    claim, outcome = seen.alone
    assert claim.startswith("UPDATE refresh_jobs SET") and " FROM stores " in claim
    assert outcome.startswith("WITH finished_attempt AS (UPDATE delivery_attempts")
    assert "sink_success AS (UPDATE sinks" in outcome and "UPDATE deliveries SET" in outcome
    assert seen.commits == 1  # the snapshot's
    done, locked, written, delivery_row = seen.in_transactions
    assert done.startswith("WITH resolved_held AS (UPDATE refresh_jobs SET status=")
    assert ") UPDATE refresh_jobs SET status=" in done  # the job itself, done
    assert locked.startswith("SELECT customer_points.") and locked.endswith("FOR UPDATE")
    assert written.startswith("WITH written_points AS (UPDATE customer_points")
    assert "added_change AS (INSERT INTO points_changes" in written and "FROM sinks" in written
    assert delivery_row.startswith("WITH new_delivery AS (INSERT INTO deliveries")
    assert "INSERT INTO delivery_attempts" in delivery_row
    (delivery,) = world.rows(Delivery)
    (attempt,) = world.rows(DeliveryAttempt)
    (sink,) = world.rows(Sink)
    assert (delivery.status, delivery.last_status_code, delivery.delivered_at is not None) == (
        "delivered", 200, True)  # fmt: skip
    assert (attempt.outcome, attempt.status_code, attempt.finished_at is not None) == (
        "delivered", 200, True)  # fmt: skip
    assert (sink.consecutive_failures, sink.last_success_at) == (0, attempt.finished_at)


def test_the_hot_statements_render_their_sql_once(world: World[Any]) -> None:
    """A constant list (``status IN ('pending', 'retrying')``) bound as one expanding
    parameter would be rendered into the SQL text again at every execution; the
    claim's, the dispatcher's and the delivery's outcome's lists are plain binds."""
    from sqlalchemy.dialects import postgresql

    from worker.pipeline import dispatcher

    statements = {
        "claim": refresh._CLAIM,
        "claim with store": refresh._CLAIM_WITH_STORE,
        "choose jobs": dispatcher._CHOOSE_JOBS,
        "hand out jobs": dispatcher._HAND_OUT_JOBS,
        "final update": outbox._finishing(frozenset({"status"})),
    }
    for name, statement in statements.items():
        sql = str(statement.compile(dialect=postgresql.dialect()))
        assert "IN (" in sql, name
        assert "POSTCOMPILE" not in sql, name


def test_a_chunk_is_claimed_at_once_in_its_order(world: World[Any]) -> None:
    """The dispatcher hands out one store's jobs together; ``claim_chunk`` claims them
    with their store (on PostgreSQL in one statement) and gives them back in the
    chunk's order, leaving out a job that is not due."""
    customers = ["7001", "7002", "7003"]
    for number, customer in enumerate(customers):
        world.sandbox.set_entries(MERCHANT, customer, [entry(10 + number, expires_in=90)])
    due = []
    for number, customer in enumerate(customers):
        data = {"id": 5000 + number, "customer": {"id": int(customer)}}
        due += inbox.handle(world.runtime, world.platforms, world.post("order.created", **data))
    ids = [item.job_id for item in due]
    with world.runtime.transaction() as session:  # the last one's debounce is not over
        session.execute(
            update(RefreshJob)
            .where(RefreshJob.id == ids[-1])
            .values(due_at=datetime.now(UTC) + timedelta(minutes=5))
        )
    chunk = [ids[1], ids[-1], ids[0]]  # not in id order
    with seen_by(world.runtime.engine) as seen:
        claimed = refresh.claim_chunk(world.runtime, chunk)
    if world.runtime.engine.dialect.name == "postgresql":
        [claim] = seen.alone
        assert claim.startswith("UPDATE refresh_jobs SET") and " FROM stores " in claim
        assert seen.in_transactions == [] and seen.commits == 0
    assert [(job.id, job.customer_id) for job, _ in claimed] == [(ids[1], "7002"), (ids[0], "7001")]
    assert {store.id for _, store in claimed} == {world.store.id}
    assert refresh.claim_chunk(world.runtime, chunk) == []  # claimed already, or not due
    for job, store in claimed:
        outbox.send_own(
            world.runtime, refresh.run_claimed(world.runtime, world.platforms, job, store)
        )
    received = sorted(
        (r.data["customer_id"], r.data["balance_after"]) for r in world.capture.received()
    )
    assert received == [("7001", 10), ("7002", 11)]
    jobs = {job.id: job.status for job in world.rows(RefreshJob)}
    assert (jobs[ids[0]], jobs[ids[1]], jobs[ids[2]]) == ("done", "done", "pending")
