"""Stored webhooks for ops: list, show (body decrypted, then masked), replay.

Replay re-processes a webhook as if it had just arrived: the row goes back to
pending and a drain is rung after the commit, as the receiver does. It is
safe because events are triggers, not truth: processing asks for a refresh of
the customer, the refresh compares with the stored snapshot, and a delivery is
made only when something changed — replaying an order webhook whose points
did not move re-reads them and sends nothing. Processed bodies are kept,
sealed, until retention deletes the row (``worker.pipeline.inbox``).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session

from worker import dispatch
from worker.crypto import CredentialsError
from worker.ops import NotFound, OpsError, store_by_key
from worker.ops.masking import masked_body
from worker.ops.pages import DEFAULT_LIMIT, Keyset, Page, chosen, listing
from worker.ops.pages import partitions as combinations
from worker.pipeline.inbox import DONE, FAILED, IGNORED, PENDING, PROCESSING, WAITING
from worker.platforms import REGISTRY
from worker.runtime import Runtime
from worker.storage.models import InboxEvent

STATUSES = (PENDING, PROCESSING, WAITING, DONE, IGNORED, FAILED)
REPLAYABLE = (DONE, IGNORED, FAILED)  # finished rows; pending ones are on their way anyway
# ix_inbox_status_received / ix_inbox_store_status_received serve every listing.
KEYSET = Keyset(InboxEvent.received_at, InboxEvent.id, int)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EventRow:
    id: int
    platform: str
    store_ref: str | None
    event_type: str
    status: str
    reason: str | None
    attempts: int
    received_at: datetime
    processed_at: datetime | None
    body_kept: bool


@dataclass(frozen=True)
class EventDetail:
    event: EventRow
    customer_id: str | None
    headers: dict[str, Any]
    body: Any  # the masked document; None when no body is kept


def list_events(
    session: Session,
    store: str | None = None,
    event: str | None = None,
    status: str | None = None,
    since: datetime | None = None,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
    *,
    platform: str | None = None,
) -> Page[EventRow]:
    """Newest first. ``event`` and ``platform`` (the receiver: salla, zid, shopify,
    appstle) filter within the status (and store) ranges: give ``since`` with them
    on a large inbox, so the range read stays short."""
    conditions = KEYSET.after(cursor)
    if since is not None:
        conditions.append(InboxEvent.received_at >= since)
    if event is not None:
        conditions.append(InboxEvent.event_type == event)
    if platform is not None:
        if platform not in REGISTRY:
            raise OpsError(f"unknown platform {platform!r} (one of {', '.join(REGISTRY)})")
        conditions.append(InboxEvent.platform == platform)
    parts = combinations(
        [InboxEvent.status == value for value in chosen(status, STATUSES, "inbox")]
    )
    if store is not None:
        of_store = _of_store(session, store)
        parts = [(*part, *of_store) for part in parts]
    query = select(InboxEvent)
    return listing(session, KEYSET, parts, conditions, limit, query, lambda found: _row(found[0]))


def _of_store(session: Session, key: str) -> list[ColumnElement[bool]]:
    found = store_by_key(session, key)
    return [
        InboxEvent.store_ref == found.external_id,
        InboxEvent.platform.in_(receivers(found.platform)),
    ]


def receivers(store_platform: str) -> list[str]:
    """The receivers whose events belong to a store of ``store_platform`` (shopify:
    shopify and appstle), read from the platform registry."""
    return [name for name in REGISTRY if _platform_class(name).store_platform == store_platform]


def _platform_class(name: str) -> Any:
    module, _, attribute = REGISTRY[name].partition(":")
    return getattr(importlib.import_module(module), attribute)


def _row(row: InboxEvent) -> EventRow:
    return EventRow(
        id=row.id,
        platform=row.platform,
        store_ref=row.store_ref,
        event_type=row.event_type,
        status=row.status,
        reason=row.reason,
        attempts=row.attempts,
        received_at=row.received_at,
        processed_at=row.processed_at,
        body_kept=bool(row.body),
    )


def show_event(runtime: Runtime, session: Session, event_id: int) -> EventDetail:
    """The event with its body decrypted and masked (never in clear)."""
    row = session.get(InboxEvent, event_id)
    if row is None:
        raise NotFound(f"no inbox event {event_id}")
    return EventDetail(
        event=_row(row),
        customer_id=row.customer_id,
        headers=_headers(row.headers),
        body=_body(runtime, row),
    )


def _headers(headers: dict[str, Any]) -> dict[str, Any]:
    """Stored headers minus anything that authenticates (signatures, tokens)."""
    secret = ("signature", "authorization", "token", "hmac", "secret")
    return {
        name: "[masked]" if any(word in name.lower() for word in secret) else value
        for name, value in (headers or {}).items()
    }


def _body(runtime: Runtime, row: InboxEvent) -> Any:
    if not row.body:
        return None
    try:
        return masked_body(runtime.cipher.open_bytes(row.body, "an inbox body"))
    except CredentialsError as exc:
        return f"[unreadable: {exc}]"


def replay(runtime: Runtime, ids: Sequence[int]) -> list[int]:
    """Finished events among ``ids`` that still hold a body back to pending, then a
    drain is rung (after the commit, as the receiver does); the ids put back."""
    moved = (
        update(InboxEvent)
        .where(InboxEvent.id.in_(list(ids)), InboxEvent.status.in_(REPLAYABLE))
        .where(InboxEvent.body != b"")
        .values(status=PENDING, reason=None, processed_at=None, claimed_at=None)
        .returning(InboxEvent.id)
        .execution_options(synchronize_session=False)
    )
    with runtime.transaction() as session:
        replayed = sorted(session.scalars(moved))
    if replayed:
        _ring(runtime)
    return replayed


def _ring(runtime: Runtime) -> None:
    """One drain message, always: the Redis bell's ``SET NX`` saves messages on the
    receiver's hot path, a replay is one command. A lost ring is harmless: the
    sweeper finds the rows pending and rings again."""
    try:
        dispatch.drain_publisher(runtime.settings.broker_url).send()
    except dispatch.BrokerUnavailable as exc:
        log.warning("inbox bell not rung (%s): the sweeper will pick the events up", exc)
