"""The contract every sink implements, and the one reading of HTTP statuses they share.

A sink turns an outbox row into one call to the outside world. It never
retries by itself: it raises ``TransientError`` (Celery retries the delivery,
after ``retry_after`` when the other side asked for a pause) or
``PermanentError`` (the row stops with the message as its reason, for ops to
replay), so every sink fails the same way whatever it talks to.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import Any, ClassVar, Protocol

import httpx

from worker.errors import PermanentError, TransientError
from worker.points import CustomerContact

MAX_RETRY_AFTER = 3600.0  # a receiver asking for a day's pause is a bug, not a plan
TRANSIENT_STATUSES = frozenset({408, 429})


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

    Receivers' conventions: 3xx is a failure (we do not follow redirects with
    signed bodies), 408/429/5xx ask us to come back later, 410 means the
    endpoint is gone, any other 4xx will not change by retrying.
    """
    if 200 <= status <= 299:
        return
    if status in TRANSIENT_STATUSES or 500 <= status <= 599:
        raise TransientError(
            f"endpoint answered {describe_status(status)}",
            retry_after=parse_retry_after(retry_after_header),
        )
    if status == HTTPStatus.GONE:
        raise EndpointGone(f"endpoint answered {describe_status(status)}")
    raise PermanentError(f"endpoint answered {describe_status(status)}")


def describe_status(status: int) -> str:
    """``410 Gone``: the code with its reason phrase, for messages ops read."""
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def parse_retry_after(header: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from ``Retry-After`` (seconds or HTTP-date), capped at an hour.

    Junk gives ``None`` (the task's own backoff applies); a date in the past gives 0.
    """
    if header is None or not header.strip():
        return None
    value = header.strip()
    seconds = float(value) if value.isascii() and value.isdigit() else _seconds_until(value, now)
    if seconds is None:
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _seconds_until(http_date: str, now: datetime | None) -> float | None:
    try:
        when = parsedate_to_datetime(http_date)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; "-0000" parses as naive
        when = when.replace(tzinfo=UTC)
    return (when - (now or datetime.now(UTC))).total_seconds()
