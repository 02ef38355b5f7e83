"""Delivery attempts: one ``delivery_attempts`` row per call to a sink.

The row is written, ``sending``, in the transaction that claims the delivery —
before the call — and finished after it with the outcome, the answer's code
(an HTTP status, an SMTP reply code), the error text masked
(``worker.scrub``) and how long the call took. A worker killed mid-call leaves
its row ``sending``; when the delivery is claimed again that row becomes
``interrupted`` and stays, as evidence of a call whose outcome nobody saw.

Outcomes (also the words the outbox uses for a delivery's status, where they
overlap): ``delivered``; ``retrying`` (a transient failure, another attempt
follows); ``dead`` (a transient failure on the last attempt allowed);
``rejected`` (the receiver refused it for good, or it could not be sent at all:
the delivery is dead); ``skipped`` (nothing was sent, on purpose).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from worker.pipeline.states import SENDING
from worker.scrub import scrub_error
from worker.storage import plain
from worker.storage.models import Delivery, DeliveryAttempt
from worker.storage.upsert import execute

INTERRUPTED, REJECTED = "interrupted", "rejected"


@dataclass(frozen=True)
class Answer:
    """How one attempt ended, as its row records it."""

    outcome: str
    error: str | None = None
    status_code: int | None = None
    duration_ms: int | None = None


def start(session: Session, delivery: Delivery, now: datetime) -> None:
    """Write attempt ``delivery.attempts`` (just claimed) as ``sending``; an earlier
    attempt still ``sending`` was cut off (its worker died): it is ``interrupted``."""
    if delivery.attempts > 1:  # a first attempt has no earlier one to mark
        session.execute(
            update(DeliveryAttempt)
            .where(DeliveryAttempt.delivery_id == delivery.id, DeliveryAttempt.outcome == SENDING)
            .values(outcome=INTERRUPTED)
        )
    execute(session, _INSERT, start_values(delivery, now))


def start_values(delivery: Delivery, now: datetime) -> dict[str, Any]:
    """The ``sending`` attempt row ``start`` writes."""
    return {"delivery_id": delivery.id, "sink_id": delivery.sink_id,
            "number": delivery.attempts, "started_at": now, "outcome": SENDING}  # fmt: skip


ATTEMPTS = _ATTEMPTS = cast(Table, DeliveryAttempt.__table__)
_INSERT = insert(_ATTEMPTS)


def finish(session: Session, delivery_id: str, number: int, answer: Answer, now: datetime) -> None:
    """Record how attempt ``number`` ended (even when a later one has begun meanwhile:
    the answer came late, but it is the answer). An ops retry starts the numbers again
    (``worker.ops.deliveries``): the newest row of that number is this attempt's."""
    execute(session, FINISH, finish_params(delivery_id, number, answer, now))


def finish_params(delivery_id: str, number: int, answer: Answer, now: datetime) -> dict[str, Any]:
    """``FINISH``'s parameters (``delivery`` and ``at`` are shared with the statements
    it is combined with, ``worker.pipeline.outbox``)."""
    return {
        "delivery": delivery_id, "nth": number, "at": now, "outcome_": answer.outcome,
        "code": answer.status_code, "error_": scrub_error(answer.error),
        "took": answer.duration_ms,
    }  # fmt: skip


_NEWEST = (
    select(func.max(_ATTEMPTS.c.id))
    .where(_ATTEMPTS.c.delivery_id == bindparam("delivery"))
    .where(_ATTEMPTS.c.number == bindparam("nth"))
)
FINISH = plain.hot(
    update(_ATTEMPTS)
    .where(_ATTEMPTS.c.id == _NEWEST.scalar_subquery())
    .values(
        finished_at=bindparam("at"),
        outcome=bindparam("outcome_"),
        status_code=bindparam("code"),
        error=bindparam("error_"),
        duration_ms=bindparam("took"),
    )
)
