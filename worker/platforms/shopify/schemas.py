"""The schema for Appstle's customer-loyalty answer.

Reference: https://developers.appstle.com/api-reference/customer-enrollment-&-profile/get-customer-loyalty-details
(``GET /api/external/customer-loyalty``; its example is
``tests/fixtures/appstle/customer_loyalty_seed_003.json``). Only what the
balance needs is loaded; everything else (rewards, social flags, referral
link…) is ignored. Tolerant where a Java
service's JSON may vary:

- points are doubles (``250``, ``250.5``) or numeric strings → ``Decimal``,
  floats read through their shortest repr so ``1250.99`` stays ``1250.99``;
  null counts as zero;
- dates are ISO 8601 (``2025-12-31T23:59:59Z``, fractions allowed), a bare
  date, or epoch seconds/milliseconds; one without an offset is UTC;
- ``currentVipTier`` may be null or empty (no tier); ``customerStatus`` is
  upper-cased.

``availablePoints`` is required: an answer without it is not a loyalty record,
and reading it as zero would wipe a customer's balance. Anything malformed
raises ``PermanentError`` naming the fields — never the body, which holds
customers' data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load

from worker.errors import PermanentError
from worker.platforms.common import describe

ZERO = Decimal(0)
EPOCH_MILLIS_THRESHOLD = 100_000_000_000  # later than this in seconds is year 5138: milliseconds
TEXT_LIMIT = 100


@dataclass(frozen=True)
class CustomerLoyalty:
    """A customer's loyalty record as Appstle reports it."""

    available: Decimal
    pending: Decimal = ZERO
    credited: Decimal | None = None
    tier: str | None = None
    status: str | None = None  # ACTIVE, INACTIVE, EXCLUDED, EXCLUDED_BY_CUSTOMER
    expiring_points: Decimal | None = None
    points_expire_at: datetime | None = None  # aware


def decimal_points(value: Any) -> Decimal:
    """An int, a finite float or a numeric string as ``Decimal``; anything else is invalid."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValidationError("Not a number.")
    try:
        number = Decimal(repr(value) if isinstance(value, float) else str(value).strip())
    except InvalidOperation:
        raise ValidationError("Not a number.") from None
    if not number.is_finite():
        raise ValidationError("Not a finite number.")
    return number


def moment(value: Any) -> datetime:
    """ISO 8601 text, a bare date or epoch seconds/milliseconds → an aware datetime."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _from_epoch(value)
    if not isinstance(value, str):
        raise ValidationError("Not a date.")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValidationError("Not an ISO 8601 date.") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _from_epoch(value: float) -> datetime:
    seconds = value / 1000 if abs(value) >= EPOCH_MILLIS_THRESHOLD else value
    try:
        if not math.isfinite(seconds):
            raise ValueError
        return datetime.fromtimestamp(seconds, UTC)
    except (ValueError, OverflowError, OSError):
        raise ValidationError("Not a valid epoch time.") from None


class Points(fields.Field[Decimal | None]):
    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> Decimal | None:
        return None if value is None or value == "" else decimal_points(value)


class Moment(fields.Field[datetime | None]):
    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> datetime | None:
        return None if value is None or value == "" else moment(value)


class Label(fields.Field[str | None]):
    """Short text that may arrive as a number; empty means none."""

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> str | None:
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise ValidationError("Not a valid string.")
        return value.strip()[:TEXT_LIMIT] or None


class CustomerLoyaltySchema(Schema):
    class Meta:
        unknown = EXCLUDE

    available = Points(data_key="availablePoints", required=True, allow_none=True)
    pending = Points(data_key="pendingPoints", load_default=None, allow_none=True)
    credited = Points(data_key="creditedPoints", load_default=None, allow_none=True)
    tier = Label(data_key="currentVipTier", load_default=None, allow_none=True)
    status = Label(data_key="customerStatus", load_default=None, allow_none=True)
    expiring_points = Points(data_key="expiringPointsAmount", load_default=None, allow_none=True)
    points_expire_at = Moment(data_key="pointsExpireAt", load_default=None, allow_none=True)

    @post_load
    def make_loyalty(self, data: dict[str, Any], **kwargs: Any) -> CustomerLoyalty:
        data["available"] = data["available"] or ZERO
        data["pending"] = data["pending"] or ZERO
        data["status"] = data["status"].upper() if data["status"] else None
        return CustomerLoyalty(**data)


_LOYALTY = CustomerLoyaltySchema()


def load_customer_loyalty(document: Any) -> CustomerLoyalty:
    if not isinstance(document, Mapping):
        raise PermanentError("Appstle customer loyalty answer is malformed: not a JSON object")
    try:
        loyalty: CustomerLoyalty = _LOYALTY.load(document)
    except ValidationError as exc:
        raise PermanentError(
            f"Appstle customer loyalty answer is malformed: {describe(exc)}"
        ) from None
    return loyalty
