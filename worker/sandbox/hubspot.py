"""A local HubSpot: contacts (update by email, create, batch read and upsert),
contact properties and property groups, for tests and the demo.

Reference: HubSpot's CRM v3 docs (https://developers.hubspot.com/docs/api/crm/contacts).
Like HubSpot, it wants a known ``Bearer`` token (401 otherwise); answers 404 to a PATCH of an
unknown contact and 409 to creating what exists; refuses (400 ``VALIDATION_ERROR``) unknown
properties and values that do not fit their type (a date that is not midnight UTC)
and batches of more than 100 inputs; reports per-input failures of a batch in a 207
with ``context.ids``; sends ``X-HubSpot-RateLimit-*`` headers and answers 429
(``errorType: RATE_LIMIT``) past 100 requests in 10 s; fails when told to
(``fail_next``). Every request is recorded (method, path, query, headers, JSON body,
status) so tests assert the exact calls; ``RequestLog`` does that for Klaviyo too.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from functools import partial
from typing import Any

from flask import Flask, Response, request

from worker.sandbox.trouble import FailureQueue, InjectedFailure

EXTENSION = "hubspot_sandbox"
DEMO_TOKEN = "pat-na1-sandbox-token"
AUTH_MESSAGE = "Authentication credentials not found."  # and a link to the OAuth docs
BUILT_IN = ("email", "firstname", "lastname", "phone")
REQUIRED = {"groups": ("name", "label"),
            "properties": ("name", "label", "type", "fieldType", "groupName")}  # fmt: skip
MAX_INPUTS = 100
DAY_MS = 86_400_000
PARSERS: dict[str, Callable[[str], object]] = {
    "number": float, "date": date.fromisoformat, "datetime": datetime.fromisoformat,
}  # fmt: skip

Answer = tuple[int, dict[str, Any]]


@dataclass(frozen=True)
class RecordedRequest:
    """One request as a sandbox saw it (header names lower-cased), with the answer's status."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any  # the parsed JSON body; None when there was none
    status: int


class RequestLog(FailureQueue):
    """What a sandbox saw, and the failures it was told to answer (``FailureQueue``)."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.RLock()
        self._requests: list[RecordedRequest] = []

    def record(self, seen: RecordedRequest) -> None:
        with self.lock:
            self._requests.append(seen)

    def requests(self) -> list[RecordedRequest]:
        with self.lock:
            return list(self._requests)


def seen_request(status: int) -> RecordedRequest:
    """The Flask request being answered, as a ``RecordedRequest``."""
    headers = {name.lower(): value for name, value in request.headers.items()}
    body = request.get_json(force=True, silent=True)
    return RecordedRequest(request.method, request.path, dict(request.args), headers, body, status)


class HubSpotSandboxState(RequestLog):
    """Tokens, contacts, properties, groups, a rolling rate window and the log."""

    def __init__(self, tokens: tuple[str, ...] = (DEMO_TOKEN,), rate_limit: int = 100) -> None:
        super().__init__()
        self.tokens, self.rate_limit, self.rate_window = set(tokens), rate_limit, 10.0
        self._calls: deque[float] = deque()
        self.left = rate_limit  # what X-HubSpot-RateLimit-Remaining says
        self._ids = itertools.count(101)
        self.contacts: dict[str, dict[str, str]] = {}  # lower-cased email → properties
        self.schema: dict[str, dict[str, dict[str, Any]]] = {  # definitions by table, name
            "groups": {"contactinformation": {"name": "contactinformation", "label": "Contact"}},
            "properties": {name: _built_in(name) for name in BUILT_IN},
        }

    def add_contact(self, email: str, **properties: str) -> str:
        with self.lock:
            return self._store({}, {"email": email, **properties})["hs_object_id"]

    def define_property(self, name: str, type_: str) -> None:
        with self.lock:
            self.schema["properties"][name] = _built_in(name) | {"type": type_}

    def spend(self) -> int:
        """Count a request in the rolling window; the requests left (negative: over)."""
        with self.lock:
            now = time.monotonic()
            while self._calls and self._calls[0] <= now - self.rate_window:
                self._calls.popleft()
            self._calls.append(now)
            self.left = self.rate_limit - len(self._calls)
            return self.left

    # Contacts -------------------------------------------------------------

    def patch(self, contact_id: str, id_property: str | None, properties: Any) -> Answer:
        with self.lock:
            key = contact_id.lower() if id_property == "email" else None  # ids: not modelled
            if key not in self.contacts:
                return 404, _error("resource not found", "OBJECT_NOT_FOUND")
            return self._write(self.contacts[key], properties, 200)

    def create(self, properties: Any) -> Answer:
        with self.lock:
            email = str((properties or {}).get("email", "")).lower()
            if email in self.contacts:
                existing = self.contacts[email]["hs_object_id"]
                return 409, _error(f"Contact already exists. Existing ID: {existing}", "CONFLICT")
            return self._write({}, properties, 201)

    def upsert(self, inputs: Any) -> Answer:
        with self.lock:
            refused = _batch_problem(inputs, need_id_property=True)
            if refused:
                return 400, refused
            problems = [p for entry in inputs for p in self._problems(entry["properties"])]
            if problems:
                return 400, _invalid(problems)
            results, errors = [], []
            for entry in inputs:
                if not _is_email(entry["id"]):
                    errors.append(_batch_error(f"Email address {entry['id']} is invalid", entry))
                    continue
                stored = self.contacts.get(entry["id"].lower())
                written = self._store(stored or {}, {"email": entry["id"], **entry["properties"]})
                results.append(_object(written) | {"new": stored is None})
            return _batch_answer(results, errors)

    def read(self, body: Any) -> Answer:
        with self.lock:
            inputs = body.get("inputs") if isinstance(body, dict) else None
            refused = _batch_problem(inputs, need_id_property=False)
            if refused:
                return 400, refused
            wanted = list(body.get("properties") or [])
            results, errors = [], []
            for entry in inputs or []:
                stored = self.contacts.get(str(entry.get("id", "")).lower())
                if stored is None:
                    errors.append(_batch_error("Could not get some CONTACT objects", entry))
                else:
                    kept = {k: v for k, v in stored.items() if k in wanted or k == "hs_object_id"}
                    results.append(_object(kept))
            return _batch_answer(results, errors, category="OBJECT_NOT_FOUND")

    def _write(self, stored: dict[str, str], properties: Any, status: int) -> Answer:
        if not isinstance(properties, dict):
            return 400, _error("properties must be an object", "VALIDATION_ERROR")
        problems = self._problems(properties)
        if problems:
            return 400, _invalid(problems)
        return status, _object(self._store(stored, properties))

    def _store(self, stored: dict[str, str], properties: Mapping[str, Any]) -> dict[str, str]:
        """Set values ("" clears one, as in HubSpot) and index the contact by email."""
        stored.setdefault("hs_object_id", str(next(self._ids)))
        for name, value in properties.items():
            if str(value) == "":
                stored.pop(name, None)
            else:
                stored[name] = str(value)
        if "email" in stored:
            self.contacts[stored["email"].lower()] = stored
        return stored

    def _problems(self, properties: Mapping[str, Any]) -> list[dict[str, Any]]:
        problems = []
        for name, value in properties.items():
            kind = self.schema["properties"].get(name, {}).get("type")
            if kind is None:
                problems.append(_problem(name, f'Property "{name}" does not exist', "DOESNT_EXIST"))
            elif not _fits(kind, str(value)):
                problems.append(_problem(name, f"{value!r} is not a valid {kind}", "INVALID"))
        email = properties.get("email")
        if email is not None and not _is_email(str(email)):
            problems.append(_problem("email", f"Email address {email} is invalid", "INVALID"))
        return problems

    # Property and group definitions --------------------------------------

    def definition(self, table: str, name: str) -> Answer:
        with self.lock:
            found = self.schema[table].get(name)
            if found is None:
                return 404, _error(f"Unable to find {table[:-1]} {name}", "OBJECT_NOT_FOUND")
            return 200, found

    def define(self, table: str, body: Any) -> Answer:
        needed = REQUIRED[table]
        with self.lock:
            if not isinstance(body, dict) or any(not body.get(key) for key in needed):
                return 400, _error(f"needs {', '.join(needed)}", "VALIDATION_ERROR")
            if table == "properties" and body["groupName"] not in self.schema["groups"]:
                return 400, _error(f"no group {body['groupName']}", "VALIDATION_ERROR")
            if body["name"] in self.schema[table]:
                return 409, _error(f"{table[:-1]} already exists", "OBJECT_ALREADY_EXISTS")
            self.schema[table][body["name"]] = dict(body)
            return 201, dict(body)


def create_hubspot_sandbox(state: HubSpotSandboxState | None = None) -> Flask:
    """The sandbox app; its state is ``hubspot_state(app)``."""
    app = Flask(__name__)
    sandbox = state if state is not None else HubSpotSandboxState()
    app.extensions[EXTENSION] = sandbox
    app.before_request(partial(_gate, sandbox))
    app.after_request(partial(_finish, sandbox))
    for method, rule, handler in _routes(sandbox):
        app.add_url_rule(rule, f"{method} {rule}", _view(handler), methods=[method])
    return app


def _routes(sandbox: HubSpotSandboxState) -> list[tuple[str, str, Callable[..., Answer]]]:
    contacts, properties = "/crm/v3/objects/contacts", "/crm/v3/properties/contacts"

    def body() -> Any:
        return request.get_json(force=True, silent=True) or {}

    return [
        ("PATCH", f"{contacts}/<path:contact_id>",
         lambda contact_id: sandbox.patch(contact_id, request.args.get("idProperty"),
                                          body().get("properties"))),
        ("POST", contacts, lambda: sandbox.create(body().get("properties"))),
        ("POST", f"{contacts}/batch/upsert", lambda: sandbox.upsert(body().get("inputs"))),
        ("POST", f"{contacts}/batch/read", lambda: sandbox.read(body())),
        ("GET", f"{properties}/groups/<name>", lambda name: sandbox.definition("groups", name)),
        ("POST", f"{properties}/groups", lambda: sandbox.define("groups", body())),
        ("GET", f"{properties}/<name>", lambda name: sandbox.definition("properties", name)),
        ("POST", properties, lambda: sandbox.define("properties", body())),
    ]  # fmt: skip


def _gate(sandbox: HubSpotSandboxState) -> Response | None:
    """Authentication, then injected trouble, then the rolling rate limit."""
    if _bearer() not in sandbox.tokens:
        return _json(401, _error(AUTH_MESSAGE, "INVALID_AUTHENTICATION"))
    failure = sandbox.take_failure(request.path)
    if failure is None and sandbox.spend() < 0:
        failure = InjectedFailure(429)
    return _failure(failure) if failure else None


def _finish(sandbox: HubSpotSandboxState, response: Response) -> Response:
    response.headers.setdefault("X-HubSpot-RateLimit-Max", str(sandbox.rate_limit))
    response.headers.setdefault("X-HubSpot-RateLimit-Remaining", str(max(sandbox.left, 0)))
    interval = str(int(sandbox.rate_window * 1000))
    response.headers.setdefault("X-HubSpot-RateLimit-Interval-Milliseconds", interval)
    sandbox.record(seen_request(response.status_code))
    return response


def hubspot_state(app: Flask) -> HubSpotSandboxState:
    state: HubSpotSandboxState = app.extensions[EXTENSION]
    return state


def _view(handler: Callable[..., Answer]) -> Callable[..., Response]:
    def view(**arguments: str) -> Response:
        status, document = handler(**arguments)
        return _json(status, document)

    return view


def _failure(failure: InjectedFailure) -> Response:
    if failure.status == 401:
        response = _json(401, _error(AUTH_MESSAGE, "INVALID_AUTHENTICATION"))
    elif failure.status == 429:
        document = _error("You have reached your ten_secondly_rolling limit.", "RATE_LIMITS")
        document |= {"errorType": "RATE_LIMIT", "policyName": "TEN_SECONDLY_ROLLING"}
        response = _json(429, document)
        response.headers["X-HubSpot-RateLimit-Remaining"] = "0"
    else:
        response = _json(failure.status, _error("internal error", "INTERNAL_ERROR"))
    if failure.retry_after is not None:
        response.headers["Retry-After"] = str(failure.retry_after)
    return response


def _batch_problem(inputs: Any, *, need_id_property: bool) -> dict[str, Any] | None:
    if not isinstance(inputs, list) or not all(isinstance(entry, dict) for entry in inputs):
        return _error("inputs must be a list of objects", "VALIDATION_ERROR")
    if len(inputs) > MAX_INPUTS:
        return _error(f"inputs: size must be between 0 and {MAX_INPUTS}", "VALIDATION_ERROR")
    ids = [str(entry.get("id", "")).lower() for entry in inputs]
    if len(set(ids)) != len(ids):
        return _error("Duplicate IDs found in batch input", "VALIDATION_ERROR")
    if need_id_property and any(
        entry.get("idProperty") != "email" or not isinstance(entry.get("properties"), dict)
        for entry in inputs
    ):
        return _error("each input needs idProperty email and properties", "VALIDATION_ERROR")
    return None


def _built_in(name: str) -> dict[str, Any]:
    return {"name": name, "type": "string", "groupName": "contactinformation"}


def _batch_error(message: str, entry: Mapping[str, Any]) -> dict[str, Any]:
    return {"status": "error", "message": message, "context": {"ids": [str(entry.get("id"))]}}


def _batch_answer(
    results: list[dict[str, Any]], errors: list[dict[str, Any]], category: str = "VALIDATION_ERROR"
) -> Answer:
    document: dict[str, Any] = {"status": "COMPLETE", "results": results}
    if not errors:
        return 200, document
    tagged = [error | {"category": category} for error in errors]
    return 207, document | {"errors": tagged, "numErrors": len(errors)}


def _object(properties: Mapping[str, str]) -> dict[str, Any]:
    identifier = properties.get("hs_object_id", "")
    return {"id": identifier, "properties": dict(properties), "archived": False}


def _fits(kind: str, value: str) -> bool:
    """HubSpot's value rules: dates are midnight UTC (ms) or YYYY-MM-DD; "" always clears."""
    if value == "" or kind not in PARSERS:
        return True
    if value.isdigit():
        return kind != "date" or int(value) % DAY_MS == 0
    try:
        PARSERS[kind](value)
    except ValueError:
        return False
    return True


def _is_email(value: str) -> bool:
    local, at, domain = value.partition("@")
    return bool(local and at and "." in domain and "@" not in domain and " " not in value)


def _problem(name: str, message: str, code: str) -> dict[str, Any]:
    error = "PROPERTY_DOESNT_EXIST" if code == "DOESNT_EXIST" else "INVALID_PROPERTY_VALUE"
    return {"isValid": False, "message": message, "error": error, "name": name}


def _invalid(problems: list[dict[str, Any]]) -> dict[str, Any]:
    return _error(f"Property values were not valid: {json.dumps(problems)}", "VALIDATION_ERROR")


def _error(message: str, category: str) -> dict[str, Any]:
    return dict(status="error", message=message, correlationId=str(uuid.uuid4()), category=category)


def _bearer() -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _json(status: int, document: dict[str, Any]) -> Response:
    return Response(json.dumps(document), status, mimetype="application/json")
