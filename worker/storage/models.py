"""The tables. The database is the source of truth; Celery messages carry ids only.

State machines (the ``status`` columns):
- InboxEvent:   pending → processing → done | ignored | failed
- RefreshJob:   pending → working → done | held | failed  (one pending row per customer and slot;
                held: a points label we cannot interpret, nothing applied or sent)
- Delivery:     pending → sending → delivered | retrying → … | dead | skipped
                (every call to the sink is a ``DeliveryAttempt`` row)
- Sink:         enabled/disabled (disabled skips its deliveries); paused (by an
                operator or the circuit breaker: its deliveries wait, none is skipped)
Rows stuck in pending/processing/working/sending longer than the stale window
are put back by the sweeper, so a lost message or a killed worker loses nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, instrumentation, mapped_column

from worker.storage.types import DecimalText, UTCDateTime

BigId = BigInteger().with_variant(Integer, "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), Decimal: DecimalText(), dict[str, Any]: JSON}


M = TypeVar("M", bound=Base)


def detached(model: type[M], values: Mapping[Any, Any]) -> M:
    """An object of no session holding a row's ``values``, made as the ORM makes the
    objects it loads: the instance state created and its attributes filled in, without
    the mapped ``__init__``, whose per-attribute events and history made building a
    store's or a sink's object from a plain row cost as much as the statement that
    read it. Attributes set afterwards are tracked as on any transient object; an
    object made so is read and sent with, never added to a session."""
    instance: M = instrumentation.manager_of_class(model).new_instance()
    instance.__dict__.update(values)
    return instance


def detached_rows(model: type[M], rows: Iterable[Any]) -> list[M]:
    """``detached`` for each row of a result (its columns named as the model's)."""
    return [detached(model, row._mapping) for row in rows]


class Store(Base):
    __tablename__ = "stores"
    __table_args__ = (UniqueConstraint("platform", "external_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    platform: Mapped[str] = mapped_column(String(20))
    external_id: Mapped[str] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(20), default="active")
    status_reason: Mapped[str | None] = mapped_column(Text)
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Riyadh")
    locale: Mapped[str] = mapped_column(String(8), default="ar")
    api_base: Mapped[str | None] = mapped_column(String(500))
    credentials: Mapped[bytes | None] = mapped_column(LargeBinary)
    token_expires_at: Mapped[datetime | None]
    token_version: Mapped[int] = mapped_column(Integer, default=1)
    refresh_lock_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    @property
    def key(self) -> str:
        return f"{self.platform}:{self.external_id}"


# Partial-index predicates; the scheduler's queries repeat them word for word so
# that the planner can use the index.
REMIND_PENDING = "reminded_for IS NULL OR reminded_for <> next_expiry_at"
EXPIRE_PENDING = "expired_for IS NULL OR expired_for <> next_expiry_at"
HELD_PREDICATE = "status = 'held'"  # ix_refresh_held, worker.pipeline.held


class InboxEvent(Base):
    __tablename__ = "inbox_events"
    __table_args__ = (
        Index("ix_inbox_status_received", "status", "received_at"),
        Index("ix_inbox_store_customer", "store_ref", "customer_id"),
        # The ops listing of one store's events, newest first (``worker.ops.inbox``).
        Index("ix_inbox_store_status_received", "store_ref", "status", "received_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    platform: Mapped[str] = mapped_column(String(20))
    store_ref: Mapped[str | None] = mapped_column(String(255))
    event_type: Mapped[str] = mapped_column(String(100))
    dedupe_key: Mapped[str] = mapped_column(String(64), unique=True)
    # The customer the event named (the stable id refresh jobs use), once processed:
    # lets privacy erasure and ops find a customer's events by index.
    customer_id: Mapped[str | None] = mapped_column(String(255))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    headers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    reason: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_at: Mapped[datetime | None]
    processed_at: Mapped[datetime | None]


class RefreshJob(Base):
    __tablename__ = "refresh_jobs"
    __table_args__ = (
        # Coalescing: at most one pending job per customer and slot; a burst of
        # events inserts ON CONFLICT DO NOTHING against this index.
        Index(
            "uq_refresh_pending",
            "store_id",
            "customer_id",
            "slot",
            unique=True,
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        Index("ix_refresh_status_due", "status", "due_at"),
        # The dispatcher's per-store claim (``worker.pipeline.dispatcher``).
        Index("ix_refresh_store_status_due", "store_id", "status", "due_at"),
        # Held jobs, newest first, index-only: the customers needing attention
        # (``worker.pipeline.held``), read on every /metrics scrape.
        Index(
            "ix_refresh_held",
            "finished_at",
            "store_id",
            "customer_id",
            postgresql_where=text(HELD_PREDICATE),
            sqlite_where=text(HELD_PREDICATE),
        ),
        # A customer's held jobs, which a later applied fetch resolves
        # (``worker.pipeline.refresh``); as small as the held rows are few.
        Index(
            "ix_refresh_held_customer",
            "store_id",
            "customer_id",
            postgresql_where=text(HELD_PREDICATE),
            sqlite_where=text(HELD_PREDICATE),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    customer_id: Mapped[str] = mapped_column(String(255))
    slot: Mapped[str] = mapped_column(String(20))
    due_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    # When the dispatcher last published this row (``worker.pipeline.dispatcher``).
    dispatched_at: Mapped[datetime | None]


class CustomerPoints(Base):
    """The last snapshot we saw for a customer; changes are diffs against it."""

    __tablename__ = "customer_points"
    __table_args__ = (
        # The scheduler's scans (``worker.pipeline.schedule``): expiries not yet reminded
        # about / announced, by date, and each store's least recently fetched.
        Index(
            "ix_points_remind_due",
            "next_expiry_at",
            postgresql_where=text(REMIND_PENDING),
            sqlite_where=text(REMIND_PENDING),
        ),
        Index(
            "ix_points_expire_due",
            "next_expiry_at",
            postgresql_where=text(EXPIRE_PENDING),
            sqlite_where=text(EXPIRE_PENDING),
        ),
        Index("ix_points_store_fetched", "store_id", "fetched_at"),
    )

    store_id: Mapped[int] = mapped_column(
        ForeignKey("stores.id", ondelete="CASCADE"), primary_key=True
    )
    customer_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    available: Mapped[Decimal]
    pending: Mapped[Decimal]
    used: Mapped[Decimal]
    next_expiry_at: Mapped[datetime | None]
    next_expiry_points: Mapped[Decimal]
    tier: Mapped[str | None] = mapped_column(String(255))
    contact: Mapped[bytes | None] = mapped_column(LargeBinary)
    excluded: Mapped[bool] = mapped_column(Boolean, default=False)
    fetched_at: Mapped[datetime | None]
    # The expiry we already reminded about / announced as expired (at most once each).
    reminded_for: Mapped[datetime | None]
    expired_for: Mapped[datetime | None]


class PointsChange(Base):
    __tablename__ = "points_changes"
    __table_args__ = (
        Index("ix_changes_customer", "store_id", "customer_id"),
        Index("ix_changes_created", "created_at"),  # retention
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    customer_id: Mapped[str] = mapped_column(String(255))
    kinds: Mapped[list[str]] = mapped_column(JSON)
    before: Mapped[dict[str, Any]]
    after: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Sink(Base):
    __tablename__ = "sinks"
    __table_args__ = (Index("ix_sinks_store", "store_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    config: Mapped[bytes] = mapped_column(LargeBinary)
    kinds: Mapped[list[str]] = mapped_column(JSON)
    rules: Mapped[dict[str, Any]] = mapped_column(default=dict)  # see worker.reactions
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    # Paused: deliveries wait (nothing is skipped). ``paused_by`` is "operator" or
    # "breaker"; a breaker-paused sink is probed with one delivery at ``probe_at``.
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    paused_by: Mapped[str | None] = mapped_column(String(20))
    paused_reason: Mapped[str | None] = mapped_column(Text)
    paused_at: Mapped[datetime | None]
    probe_at: Mapped[datetime | None]
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    last_success_at: Mapped[datetime | None]
    last_failure_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Delivery(Base):
    """One outbox row: a change on its way to one sink. ``id`` is the idempotency key."""

    __tablename__ = "deliveries"
    __table_args__ = (
        Index("ix_deliveries_status_next", "status", "next_attempt_at"),
        Index("ix_deliveries_change", "change_id"),  # retention: is a change still referenced
        # The ops listings, newest first by status, and by sink (``worker.ops.deliveries``).
        Index("ix_deliveries_status_created", "status", "created_at", "id"),
        Index("ix_deliveries_sink_status_created", "sink_id", "status", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    sink_id: Mapped[int] = mapped_column(ForeignKey("sinks.id", ondelete="CASCADE"))
    change_id: Mapped[int | None] = mapped_column(ForeignKey("points_changes.id"))
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    customer_id: Mapped[str | None] = mapped_column(String(255))
    event_type: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # A paused sink's waiting deliveries are parked: due at year 2999
    # (``worker.pipeline.holding.PARKED_AT``) until it resumes.
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Not enqueued yet because its time is far off; the sweeper releases it when due.
    deferred: Mapped[bool] = mapped_column(Boolean, default=False)
    claimed_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    delivered_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When the dispatcher last published this row (``worker.pipeline.dispatcher``).
    dispatched_at: Mapped[datetime | None]


class DeliveryAttempt(Base):
    """One call to a sink for a delivery: what it answered and how long it took.

    ``outcome``: delivered, retrying (a transient failure), dead (a transient failure on
    the last attempt allowed), skipped, rejected (refused for good: the delivery is dead),
    or ``sending`` while the call is in flight (a worker killed mid-call leaves it so;
    it becomes ``interrupted`` when the delivery's next attempt starts). ``number`` is
    the delivery's ``attempts`` when it was claimed; ``status_code`` the HTTP status or
    SMTP reply code. ``error`` is scrubbed of secrets and personal data before it is written.
    """

    __tablename__ = "delivery_attempts"
    __table_args__ = (
        Index("ix_attempts_delivery", "delivery_id", "number"),
        Index("ix_attempts_sink_started", "sink_id", "started_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    delivery_id: Mapped[str] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"))
    sink_id: Mapped[int] = mapped_column(ForeignKey("sinks.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    outcome: Mapped[str] = mapped_column(String(20), default="sending")
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int | None] = mapped_column(Integer)


class RateBudget(Base):
    """A token bucket per store and API family, shared by every worker."""

    __tablename__ = "rate_budgets"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    tokens: Mapped[float]
    updated_at: Mapped[datetime]
    blocked_until: Mapped[datetime | None]


class InstanceKey(Base):
    """A key this installation made for itself, sealed with RELAY_SECRET_KEY (see
    ``worker.customers``): rotating the secret key must not rename customers."""

    __tablename__ = "instance_keys"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DataRequest(Base):
    """A customer's request for their data (Shopify ``customers/data_request``), kept
    until the merchant exports it with ``loyalty-relay privacy export``."""

    __tablename__ = "data_requests"
    __table_args__ = (Index("ix_data_requests_customer", "store_id", "customer_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    customer_id: Mapped[str] = mapped_column(String(255))
    request_ref: Mapped[str | None] = mapped_column(String(100))  # the platform's own id
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    exported_at: Mapped[datetime | None]
