"""The dashboard's actions hand deliveries to Celery as the task layer does, after
their rows are committed. A broker that is down loses nothing: the rows are due,
and the sweeper sends them; the operator is told so."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from kombu.exceptions import KombuError

from worker import dispatch
from worker.logs import scrub
from worker.pipeline.states import Due
from worker.runtime import Runtime

log = logging.getLogger(__name__)
Enqueue = Callable[[Sequence[Due]], bool]


def enqueuer(runtime: Runtime) -> Enqueue:
    """``enqueue(dues)``: one ``relay.deliver`` each; False when the broker refused."""
    celery: list[Any] = []

    def enqueue(dues: Sequence[Due]) -> bool:
        if not celery:
            from worker.celery_app import create_celery  # a publisher, made on first use

            celery.append(create_celery(runtime.settings))
        try:
            for due in dues:
                dispatch.enqueue(celery[0], dispatch.DELIVER, due.delivery_id, due.countdown)
        except (KombuError, OSError) as exc:
            log.warning("deliveries not enqueued (%s): the sweeper sends them", scrub(str(exc)))
            return False
        return True

    return enqueue


def queued(enqueue: Enqueue, dues: Sequence[Due], what: str) -> str:
    """Enqueue ``dues`` and say what happened to ``what`` in one line."""
    if enqueue(dues):
        return f"{what} queued for delivery"
    return f"{what} due again; the broker is unreachable, the sweeper will send them"
