"""Sink health for ops: paused/breaker state, consecutive failures, and the share
of the last hour's attempts that delivered.

The rate is read from ``delivery_attempts`` by ``ix_attempts_sink_started``
(sink id, then time), so it costs one index range per sink however long the
table grows. Pausing and resuming are ``worker.pipeline.holding``'s (the same
as ``sinks pause/resume``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from worker.storage.models import DeliveryAttempt, Sink, Store, utcnow

WINDOW = timedelta(hours=1)
FAILED_OUTCOMES = ("retrying", "dead", "rejected")


@dataclass(frozen=True)
class SinkHealth:
    id: int
    kind: str
    store_key: str
    store_name: str | None
    enabled: bool
    disabled_reason: str | None
    paused: bool
    paused_by: str | None
    paused_reason: str | None
    probe_at: datetime | None
    consecutive_failures: int
    last_success_at: datetime | None
    last_failure_at: datetime | None
    delivered: int  # attempts in the last hour
    failed: int

    @property
    def success_rate(self) -> float | None:
        """Delivered share of the last hour's finished attempts; None when there were none."""
        total = self.delivered + self.failed
        return self.delivered / total if total else None

    @property
    def state(self) -> str:
        if not self.enabled:
            return "disabled"
        if self.paused:
            return "breaker open" if self.paused_by == "breaker" else "paused"
        return "active"


def health(session: Session, *, after_id: int = 0, limit: int = 50) -> list[SinkHealth]:
    """A page of sinks after ``after_id``, each with its last hour's attempt counts."""
    query = (
        select(Sink, Store)
        .join(Store, Store.id == Sink.store_id)
        .where(Sink.id > after_id)
        .order_by(Sink.id)
        .limit(limit)
    )
    since = utcnow() - WINDOW
    return [
        _health(sink, store, _outcomes(session, sink.id, since))
        for sink, store in session.execute(query)
    ]


def _outcomes(session: Session, sink_id: int, since: datetime) -> dict[str, int]:
    query = (
        select(DeliveryAttempt.outcome, func.count())
        .where(DeliveryAttempt.sink_id == sink_id, DeliveryAttempt.started_at >= since)
        .group_by(DeliveryAttempt.outcome)
    )
    return {outcome: count for outcome, count in session.execute(query)}


def _health(sink: Sink, store: Store, outcomes: dict[str, int]) -> SinkHealth:
    return SinkHealth(
        id=sink.id,
        kind=sink.kind,
        store_key=store.key,
        store_name=store.name,
        enabled=sink.enabled,
        disabled_reason=sink.disabled_reason,
        paused=sink.paused,
        paused_by=sink.paused_by,
        paused_reason=sink.paused_reason,
        probe_at=sink.probe_at,
        consecutive_failures=sink.consecutive_failures,
        last_success_at=sink.last_success_at,
        last_failure_at=sink.last_failure_at,
        delivered=outcomes.get("delivered", 0),
        failed=sum(outcomes.get(outcome, 0) for outcome in FAILED_OUTCOMES),
    )
