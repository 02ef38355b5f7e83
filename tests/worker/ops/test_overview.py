"""The overview's per-minute series and capped counts, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from tests.factories import add_salla_store
from worker.ops import overview, queues
from worker.runtime import Runtime
from worker.storage.models import InboxEvent, RefreshJob, utcnow


def test_it_counts_webhooks_per_minute_for_the_last_hour(runtime: Runtime) -> None:
    now = utcnow().replace(second=30)
    for minutes_ago, status in ((0, "done"), (0, "pending"), (5, "failed"), (59, "ignored"),
                                (61, "done")):  # fmt: skip
        with runtime.transaction() as session:
            session.add(InboxEvent(platform="salla", store_ref="salla:1", event_type="x",
                                   dedupe_key=f"{minutes_ago}{status}", body=b"", status=status,
                                   received_at=now - timedelta(minutes=minutes_ago)))  # fmt: skip
    with runtime.sessions() as session:
        webhooks = overview.series(session, now)[0]
    assert webhooks.name == "webhooks" and len(webhooks.counts) == 60
    assert (webhooks.counts[-1], webhooks.counts[-6], webhooks.counts[0]) == (2, 1, 1)
    assert webhooks.total == 4  # the one 61 minutes ago is outside the hour


def test_it_counts_refreshes_by_the_minute_they_finished(runtime: Runtime) -> None:
    store = add_salla_store(runtime)
    now = utcnow().replace(second=30)
    with runtime.transaction() as session:
        for n, (status, due_ago, finished_ago) in enumerate(
            (("done", 90, 2), ("held", 3, 2), ("pending", 1, None), ("done", 200, 2))
        ):
            session.add(RefreshJob(store_id=store.id, customer_id=str(n), slot="s", status=status,
                                   due_at=now - timedelta(minutes=due_ago),
                                   finished_at=None if finished_ago is None
                                   else now - timedelta(minutes=finished_ago)))  # fmt: skip
    with runtime.sessions() as session:
        refreshes = overview.series(session, now)[1]
    # Due more than two hours before: outside the bounded range (a refresh waits less).
    assert refreshes.counts[-3] == 2 and refreshes.total == 2


def test_it_counts_what_needs_an_operator(runtime: Runtime) -> None:
    store = add_salla_store(runtime)
    with runtime.transaction() as session:
        for n in range(4):
            session.add(RefreshJob(store_id=store.id, customer_id=str(n), slot="s",
                                   status="failed", due_at=utcnow()))  # fmt: skip
    with runtime.sessions() as session:
        found = {c.label: c for c in overview.counts(session, queues.table_states(session, cap=3))}
    assert str(found["failed refreshes"]) == "≥3" and str(found["dead deliveries"]) == "0"
    assert str(found["paused sinks"]) == "0"
