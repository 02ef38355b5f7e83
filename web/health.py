"""``/healthz`` (the process answers), ``/readyz`` (database reachable) and
``/metrics`` (Prometheus text).

``/metrics`` holds the instance's counters and histograms (``worker.metrics``:
every process's, summed) and gauges read at scrape time: rows waiting in each
table and the age of the oldest, stores by status, the broker's queues
(``worker.queues``). The table gauges stay cheap however large the tables grow
(``bench/metrics_cost.py``): each is a query per status on the table's
``(status, time)`` index, bounded twice — only the statuses rows pass through
or stop in are counted, never the terminal ones that make up most rows, and a
count stops at ``COUNT_CAP`` (a ``LIMIT`` inside the count); the oldest row is
the first entry of that index (``ORDER BY … LIMIT 1``), not a ``min()`` over
the table.

With ``RELAY_METRICS_PORT`` set the same text is served on that port instead
(``worker.metrics_server``, a thread in each web worker sharing the port), and
the main port has no ``/metrics``; with ``RELAY_OPS_TOKEN`` set, either asks
for ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from flask import Flask, Response, jsonify, request
from sqlalchemy import Select, func, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from web.errors import problem
from worker import metrics, metrics_server, queues
from worker.runtime import Runtime
from worker.storage.models import DataRequest, Delivery, InboxEvent, RefreshJob, Store, utcnow

COUNT_CAP = 100_000  # a count at the cap means "at least this many"
# Per table: model, its indexed time column, the statuses counted (rows in flight or
# kept for ops), and which of them wait for their time. Terminal successes (done,
# ignored, delivered, skipped) are most rows and never counted.
TABLES: dict[str, tuple[Any, Any, tuple[str, ...], tuple[str, ...]]] = {
    "inbox": (
        InboxEvent,
        InboxEvent.received_at,
        ("pending", "processing", "waiting_for_store", "failed"),
        ("pending",),
    ),
    "refresh": (
        RefreshJob,
        RefreshJob.due_at,
        ("pending", "working", "retrying", "held", "failed"),
        ("pending", "retrying"),
    ),
    "delivery": (
        Delivery,
        Delivery.next_attempt_at,
        ("pending", "sending", "retrying", "dead"),
        ("pending", "retrying"),
    ),
}


def init_app(app: Flask, runtime: Runtime) -> None:
    settings = runtime.settings

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok")

    @app.get("/readyz")
    def readyz() -> Response:
        try:
            with runtime.sessions() as session:
                session.execute(text("SELECT 1"))
        except SQLAlchemyError:
            return problem(503, "database unreachable", 5)
        return jsonify(status="ready")

    gauges = [DatabaseGauges(runtime), queues.QueueGauges(settings)]  # one Redis connection

    def scrape() -> bytes:
        """Everything ``/metrics`` shows; raises ``SQLAlchemyError`` when the database is down."""
        return metrics.exposition(gauges)

    if settings.metrics_port:
        metrics_server.serve(settings.metrics_port, scrape, settings.ops_token)
        return

    @app.get("/metrics")
    def metrics_page() -> Response:
        if not metrics_server.authorized(request.headers.get("Authorization"), settings.ops_token):
            refused = problem(401, "a Bearer token is required")
            refused.headers.update(metrics_server.CHALLENGE)
            return refused
        try:
            body = scrape()
        except SQLAlchemyError:
            return problem(503, "database unreachable", 5)
        return Response(body, content_type=metrics.CONTENT_TYPE)


class DatabaseGauges:
    """Gauges read from the database at each scrape (bounded index queries)."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        rows = GaugeMetricFamily(
            "relay_rows", "Rows in flight or kept for ops, by table and status (capped)",
            labels=["table", "status"],
        )  # fmt: skip
        oldest = GaugeMetricFamily(
            "relay_oldest_pending_seconds", "Age of the oldest waiting row past its due time",
            labels=["table"],
        )  # fmt: skip
        now = utcnow()
        with self._runtime.sessions() as session:
            statement, keys = table_gauges()
            values = dict(zip(keys, session.execute(statement).one(), strict=True))
            for table, (_, _, counted, waiting) in TABLES.items():
                for status in counted:
                    rows.add_metric([table, status], values[table, status] or 0)
                ages = [_age(values[table, f"first {status}"], now) for status in waiting]
                oldest.add_metric([table], max(ages))
            yield from (rows, oldest, *_store_gauges(session))


def table_gauges() -> tuple[Select[Any], list[tuple[str, str]]]:
    """One statement for every table gauge (one round trip per scrape): a capped
    count per counted status and the first due time per waiting status, each a
    scalar subquery on the table's ``(status, time)`` index."""
    columns, keys = [], []
    for table, (model, due, counted, waiting) in TABLES.items():
        for status in counted:
            columns.append(capped_count_query(model, status).scalar_subquery())
            keys.append((table, status))
        for status in waiting:
            columns.append(first_due_query(model, due, status).scalar_subquery())
            keys.append((table, f"first {status}"))
    return select(*columns), keys


def capped_count_query(model: Any, status: str) -> Select[Any]:
    """Rows with ``status``, counted through the status index up to ``COUNT_CAP``."""
    inner = select(model.id).where(model.status == status).limit(COUNT_CAP).subquery()
    return select(func.count()).select_from(inner)


def first_due_query(model: Any, due: Any, status: str) -> Select[Any]:
    """The first entry of the ``(status, due)`` index for ``status``: one index probe."""
    return select(due).where(model.status == status).order_by(due).limit(1)


def _store_gauges(session: Session) -> Iterator[Any]:
    """Stores by status, held customers per store, data requests to export: small tables."""
    from prometheus_client.core import GaugeMetricFamily

    stores = GaugeMetricFamily(
        "relay_stores", "Stores by platform and status", labels=["platform", "status"]
    )
    for platform, status, count in session.execute(
        select(Store.platform, Store.status, func.count()).group_by(Store.platform, Store.status)
    ):
        stores.add_metric([platform, status], count)
    attention = GaugeMetricFamily(
        "relay_customers_needing_attention",
        "Customers whose latest refresh was held on an unknown points label, by store",
        labels=["store"],
    )
    for store, count in _needing_attention(session).items():
        attention.add_metric([store], count)
    waiting = GaugeMetricFamily("relay_data_requests_waiting", "Data requests not exported yet")
    query = select(func.count()).select_from(DataRequest).where(DataRequest.exported_at.is_(None))
    waiting.add_metric([], session.scalar(query) or 0)
    yield from (stores, attention, waiting)


def _needing_attention(session: Session) -> dict[str, int]:
    from worker.pipeline.held import needing_attention

    held = needing_attention(session)
    if not held:
        return {}
    keys = session.execute(select(Store.id, Store.platform, Store.external_id))
    names = {store_id: f"{platform}:{external}" for store_id, platform, external in keys}
    return {names.get(store_id, str(store_id)): count for store_id, count in held.items()}


def _age(first: datetime | str | None, now: datetime) -> float:
    if first is None:
        return 0.0
    if isinstance(first, str):  # SQLite aggregates bypass the column type
        first = datetime.fromisoformat(first)
    if first.tzinfo is None:
        first = first.replace(tzinfo=now.tzinfo)
    return max(0.0, (now - first).total_seconds())
