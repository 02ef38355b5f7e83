"""The contract every platform folder implements.

A platform knows four things and nothing else: how to verify and identify an
inbound webhook (``receive``), what an event means for us (``plan``), and how
to read a customer's points from its API (``fetch_points``). The receiver,
the tasks and the sinks never look inside a platform's payloads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from worker.points import CustomerContact, PointsSnapshot

if TYPE_CHECKING:
    import httpx


@dataclass(frozen=True)
class StoreSecrets:
    """What the receiver knows of a store, from a cached lookup by external id."""

    store_id: int
    status: str
    webhook_secrets: tuple[str, ...] = ()


StoreLookup = Callable[[str], StoreSecrets | None]


@dataclass(frozen=True)
class InboundWebhook:
    platform: str
    body: bytes
    headers: Mapping[str, str]  # names lower-cased
    path: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReceivedEvent:
    """A verified delivery, ready to be recorded in the inbox."""

    event_type: str
    store_ref: str | None
    dedupe_key: str
    ignored_reason: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # Signed with the app's secret for a store not registered yet (its install is
    # still being processed): kept until the store appears (``worker.pipeline.inbox``).
    waiting_for_store: bool = False


@dataclass(frozen=True)
class StoreUpdate:
    """Credentials or status an event brings for its store (install, authorize, uninstall,
    subscription lapsed): ``status`` is ``active``, ``paused`` or ``uninstalled``, and
    ``status_reason`` says why for ops (``"subscription expired"``)."""

    status: str | None = None
    credentials: dict[str, Any] = field(default_factory=dict)
    token_expires_at: datetime | None = None
    status_reason: str | None = None  # why, for a paused or uninstalled store


FORGET_CUSTOMER, FORGET_STORE, EXPORT_CUSTOMER = "forget_customer", "forget_store", "export"


@dataclass(frozen=True)
class PrivacyRequest:
    """A privacy request an event carries (Shopify's compliance topics); ``worker.privacy``
    carries it out. ``customer_refs`` name one customer (its id, ``email:<address>``)."""

    kind: str  # FORGET_CUSTOMER | FORGET_STORE | EXPORT_CUSTOMER
    customer_refs: tuple[str, ...] = ()
    request_ref: str | None = None  # the platform's id for the request


@dataclass(frozen=True)
class EventPlan:
    customer_ids: tuple[str, ...] = ()
    settle: bool = False  # order events: points may be credited later, check again
    store_update: StoreUpdate | None = None
    ignored_reason: str | None = None
    # How to reach the customer, when the event says (loyalty APIs often do not):
    # kept encrypted with the snapshot; what the platform's API says wins.
    contact: CustomerContact | None = None
    privacy: PrivacyRequest | None = None


class StoreApi(Protocol):
    """A store as its platform client sees it: credentials, quota and an HTTP client.

    Implemented over the database by ``worker.stores.StoreContext`` so that the
    quota and the token-refresh lock are shared by every worker.
    """

    store_id: int
    external_id: str
    api_base: str
    timezone: str
    http: httpx.Client

    def credentials(self) -> dict[str, Any]: ...

    def take_quota(self, bucket: str) -> None:
        """Block briefly or raise ``TransientError(retry_after)`` when over budget."""

    def observe_rate_headers(self, bucket: str, headers: Mapping[str, str]) -> None: ...

    def refresh_credentials(
        self, refresh: Callable[[dict[str, Any]], StoreUpdate]
    ) -> dict[str, Any]:
        """Run ``refresh`` at most once across all workers; return the newest credentials."""
        ...


@dataclass(frozen=True)
class SampleDelivery:
    """A correctly authenticated sample webhook (``loyalty-relay trigger``, the demo)."""

    path: str  # under the receiver's base URL, e.g. "/webhooks/salla"
    body: bytes
    headers: dict[str, str]


class Platform(Protocol):
    name: str
    # Which stores this receiver's events belong to ("appstle" events → "shopify" stores).
    store_platform: str
    # The credentials key holding this receiver's webhook secrets.
    webhook_secrets_key: str
    default_api_base: str
    # API family → (requests, seconds) allowed per store, shared by all workers.
    quotas: Mapping[str, tuple[int, float]]

    def receive(self, webhook: InboundWebhook, lookup: StoreLookup) -> ReceivedEvent:
        """Verify on the raw body (raise ``Unauthorized``), then identify (``BadPayload``)."""
        ...

    def plan(self, event_type: str, body: bytes) -> EventPlan: ...

    def fetch_points(self, store: StoreApi, customer_id: str) -> PointsSnapshot: ...
