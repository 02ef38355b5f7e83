"""A local Klaviyo: the profile upsert (``POST /api/profile-import``), for tests and the demo.

Reference: Klaviyo's "Create or Update Profile" (https://developers.klaviyo.com/en/reference/create_or_update_profile).
Like Klaviyo, it wants ``Authorization: Klaviyo-API-Key <key>`` of a known private
key (401 ``not_authenticated`` otherwise), a ``revision`` header (400) and the
JSON:API content type (415); answers 201 for a new profile and 200 for an existing
one (a null property value clears it), 400 with the offending email in ``detail``
for an address it cannot use; sends ``RateLimit-*`` headers; answers 429
``throttled`` with ``Retry-After`` or a 5xx when told to (``fail_next``). Every
request is recorded (``RequestLog``) so tests assert the exact calls.
"""

from __future__ import annotations

import itertools
import json
import uuid
from functools import partial
from typing import Any

from flask import Flask, Response, request

from worker.sandbox.hubspot import Answer, RequestLog, seen_request
from worker.sandbox.trouble import InjectedFailure

EXTENSION = "klaviyo_sandbox"
DEMO_API_KEY = "pk_sandbox_0123456789abcdef0123456789"
JSON_API = "application/vnd.api+json"
AUTH_DETAIL = "Missing or invalid authorization scheme. Please use Klaviyo-API-Key."


class KlaviyoSandboxState(RequestLog):
    """API keys, profiles by email, injected trouble and the request log; thread-safe."""

    def __init__(self, api_keys: tuple[str, ...] = (DEMO_API_KEY,)) -> None:
        super().__init__()
        self.api_keys = set(api_keys)
        self.profiles: dict[str, dict[str, Any]] = {}  # lower-cased email → profile
        self._ids = itertools.count(1)

    def add_profile(self, email: str, **properties: Any) -> str:
        with self.lock:
            return str(self._upsert(email, properties)[1]["data"]["id"])

    def upsert(self, document: Any) -> Answer:
        attributes = _attributes(document)
        email = attributes.get("email")
        if not isinstance(email, str) or not email:
            return _error(400, "invalid", "An identifier is required.", "/data/attributes/email")
        if not _usable(email):
            detail = f"Invalid email address: {email}"
            return _error(400, "invalid", detail, "/data/attributes/email")
        with self.lock:
            return self._upsert(email, attributes.get("properties") or {})

    def _upsert(self, email: str, properties: dict[str, Any]) -> Answer:
        stored = self.profiles.get(email.lower())
        status = 200 if stored else 201
        profile = stored or {"id": f"01SANDBOX{next(self._ids):08d}", "email": email}
        kept = dict(profile.get("properties") or {})
        for name, value in properties.items():
            if value is None:
                kept.pop(name, None)
            else:
                kept[name] = value
        profile["properties"] = kept
        self.profiles[email.lower()] = profile
        attributes = {"email": profile["email"], "properties": kept}
        return status, {"data": {"type": "profile", "id": profile["id"], "attributes": attributes}}


def create_klaviyo_sandbox(state: KlaviyoSandboxState | None = None) -> Flask:
    """The sandbox app; its state is ``klaviyo_state(app)``."""
    app = Flask(__name__)
    sandbox = state if state is not None else KlaviyoSandboxState()
    app.extensions[EXTENSION] = sandbox
    app.before_request(partial(_gate, sandbox))
    app.after_request(partial(_finish, sandbox))

    @app.post("/api/profile-import")
    @app.post("/api/profile-import/")
    def profile_import() -> Response:
        return _json(*sandbox.upsert(request.get_json(force=True, silent=True)))

    return app


def _gate(sandbox: KlaviyoSandboxState) -> Response | None:
    """Authentication, the revision and content type, then injected trouble."""
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if scheme != "Klaviyo-API-Key" or key.strip() not in sandbox.api_keys:
        return _json(*_error(401, "not_authenticated", AUTH_DETAIL))
    if not request.headers.get("revision"):
        return _json(*_error(400, "invalid", "The revision header is required."))
    if request.mimetype != JSON_API:
        return _json(*_error(415, "unsupported_media_type", f"Use {JSON_API}."))
    failure = sandbox.take_failure(request.path)
    return _failure(failure) if failure else None


def _finish(sandbox: KlaviyoSandboxState, response: Response) -> Response:
    response.headers.setdefault("RateLimit-Limit", "75")
    response.headers.setdefault("RateLimit-Remaining", "74")
    response.headers.setdefault("RateLimit-Reset", "1")
    sandbox.record(seen_request(response.status_code))
    return response


def klaviyo_state(app: Flask) -> KlaviyoSandboxState:
    state: KlaviyoSandboxState = app.extensions[EXTENSION]
    return state


def _failure(failure: InjectedFailure) -> Response:
    if failure.status == 429:
        detail = f"Request was throttled. Expected available in {failure.retry_after or 1} second."
        response = _json(*_error(429, "throttled", detail))
        response.headers["RateLimit-Remaining"] = "0"
        if failure.retry_after is not None:
            response.headers["Retry-After"] = str(failure.retry_after)
        return response
    return _json(*_error(failure.status, "error", "A server error occurred."))


def _attributes(document: Any) -> dict[str, Any]:
    data = document.get("data") if isinstance(document, dict) else None
    attributes = data.get("attributes") if isinstance(data, dict) else None
    return attributes if isinstance(attributes, dict) else {}


def _usable(email: str) -> bool:
    local, _, domain = email.partition("@")
    return bool(local) and "." in domain and " " not in email


def _error(status: int, code: str, detail: str, pointer: str = "/data/") -> Answer:
    error = {"id": str(uuid.uuid4()), "status": status, "code": code, "title": detail}
    error |= {"detail": detail, "source": {"pointer": pointer}, "links": {}, "meta": {}}
    return status, {"errors": [error]}


def _json(status: int, document: dict[str, Any]) -> Response:
    return Response(json.dumps(document), status, mimetype=JSON_API)
