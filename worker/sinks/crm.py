"""What both CRM sinks (HubSpot, Klaviyo) share: the properties a change writes,
the skips, and one reading of a CRM's answer.

A CRM holds the customer's *current* loyalty state, so every delivery writes
absolute values (balance, pending, next expiry, tier), never a difference: a
repeated or out-of-order delivery leaves the same record behind.

Decisions:

- **Excluded customers are not skipped.** ``delivery.excluded`` means the
  loyalty platform does not let the customer earn; the CRM should still hold
  what the platform says (usually zeros), so segments stay truthful. Sinks that
  *message* a person may decide otherwise.
- **A customer without an email address is skipped** (``SkippedDelivery``):
  both CRMs find the person by email; there is nobody to update, and retrying
  cannot change that.
- **A payload key we do not have is left out; a key that is null clears the
  property**, so a tier that went away does not linger in the CRM.

# Reference: HubSpot contacts (https://developers.hubspot.com/docs/api/crm/contacts) and Klaviyo
# profiles (https://developers.klaviyo.com/en/reference/create_or_update_profile).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import httpx
from marshmallow import ValidationError, validate

from worker.errors import PermanentError, TransientError
from worker.http import Wording, describe_status, raise_for_status
from worker.logs import scrub
from worker.quota import RateLimited
from worker.sinks.base import OutboundDelivery
from worker.sinks.skips import SkippedDelivery

PREFIX = "loyalty_relay_"
GROUP_NAME = "loyalty_relay"
GROUP_LABEL = "Loyalty (loyalty-relay)"
MAX_MESSAGE = 200  # characters of a CRM's own error message kept on the row
NOT_BLANK = validate.Regexp(r"\s*\S", error="must not be empty")  # for credentials in configs

PropertyValue = int | float | str | date | datetime | None


@dataclass(frozen=True)
class CrmProperty:
    """One custom property; ``type``/``field_type`` are HubSpot's names for its kind."""

    name: str
    label: str
    type: str  # number | date | datetime | string
    field_type: str  # number | date | text
    description: str
    payload_key: str | None  # where the value comes from; None: the delivery's time


POINTS_BALANCE = PREFIX + "points_balance"
PENDING_POINTS = PREFIX + "pending_points"
NEXT_EXPIRY_DATE = PREFIX + "next_expiry_date"
NEXT_EXPIRY_POINTS = PREFIX + "next_expiry_points"
TIER = PREFIX + "tier"
LAST_CHANGE_AT = PREFIX + "last_change_at"

PROPERTIES: tuple[CrmProperty, ...] = (
    CrmProperty(POINTS_BALANCE, "Loyalty points balance", "number", "number",
                "Points the customer can spend now.", "balance_after"),
    CrmProperty(PENDING_POINTS, "Loyalty pending points", "number", "number",
                "Points earned but not yet confirmed.", "pending"),
    CrmProperty(NEXT_EXPIRY_DATE, "Loyalty next expiry date", "date", "date",
                "The next day points expire, in the store's time zone.", "next_expiry_date"),
    CrmProperty(NEXT_EXPIRY_POINTS, "Loyalty points expiring next", "number", "number",
                "Points that expire on the next expiry date.", "next_expiry_points"),
    CrmProperty(TIER, "Loyalty tier", "string", "text",
                "The customer's loyalty tier, if the program has tiers.", "tier"),
    CrmProperty(LAST_CHANGE_AT, "Loyalty last change", "datetime", "date",
                "When loyalty-relay saw the latest change.", None),
)  # fmt: skip


def contact_email(delivery: OutboundDelivery) -> str:
    """The address both CRMs key people on, or ``SkippedDelivery``."""
    email = (delivery.contact.email or "").strip()
    if not email:
        raise SkippedDelivery("the customer has no email address")
    if "@" not in email or any(character.isspace() for character in email):
        raise SkippedDelivery("the customer's email address is not usable")
    return email


def crm_properties(delivery: OutboundDelivery) -> dict[str, PropertyValue]:
    """The absolute loyalty state a delivery writes, by property name, as Python values.

    Each CRM formats the values its own way (``hubspot_value``, ``klaviyo_value``).
    """
    values: dict[str, PropertyValue] = {}
    for spec in PROPERTIES:
        if spec.payload_key is None:
            values[spec.name] = delivery.created_at.astimezone(UTC)
        elif spec.payload_key in delivery.payload:
            values[spec.name] = _checked(spec, delivery.payload[spec.payload_key])
    return values


def _checked(spec: CrmProperty, raw: Any) -> PropertyValue:
    """The payload is ours: a value of the wrong type is a bug upstream, not worth a retry."""
    if raw is None:
        return None
    if spec.type == "number" and isinstance(raw, int | float) and not isinstance(raw, bool):
        return raw
    if spec.type == "string" and isinstance(raw, str | int):
        return str(raw)
    if spec.type == "date" and isinstance(raw, str):
        try:
            return date.fromisoformat(raw)
        except ValueError:
            pass
    raise PermanentError(f"payload field {spec.payload_key} is not a {spec.type}")


@dataclass(frozen=True)
class CrmAnswer:
    """What a CRM answered, reduced to what the error mapping needs."""

    status: int
    message: str  # the CRM's own explanation, not yet scrubbed
    retry_after: float | None = None


def raise_for_answer(
    service: str, credential: str, answer: CrmAnswer, secrets: Iterable[str]
) -> None:
    """Raise the failure a CRM's status means; return quietly for 2xx.

    429 is a rate limit (``RateLimited``, not counted as a failure), 408/5xx
    come back later, 401/403 mean the credential is wrong (no retry fixes it),
    other 4xx carry the CRM's explanation with secrets and emails removed.
    """
    status = answer.status
    if status == 429:  # not a failure: it does not count as an attempt
        raise RateLimited(f"{service} rate limit reached", retry_after=answer.retry_after)
    if status in (401, 403):  # the operator's credential, not a merchant's grant
        raise PermanentError(f"{service} {credential} rejected ({describe_status(status)})")
    explanation = safe_message(answer.message, secrets) if status >= 300 else ""
    wording = Wording(
        answered=f"{service} answered {{phrase}}",
        refused=f"{service} answered {{phrase}}{{detail}}",
        detail=f": {explanation}" if explanation else "",
    )
    raise_for_status(status, {}, wording, wait=answer.retry_after)


def safe_message(message: str, secrets: Iterable[str]) -> str:
    """A CRM's message fit for the row: no credential, no email, one short line."""
    for secret in secrets:
        if secret:
            message = message.replace(secret, "[redacted]")
    text = " ".join(scrub(message).split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


@dataclass(frozen=True)
class CrmRequest:
    """One call to a CRM: ``body`` is sent as compact JSON."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: Any = None
    params: Mapping[str, str] | None = None


def send_json(http: httpx.Client, service: str, request: CrmRequest) -> httpx.Response:
    """One HTTP call with a compact JSON body; a CRM out of reach is a ``TransientError``."""
    content = None if request.body is None else _compact(request.body)
    try:
        return http.request(
            request.method,
            request.url,
            params=request.params,
            headers=request.headers,
            content=content,
        )
    except httpx.TimeoutException as exc:
        raise TransientError(f"{service} did not answer in time") from exc
    except httpx.TransportError as exc:
        raise TransientError(f"could not reach {service} ({type(exc).__name__})") from exc


def _compact(body: Any) -> str:
    try:
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError as exc:  # NaN from a bug upstream: retrying cannot fix it
        raise PermanentError(f"the request body is not JSON: {exc}") from None


def json_body(response: httpx.Response) -> Any:
    """The parsed body, or ``None`` for an empty or non-JSON one (a proxy's HTML page)."""
    try:
        return response.json()
    except ValueError:
        return None


def readable(error: ValidationError) -> str:
    """``token: Missing data for required field.``: marshmallow's value-free messages, one line."""
    if not isinstance(error.messages, dict):
        return " ".join(map(str, error.messages))
    problems = error.messages.items()
    return "; ".join(f"{field}: {' '.join(map(str, messages))}" for field, messages in problems)
