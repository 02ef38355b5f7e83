"""Marshmallow fields for Zid's loose answers (``schemas``): points as ints,
floats or numeric strings, ISO 8601 dates with or without an offset, ids as
numbers or strings, text that may arrive as a number."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from marshmallow import ValidationError, fields


def decimal_points(value: Any) -> Decimal:
    """An int, a finite float or a numeric string as ``Decimal``; anything else is invalid."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValidationError("Not a number.")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValidationError("Not a finite number.")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValidationError("Not a number.") from None
    if not number.is_finite():
        raise ValidationError("Not a finite number.")
    return number


class Points(fields.Field[Decimal | None]):
    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> Decimal | None:
        return None if value == "" else decimal_points(value)


class Moment(fields.Field[datetime | None]):
    """ISO 8601 → aware datetime (UTC when the text has no offset); empty means none."""

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> datetime | None:
        if value == "":
            return None
        if not isinstance(value, str):
            raise ValidationError("Not an ISO 8601 date.")
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValidationError("Not an ISO 8601 date.") from None
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
