"""The outbox: one row per change and sink, written with the change, sent by
``deliver``. The row id is the idempotency key (the ``webhook-id`` of signed
webhooks), stable across retries.

Delivery is claimed with a conditional update and the attempt is recorded
*before* the call, as a ``delivery_attempts`` row written in the claiming
transaction (``worker.pipeline.attempts``); a worker killed after the call but
before recording the answer leaves the row in ``sending``, and the sweeper
retries it with the same id, so a receiver that dedupes on the id sees it once.

After the call one transaction records the outcome on the delivery, on its
attempt row and on its sink's health (``worker.pipeline.breaker``). A paused
sink's deliveries are not claimed but parked (``worker.pipeline.holding``); while
its breaker is open, the one delivery that claims the due probe is sent alone.
What to do with an answer is decided in ``worker.pipeline.verdicts``, the same
for every sink: the contract (``worker.sinks.base``) carries what varies.
"""

from __future__ import annotations

import functools
import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, Update, bindparam, insert, select, update
from sqlalchemy.orm import Session

from worker import metrics, reactions
from worker.errors import PermanentError, TransientError
from worker.pipeline import attempts, breaker, holding, verdicts
from worker.pipeline.attempts import Answer
from worker.pipeline.states import DEAD as DEAD
from worker.pipeline.states import DELIVERED as DELIVERED
from worker.pipeline.states import MAX_COUNTDOWN as MAX_COUNTDOWN
from worker.pipeline.states import PENDING as PENDING
from worker.pipeline.states import RETRYING as RETRYING
from worker.pipeline.states import SENDING as SENDING
from worker.pipeline.states import SKIPPED as SKIPPED
from worker.pipeline.states import WAITING
from worker.pipeline.states import Due as Due
from worker.points import CustomerContact
from worker.quota import DatabaseBudget
from worker.runtime import Runtime
from worker.scrub import scrub_error
from worker.sinks import UnknownSinkKind, get_sink
from worker.sinks.base import EndpointGone, OutboundDelivery, SendResult, SinkContext, StoreInfo
from worker.sinks.base import Sink as SinkAdapter
from worker.storage import plain
from worker.storage.models import (
    CustomerPoints,
    Delivery,
    Sink,
    Store,
    detached,
    detached_rows,
    utcnow,
)
from worker.storage.upsert import execute, one_of, rows_changed, rows_of

log = logging.getLogger(__name__)

CLAIM_SLACK = timedelta(seconds=1)
EVENT_PRIORITY = ("points.balance_changed", "points.tier_changed", "points.expiry_changed")


def new_delivery_id() -> str:
    return "msg_" + secrets.token_hex(12)


def event_type_for(kinds: list[str]) -> str:
    return next((kind for kind in EVENT_PRIORITY if kind in kinds), kinds[0])


def create_deliveries(
    session: Session,
    store: Store,
    change_id: int | None,
    payload: dict[str, Any],
    sinks: Sequence[Sink] | None = None,
    flush: bool = True,
    recipient: Recipient | None = None,
) -> list[Due]:
    """One outbox row per sink that wants this change (see ``worker.reactions``).

    A message sink's row waits for its collapse window and the store's quiet
    hours; a change arriving while it waits is folded into it instead. A caller
    creating many (``worker.pipeline.schedule``) passes the store's enabled ``sinks`` it
    loaded once, and flushes once for the lot.

    A caller that gives the ``recipient`` (the customer the change is about, as it
    knows them) sends the rows due now itself, right after its commit. Each is written as its first
    attempt's claim would leave it — ``sending``, with its ``sending`` attempt row —
    and comes back as ``Taken``, ready for ``send_taken``: no message, no claim and
    no reads of its own. A worker killed before the answer is recorded leaves it
    ``sending``, and the sweeper retries it as it does any interrupted attempt. A
    paused sink's row due now (its breaker's probe) is only marked handed out
    (``dispatched_at``), for ``deliver`` to claim as the probe.
    """
    now = utcnow()
    if sinks is None:
        sinks = enabled_sinks(session, store.id)
    due = []
    for sink in sinks:
        kinds = reactions.wanted_kinds(sink.kind, sink.rules, sink.kinds, payload["kinds"], payload)
        if not kinds:
            continue
        wanted = payload | {"kinds": kinds}
        if _fold_into_held(session, sink, wanted, now):
            continue
        send_at = reactions.send_at(sink.rules, sink.kind, now, store.timezone)
        due += _add(session, sink, store.id, change_id, wanted, send_at, now, recipient, flush)
    if flush:
        session.flush()
    return due


_SINKS = cast(Table, Sink.__table__)
_DELIVERIES = cast(Table, Delivery.__table__)


def enabled_sinks(session: Session, store_id: int) -> list[Sink]:
    """The store's enabled sinks, read as plain rows into objects of no session: what a
    delivery is decided and sent with, without the ORM's loading (half the CPU)."""
    rows = execute(session, _ENABLED_SINKS, {"store": store_id})
    return detached_rows(Sink, rows)


_ENABLED_SINKS = plain.hot(
    select(_SINKS).where(_SINKS.c.store_id == bindparam("store"), _SINKS.c.enabled)
)
_INSERT_DELIVERY = insert(_DELIVERIES)


def _add(
    session: Session,
    sink: Sink,
    store_id: int,
    change_id: int | None,
    payload: dict[str, Any],
    send_at: datetime,
    now: datetime,
    recipient: Recipient | None = None,
    alone: bool = True,
) -> list[Due]:
    """One delivery row. ``alone`` (not one of a batch the caller flushes together):
    written with a Core INSERT at once, the object returned being of no session."""
    if _held(sink, now):
        send_at = holding.PARKED_AT  # released when the sink resumes
    countdown = (send_at - now).total_seconds()
    handed_out = now if recipient is not None and countdown <= 0 else None
    values: dict[str, Any] = {
        "id": new_delivery_id(), "sink_id": sink.id, "change_id": change_id,
        "store_id": store_id, "customer_id": payload.get("customer_id"),
        "event_type": event_type_for(payload["kinds"]), "payload": payload,
        "status": PENDING, "attempts": 0, "next_attempt_at": send_at,
        "deferred": countdown > MAX_COUNTDOWN, "dispatched_at": handed_out,
        "created_at": now, "claimed_at": None,
    }  # fmt: skip
    taken = recipient is not None and handed_out is not None and sink.enabled and not sink.paused
    if taken:
        values |= {"status": SENDING, "attempts": 1, "claimed_at": now}
    delivery = detached(Delivery, values) if alone else Delivery(**values)
    if alone and taken and session.get_bind().dialect.name == "postgresql":
        _insert_taken(session, delivery, values, now)
        return [Taken(delivery.id, countdown, Claimed(delivery, sink), recipient)]
    if alone:
        execute(session, _INSERT_DELIVERY, values)
    else:
        session.add(delivery)
    if taken:
        attempts.start(session, delivery, now)
        return [Taken(delivery.id, countdown, Claimed(delivery, sink), recipient)]
    return [] if delivery.deferred else [Due(delivery.id, countdown)]


def _insert_taken(
    session: Session, delivery: Delivery, values: dict[str, Any], now: datetime
) -> None:
    """PostgreSQL: a delivery written claimed and its first attempt row
    (``attempts.start``) in one statement, the delivery's INSERT a data-modifying CTE
    of the attempt's (its foreign key is checked at the statement's end)."""
    params = {f"d_{name}": value for name, value in values.items()}
    params |= {f"a_{name}": value for name, value in attempts.start_values(delivery, now).items()}
    execute(session, _insert_taken_statement(frozenset(values)), params)


@functools.cache
def _insert_taken_statement(columns: frozenset[str]) -> Any:
    table = attempts.ATTEMPTS
    delivery = insert(_DELIVERIES).values({n: bindparam(f"d_{n}") for n in sorted(columns)})
    names = ("delivery_id", "sink_id", "number", "started_at", "outcome")
    attempt = insert(table).values({name: bindparam(f"a_{name}") for name in names})
    return plain.hot(attempt.add_cte(delivery.cte("new_delivery")))


def _held(sink: Sink, now: datetime) -> bool:
    """A paused sink's new deliveries wait; but while its breaker's probe is due, one
    goes and is the probe (the outbox drives probes, ``worker.pipeline.breaker``)."""
    return sink.paused and not breaker.probe_due(sink, now)


def _fold_into_held(session: Session, sink: Sink, payload: dict[str, Any], now: datetime) -> bool:
    """Merge into a message still waiting to go out; False when there is none."""
    if not reactions.collapse_seconds(sink.rules, sink.kind):
        return False
    query = (
        select(Delivery)
        .where(Delivery.sink_id == sink.id, Delivery.customer_id == payload.get("customer_id"))
        .where(Delivery.status == PENDING, Delivery.next_attempt_at > now + CLAIM_SLACK)
        .with_for_update()
    )
    held = session.scalars(query).first()
    if held is None:
        return False
    merged = reactions.merge_payloads(held.payload, payload)
    # Guarded like a claim: a row a worker is about to send is not changed under it.
    return bool(
        rows_changed(
            session,
            update(Delivery)
            .where(Delivery.id == held.id, Delivery.status == PENDING)
            .where(Delivery.next_attempt_at > now + CLAIM_SLACK)
            .values(payload=merged, event_type=event_type_for(merged["kinds"])),
        )
    )


def claim(session: Session, delivery_id: str) -> Delivery | None:
    """Take a due delivery for one worker, and write its attempt row before the call."""
    now = utcnow()
    claimed = rows_changed(
        session,
        update(Delivery)
        .where(Delivery.id == delivery_id, Delivery.status.in_(WAITING))
        .where(Delivery.next_attempt_at <= now + CLAIM_SLACK)
        .values(status=SENDING, claimed_at=now, attempts=Delivery.attempts + 1),
    )
    delivery = session.get(Delivery, delivery_id) if claimed else None
    if delivery is not None:
        attempts.start(session, delivery, now)
    return delivery


@dataclass(frozen=True)
class Claimed:
    """A delivery claimed for one attempt; ``probe_at`` set when it is the breaker's probe
    (the time of the probe after it)."""

    delivery: Delivery
    sink: Sink | None
    probe_at: datetime | None = None


@dataclass(frozen=True)
class Recipient:
    """Who a change is about, as its sender already knows them (decrypted, merged)."""

    store: StoreInfo
    contact: CustomerContact
    excluded: bool


@dataclass(frozen=True)
class Taken(Due):
    """A delivery written already claimed for its sender (``create_deliveries``)."""

    claimed: Claimed | None = None
    recipient: Recipient | None = None


def deliver(runtime: Runtime, delivery_id: str) -> list[Due]:
    """Send one delivery (or a batch of due ones, for a sink that takes batches);
    return deliveries to enqueue (retries, released or probing ones)."""
    with runtime.transaction() as session:
        claimed = _take(session, runtime.settings.breaker_failures, delivery_id)
    if claimed is None:
        return []
    return _attempt(runtime, claimed)


def send_own(runtime: Runtime, due: Sequence[Due]) -> list[Due]:
    """What a creator of deliveries does once it has committed them: send those due
    now (its ``Taken`` ones as they are, others claimed first); what those attempts
    left to enqueue (retries, deliveries a sink's health released)."""
    left: list[Due] = []
    for item in due:
        if isinstance(item, Taken):
            left += send_taken(runtime, item)
        elif item.countdown <= 0:
            left += deliver(runtime, item.delivery_id)
    return left


def send_taken(runtime: Runtime, taken: Taken) -> list[Due]:
    """Send a delivery its sender wrote already claimed; what ``deliver`` returns."""
    assert taken.claimed is not None
    return _attempt(runtime, taken.claimed, taken.recipient)


def _attempt(runtime: Runtime, claimed: Claimed, recipient: Recipient | None = None) -> list[Due]:
    if claimed.sink is None or not claimed.sink.enabled:
        return _conclude(runtime, claimed, DISABLED)
    companions = [] if claimed.probe_at else claim_companions(runtime, claimed.sink, claimed)
    if companions:
        return deliver_batch(runtime, [claimed, *companions])
    return _deliver_one(runtime, claimed, recipient)


DISABLED = verdicts.Verdict(SKIPPED, Answer(SKIPPED, "sink is disabled or removed"))


def _take(session: Session, threshold: int, delivery_id: str) -> Claimed | None:
    """Claim the delivery unless its sink is paused: then it is parked, or it is the
    breaker's probe when one is due (claimed first, so that only one worker probes)."""
    now = utcnow()
    of_delivery = select(Sink).join(Delivery, Delivery.sink_id == Sink.id)
    sink = session.scalars(of_delivery.where(Delivery.id == delivery_id)).first()
    if sink is None or not sink.enabled or not sink.paused:
        delivery = claim(session, delivery_id)
        return Claimed(delivery, sink) if delivery else None
    seen = sink.probe_at
    probe_at = breaker.claim_probe(session, sink, now, threshold)
    if probe_at is None or seen is None:
        holding.park(
            session, Delivery.id == delivery_id, Delivery.next_attempt_at <= now + CLAIM_SLACK
        )
        return None
    delivery = claim(session, delivery_id)
    if delivery is None:
        breaker.give_back_probe(session, sink, probe_at, seen)
        return None
    return Claimed(delivery, sink, probe_at)


def claim_companions(runtime: Runtime, sink: Sink, first: Claimed) -> list[Claimed]:
    """Other due deliveries for ``sink``, claimed for one ``send_many`` (``first`` excluded).

    Reconciliation-sized bursts (a reconciliation, a backlog after an outage) then
    go as a CRM's batch upsert instead of one call per row; the other messages for
    those rows find nothing left to claim. None for a sink that sends one at a time.
    """
    limit = _batch_limit(sink) - 1
    if limit < 1:
        return []
    query = (
        select(Delivery.id)
        .where(Delivery.sink_id == sink.id, Delivery.id != first.delivery.id)
        .where(Delivery.status.in_(WAITING), Delivery.next_attempt_at <= utcnow())
        .limit(limit)
    )
    with runtime.transaction() as session:
        claimed = [claim(session, row_id) for row_id in session.scalars(query).all()]
    return [Claimed(delivery, sink) for delivery in claimed if delivery is not None]


def deliver_batch(runtime: Runtime, batch: list[Claimed]) -> list[Due]:
    """Send ``batch`` (all claimed, one sink) in one ``send_many``; record each row's outcome.

    The call is one call to the sink: its health counts once, on the first row."""
    assert batch[0].sink is not None
    started = time.monotonic()
    try:
        adapter = make_sink(runtime, batch[0].sink)
        results = adapter.send_many([outbound_delivery(runtime, c.delivery) for c in batch])
    except (PermanentError, TransientError) as exc:
        settings, took = runtime.settings, _since(started)
        judged = [verdicts.of_failure(settings, c.delivery, exc, took) for c in batch]
    else:
        judged = [verdicts.of_result(result, _since(started)) for result in results]
    due = []
    for claimed, verdict in zip(batch, verdicts.once_per_call(judged), strict=True):
        due += _conclude(runtime, claimed, verdict)
    return due


def _deliver_one(
    runtime: Runtime, claimed: Claimed, recipient: Recipient | None = None
) -> list[Due]:
    assert claimed.sink is not None
    started = time.monotonic()
    try:
        result = _send(runtime, claimed.sink, claimed.delivery, recipient)
    except (PermanentError, TransientError) as exc:
        verdict = verdicts.of_failure(runtime.settings, claimed.delivery, exc, _since(started))
        due = _conclude(runtime, claimed, verdict)
        if isinstance(exc, EndpointGone):
            reason = f"endpoint answered 410 Gone on {claimed.delivery.id}"
            _disable_sink(runtime, claimed.sink.id, reason)
        return due
    return _conclude(runtime, claimed, verdicts.delivered(result.status_code, _since(started)))


def _since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def _send(
    runtime: Runtime, sink: Sink, delivery: Delivery, recipient: Recipient | None
) -> SendResult:
    adapter = make_sink(runtime, sink)
    if recipient is None:
        return adapter.send(outbound_delivery(runtime, delivery))
    return adapter.send(_outbound(delivery, recipient))


def make_sink(runtime: Runtime, sink: Sink) -> SinkAdapter:
    """The sink adapter for a row: decrypted config, and the one context every sink gets."""
    return _adapter_class(sink)(runtime.cipher.open_kept(sink.config), sink_context(runtime))


def sink_context(runtime: Runtime) -> SinkContext:
    """The shared HTTP client, the rate budget in the database, the settings."""
    return SinkContext(runtime.http, DatabaseBudget(runtime.transaction), runtime.settings)


def _batch_limit(sink: Sink) -> int:
    try:
        return get_sink(sink.kind).batch_limit
    except UnknownSinkKind:  # the send says why (dead, with the reason)
        return 1


def _adapter_class(sink: Sink) -> type[SinkAdapter]:
    try:
        return get_sink(sink.kind)
    except UnknownSinkKind as exc:  # a row written by a newer version, or by hand
        raise PermanentError(str(exc)) from None


def outbound_delivery(runtime: Runtime, delivery: Delivery) -> OutboundDelivery:
    """The row as a sink sees it, with the customer's contact decrypted for this attempt."""
    with runtime.sessions() as session:
        store = session.get_one(Store, delivery.store_id)
        points = (
            session.get(CustomerPoints, (delivery.store_id, delivery.customer_id))
            if delivery.customer_id
            else None
        )
    contact = runtime.cipher.open(points.contact) if points else {}
    return _outbound(
        delivery,
        Recipient(store_info(store), CustomerContact(**contact), bool(points and points.excluded)),
    )


def store_info(store: Store) -> StoreInfo:
    return StoreInfo(store.key, store.name, store.timezone, store.locale)


def _outbound(delivery: Delivery, recipient: Recipient) -> OutboundDelivery:
    return OutboundDelivery(
        id=delivery.id,
        event_type=delivery.event_type,
        payload=delivery.payload,
        created_at=delivery.created_at,
        attempt=delivery.attempts,
        store=recipient.store,
        contact=recipient.contact,
        excluded=recipient.excluded,
    )


def _conclude(runtime: Runtime, claimed: Claimed, verdict: verdicts.Verdict) -> list[Due]:
    """Record an attempt's outcome on the delivery, its attempt row and its sink, in one
    transaction (a plain delivery on PostgreSQL: in one statement, ``_record_delivered``);
    return what to enqueue (its retry, or what the sink's health released)."""
    now, delivery = utcnow(), claimed.delivery
    if _plainly_delivered(runtime, claimed, verdict):
        _record_delivered(runtime, claimed, verdict, now)
        retry, held = [], None
    else:
        with runtime.transaction() as session:
            retry = _set_status(session, delivery, verdict, now)
            attempts.finish(session, delivery.id, delivery.attempts, verdict.answer, now)
            threshold = runtime.settings.breaker_failures
            sink, probing = claimed.sink, claimed.probe_at
            held = holding.account(session, threshold, sink, probing, verdict, now)
    kind = claimed.sink.kind if claimed.sink else "removed"
    metrics.delivery_attempt(kind, verdict.answer.outcome, created_at=delivery.created_at)
    return retry if held is None else held


def _plainly_delivered(runtime: Runtime, claimed: Claimed, verdict: verdicts.Verdict) -> bool:
    """The common outcome, on PostgreSQL: delivered, not a probe, to a sink whose
    breaker it cannot close. Its three writes then go as one statement."""
    sink = claimed.sink
    return (
        verdict.status == DELIVERED
        and verdict.health == verdicts.SUCCESS
        and claimed.probe_at is None
        and sink is not None
        and not breaker.closes_breaker(sink)
        and runtime.engine.dialect.name == "postgresql"
    )


def _record_delivered(
    runtime: Runtime, claimed: Claimed, verdict: verdicts.Verdict, now: datetime
) -> None:
    """What the transaction of ``_conclude`` writes for a delivered attempt — the final
    status (``_set_final``), the attempt's answer (``attempts.finish``) and the sink's
    success (``breaker.note_success``) — in one statement that commits by itself: the
    two others are data-modifying CTEs of the delivery's UPDATE, all or none. Five round
    trips (BEGIN, three UPDATEs, COMMIT) become one."""
    assert claimed.sink is not None
    delivery, answer = claimed.delivery, verdict.answer
    values = _final_values(_outcome_values(verdict))
    params = _final_params(values, delivery.id)
    params |= attempts.finish_params(delivery.id, delivery.attempts, answer, now)
    params |= breaker.success_params(claimed.sink.id, now)
    with runtime.statement() as connection:
        plain.execute(connection, _delivered_in_one(frozenset(values)), params)


@functools.cache
def _delivered_in_one(columns: frozenset[str]) -> Update:
    finished = attempts.FINISH.returning(attempts.FINISH.table.c.id).cte("finished_attempt")
    healthy = breaker.SUCCEEDED.returning(breaker.SUCCEEDED.table.c.id).cte("sink_success")
    return plain.hot(_finishing(columns).add_cte(finished, healthy))


def _set_status(
    session: Session, delivery: Delivery, verdict: verdicts.Verdict, now: datetime
) -> list[Due]:
    """The delivery's new status; its retry when it has one (a claim still held)."""
    values = _outcome_values(verdict)
    if verdict.status != RETRYING:
        _set_final(session, delivery, values)
        return []
    deferred = verdict.delay > MAX_COUNTDOWN
    later = {"next_attempt_at": now + timedelta(seconds=verdict.delay), "deferred": deferred}
    held = update(Delivery).where(Delivery.id == delivery.id, Delivery.status == SENDING)
    if not rows_changed(session, held.values(**values, **later)):
        return []
    log.info("delivery %s: %s; retry %d in %.0fs", delivery.id, values["last_error"],
             delivery.attempts, verdict.delay)  # fmt: skip
    return [] if deferred else [Due(delivery.id, verdict.delay)]


def _set_final(session: Session, delivery: Delivery, values: dict[str, Any]) -> None:
    """Delivered, dead or skipped, unless it already is one of them (a dead one logged once)."""
    values = _final_values(values)
    changed = execute(session, _finishing(frozenset(values)), _final_params(values, delivery.id))
    if rows_of(changed) and values["status"] == DEAD:
        _log_dead(session, delivery, values["last_error"])


def _outcome_values(verdict: verdicts.Verdict) -> dict[str, Any]:
    """The delivery's columns an attempt's answer sets, whatever its status."""
    answer = verdict.answer
    values: dict[str, Any] = {"status": verdict.status, "last_error": scrub_error(answer.error)}
    if answer.status_code is not None:
        values["last_status_code"] = answer.status_code
    return values


def _final_values(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` for a final status: a delivered one with its time."""
    if values["status"] != DELIVERED:
        return values
    return values | {"delivered_at": datetime.now(UTC)}


def _final_params(values: dict[str, Any], delivery_id: str) -> dict[str, Any]:
    """``_finishing``'s parameters for ``values``."""
    return {f"{name}_": value for name, value in values.items()} | {"delivery": delivery_id}


@functools.cache
def _finishing(columns: frozenset[str]) -> Update:
    """The final UPDATE for a set of columns, built once per set (a handful in all)."""
    unfinished = one_of(_DELIVERIES.c.status, (*WAITING, SENDING))
    statement = update(_DELIVERIES).where(_DELIVERIES.c.id == bindparam("delivery"), unfinished)
    return plain.hot(statement.values({name: bindparam(f"{name}_") for name in sorted(columns)}))


def _log_dead(session: Session, delivery: Delivery, reason: str | None) -> None:
    store = session.get_one(Store, delivery.store_id)
    log.warning(
        "delivery %s to sink %s (store %s) is dead after %d attempts: %s",
        delivery.id, delivery.sink_id, store.key, delivery.attempts, reason,
    )  # fmt: skip


def _disable_sink(runtime: Runtime, sink_id: int, reason: str) -> None:
    """A 410 means the receiver is gone for good (Standard Webhooks): stop sending to it."""
    with runtime.transaction() as session:
        session.execute(
            update(Sink).where(Sink.id == sink_id).values(enabled=False, disabled_reason=reason)
        )
    log.warning("sink %s disabled: %s", sink_id, reason)
