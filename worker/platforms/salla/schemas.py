"""Schemas for Salla's loyalty-points responses, its error envelope and its token answer.

Reference: https://docs.salla.dev/12250577e0 (``GET /customers/loyalty/points``:
its two published examples, kept in ``tests/fixtures/salla/points_*.json``),
https://docs.salla.dev/421123m0 (error envelope) and https://docs.salla.dev/421118m0
(OAuth). Salla's answers stray from its own schema, so the fields here are
tolerant where its examples show they must be:

- ids (``order_id``, ``reference_id``) come as numbers, strings or null → ``str | None``;
- ``used_at`` comes as ``{}``, ``[]``, null, a date string or a ``Date`` object → ``str | None``;
- ``points`` / ``used_points`` come as numbers or numeric strings → ``Decimal``;
- ``expiry_date`` / ``created_at`` are store-local wall-clock times, kept naive
  here (``balance`` attaches the store's zone); empty, null or MySQL's zero date
  mean "none";
- PHP serialises an empty object as ``[]``: accepted wherever an object is expected.

Unknown fields are ignored. Anything else malformed raises ``PermanentError``
with a short list of the offending paths — never the body itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, validate

from worker.errors import PermanentError
from worker.platforms.common import ExternalId, LooseText, load_document, truncate

ZERO = Decimal(0)
ZERO_DATE = "0000-00-00"


# --- what the rest of the code gets ---------------------------------------------------------


class PointsEntry(NamedTuple):
    """One line of a customer's points history (a named tuple: a refresh makes one
    per line, about seventy, and a tuple costs a third of a frozen dataclass to build)."""

    name: str
    points: Decimal
    used_points: Decimal
    status: str
    expiry_date: datetime | None = None  # store-local wall time (naive)
    created_at: datetime | None = None  # store-local wall time (naive)
    order_id: str | None = None
    reference_id: str | None = None
    used_at: str | None = None
    notes: str | None = None

    @property
    def points_left(self) -> Decimal:
        return self.points - self.used_points


@dataclass(frozen=True)
class Pagination:
    current_page: int
    total_pages: int
    count: int | None = None
    total: int | None = None
    per_page: int | None = None
    next_link: str | None = None  # recorded, never followed (it is http://)
    previous_link: str | None = None


@dataclass(frozen=True)
class PointsPage:
    entries: tuple[PointsEntry, ...]
    pagination: Pagination


@dataclass(frozen=True)
class ApiError:
    """Salla's ``{status, success: false, error: {code, message, fields?}}``."""

    code: str
    message: str
    status: int | None = None
    fields: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def summary(self) -> str:
        text = ": ".join(part for part in (self.code, self.message) if part) or "no error details"
        if self.fields:
            problems = "; ".join(f"{name}: {' '.join(msgs)}" for name, msgs in self.fields.items())
            text = f"{text} ({problems})"
        return truncate(text)


@dataclass(frozen=True)
class TokenGrant:
    access_token: str
    refresh_token: str
    expires_in: int | None = None  # seconds
    expires: int | None = None  # unix timestamp

    def expires_at(self, now: datetime) -> datetime | None:
        if self.expires_in is not None:
            return now + timedelta(seconds=self.expires_in)
        if self.expires is not None:
            return datetime.fromtimestamp(self.expires, UTC)
        return None


# --- tolerant fields ------------------------------------------------------------------------


def _date_text(value: Any) -> str | None:
    """A date as Salla may send it: a string, a ``Date`` object, or an empty ``{}``/``[]``."""
    if isinstance(value, Mapping):
        value = value.get("date")
    if isinstance(value, str):
        return value.strip() or None
    if value is None or value == []:
        return None
    raise ValidationError("Not a date string, a Date object, {} or null.")


class DateText(fields.Field[str | None]):
    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> str | None:
        return _date_text(value)


class WallClock(fields.Field[datetime | None]):
    """``YYYY-MM-DD HH:MM:SS`` (or ISO 8601) → datetime; naive unless it carries an offset."""

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> datetime | None:
        try:
            return wall_clock(_date_text(value))
        except ValueError:
            raise ValidationError("Not a YYYY-MM-DD HH:MM:SS date.") from None


def wall_clock(text: str | None) -> datetime | None:
    """A store-local time as Salla writes it; None for none or MySQL's zero date;
    ``ValueError`` for anything that is not ISO 8601."""
    if text is None or text.startswith(ZERO_DATE):
        return None
    return datetime.fromisoformat(text)


class LinkMap(fields.Field[dict[str, str]]):
    """``links``: ``{next?, previous?}``, or ``[]`` when there are none."""

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> dict[str, str]:
        if not isinstance(value, Mapping):
            return {}
        return {str(key): link for key, link in value.items() if isinstance(link, str)}


class FieldProblems(fields.Field[dict[str, tuple[str, ...]]]):
    """``fields``: ``{name: [message, …]}`` (a bare string or ``[]`` tolerated)."""

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> dict[str, tuple[str, ...]]:
        if not isinstance(value, Mapping):
            return {}
        return {str(name): _messages(problems) for name, problems in value.items()}


def _messages(problems: Any) -> tuple[str, ...]:
    if isinstance(problems, list):
        return tuple(str(problem) for problem in problems)
    return (str(problems),)


# --- schemas --------------------------------------------------------------------------------


class PointsEntrySchema(Schema):
    class Meta:
        unknown = EXCLUDE

    name = LooseText(load_default=None)
    points = fields.Decimal(required=True)
    used_points = fields.Decimal(load_default=None, allow_none=True)
    status = fields.String(required=True)
    created_at = WallClock(load_default=None)
    expiry_date = WallClock(load_default=None)
    order_id = ExternalId(load_default=None)
    reference_id = ExternalId(load_default=None)
    used_at = DateText(load_default=None)
    notes = LooseText(load_default=None)

    @post_load
    def make_entry(self, data: dict[str, Any], **kwargs: Any) -> PointsEntry:
        data["name"] = data["name"] or ""
        data["used_points"] = data["used_points"] or ZERO
        return PointsEntry(**data)


class PaginationSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    count = fields.Integer(load_default=None)
    total = fields.Integer(load_default=None)
    per_page = fields.Integer(data_key="perPage", load_default=None)
    current_page = fields.Integer(data_key="currentPage", required=True)
    total_pages = fields.Integer(
        data_key="totalPages", required=True, validate=validate.Range(min=0)
    )
    links = LinkMap(load_default=dict)

    @post_load
    def make_pagination(self, data: dict[str, Any], **kwargs: Any) -> Pagination:
        links = data.pop("links")
        return Pagination(**data, next_link=links.get("next"), previous_link=links.get("previous"))


class PointsPageSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    status = fields.Integer(load_default=None)
    success = fields.Boolean(load_default=None)
    data = fields.List(fields.Nested(PointsEntrySchema), required=True)
    pagination = fields.Nested(PaginationSchema, required=True)

    @post_load
    def make_page(self, data: dict[str, Any], **kwargs: Any) -> PointsPage:
        return PointsPage(entries=tuple(data["data"]), pagination=data["pagination"])


class ErrorDetailSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    code = LooseText(load_default=None)
    message = LooseText(load_default=None)
    problems = FieldProblems(data_key="fields", load_default=dict)


class ErrorSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    status = fields.Integer(load_default=None)
    success = fields.Boolean(load_default=None)
    error = fields.Nested(ErrorDetailSchema, required=True)

    @post_load
    def make_api_error(self, data: dict[str, Any], **kwargs: Any) -> ApiError:
        detail = data["error"]
        return ApiError(
            code=detail["code"] or "",
            message=detail["message"] or "",
            status=data["status"],
            fields=detail["problems"],
        )


class TokenSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    access_token = fields.String(required=True, validate=validate.Length(min=1))
    refresh_token = fields.String(required=True, validate=validate.Length(min=1))
    expires_in = fields.Integer(load_default=None, validate=validate.Range(min=0))
    expires = fields.Integer(load_default=None, validate=validate.Range(min=0))

    @post_load
    def make_grant(self, data: dict[str, Any], **kwargs: Any) -> TokenGrant:
        return TokenGrant(**data)


_POINTS_PAGE = PointsPageSchema()
_ERROR = ErrorSchema()
_TOKEN = TokenSchema()


# --- loading --------------------------------------------------------------------------------


def load_points_page(document: Any) -> PointsPage:
    page: PointsPage = _load(_POINTS_PAGE, document, "loyalty points response")
    return page


def load_error(document: Any) -> ApiError:
    error: ApiError = _load(_ERROR, document, "error response")
    return error


def load_token_grant(document: Any) -> TokenGrant:
    grant: TokenGrant = _load(_TOKEN, document, "token response")
    return grant


def error_summary(document: Any) -> str:
    """A short, safe description of any error body: Salla's envelope or OAuth's ``error``."""
    try:
        return load_error(document).summary()
    except PermanentError:
        pass
    if isinstance(document, Mapping) and isinstance(document.get("error"), str):
        return truncate(document["error"])
    return "no error details"


def _load(schema: Schema, document: Any, what: str) -> Any:
    return load_document(schema, document, f"Salla {what}")
