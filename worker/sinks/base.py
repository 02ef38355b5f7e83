"""The contract every sink implements.

A sink turns an outbox row into one call to the outside world. It never
retries by itself: it raises ``TransientError`` (the outbox row is set to
``retrying`` with its next attempt's time, after ``retry_after`` when the other
side asked for a pause; the sweeper rings for it if the message is lost) or
``PermanentError`` (the row stops with the message as its reason, for ops to
replay), so every sink fails the same way whatever it talks to.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from http import HTTPStatus
from typing import Any, ClassVar, Protocol

import httpx

from worker.errors import PermanentError
from worker.http import Wording, describe_status, raise_for_status
from worker.points import CustomerContact


@dataclass(frozen=True)
class StoreInfo:
    """What a sink may need to know of the store a change belongs to."""

    key: str  # "salla:1234509876"
    name: str | None = None
    timezone: str = "Asia/Riyadh"
    locale: str = "ar"  # the store's default customer language


class Budget(Protocol):
    """A rate budget shared by every worker (``worker.quota.DatabaseBudget``)."""

    def take(self, key: str, limit: int, window: float) -> None:
        """Return when a call may go out; sleep briefly or raise ``RateLimited``."""

    def observe(self, key: str, limit: int, headers: Mapping[str, str]) -> None:
        """Fold a response's rate-limit headers (``Retry-After``…) into the budget."""


@dataclass(frozen=True)
class OutboundDelivery:
    """One attempt at delivering one outbox row; ``id`` is the idempotency key.

    ``payload`` is what the signed webhook sends (no personal data); ``contact``
    and ``excluded`` come from the customer's encrypted snapshot, for sinks that
    address a person (CRM, email).
    """

    id: str
    event_type: str
    payload: dict[str, Any]
    created_at: datetime
    attempt: int
    store: StoreInfo = field(default_factory=lambda: StoreInfo(key=""))
    contact: CustomerContact = field(default_factory=CustomerContact)
    excluded: bool = False

    def __post_init__(self) -> None:
        # Checked here so that no sink can send a naive time or a missing key.
        if not self.id:
            raise ValueError("a delivery needs an id: it is the receiver's idempotency key")
        if self.created_at.utcoffset() is None:
            raise ValueError("created_at must be an aware datetime")
        if self.attempt < 1:
            raise ValueError("attempt is 1-based")


@dataclass(frozen=True)
class SendResult:
    status_code: int | None
    detail: str  # stored on the row: no secrets, no PII


class EndpointGone(PermanentError):
    """The receiver answered 410 Gone: the sink should be disabled, not just this delivery."""


class Sink(ABC):
    """A destination for changes, built per delivery from its stored config."""

    kind: ClassVar[str]

    def __init__(
        self, config: Mapping[str, Any], http: httpx.Client, budget: Budget | None = None
    ) -> None:
        """Re-validate the stored config: a row edited by hand must stop, not crash, the task."""
        try:
            self.config = self.validate_config(config)
        except ValueError as exc:
            raise PermanentError(f"{self.kind} sink config is invalid: {exc}") from None
        self.http = http
        self.budget = budget

    @classmethod
    @abstractmethod
    def validate_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        """The normalised config, or ``ValueError`` with a message fit for the CLI."""

    @abstractmethod
    def send(self, delivery: OutboundDelivery) -> SendResult:
        """Deliver once; raise ``TransientError`` or ``PermanentError`` on failure."""


def classify_http_status(status: int, retry_after_header: str | None) -> None:
    """Raise the failure a receiver's status means; return quietly for 2xx.

    The reading is ``worker.http.raise_for_status``'s; a 410 means the endpoint
    is gone (Standard Webhooks), so the sink is disabled rather than retried.
    """
    if status == HTTPStatus.GONE:
        raise EndpointGone(f"endpoint answered {describe_status(status)}")
    headers = {"retry-after": retry_after_header} if retry_after_header is not None else {}
    raise_for_status(status, headers, Wording("endpoint answered {phrase}"))
