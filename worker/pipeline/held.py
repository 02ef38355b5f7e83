"""Refresh jobs held on a points label we cannot interpret, as ops see them.

Apart from ``worker.pipeline.refresh`` so that ``/metrics`` can ask without
loading the pipeline into the web process.
"""

from __future__ import annotations

from sqlalchemy import Select, and_, distinct, func, or_, select
from sqlalchemy.orm import Session

from worker.storage.models import CustomerPoints, RefreshJob

HELD = "held"  # fetched, but with a points label we cannot interpret: nothing applied or sent


def needing_attention(session: Session) -> dict[int, int]:
    """Store id → customers whose latest refresh was held (unknown labels), for ops.

    A customer stops needing attention once a later fetch of theirs is applied
    (their snapshot's ``fetched_at`` is newer than the held job): a primary-key
    lookup per held job, and held jobs are few.
    """
    return {store_id: count for store_id, count in session.execute(needing_attention_query())}


def needing_attention_query() -> Select[int, int]:
    """The statement of ``needing_attention``: (store id, customers) per store."""
    snapshot = and_(
        CustomerPoints.store_id == RefreshJob.store_id,
        CustomerPoints.customer_id == RefreshJob.customer_id,
    )
    unresolved = or_(
        CustomerPoints.fetched_at.is_(None), CustomerPoints.fetched_at < RefreshJob.finished_at
    )
    return (
        select(RefreshJob.store_id, func.count(distinct(RefreshJob.customer_id)))
        .outerjoin(CustomerPoints, snapshot)
        .where(RefreshJob.status == HELD, unresolved)
        .group_by(RefreshJob.store_id)
    )
