"""Refresh jobs held on a points label we cannot interpret, as ops see them.

Apart from ``worker.pipeline.refresh`` so that ``/metrics`` can ask without
loading the pipeline into the web process.
"""

from __future__ import annotations

from sqlalchemy import Select, distinct, func, or_, select, text
from sqlalchemy.orm import Session

from worker.storage.models import HELD_PREDICATE, CustomerPoints, RefreshJob

HELD = "held"  # fetched, but with a points label we cannot interpret: nothing applied or sent
READ_CAP = 1_000  # held jobs read per call, the newest first
# Written out, not bound: the planner matches it to ix_refresh_held's predicate in any plan.
HELD_ONLY = text(HELD_PREDICATE)


def needing_attention(session: Session, read: int = READ_CAP) -> dict[int, int]:
    """Store id → customers whose latest refresh was held (unknown labels), for ops.

    A customer stops needing attention once a later fetch of theirs is applied:
    that refresh marks their earlier held jobs done (``refresh.RESOLVED``), and a
    snapshot's ``fetched_at`` newer than a held job answers it too. Unresolved held
    jobs are never deleted (retention keeps them for an operator), so the newest
    ``read`` of them are looked at, no more: a backward range of the partial index
    ``ix_refresh_held`` (held rows only, index-only) and, for each, a probe of
    its snapshot's primary key — a correlated subquery, so that the planner
    cannot hash the whole ``customer_points`` table instead. Past ``read`` held
    jobs still unresolved the counts are at least these.
    """
    return {store_id: count for store_id, count in session.execute(needing_attention_query(read))}


def needing_attention_query(read: int = READ_CAP) -> Select[int, int]:
    """The statement of ``needing_attention``: (store id, customers) per store."""
    fetched = (
        select(CustomerPoints.fetched_at)
        .where(
            CustomerPoints.store_id == RefreshJob.store_id,
            CustomerPoints.customer_id == RefreshJob.customer_id,
        )
        .scalar_subquery()
    )
    newest = (
        select(
            RefreshJob.store_id,
            RefreshJob.customer_id,
            RefreshJob.finished_at,
            fetched.label("fetched_at"),
        )
        .where(HELD_ONLY)
        .order_by(RefreshJob.finished_at.desc())
        .limit(read)
        .subquery()
    )
    unresolved = or_(newest.c.fetched_at.is_(None), newest.c.fetched_at < newest.c.finished_at)
    return (
        select(newest.c.store_id, func.count(distinct(newest.c.customer_id)))
        .where(unresolved)
        .group_by(newest.c.store_id)
    )
