"""The two kinds of failure every platform client and sink raises.

Celery tasks decide what to do from the type alone: a ``TransientError`` is
retried later (after ``retry_after`` seconds when the other side said so), a
``PermanentError`` stops the work and leaves a row with a reason for ops.
"""

from __future__ import annotations


class RelayError(Exception):
    """Base class; ``str(error)`` is safe to store and show (no secrets, no PII).

    ``status_code`` is the answer that caused it when there was one (an HTTP status,
    an SMTP reply code), so that what records the attempt need not parse the message.
    """

    status_code: int | None = None


class TransientError(RelayError):
    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TemporarilyBlocked(TransientError):
    """The platform refuses us for a while (Salla's 403 after sustained overuse).

    Retried after ``retry_after`` like a rate limit, but each try counts as a failed
    attempt: a "temporary" block that never lifts ends as a failed job with a reason.
    """


class PermanentError(RelayError):
    pass


class NeedsReauthorization(PermanentError):
    """The platform refused our credentials even after a token refresh."""


class Unauthorized(RelayError):
    """An inbound webhook failed verification (answered 401)."""


class BadPayload(RelayError):
    """An inbound webhook is authentic but unusable (answered 400)."""
