"""Signed webhooks to the merchant's own endpoint, following Standard Webhooks.

# Reference: https://www.standardwebhooks.com/ (spec) and standard-webhooks/standard-webhooks
# spec/standard-webhooks.md. ``webhook-id`` is the outbox row's id, the same on every
# retry, so the receiver can drop duplicates; ``webhook-timestamp`` is the time
# of this attempt, because receivers reject signatures older than ~5 minutes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import UTC
from typing import Any

import httpx
from marshmallow import RAISE, Schema, ValidationError, fields

from worker.errors import PermanentError, TransientError
from worker.http import describe_status
from worker.signing import InvalidSecret, decode_secret, sign
from worker.sinks.base import OutboundDelivery, SendResult, Sink, classify_http_status

# Reference: standard-webhooks/standard-webhooks spec/standard-webhooks.md, "Signature
# scheme": a symmetric signing secret is "Random. At least 24 bytes (192 bits, 512 maximum)".
MIN_SECRET_BYTES = 24
# An endpoint's answer is read (and dropped) up to this size and for this long, so
# that its connection can be used again; a longer or slower one is cut off by
# closing the connection.
KEPT_ANSWER_BYTES = 64 * 1024
KEPT_ANSWER_SECONDS = 1.0


def _check_secrets(value: str) -> None:
    if not value.split():
        raise ValidationError("give at least one whsec_ secret")
    try:
        keys = [decode_secret(secret) for secret in value.split()]
    except InvalidSecret as exc:
        raise ValidationError(str(exc)) from None
    for key in keys:
        if len(key) < MIN_SECRET_BYTES:
            raise ValidationError(
                f"a whsec_ secret must hold at least {MIN_SECRET_BYTES} random bytes "
                f"(this one holds {len(key)}); `loyalty-relay keygen --whsec` prints one"
            )


class WebhookConfigSchema(Schema):
    """CLI input: strict, unknown keys are a typo to report, not to drop."""

    class Meta:
        unknown = RAISE

    url = fields.Url(required=True, schemes={"http", "https"}, require_tld=False)
    # Several secrets separated by spaces: each signs, so receivers can rotate.
    secret = fields.String(required=True, validate=_check_secrets)


class WebhookSink(Sink):
    kind = "webhook"

    @classmethod
    def validate_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        try:
            loaded: dict[str, Any] = WebhookConfigSchema().load(dict(config))
        except ValidationError as exc:
            raise ValueError(_readable(exc)) from None
        return {"url": loaded["url"], "secret": " ".join(loaded["secret"].split())}

    def send(self, delivery: OutboundDelivery) -> SendResult:
        body = event_body(delivery)
        status, retry_after = self._post(body, self._headers(delivery.id, body))
        classify_http_status(status, retry_after)
        return SendResult(status, f"endpoint answered {describe_status(status)}")

    def _headers(self, msg_id: str, body: bytes) -> dict[str, str]:
        timestamp = int(time.time())
        return {
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(self.config["secret"], msg_id, timestamp, body),
            "content-type": "application/json",
        }

    def _post(self, body: bytes, headers: dict[str, str]) -> tuple[int, str | None]:
        """POST; only the status and Retry-After matter.

        The answer's body is read, and dropped, up to ``KEPT_ANSWER_BYTES``: a connection
        whose answer was read to its end goes back to the pool for the endpoint's next
        delivery, where one left unread is closed (and the next delivery pays a new
        TCP, and on https a new TLS, handshake). A longer answer is not read on: its
        connection is closed instead, so an endpoint cannot make us read megabytes."""
        try:
            with self.http.stream("POST", self.config["url"], content=body, headers=headers) as r:
                _drain(r)
                return r.status_code, r.headers.get("retry-after")
        except httpx.TimeoutException as exc:
            raise TransientError("endpoint did not answer in time") from exc
        except httpx.TransportError as exc:
            raise TransientError(f"could not reach endpoint ({type(exc).__name__})") from exc


def _drain(response: httpx.Response) -> None:
    """Read and drop the answer's body while it stays within ``KEPT_ANSWER_BYTES``
    and ``KEPT_ANSWER_SECONDS``. The status has arrived: a body that breaks off or
    stalls leaves it standing (the connection is closed), and is no failure."""
    read, until = 0, time.monotonic() + KEPT_ANSWER_SECONDS
    try:
        for chunk in response.iter_raw():
            read += len(chunk)
            if read > KEPT_ANSWER_BYTES or time.monotonic() > until:
                return
    except httpx.TransportError:
        return


def event_body(delivery: OutboundDelivery) -> bytes:
    """The exact bytes we sign and send: ``{"type", "timestamp", "data"}``, compact UTF-8."""
    document = {
        "type": delivery.event_type,
        "timestamp": delivery.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "data": delivery.payload,
    }
    try:
        text = json.dumps(document, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:  # a bug upstream: retrying cannot fix it
        raise PermanentError(f"the payload is not JSON: {exc}") from None
    return text.encode()


def _readable(error: ValidationError) -> str:
    """``url: Not a valid URL.; secret: …``: field names with marshmallow's value-free messages."""
    if not isinstance(error.messages, dict):
        return " ".join(map(str, error.messages))
    problems = error.messages.items()
    return "; ".join(f"{field}: {' '.join(map(str, messages))}" for field, messages in problems)
