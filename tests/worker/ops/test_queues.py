"""Queue depths and ages from a real Redis and the embedded SQLite broker, and
bounded table counts on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from tests.worker.ops.support import add_deliveries, add_event, store_and_sink
from worker import dispatch
from worker.celery_app import create_celery
from worker.cli.serve import _declare_queues
from worker.ops.queues import report
from worker.runtime import Runtime
from worker.storage.models import utcnow

BROKERS = ["redis", "embedded"]


@pytest.fixture(params=BROKERS)
def broker_runtime(request: pytest.FixtureRequest, runtime: Runtime) -> Runtime:
    if request.param == "redis":
        return runtime
    url = f"sqla+sqlite:///{runtime.settings.data_dir}/broker.sqlite3"
    embedded = dataclasses.replace(
        runtime, settings=dataclasses.replace(runtime.settings, broker_url=url)
    )
    _declare_queues(embedded.settings)
    return embedded


def test_it_reads_depth_and_the_age_of_the_work_the_oldest_message_rings_for(
    broker_runtime: Runtime,
) -> None:
    _, sink = store_and_sink(broker_runtime)
    an_hour_ago = utcnow() - timedelta(hours=1)
    old, new = add_deliveries(broker_runtime, sink, ["pending", "pending"], start=an_hour_ago)
    celery = create_celery(broker_runtime.settings)
    dispatch.enqueue(celery, dispatch.DELIVER, old)
    dispatch.enqueue(celery, dispatch.DELIVER, new)
    found = {queue.name: queue for queue in report(broker_runtime).queues}
    assert set(found) == {"events", "refresh", "deliveries"}
    assert found["deliveries"].depth == 2 and found["events"].depth == 0
    assert 3590 < (found["deliveries"].oldest_seconds or 0) < 3700
    assert found["events"].oldest_seconds is None


def test_it_counts_in_flight_rows_exactly_and_caps_them(runtime: Runtime) -> None:
    _, sink = store_and_sink(runtime)
    add_deliveries(runtime, sink, ["dead", "dead", "dead", "delivered", "pending"])
    add_event(runtime, "pending", b"{}")
    tables = {state.table: state for state in report(runtime, cap=2).tables}
    deliveries = {count.status: count for count in tables["deliveries"].statuses}
    assert (deliveries["dead"].rows, deliveries["dead"].capped) == (2, True)
    assert (deliveries["pending"].rows, deliveries["pending"].capped) == (1, False)
    assert deliveries["delivered"].exact == (runtime.engine.dialect.name == "sqlite")
    assert tables["inbox_events"].oldest_due_seconds is not None
    assert tables["refresh_jobs"].oldest_due_seconds is None
