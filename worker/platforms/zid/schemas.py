"""Schemas for Zid's loyalty answers, its webhook subscriptions and its token answer.

Reference: zidsa/sdk-python (zid/resources/loyalty.py, tests/fixtures/
loyalty_customer.json; zid/resources/webhooks.py), zidsa/zid-agent-skill
references/oauth-flow.md (token answer). The storefront points answer is not published
on a page we can cite (see ``worker.platforms.zid.client``).
Zid's answers are loose, so the fields are too:

- points come as ints, floats or numeric strings → ``Decimal``;
- ``available_poitns`` / ``used_poitns`` are misspelled in Zid's real answers;
  both spellings are read everywhere and the misspelled one wins when both come;
- ids come as numbers or strings → ``str``;
- dates are ISO 8601 (``2026-03-13T11:59:28.000000Z``); one without an offset is UTC.

Unknown fields are ignored. Anything else malformed raises ``PermanentError``
with the offending paths — never the body, which holds customers' data.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, validate

from worker.errors import PermanentError
from worker.platforms.common import ExternalId, LooseText, load_document, truncate
from worker.platforms.zid.fields import Moment, Points

ZERO = Decimal(0)


# --- what the rest of the code gets ---------------------------------------------------------


@dataclass(frozen=True)
class HistoryEntry:
    """One line of a customer's points history."""

    points: Decimal
    direction: str  # "+" credit, "-" debit
    status_code: str  # ``point_status_code`` (``point_status`` lower-cased when absent)
    expiry_date: datetime | None = None  # aware
    date: datetime | None = None
    type: str = ""
    order_number: str | None = None

    @property
    def is_credit(self) -> bool:
        return self.direction.strip() == "+" and self.points > 0


@dataclass(frozen=True)
class LoyaltyBalance:
    """``loyalty_points_info``: balances as Zid computes them (history read separately)."""

    available: Decimal
    pending: Decimal
    used: Decimal
    points_balance: Decimal | None  # kept to log against ``available_poitns``
    available_points: Decimal | None
    # ``loyalty_points_info.history`` when the details answer carries it (None: it did not).
    history: tuple[HistoryEntry, ...] | None = None


@dataclass(frozen=True)
class StorefrontPoints:
    """The storefront endpoint's ``points`` (not published; see ``worker.platforms.zid.client``)."""

    available: Decimal
    used: Decimal


@dataclass(frozen=True)
class TokenGrant:
    manager_token: str  # ``access_token``, sent as X-Manager-Token
    authorization: str  # sent as ``Authorization: Bearer …``
    refresh_token: str
    expires_in: int | None = None

    def expires_at(self, now: datetime) -> datetime | None:
        return now + timedelta(seconds=self.expires_in) if self.expires_in is not None else None


@dataclass(frozen=True)
class WebhookSubscription:
    id: str
    event: str
    target_url: str
    original_id: str | None = None
    active: bool | None = None


def _first(*values: Decimal | None) -> Decimal | None:
    return next((value for value in values if value is not None), None)


# --- schemas --------------------------------------------------------------------------------


class HistoryEntrySchema(Schema):
    class Meta:
        unknown = EXCLUDE

    date = Moment(load_default=None)
    reason = LooseText(load_default=None)
    points = Points(required=True, allow_none=False)
    direction = fields.String(required=True)
    type = LooseText(load_default=None)
    order_number = ExternalId(load_default=None)
    order_code = LooseText(load_default=None)
    expiry_date = Moment(load_default=None)
    point_status = LooseText(load_default=None)
    point_status_code = LooseText(load_default=None)

    @post_load
    def make_entry(self, data: dict[str, Any], **kwargs: Any) -> HistoryEntry:
        status = data["point_status_code"] or data["point_status"] or ""
        return HistoryEntry(
            points=data["points"],
            direction=data["direction"],
            status_code=" ".join(status.split()).casefold(),
            expiry_date=data["expiry_date"],
            date=data["date"],
            type=data["type"] or "",
            order_number=data["order_number"],
        )


class LoyaltyInfoSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    points_balance = Points(load_default=None)
    pending_points_balance = Points(load_default=None)
    pending_negative_points_balance = Points(load_default=None)
    available_poitns = Points(load_default=None)
    available_points = Points(load_default=None)
    used_poitns = Points(load_default=None)
    used_points = Points(load_default=None)
    total_positive_points = Points(load_default=None)
    # Reference: zidsa/sdk-python tests/fixtures/loyalty_customer.json (history in the details).
    history = fields.List(fields.Nested(HistoryEntrySchema), load_default=None, allow_none=True)

    @post_load
    def make_balance(self, data: dict[str, Any], **kwargs: Any) -> LoyaltyBalance:
        available_field = _first(data["available_poitns"], data["available_points"])
        available = _first(data["points_balance"], available_field)
        if available is None:
            raise ValidationError("No points_balance, available_poitns or available_points.")
        return LoyaltyBalance(
            available=available,
            pending=data["pending_points_balance"] or ZERO,
            used=_first(data["used_poitns"], data["used_points"]) or ZERO,
            points_balance=data["points_balance"],
            available_points=available_field,
            history=None if data["history"] is None else tuple(data["history"]),
        )


class DetailsSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    status = LooseText(load_default=None)
    loyalty_points_info = fields.Nested(LoyaltyInfoSchema, required=True)


class HistorySchema(Schema):
    class Meta:
        unknown = EXCLUDE

    status = LooseText(load_default=None)
    history = fields.List(fields.Nested(HistoryEntrySchema), required=True)


class StorefrontBalanceSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    available_poitns = Points(load_default=None)
    available_points = Points(load_default=None)
    used_poitns = Points(load_default=None)
    used_points = Points(load_default=None)

    @post_load
    def make_points(self, data: dict[str, Any], **kwargs: Any) -> StorefrontPoints:
        available = _first(data["available_poitns"], data["available_points"])
        if available is None:
            raise ValidationError("No available_poitns or available_points.")
        used = _first(data["used_poitns"], data["used_points"]) or ZERO
        return StorefrontPoints(available=available, used=used)


class StorefrontSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    status = LooseText(load_default=None)
    points = fields.Nested(StorefrontBalanceSchema, required=True)


class TokenSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    access_token = fields.String(required=True, validate=validate.Length(min=1))
    authorization = fields.String(load_default=None, validate=validate.Length(min=1))
    capitalised = fields.String(
        data_key="Authorization", load_default=None, validate=validate.Length(min=1)
    )
    refresh_token = fields.String(required=True, validate=validate.Length(min=1))
    expires_in = fields.Integer(load_default=None, validate=validate.Range(min=0))

    @post_load
    def make_grant(self, data: dict[str, Any], **kwargs: Any) -> TokenGrant:
        authorization = data["authorization"] or data["capitalised"]
        if authorization is None:
            raise ValidationError("No authorization.")
        return TokenGrant(
            manager_token=data["access_token"],
            authorization=authorization,
            refresh_token=data["refresh_token"],
            expires_in=data["expires_in"],
        )


class SubscriptionSchema(Schema):
    class Meta:
        unknown = EXCLUDE  # never keeps the username/password Zid may echo

    id = ExternalId(required=True)
    event = fields.String(required=True)
    target_url = fields.String(required=True)
    original_id = ExternalId(load_default=None)
    active = fields.Boolean(load_default=None, allow_none=True)

    @post_load
    def make_subscription(self, data: dict[str, Any], **kwargs: Any) -> WebhookSubscription:
        if data["id"] is None:
            raise ValidationError("No id.")
        return WebhookSubscription(**data)


class MessageSchema(Schema):
    """Zid's ``message{type, code, name, description}``."""

    class Meta:
        unknown = EXCLUDE

    code = LooseText(load_default=None, allow_none=True)
    name = LooseText(load_default=None, allow_none=True)
    description = LooseText(load_default=None, allow_none=True)


_DETAILS = DetailsSchema()
_HISTORY = HistorySchema()
_STOREFRONT = StorefrontSchema()
_TOKEN = TokenSchema()
_SUBSCRIPTION = SubscriptionSchema()
_MESSAGE = MessageSchema()


# --- loading --------------------------------------------------------------------------------


def load_balance(document: Any) -> LoyaltyBalance:
    details: dict[str, Any] = _load(_DETAILS, document, "loyalty details response")
    balance: LoyaltyBalance = details["loyalty_points_info"]
    return balance


def load_history(document: Any) -> tuple[HistoryEntry, ...]:
    history: dict[str, Any] = _load(_HISTORY, document, "points history response")
    return tuple(history["history"])


def load_storefront_points(document: Any) -> StorefrontPoints:
    answer: dict[str, Any] = _load(_STOREFRONT, document, "storefront points response")
    points: StorefrontPoints = answer["points"]
    return points


def load_token_grant(document: Any) -> TokenGrant:
    grant: TokenGrant = _load(_TOKEN, document, "token response")
    return grant


def load_subscription(document: Any) -> WebhookSubscription:
    """A created subscription: the object itself, or wrapped in ``data``/``webhook``."""
    if isinstance(document, Mapping):
        document = document.get("data") or document.get("webhook") or document
    subscription: WebhookSubscription = _load(_SUBSCRIPTION, document, "webhook response")
    return subscription


def load_subscriptions(document: Any) -> list[WebhookSubscription]:
    """The listing: ``{data: [...]}`` as the SDK reads it, or a bare list."""
    items = document.get("data") if isinstance(document, Mapping) else document
    if not isinstance(items, list):
        raise PermanentError("Zid webhook list is malformed: no 'data' list")
    return [_load(_SUBSCRIPTION, item, "webhook list entry") for item in items]


def error_summary(document: Any) -> str:
    """A short, safe summary of an error body, in any of the shapes Zid answers with.

    - ``{success: false, error: {code, message, fields}}`` (Reference:
      zidsa/zid-agent-skill references/error-handling.md, "Response shape"): the code,
      the message and the names of the fields at fault — never their values;
    - ``message{code, name, description}`` (zidsa/sdk-python ``zid/http.py``
      ``_extract_error_message``);
    - a string ``error``/``message``/``detail``, or OAuth's ``error``.

    E-mail addresses and long numbers (phones) in a message are masked.
    """
    if not isinstance(document, Mapping):
        return "no error details"
    if isinstance(document.get("error"), Mapping):
        return truncate(mask_personal(_error_text(document["error"])) or "no error details")
    if isinstance(document.get("message"), Mapping):
        text = _message_text(document["message"])
        return truncate(mask_personal(text) or "no error details")
    for key in ("error", "message", "detail"):
        if isinstance(document.get(key), str) and document[key]:
            return truncate(mask_personal(document[key]))
    return "no error details"


EMAIL = re.compile(r"[^\s@]+@[^\s@]+\.[^\s@]+")
LONG_NUMBER = re.compile(r"\+?\d[\d\s-]{6,}\d")


def mask_personal(text: str) -> str:
    """Zid's messages may quote what was sent (``The email … is taken``): mask it."""
    return LONG_NUMBER.sub("[number]", EMAIL.sub("[email]", text))


def _error_text(error: Mapping[str, Any]) -> str:
    parts = [error.get(key) for key in ("code", "message")]
    text = ": ".join(part.strip() for part in parts if isinstance(part, str) and part.strip())
    fields = error.get("fields")
    if isinstance(fields, Mapping) and fields:
        names = ", ".join(str(name)[:40] for name in list(fields)[:5])
        text = f"{text} (fields: {names})" if text else f"fields: {names}"
    return text


def _message_text(message: Mapping[str, Any]) -> str:
    try:
        parts: dict[str, str | None] = _MESSAGE.load(message)
    except ValidationError:
        return ""
    return ": ".join(part for part in parts.values() if part)


def _load(schema: Schema, document: Any, what: str) -> Any:
    return load_document(schema, document, f"Zid {what}")
