"""The contract every sink implements.

A sink turns an outbox row into one call to the outside world. It never
retries by itself: it raises ``TransientError`` (the outbox row is set to
``retrying`` with its next attempt's time, after ``retry_after`` when the other
side asked for a pause; the sweeper rings for it if the message is lost) or
``PermanentError`` (the row stops with the message as its reason, for ops to
replay), so every sink fails the same way whatever it talks to.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, ClassVar, Protocol

import httpx

from worker.config import Settings
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


@dataclass(frozen=True)
class SkippedResult(SendResult):
    """A batch's answer for one delivery that was skipped (same meaning as ``SkippedDelivery``)."""


@dataclass(frozen=True)
class RejectedResult(SendResult):
    """A batch's answer for one delivery the receiver refused: retrying cannot help (``dead``)."""


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class SinkContext:
    """What the process hands every sink: the shared HTTP client (``worker.http``), the
    rate budget shared by all workers, the settings and a clock. One shape for all
    sinks, so that a new sink needs no change where sinks are built (``worker.pipeline.outbox``)."""

    http: httpx.Client
    budget: Budget | None = None
    settings: Settings | None = None
    clock: Callable[[], datetime] = _now


class EndpointGone(PermanentError):
    """The receiver answered 410 Gone: the sink should be disabled, not just this delivery."""


CHECKED_LIMIT = 1024  # validated configs remembered per process (``Sink.checked_config``)
_CHECKED: dict[tuple[type[Sink], str], dict[str, Any]] = {}


class Sink(ABC):
    """A destination for changes, built per delivery from its stored config.

    What varies between sinks is said here, so that the outbox asks no sink its kind:

    - ``batch_limit``: how many due deliveries one ``send_many`` call may take (a CRM's
      batch upsert); 1 means one ``send`` per delivery.
    - ``at_most_once``: the sink addresses a person (email, SMS…). Its messages wait
      for the sink's collapse window and the store's quiet hours, a customer's first
      snapshot is not news to them, and a send whose outcome is unknown (a worker
      killed mid-send, an ambiguous answer) counts as sent and is never repeated —
      a person must not hear twice. Other sinks are at least once: their receivers
      set absolute values or dedupe on the delivery id.
    """

    kind: ClassVar[str]
    batch_limit: ClassVar[int] = 1
    at_most_once: ClassVar[bool] = False

    def __init__(self, config: Mapping[str, Any], context: SinkContext) -> None:
        """Re-validate the stored config: a row edited by hand must stop, not crash, the task."""
        try:
            self.config = self.checked_config(config)
        except ValueError as exc:
            raise PermanentError(f"{self.kind} sink config is invalid: {exc}") from None
        self.context = context
        self.http = context.http
        self.budget = context.budget

    @classmethod
    def checked_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        """``validate_config``, remembered per class and config in this process.

        A worker sends to the same few sinks all day, and validating is dearer than
        the send's own Python (marshmallow's URL field compiles its pattern per call).
        A config that fails is never remembered: it fails again, with its reason."""
        try:
            key = (cls, json.dumps(config, sort_keys=True))
        except (TypeError, ValueError):
            return cls.validate_config(config)
        checked = _CHECKED.get(key)
        if checked is None:
            checked = cls.validate_config(config)
            if len(_CHECKED) >= CHECKED_LIMIT:
                _CHECKED.clear()
            _CHECKED[key] = checked
        return dict(checked)

    @classmethod
    @abstractmethod
    def validate_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        """The normalised config, or ``ValueError`` with a message fit for the CLI."""

    @abstractmethod
    def send(self, delivery: OutboundDelivery) -> SendResult:
        """Deliver once; raise ``TransientError`` or ``PermanentError`` on failure."""

    def send_many(self, deliveries: list[OutboundDelivery]) -> list[SendResult]:
        """Deliver up to ``batch_limit`` at once: one result per delivery, in order
        (``SkippedResult``/``RejectedResult`` for those that did not go). A failure of
        the whole call raises, and every delivery in it is retried or buried alike."""
        return [self.send(delivery) for delivery in deliveries]


def classify_http_status(status: int, retry_after_header: str | None) -> None:
    """Raise the failure a receiver's status means; return quietly for 2xx.

    The reading is ``worker.http.raise_for_status``'s; a 410 means the endpoint
    is gone (Standard Webhooks), so the sink is disabled rather than retried.
    """
    if status == HTTPStatus.GONE:
        raise EndpointGone(f"endpoint answered {describe_status(status)}")
    headers = {"retry-after": retry_after_header} if retry_after_header is not None else {}
    raise_for_status(status, headers, Wording("endpoint answered {phrase}"))
