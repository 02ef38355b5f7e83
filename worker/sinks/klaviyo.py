"""Klaviyo: keep the ``loyalty_relay_*`` custom properties of the customer's profile current.

# Reference: Klaviyo's API reference, "Create or Update Profile"
# (https://developers.klaviyo.com/en/reference/create_or_update_profile):
# (``POST /api/profile-import``: an upsert by email, 201 created / 200
# updated, burst 75/s and steady 700/min, a null value clears a field) and "API
# versioning and deprecation" (``revision`` is a release date, each supported for two
# years; 2026-07-15 is the latest published when this was written).

Property values are JSON: numbers stay numbers, the next expiry date is
``YYYY-MM-DD`` (the store-local day; Klaviyo recognises ISO dates, so flows can
filter on it), the last change an ISO 8601 UTC time, and null clears a property.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

import httpx
from marshmallow import RAISE, Schema, ValidationError, fields, validate

from worker import http
from worker.sinks.base import OutboundDelivery, SendResult, Sink
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
    send_json,
)

SERVICE = "Klaviyo"
DEFAULT_API_BASE = "https://a.klaviyo.com"
DEFAULT_REVISION = "2026-07-15"
REVISION = re.compile(r"^\d{4}-\d{2}-\d{2}(\.pre)?$")  # release dates; ".pre" for previews
JSON_API = "application/vnd.api+json"
BURST, STEADY = (75, 1.0), (700, 60.0)  # per account, for profile-import
THROTTLE_PAUSE = 1.0  # a 429 without Retry-After: the burst window


class KlaviyoConfigSchema(Schema):
    """CLI input: strict, unknown keys are a typo to report, not to drop."""

    class Meta:
        unknown = RAISE

    api_key = fields.String(required=True, validate=NOT_BLANK)
    revision = fields.String(
        load_default=DEFAULT_REVISION,
        validate=validate.Regexp(REVISION, error="give a revision date like 2026-07-15"),
    )
    api_base = fields.Url(
        load_default=DEFAULT_API_BASE, schemes={"http", "https"}, require_tld=False
    )


class KlaviyoSink(Sink):
    kind = "klaviyo"

    @classmethod
    def validate_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        try:
            loaded: dict[str, Any] = KlaviyoConfigSchema().load(dict(config))
        except ValidationError as exc:
            raise ValueError(readable(exc)) from None
        return {
            "api_key": loaded["api_key"].strip(),
            "revision": loaded["revision"],
            "api_base": loaded["api_base"].rstrip("/"),
        }

    @property
    def budgets(self) -> tuple[tuple[str, int, float], ...]:
        """Both of Klaviyo's windows, per API key across all workers; never the key itself."""
        digest = hashlib.sha256(self.config["api_key"].encode()).hexdigest()[:16]
        return (f"klaviyo:{digest}:1s", *BURST), (f"klaviyo:{digest}:60s", *STEADY)

    def send(self, delivery: OutboundDelivery) -> SendResult:
        """One upsert: Klaviyo creates the profile if needed (201) or updates it (200)."""
        email = contact_email(delivery)
        document = profile_document(email, klaviyo_properties(delivery))
        # Reference: POST /api/profile-import ("Create or Update Profile")
        response = self._post("/api/profile-import", document)
        answer = CrmAnswer(response.status_code, klaviyo_message(response), retry_after(response))
        raise_for_answer(SERVICE, "API key", answer, (self.config["api_key"], email))
        outcome = "created" if response.status_code == 201 else "updated"
        return SendResult(response.status_code, f"Klaviyo profile {outcome}")

    def _post(self, path: str, document: dict[str, Any]) -> httpx.Response:
        self._take_budgets()
        headers = {
            "Authorization": f"Klaviyo-API-Key {self.config['api_key']}",
            "revision": self.config["revision"],
            "content-type": JSON_API,
            "accept": JSON_API,
        }
        call = CrmRequest("POST", self.config["api_base"] + path, headers, document)
        response = send_json(self.http, SERVICE, call)
        self._pause_budgets(retry_after(response))
        return response

    def _take_budgets(self) -> None:
        if self.budget is not None:
            for key, limit, window in self.budgets:
                self.budget.take(key, limit, window)

    def _pause_budgets(self, pause: float | None) -> None:
        """Klaviyo asked for a pause: every worker on this key waits, not just this one."""
        if self.budget is not None and pause is not None:
            for key, limit, _ in self.budgets:
                self.budget.observe(key, limit, {"retry-after": str(math.ceil(pause))})


def profile_document(email: str, properties: dict[str, Any]) -> dict[str, Any]:
    """The JSON:API document profile-import takes: the email finds (or creates) the profile."""
    attributes = {"email": email, "properties": properties}
    return {"data": {"type": "profile", "attributes": attributes}}


def klaviyo_properties(delivery: OutboundDelivery) -> dict[str, Any]:
    return {name: klaviyo_value(value) for name, value in crm_properties(delivery).items()}


def klaviyo_value(value: PropertyValue) -> Any:
    """JSON for Klaviyo: ISO dates and UTC times (which it recognises as dates), null clears."""
    if isinstance(value, datetime):  # before date: a datetime is a date too
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    return value


def klaviyo_message(response: httpx.Response) -> str:
    """The first error's ``detail`` (or ``title``) from Klaviyo's JSON:API ``errors`` list."""
    body = json_body(response)
    errors = body.get("errors") if isinstance(body, dict) else None
    first = errors[0] if isinstance(errors, list) and errors else None
    if not isinstance(first, dict):
        return ""
    return str(first.get("detail") or first.get("title") or "")


def retry_after(response: httpx.Response) -> float | None:
    return http.retry_after(
        response.headers, default=THROTTLE_PAUSE if response.status_code == 429 else None
    )
