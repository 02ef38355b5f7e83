"""What one attempt at a delivery comes to, decided from what the sink said.

Pure decisions, one shape for every sink: the delivery's next status, the
attempt row's answer and what the attempt says of the sink's health (for the
breaker, ``worker.pipeline.breaker``). The outbox records them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from worker import backoff
from worker.config import Settings
from worker.errors import RelayError, TransientError
from worker.pipeline import breaker
from worker.pipeline.attempts import REJECTED, Answer
from worker.pipeline.states import DEAD, DELIVERED, RETRYING, SKIPPED
from worker.sinks.base import RejectedResult, SendResult, SkippedResult
from worker.sinks.skips import AmbiguousSend, SkippedDelivery
from worker.storage.models import Delivery

# A success, a failure that counts towards the breaker, a failure that does not
# (the receiver refused this delivery, or asked us to slow down: it is up).
SUCCESS, FAILURE, REFUSAL = "success", "failure", "refusal"


@dataclass(frozen=True)
class Verdict:
    """The delivery's new status, the attempt row's answer, the attempt's health (None:
    it says nothing of the sink) and the wait before the next attempt."""

    status: str
    answer: Answer
    health: str | None = None
    delay: float = 0.0


def delivered(status_code: int | None, duration_ms: int) -> Verdict:
    return Verdict(DELIVERED, Answer(DELIVERED, None, status_code, duration_ms), SUCCESS)


def of_result(result: SendResult, duration_ms: int) -> Verdict:
    """A batch's answer for one of its deliveries."""
    code = result.status_code
    if isinstance(result, SkippedResult):
        return Verdict(SKIPPED, Answer(SKIPPED, result.detail, code, duration_ms))
    if isinstance(result, RejectedResult):
        return Verdict(DEAD, Answer(REJECTED, result.detail, code, duration_ms), REFUSAL)
    return delivered(code, duration_ms)


def of_failure(
    settings: Settings, delivery: Delivery, exc: RelayError, duration_ms: int
) -> Verdict:
    """A call that raised: skipped, counted as sent, refused for good, or retried until
    the last attempt allowed (``RELAY_DELIVERY_MAX_ATTEMPTS``)."""
    code = exc.status_code
    if isinstance(exc, SkippedDelivery):
        return Verdict(SKIPPED, Answer(SKIPPED, exc.reason, code, duration_ms))
    if isinstance(exc, AmbiguousSend):
        # Handed over, receipt unknown: a person must never get it twice.
        note = f"outcome unknown, not resent: {exc}"
        return Verdict(DELIVERED, Answer(DELIVERED, note, code, duration_ms))
    if not isinstance(exc, TransientError):
        return Verdict(DEAD, Answer(REJECTED, str(exc), code, duration_ms), REFUSAL)
    health = FAILURE if breaker.unhealthy(exc) else REFUSAL
    if delivery.attempts >= settings.delivery_max_attempts:
        reason = f"gave up after {delivery.attempts} attempts: {exc}"
        return Verdict(DEAD, Answer(DEAD, reason, code, duration_ms), health)
    delay = backoff.retry_delay(
        delivery.attempts, settings.retry_base_seconds, settings.retry_max_seconds, exc.retry_after
    )
    return Verdict(RETRYING, Answer(RETRYING, str(exc), code, duration_ms), health, delay)


def once_per_call(verdicts: list[Verdict]) -> list[Verdict]:
    """A batch is one call to the sink: its health goes on the first verdict only
    (a success if any row went)."""
    healths = [verdict.health for verdict in verdicts]
    call = next((health for health in (SUCCESS, FAILURE, REFUSAL) if health in healths), None)
    return [replace(v, health=call if i == 0 else None) for i, v in enumerate(verdicts)]
