"""Outcomes a sink raises that are not failures, though nothing should retry them.

Both derive from ``PermanentError`` so that a caller that knows only the two
kinds of failure still never retries them; the outbox tells them apart to
record the right status:

- ``SkippedDelivery``: nothing was sent on purpose (the customer opted out, has
  no address, or the change is not worth a message). Status ``skipped``.
- ``AmbiguousSend``: the message was handed to the other side and the answer
  never came. It may well have been delivered, and a person must not get the
  same message twice, so it counts as sent. Status ``delivered`` with the
  reason, never a retry.

Messages are stored on the row and shown to ops: no addresses, no names.
"""

from __future__ import annotations

from worker.errors import PermanentError


class SkippedDelivery(PermanentError):
    """Nothing was sent, on purpose; ``reason`` says why (no personal data)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AmbiguousSend(PermanentError):
    """The message left us but its receipt was never confirmed: treat as sent, never resend."""
