"""A capture sink: a well-behaved Standard Webhooks receiver that records what it gets.

The demo points a webhook sink at it and the end-to-end tests assert on what
it recorded. It behaves like a careful merchant endpoint — verifies every
signature (401 otherwise) and acts once per ``webhook-id`` — and can be told
to misbehave (fail the first N requests, answer slowly) so retries, timeouts
and "no duplicate effect" can be shown over real HTTP.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

from flask import Flask, Response, request

from worker.signing import SignatureError, verify

EXTENSION = "capture"


@dataclass(frozen=True)
class CapturedDelivery:
    """One request as the receiver saw it; ``data`` is only parsed once verified."""

    id: str  # empty when the header was missing
    type: str | None
    data: Any
    headers: dict[str, str]
    verified: bool
    status: int
    duplicate: bool = False
    path: str = "/"
    body: bytes = b""  # the exact bytes, for checking the signature independently


class CaptureLog:
    """Thread-safe record of every request, and the receiver's memory of seen ids."""

    def __init__(self, *, fail_first: int = 0, delay: float = 0.0) -> None:
        self.delay = delay  # seconds each request waits; tests change it while serving
        self._lock = threading.Lock()
        self._requests: list[CapturedDelivery] = []
        self._seen: set[str] = set()
        self._failures_left = fail_first

    def take_failure(self) -> bool:
        """Whether this request is one of the first N told to fail."""
        with self._lock:
            if self._failures_left <= 0:
                return False
            self._failures_left -= 1
            return True

    def first_time(self, msg_id: str) -> bool:
        """Remember ``msg_id``; false when it was already accepted (a duplicate)."""
        with self._lock:
            if msg_id in self._seen:
                return False
            self._seen.add(msg_id)
            return True

    def record(self, delivery: CapturedDelivery) -> None:
        with self._lock:
            self._requests.append(delivery)

    def requests(self) -> list[CapturedDelivery]:
        """Everything that arrived, rejected and failed requests included, in order."""
        with self._lock:
            return list(self._requests)

    def received(self) -> list[CapturedDelivery]:
        """Deliveries that took effect: verified, answered 2xx, first of their id."""
        return [d for d in self.requests() if d.status == 200 and not d.duplicate]

    def duplicates(self) -> list[CapturedDelivery]:
        """Repeats of an accepted id: acknowledged, but with no effect."""
        return [d for d in self.requests() if d.duplicate]


def create_capture_app(
    secret: str,
    *,
    fail_first: int = 0,
    fail_status: int = 503,
    delay: float = 0.0,
    retry_after: str | None = None,
) -> Flask:
    """A receiver for ``secret`` (space-separated for rotation); its log is ``capture_log(app)``.

    ``fail_first`` requests (verified ones) are answered ``fail_status``, with
    ``retry_after`` as their Retry-After header when given; every request waits
    ``delay`` seconds first.
    """
    app = Flask(__name__)
    log = CaptureLog(fail_first=fail_first, delay=delay)
    app.extensions[EXTENSION] = log
    failure = _Failure(fail_status, retry_after)

    @app.post("/", defaults={"path": ""})
    @app.post("/<path:path>")
    def receive(path: str) -> Response:
        time.sleep(log.delay)  # before anything else, like an endpoint busy elsewhere
        return _answer(log, secret, failure, f"/{path}")

    return app


def capture_log(app: Flask) -> CaptureLog:
    """The log a capture app records into (kept on the app so the factory returns a plain Flask)."""
    log: CaptureLog = app.extensions[EXTENSION]
    return log


@dataclass(frozen=True)
class _Failure:
    status: int
    retry_after: str | None


def _answer(log: CaptureLog, secret: str, failure: _Failure, path: str) -> Response:
    # Verify on the raw bytes before parsing anything, as our own receiver does.
    body = request.get_data()
    headers = {name.lower(): value for name, value in request.headers.items()}
    msg_id = headers.get("webhook-id", "")
    try:
        verify(secret, headers, body)
    except SignatureError as exc:
        log.record(CapturedDelivery(msg_id, None, None, headers, False, 401, path=path, body=body))
        return _reply(401, str(exc))
    event = _json_object(body)
    delivery = CapturedDelivery(
        msg_id, event.get("type"), event.get("data"), headers, True, 200, path=path, body=body
    )
    return _accept(log, delivery, failure)


def _accept(log: CaptureLog, delivery: CapturedDelivery, failure: _Failure) -> Response:
    """Fail when told to; otherwise act once per id and acknowledge repeats."""
    if log.take_failure():
        log.record(replace(delivery, status=failure.status))
        response = _reply(failure.status, "failing as told")
        if failure.retry_after is not None:
            response.headers["Retry-After"] = failure.retry_after
        return response
    duplicate = not log.first_time(delivery.id)
    log.record(replace(delivery, duplicate=duplicate))
    return _reply(200, "duplicate, ignored" if duplicate else "ok")


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        event = json.loads(body)
    except ValueError:  # signed but not JSON: record it, the test will see data=None
        return {}
    return event if isinstance(event, dict) else {}


def _reply(status: int, message: str) -> Response:
    return Response(json.dumps({"message": message}), status, mimetype="application/json")
