"""When to try again: exponential backoff with jitter, for refreshes and deliveries alike.

Both kinds of row keep their retries in the row (``attempts``, the due time);
this module only says how long the next wait is. A server's own wait
(``Retry-After``, read by ``worker.http.retry_after``) is honoured up to
``MAX_RETRY_AFTER`` and spread, so that jobs told the same wait do not all come
back at the same instant.
"""

from __future__ import annotations

import random

from worker.http import MAX_RETRY_AFTER

MAX_SPREAD = 300.0


def retry_delay(
    attempt: int,
    base: float,
    cap: float,
    retry_after: float | None,
    rng: random.Random | None = None,
) -> float:
    """Exponential backoff with equal jitter, capped; never sooner than the server asked
    (a ``Retry-After`` is honoured up to an hour even when the backoff cap is lower).

    A server's wait gets jitter too, on top: a 429 with a reset, or a store's
    budget blocked until one, reschedules every waiting job of the store with
    the same wait, and without a spread they would all come back at the same
    instant and meet the limit again together.
    """
    uniform = rng.uniform if rng else random.uniform
    ceiling = min(cap, base * 2 ** max(attempt - 1, 0))
    jittered = ceiling / 2 + uniform(0, ceiling / 2)
    server = min(retry_after or 0.0, MAX_RETRY_AFTER)
    if server > 0:
        server += uniform(0, server_spread(server))
    return float(max(jittered, server))


def server_spread(wait: float) -> float:
    """How widely jobs told to wait ``wait`` seconds are spread after it: a quarter of
    the wait, at least a second, at most five minutes."""
    return min(max(1.0, wait / 4), MAX_SPREAD)
