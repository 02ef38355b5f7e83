"""Sink health on the ``sinks`` row: pausing, resuming and the circuit breaker.

A paused sink keeps its deliveries waiting (``worker.pipeline.outbox`` parks
them); it is paused by an operator (``sinks pause``) or by the breaker. The
breaker counts consecutive failed attempts that say the endpoint is unwell
(``unhealthy``) and at ``RELAY_BREAKER_FAILURES`` pauses the sink with the last
error as its reason. While it is open, one delivery at a time probes the sink at
``probe_at``; the probe is claimed with a conditional update on ``probe_at``, so
two workers never both probe, and the claim moves ``probe_at`` to the next
probe's time (30 s doubling to 30 min), so a probe whose worker dies is simply
followed by the next. A success closes the breaker; a failure leaves it open.

Every transition is a conditional update whose row count says whether this
caller made it, so what follows a transition (a log line, releasing the
deliveries) happens once.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from http import HTTPStatus
from typing import Any, cast

from sqlalchemy import Table, bindparam, or_, select, update
from sqlalchemy.orm import Session

from worker import backoff
from worker.errors import RelayError, TransientError
from worker.quota import RateLimited
from worker.storage import plain
from worker.storage.models import Sink
from worker.storage.upsert import execute, rows_changed

OPERATOR, BREAKER = "operator", "breaker"
PROBE_BASE_SECONDS, PROBE_MAX_SECONDS = 30.0, 1800.0
PROBE_SLACK = timedelta(seconds=1)  # a message rung for the probe time may arrive early
LAST_SUCCESS_RESOLUTION = timedelta(seconds=10)  # a healthy sink's row is not written per send
UNPAUSED: dict[str, Any] = {
    "paused": False,
    "paused_by": None,
    "paused_reason": None,
    "paused_at": None,
    "probe_at": None,
}


def unhealthy(exc: RelayError) -> bool:
    """A failure that says the endpoint is unwell: a transient one (5xx, a timeout, no
    connection), except a rate limit (429, or our own budget): a busy endpoint works."""
    if not isinstance(exc, TransientError) or isinstance(exc, RateLimited):
        return False
    return exc.status_code != HTTPStatus.TOO_MANY_REQUESTS


def probe_delay(sink: Sink, threshold: int) -> float:
    """Seconds to the probe after the next one: doubling with each failed probe."""
    failed_probes = max(sink.consecutive_failures - threshold, 0)
    return backoff.retry_delay(failed_probes + 2, PROBE_BASE_SECONDS, PROBE_MAX_SECONDS, None)


def pause(session: Session, sink_id: int, by: str, reason: str | None, now: datetime) -> bool:
    """Pause the sink; False when ``by`` had already paused it. An operator's pause
    takes over a breaker's (no more probes until the operator resumes)."""
    not_yet = or_(Sink.paused.is_(False), Sink.paused_by.is_distinct_from(by))
    values = {"paused": True, "paused_by": by, "paused_reason": reason, "paused_at": now}
    statement = update(Sink).where(Sink.id == sink_id, not_yet).values(**values, probe_at=None)
    return bool(rows_changed(session, statement))


def resume(session: Session, sink_id: int) -> bool:
    """Unpause (an operator closing the breaker too); False when it was not paused."""
    statement = update(Sink).where(Sink.id == sink_id, Sink.paused.is_(True))
    return bool(rows_changed(session, statement.values(**UNPAUSED, consecutive_failures=0)))


_SINKS = cast(Table, Sink.__table__)
SUCCEEDED = plain.hot(  # built once: every delivered attempt runs it
    update(_SINKS)
    .where(_SINKS.c.id == bindparam("sink"))
    .where(
        or_(
            _SINKS.c.consecutive_failures > 0,
            _SINKS.c.last_success_at.is_(None),
            _SINKS.c.last_success_at < bindparam("since"),
        )
    )
    .values(consecutive_failures=0, last_success_at=bindparam("at"))
)


def success_params(sink_id: int, now: datetime) -> dict[str, Any]:
    """``SUCCEEDED``'s parameters (``at`` is shared with the statements it is combined
    with, ``worker.pipeline.outbox``)."""
    return {"sink": sink_id, "at": now, "since": now - LAST_SUCCESS_RESOLUTION}


def closes_breaker(sink: Sink) -> bool:
    """Whether a success of ``sink``'s would close its breaker (``note_success``)."""
    return sink.paused_by == BREAKER


def note_success(session: Session, sink: Sink, now: datetime) -> bool:
    """A delivered attempt: the count starts again. True when it closed the breaker."""
    execute(session, SUCCEEDED, success_params(sink.id, now))
    if not closes_breaker(sink):
        return False
    closing = update(Sink).where(Sink.id == sink.id, Sink.paused_by == BREAKER)
    return bool(rows_changed(session, closing.values(**UNPAUSED)))


def note_failure(
    session: Session, sink_id: int, counted: bool, reason: str | None, now: datetime, threshold: int
) -> datetime | None:
    """A failed attempt (``counted`` when ``unhealthy``). When it opened the breaker (this
    caller alone), the time of the first probe."""
    values: dict[str, Any] = {"last_failure_at": now}
    if counted:
        values["consecutive_failures"] = Sink.consecutive_failures + 1
    session.execute(update(Sink).where(Sink.id == sink_id).values(**values))
    if not counted or threshold < 1:
        return None
    probe_at = now + timedelta(seconds=PROBE_BASE_SECONDS)
    opening = (
        update(Sink)
        .where(Sink.id == sink_id, Sink.enabled, Sink.paused.is_(False))
        .where(Sink.consecutive_failures >= threshold)
        .values(paused=True, paused_by=BREAKER, paused_reason=reason, paused_at=now)
        .values(probe_at=probe_at)
    )
    return probe_at if rows_changed(session, opening) else None


def probe_due(sink: Sink, now: datetime) -> bool:
    """The sink's breaker is open and its next probe may go."""
    due = sink.paused_by == BREAKER and sink.probe_at is not None
    return due and sink.probe_at is not None and sink.probe_at <= now + PROBE_SLACK


def claim_probe(session: Session, sink: Sink, now: datetime, threshold: int) -> datetime | None:
    """Take the breaker's probe that is due: for one caller only, who sends one delivery.
    ``probe_at`` moves to the next probe's time as it is taken; that time is returned."""
    seen = sink.probe_at
    if seen is None or not probe_due(sink, now):
        return None
    following = now + timedelta(seconds=probe_delay(sink, threshold))
    statement = update(Sink).where(Sink.id == sink.id, Sink.paused_by == BREAKER)
    statement = statement.where(Sink.probe_at == seen).values(probe_at=following)
    return following if rows_changed(session, statement) else None


def give_back_probe(session: Session, sink: Sink, taken: datetime, seen: datetime) -> None:
    """Undo ``claim_probe`` (in its transaction) when no delivery could be claimed for it."""
    statement = update(Sink).where(Sink.id == sink.id, Sink.probe_at == taken)
    session.execute(statement.values(probe_at=seen))


def due_probe_sinks(session: Session, now: datetime) -> list[Sink]:
    """Sinks whose breaker is open and whose probe is due."""
    query = select(Sink).where(Sink.paused_by == BREAKER, Sink.probe_at <= now + PROBE_SLACK)
    return list(session.scalars(query.order_by(Sink.probe_at)))
