"""Refresh jobs for ops: list them, and run failed (or held) ones again.

A retried job goes to ``retrying``, due now, with its attempts back to 0 — not to
``pending``: a pending row is the coalescing slot (one per customer and slot,
``uq_refresh_pending``), and a fresh event may already hold it; ``retrying`` is
claimed exactly like ``pending`` (``worker.pipeline.refresh.claim``), so the job
runs as soon as its message arrives, beside any fresh one, without a conflict.
The last error stays on the row until the new run replaces it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session

from worker.logs import scrub
from worker.ops import OpsError, store_by_key
from worker.ops.pages import DEFAULT_LIMIT, Keyset, Page, chosen, listing
from worker.ops.pages import partitions as combinations
from worker.pipeline.refresh import DONE, FAILED, HELD, PENDING, RETRYING, WORKING
from worker.storage.models import RefreshJob, Store, utcnow

STATUSES = (PENDING, WORKING, RETRYING, HELD, DONE, FAILED)
RETRYABLE = (FAILED, HELD)
# ix_refresh_status_due (and the per-store (store_id, status, due_at) index) serve it.
KEYSET = Keyset(RefreshJob.due_at, RefreshJob.id, int)


@dataclass(frozen=True)
class JobRow:
    id: int
    store: str
    customer_id: str
    slot: str
    status: str
    attempts: int
    due_at: datetime
    finished_at: datetime | None
    last_error: str | None


def list_jobs(
    session: Session,
    status: str | None = None,
    store: str | None = None,
    since: datetime | None = None,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Page[JobRow]:
    """Latest due first; ``since`` bounds the due time."""
    conditions = KEYSET.after(cursor)
    if since is not None:
        conditions.append(RefreshJob.due_at >= since)
    parts = combinations(
        [RefreshJob.status == value for value in chosen(status, STATUSES, "refresh")]
    )
    if store is not None:
        of_store = RefreshJob.store_id == store_by_key(session, store).id
        parts = [(*part, of_store) for part in parts]
    query = select(RefreshJob, Store.platform, Store.external_id).join(
        Store, Store.id == RefreshJob.store_id
    )
    return listing(
        session, KEYSET, parts, conditions, limit, query,
        lambda found: _row(found[0], f"{found[1]}:{found[2]}"),
    )  # fmt: skip


def _row(job: RefreshJob, store_key: str) -> JobRow:
    return JobRow(
        id=job.id,
        store=store_key,
        customer_id=job.customer_id,
        slot=job.slot,
        status=job.status,
        attempts=job.attempts,
        due_at=job.due_at,
        finished_at=job.finished_at,
        last_error=scrub(job.last_error) if job.last_error else None,
    )


def retry_jobs(
    session: Session,
    ids: Sequence[int] | None = None,
    status: str | None = None,
    batch: int = 1000,
) -> list[int]:
    """Failed or held jobs (``ids``, or up to ``batch`` in ``status``) run again now;
    the ids moved, to enqueue. Running it twice moves nothing the second time."""
    if (ids is None) == (status is None):
        raise OpsError("give job ids or a status, not both")
    if ids is not None:
        return _retry_where(session, [RefreshJob.id.in_(list(ids))])
    if status not in RETRYABLE:
        raise OpsError(f"only {' or '.join(RETRYABLE)} refresh jobs can be retried")
    picked = select(RefreshJob.id).where(RefreshJob.status == status).limit(batch)
    return _retry_where(session, [RefreshJob.id.in_(picked), RefreshJob.status == status])


def _retry_where(session: Session, conditions: list[ColumnElement[bool]]) -> list[int]:
    moved = (
        update(RefreshJob)
        .where(*conditions, RefreshJob.status.in_(RETRYABLE))
        .values(status=RETRYING, due_at=utcnow(), attempts=0, finished_at=None)
        .returning(RefreshJob.id)
        .execution_options(synchronize_session=False)
    )
    return sorted(session.scalars(moved))
