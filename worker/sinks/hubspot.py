"""HubSpot: keep the ``loyalty_relay_*`` properties of the customer's contact current.

# Reference: HubSpot's docs: CRM contacts v3 (https://developers.hubspot.com/docs/api/crm/contacts)
# (update by email with ``?idProperty=email``, create, batch read/upsert of at most
# 100 inputs), "How should timestamps be formatted for HubSpot's APIs" (date
# properties hold midnight UTC), rate limits (100 requests per 10 s per private-app
# token on Free/Starter; ``X-HubSpot-RateLimit-*`` headers; a 429 body with
# ``errorType: RATE_LIMIT`` and a ``policyName``).

Values are sent as strings, the type of HubSpot's ``properties`` map. Dates and
times are epoch milliseconds, the one format every HubSpot API version accepts:
the next expiry date is the store-local calendar day at midnight UTC (HubSpot
rejects a date property that is not midnight UTC, and shows it as that day in
every time zone); the last change is the exact instant. An empty string clears
a property. ``loyalty-relay hubspot setup`` creates the properties first.
"""

from __future__ import annotations

import calendar
import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from urllib.parse import quote

import httpx
from marshmallow import RAISE, Schema, ValidationError, fields

from worker import http
from worker.errors import PermanentError, TransientError
from worker.http import MAX_RETRY_AFTER
from worker.sinks.base import OutboundDelivery, RejectedResult, SendResult, Sink, SkippedResult
from worker.sinks.crm import (
    NOT_BLANK,
    CrmAnswer,
    CrmRequest,
    PropertyValue,
    contact_email,
    crm_properties,
    json_body,
    raise_for_answer,
    readable,
    safe_message,
    send_json,
)
from worker.sinks.skips import SkippedDelivery

SERVICE = "HubSpot"
DEFAULT_API_BASE = "https://api.hubapi.com"
RATE_LIMIT, RATE_WINDOW = 100, 10.0  # per token, Free/Starter private apps (the lowest tier)
BATCH_LIMIT = 100
CONTACTS = "/crm/v3/objects/contacts"
NO_CONTACT = "no HubSpot contact has this email (create_missing is off)"
SETUP_HINT = "run `loyalty-relay hubspot setup --sink ID` once"


class HubSpotConfigSchema(Schema):
    """CLI input: strict, unknown keys are a typo to report, not to drop."""

    class Meta:
        unknown = RAISE

    token = fields.String(required=True, validate=NOT_BLANK)
    create_missing = fields.Boolean(load_default=False)
    api_base = fields.Url(
        load_default=DEFAULT_API_BASE, schemes={"http", "https"}, require_tld=False
    )


class HubSpotSink(Sink):
    kind = "hubspot"
    batch_limit = BATCH_LIMIT  # a reconciliation's burst goes as batch upserts

    def send_many(self, deliveries: list[OutboundDelivery]) -> list[SendResult]:
        return upsert_batch(self, deliveries)

    @classmethod
    def validate_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        try:
            loaded: dict[str, Any] = HubSpotConfigSchema().load(dict(config))
        except ValidationError as exc:
            raise ValueError(readable(exc)) from None
        return {
            "token": loaded["token"].strip(),
            "create_missing": loaded["create_missing"],
            "api_base": loaded["api_base"].rstrip("/"),
        }

    @property
    def budget_key(self) -> str:
        """One budget per token, whichever store or worker uses it; never the token itself."""
        return f"hubspot:{hashlib.sha256(self.config['token'].encode()).hexdigest()[:16]}"

    def send(self, delivery: OutboundDelivery) -> SendResult:
        """PATCH by email first: the contact usually exists, so one call does. A timeout may
        leave it written; the retry writes the same absolute values again, harmlessly."""
        email = contact_email(delivery)
        properties = hubspot_properties(delivery)
        # Reference: PATCH /crm/v3/objects/contacts/{email}?idProperty=email (HubSpot contacts v3)
        path = f"{CONTACTS}/{quote(email, safe='@')}"
        body = {"properties": properties}
        response = self.request("PATCH", path, body, params={"idProperty": "email"})
        if response.status_code == 404:
            return self._create_or_skip(email, properties)
        self.check(response, email)
        return SendResult(response.status_code, "HubSpot contact updated")

    def _create_or_skip(self, email: str, properties: dict[str, str]) -> SendResult:
        """Creating contacts is the merchant's choice: they count towards HubSpot's billing."""
        if not self.config["create_missing"]:
            raise SkippedDelivery(NO_CONTACT)
        # Reference: POST /crm/v3/objects/contacts (HubSpot CRM contacts v3, create)
        response = self.request("POST", CONTACTS, {"properties": {"email": email, **properties}})
        if response.status_code == 409:  # created elsewhere since our PATCH: update it next time
            raise TransientError("HubSpot contact appeared meanwhile; updating it", retry_after=1.0)
        self.check(response, email)
        return SendResult(response.status_code, "HubSpot contact created")

    def request(
        self, method: str, path: str, body: Any = None, params: Mapping[str, str] | None = None
    ) -> httpx.Response:
        """One call inside the token's budget, shared by every worker (HubSpot counts per token)."""
        if self.budget is not None:
            self.budget.take(self.budget_key, RATE_LIMIT, RATE_WINDOW)
        headers = {"Authorization": f"Bearer {self.config['token']}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        call = CrmRequest(method, self.config["api_base"] + path, headers, body, params)
        response = send_json(self.http, SERVICE, call)
        if self.budget is not None:
            self.budget.observe(self.budget_key, RATE_LIMIT, budget_headers(response))
        return response

    def check(self, response: httpx.Response, *secrets: str) -> None:
        """Raise what a non-2xx answer means; ``secrets`` (emails) are kept out of the message."""
        if response.status_code == 400 and "PROPERTY_DOESNT_EXIST" in response.text:
            raise PermanentError(f"HubSpot lacks our properties: {SETUP_HINT}")
        answer = CrmAnswer(response.status_code, hubspot_message(response), retry_after(response))
        raise_for_answer(SERVICE, "token", answer, (self.config["token"], *secrets))


def hubspot_properties(delivery: OutboundDelivery) -> dict[str, str]:
    return {name: hubspot_value(value) for name, value in crm_properties(delivery).items()}


def hubspot_value(value: PropertyValue) -> str:
    """HubSpot's string form: epoch milliseconds for times, midnight UTC for dates, "" clears."""
    if value is None:
        return ""
    if isinstance(value, datetime):  # before date: a datetime is a date too
        return str(calendar.timegm(value.utctimetuple()) * 1000 + value.microsecond // 1000)
    if isinstance(value, date):
        return str(calendar.timegm(value.timetuple()) * 1000)
    return str(value)


def hubspot_message(response: httpx.Response) -> str:
    body = json_body(response)
    message = body.get("message") if isinstance(body, dict) else None
    return message if isinstance(message, str) else ""


def retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` when sent; for a 429 without it, the rest of HubSpot's window."""
    header = http.retry_after(response.headers)
    if header is not None or response.status_code != 429:
        return header
    body = json_body(response)
    if isinstance(body, dict) and str(body.get("policyName", "")).upper() == "DAILY":
        return MAX_RETRY_AFTER  # the daily cap: nothing will go through for a while
    return _interval_seconds(response) or RATE_WINDOW


def budget_headers(response: httpx.Response) -> dict[str, str]:
    """HubSpot's rate-limit headers in the form ``Budget.observe`` reads (``worker.quota``)."""
    observed: dict[str, str] = {}
    remaining = response.headers.get("x-hubspot-ratelimit-remaining")
    if remaining is not None:
        observed["x-ratelimit-remaining"] = remaining
    pause = retry_after(response)
    if pause is None and remaining is not None and remaining.strip() == "0":
        pause = _interval_seconds(response)  # spent: the rolling window frees up within this
    if pause is not None:
        observed["retry-after"] = str(math.ceil(pause))  # delta-seconds are whole (RFC 9110)
    return observed


def _interval_seconds(response: httpx.Response) -> float | None:
    raw = response.headers.get("x-hubspot-ratelimit-interval-milliseconds", "")
    return int(raw) / 1000 if raw.strip().isdigit() else None


@dataclass
class _Chunk:
    """At most 100 deliveries: one input per distinct email, and each delivery's result."""

    size: int
    results: dict[int, SendResult] = field(default_factory=dict)
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)  # lower-cased email → input
    owners: dict[str, list[int]] = field(default_factory=dict)  # lower-cased email → deliveries

    def settle(self, email: str, result: SendResult) -> None:
        for index in self.owners.pop(email.lower(), []):
            self.results[index] = result
        self.inputs.pop(email.lower(), None)

    def emails(self) -> list[str]:
        return [str(entry["id"]) for entry in self.inputs.values()]

    def ordered(self) -> list[SendResult]:
        return [self.results[index] for index in range(self.size)]


def upsert_batch(sink: HubSpotSink, deliveries: list[OutboundDelivery]) -> list[SendResult]:
    """Write many contacts in calls of at most 100 (reconciliation bursts): one result per
    delivery, in order (``SkippedResult``/``RejectedResult`` for those that did not go).

    A whole call that fails raises, for the caller to retry the lot: values are absolute, so
    chunks that already went through are harmlessly written again. Without ``create_missing``
    each chunk's emails are looked up first, because an upsert creates missing contacts.
    """
    results: list[SendResult] = []
    for start in range(0, len(deliveries), BATCH_LIMIT):
        chunk = _prepare(deliveries[start : start + BATCH_LIMIT])
        if chunk.inputs and not sink.config["create_missing"]:
            _skip_unknown(sink, chunk)
        if chunk.inputs:
            _upsert(sink, chunk)
        results += chunk.ordered()
    return results


def _prepare(deliveries: list[OutboundDelivery]) -> _Chunk:
    """Inputs keyed by email (HubSpot rejects a batch naming one twice): the latest wins."""
    chunk = _Chunk(len(deliveries))
    for index, delivery in enumerate(deliveries):
        entry = _input(delivery)
        if isinstance(entry, SendResult):
            chunk.results[index] = entry
            continue
        key = str(entry["id"]).lower()
        chunk.inputs[key] = entry
        chunk.owners.setdefault(key, []).append(index)
    return chunk


def _input(delivery: OutboundDelivery) -> dict[str, Any] | SendResult:
    """One upsert input, or the result of a delivery that cannot be one."""
    try:
        email = contact_email(delivery)
        return {"idProperty": "email", "id": email, "properties": hubspot_properties(delivery)}
    except SkippedDelivery as skip:
        return SkippedResult(None, skip.reason)
    except PermanentError as exc:
        return RejectedResult(None, str(exc))


def _skip_unknown(sink: HubSpotSink, chunk: _Chunk) -> None:
    # Reference: POST /crm/v3/objects/contacts/batch/read with idProperty=email (HubSpot
    # CRM contacts v3); contacts that do not exist are absent from ``results``.
    emails = chunk.emails()
    body = {"idProperty": "email", "properties": ["email"], "inputs": [{"id": e} for e in emails]}
    response = sink.request("POST", f"{CONTACTS}/batch/read", body)
    sink.check(response, *emails)
    found = {str(_properties(result).get("email", "")).lower() for result in _items(response)}
    for email in emails:
        if email.lower() not in found:
            chunk.settle(email, SkippedResult(404, NO_CONTACT))


def _upsert(sink: HubSpotSink, chunk: _Chunk) -> None:
    # Reference: POST /crm/v3/objects/contacts/batch/upsert, at most 100 inputs, each with
    # idProperty "email" (HubSpot contacts v3, batch upsert). A 207 lists per-input errors; their
    # ``context.ids`` name the inputs [guess: confirm on a live portal].
    emails = chunk.emails()
    response = sink.request(
        "POST", f"{CONTACTS}/batch/upsert", {"inputs": list(chunk.inputs.values())}
    )
    sink.check(response, *emails)
    for error in _items(response, "errors"):
        message = safe_message(str(error.get("message", "")), (sink.config["token"], *emails))
        refused = RejectedResult(response.status_code, f"HubSpot refused this contact: {message}")
        for email in _error_ids(error) or list(chunk.emails()):  # unattributed: none is sure
            chunk.settle(email, refused)
    for email in chunk.emails():
        chunk.settle(email, SendResult(response.status_code, "HubSpot contact upserted"))


def _items(response: httpx.Response, key: str = "results") -> list[dict[str, Any]]:
    body = json_body(response)
    items = body.get(key) if isinstance(body, dict) else None
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def _properties(result: dict[str, Any]) -> dict[str, Any]:
    properties = result.get("properties")
    return properties if isinstance(properties, dict) else {}


def _error_ids(error: dict[str, Any]) -> list[str]:
    context = error.get("context")
    ids = context.get("ids") if isinstance(context, dict) else None
    return [str(value) for value in ids] if isinstance(ids, list) else []
