"""``/healthz`` (the process answers), ``/readyz`` (database reachable) and
``/metrics`` (Prometheus text).

Metrics are read from the database at scrape time — rows by table and status,
the age of the oldest pending row — so they are true across every web and
worker process without a shared metrics directory, and cost nothing on the
request path.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Flask, Response, jsonify
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from web.errors import problem
from worker.pipeline import refresh
from worker.runtime import Runtime
from worker.storage.models import DataRequest, Delivery, InboxEvent, RefreshJob, Store, utcnow

TABLES: dict[str, tuple[Any, Any]] = {
    "inbox": (InboxEvent, InboxEvent.received_at),
    "refresh": (RefreshJob, RefreshJob.due_at),
    "delivery": (Delivery, Delivery.next_attempt_at),
}
PENDING = ("pending", "retrying")


def init_app(app: Flask, runtime: Runtime) -> None:
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

    @app.get("/metrics")
    def metrics() -> Response:
        try:
            body = generate_latest(_collect(runtime))
        except SQLAlchemyError:
            return problem(503, "database unreachable", 5)
        return Response(body, content_type=CONTENT_TYPE_LATEST)


def _collect(runtime: Runtime) -> CollectorRegistry:
    registry = CollectorRegistry()
    rows = Gauge("relay_rows", "Rows by table and status", ["table", "status"], registry=registry)
    oldest = Gauge(
        "relay_oldest_pending_seconds",
        "Age of the oldest pending row past its due time",
        ["table"],
        registry=registry,
    )
    stores = Gauge(
        "relay_stores", "Stores by platform and status", ["platform", "status"], registry=registry
    )
    attention = Gauge(
        "relay_customers_needing_attention",
        "Customers whose latest refresh was held on an unknown points label, by store",
        ["store"],
        registry=registry,
    )
    now = utcnow()
    with runtime.sessions() as session:
        for table, (model, due) in TABLES.items():
            for status, count in session.execute(
                select(model.status, func.count()).group_by(model.status)
            ):
                rows.labels(table, status).set(count)
            first = session.scalar(select(func.min(due)).where(model.status.in_(PENDING)))
            oldest.labels(table).set(_age(first, now))
        for platform, status, count in session.execute(
            select(Store.platform, Store.status, func.count()).group_by(
                Store.platform, Store.status
            )
        ):
            stores.labels(platform, status).set(count)
        _data_requests(session, registry)
        _attention(session, attention)
    return registry


def _data_requests(session: Session, registry: CollectorRegistry) -> None:
    """Customers' data requests the merchant has not exported yet (``privacy requests``)."""
    waiting = Gauge(
        "relay_data_requests_waiting", "Data requests not exported yet", registry=registry
    )
    query = select(func.count()).select_from(DataRequest).where(DataRequest.exported_at.is_(None))
    waiting.set(session.scalar(query) or 0)


def _attention(session: Session, gauge: Gauge) -> None:
    held = refresh.needing_attention(session)
    if held:
        keys = session.execute(select(Store.id, Store.platform, Store.external_id))
        names = {store_id: f"{platform}:{external}" for store_id, platform, external in keys}
        for store_id, count in held.items():
            gauge.labels(names.get(store_id, str(store_id))).set(count)


def _age(first: datetime | str | None, now: datetime) -> float:
    if first is None:
        return 0.0
    if isinstance(first, str):  # SQLite aggregates bypass the column type
        first = datetime.fromisoformat(first)
    if first.tzinfo is None:
        first = first.replace(tzinfo=now.tzinfo)
    return max(0.0, (now - first).total_seconds())
