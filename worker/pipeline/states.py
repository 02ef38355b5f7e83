"""The outbox's words, shared by the modules that move a delivery along.

A delivery's statuses (see ``worker.storage.models``) and ``Due``, what a step
hands the task layer to enqueue. They live apart from ``worker.pipeline.outbox``
so that the modules it builds on (attempts, holding) use the same words.
"""

from __future__ import annotations

from dataclasses import dataclass

PENDING, SENDING, RETRYING = "pending", "sending", "retrying"
DELIVERED, DEAD, SKIPPED = "delivered", "dead", "skipped"
WAITING = (PENDING, RETRYING)
MAX_COUNTDOWN = 900.0  # longer waits are not held in the broker; the sweeper releases them


@dataclass(frozen=True)
class Due:
    """A delivery to enqueue, ``countdown`` seconds from now."""

    delivery_id: str
    countdown: float = 0.0
