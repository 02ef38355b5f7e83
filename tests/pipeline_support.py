"""One event through the whole pipeline in process: the shared step of the
platform pipeline tests (``tests/worker/test_pipeline.py`` and the per-platform ones)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from worker.pipeline import inbox, outbox, refresh
from worker.platforms.base import Platform
from worker.runtime import Runtime


def process_event(
    runtime: Runtime, platforms: dict[str, Platform], inbox_id: int
) -> list[outbox.Due]:
    """handle → refresh → deliver, as the worker's tasks would, without a broker."""
    deliveries = []
    for due in inbox.handle(runtime, platforms, inbox_id):
        deliveries += refresh.run(runtime, platforms, due.job_id)
    outbox.send_own(runtime, deliveries)
    return deliveries


def all_rows(runtime: Runtime, model: Any) -> list[Any]:
    with runtime.sessions() as session:
        return list(session.scalars(select(model)))
