"""``POST /webhooks/<platform>[/…]``: verify on the raw body, record in the
inbox (group-committed by ``web.ingest``), ring the doorbell, answer 200.

Order matters: nothing is stored before verification (401), nothing is
enqueued before the commit, and 200 is only answered for an event that is
committed. If the database is down we answer 503 with ``Retry-After`` so the
platform retries; if only the broker is down the row is already committed, we
still answer 503 (the platform's retry is deduplicated) and the sweeper
enqueues the stored row once the broker is back. No outbound call is made here.

The body is read by ``web.body``: within a total deadline (408), up to the size
limit whatever its framing (413), and a framing error is 400. An event for a
store that is not registered yet is stored as waiting for it (answered 200
``waiting_for_store``), since an install's first orders may arrive before the
install itself has been processed.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from flask import Blueprint, Flask, Response, jsonify, request
from sqlalchemy.exc import SQLAlchemyError

from web.body import BodyRefused, read_body
from web.errors import problem
from web.ingest import InboxWriter, Recorded, StoreUnavailable
from worker import dispatch, metrics, stores
from worker.errors import BadPayload, Unauthorized
from worker.pipeline import inbox_rows
from worker.platforms import build_platforms
from worker.platforms.base import InboundWebhook, Platform, ReceivedEvent, StoreSecrets
from worker.runtime import Runtime
from worker.scrub import scrub_error

log = logging.getLogger(__name__)
RETRY_AFTER = 30
Answer = tuple[str, Response]  # (outcome counted, response)
BODY_OUTCOMES = {413: "too_large", 408: "too_slow", 400: "bad_framing"}
LOOKUP_TTL = 10.0
LOAD_WAIT = 5.0  # seconds a request waits on another's lookup of its store


class StoreLookupCache:
    """Store secrets by external id, cached briefly so a spike costs no extra queries.

    Only stores that exist are cached: an event that finds none is parked until
    its store registers (``worker.pipeline.inbox_rows.WAITING``), and a cached "unknown" would
    keep parking the events that follow an install for as long as it lived.

    One load per store at a time: requests that miss while a load for their store is
    under way wait for its answer instead of each running their own. A spike sends a
    store's webhooks together, so without this nearly every one of them missed (the
    first answer was not back yet) and the lookups were a third of the receiver's CPU.
    A load that fails leaves each waiting request to load for itself."""

    def __init__(self, load: Callable[[str], StoreSecrets | None], ttl: float = LOOKUP_TTL):
        self._load, self._ttl = load, ttl
        self._entries: dict[str, tuple[float, StoreSecrets | None]] = {}
        self._loading: dict[str, _Load] = {}
        self._lock = threading.Lock()

    def __call__(self, external_id: str) -> StoreSecrets | None:
        now = time.monotonic()
        with self._lock:
            cached = self._entries.get(external_id)
            if cached and cached[0] > now:
                return cached[1]
            running = self._loading.get(external_id)
            if running is None:
                running = self._loading[external_id] = _Load()
                leading = True
            else:
                leading = False
        if not leading:
            if running.done.wait(LOAD_WAIT) and running.loaded:
                return running.value
            return self._load(external_id)  # the load failed or hangs: our own
        try:
            running.value = value = self._load(external_id)
            running.loaded = True
        finally:
            with self._lock:
                del self._loading[external_id]
                if running.loaded and running.value is not None:
                    if len(self._entries) > 10_000:
                        self._entries.clear()
                    self._entries[external_id] = (now + self._ttl, running.value)
            running.done.set()
        return value


class _Load:
    """A store's lookup under way, and its answer once there is one."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.loaded = False
        self.value: StoreSecrets | None = None


class Receiver:
    def __init__(self, runtime: Runtime, platforms: dict[str, Platform]) -> None:
        self.runtime = runtime
        self.platforms = platforms
        bell = dispatch.inbox_bell(runtime.settings.broker_url)
        self.writer = InboxWriter(runtime, bell)
        self.lookups = {
            name: StoreLookupCache(self._loader(platform)) for name, platform in platforms.items()
        }
        self.refusals = RefusalLog()

    def _loader(self, platform: Platform) -> Callable[[str], StoreSecrets | None]:
        # Which store, and which credentials key holds this receiver's secrets.
        return lambda external_id: stores.store_secrets(
            self.runtime, platform.store_platform, external_id, platform.webhook_secrets_key
        )

    def receive(self, platform_name: str, rest: str = "") -> Response:
        platform = self.platforms.get(platform_name)
        if platform is None:
            return problem(404, f"no such platform: {platform_name[:40]}")
        outcome, response = self._receive(platform_name, platform, rest)
        metrics.webhook_received(platform_name, outcome)
        return response

    def _log_rejected(self, platform: str, status: int, why: str, rest: str) -> None:
        """A line per refused webhook (within ``RefusalLog``'s limit): the platform and the
        store if the path or a header names it; never the body, never a header's value
        that could be a secret."""
        held = self.refusals.admit(platform, status)
        if held is None:
            return
        more = f" ({held} more refused like it were not logged)" if held else ""
        log.warning(
            "webhook refused with %d (%s, store %s): %s%s", status, platform,
            _store_ref(request.environ, rest), scrub_error(why, 200), more,
        )  # fmt: skip

    def _receive(self, platform_name: str, platform: Platform, rest: str) -> Answer:
        """The answer, and the outcome ``relay_webhooks_received_total`` counts it as."""
        settings = self.runtime.settings
        try:
            body = read_body(
                request.environ, settings.max_body_bytes, settings.body_timeout_seconds
            )
        except BodyRefused as refused:
            if refused.status == HTTPStatus.REQUEST_ENTITY_TOO_LARGE:
                self._log_rejected(platform_name, 413, str(refused), rest)
            outcome = BODY_OUTCOMES.get(refused.status, "bad_body")
            return outcome, problem(refused.status, str(refused))
        headers = _lower_headers(request.environ)
        path = tuple(part for part in rest.split("/") if part)
        webhook = InboundWebhook(platform_name, body, headers, path)
        try:
            event = platform.receive(webhook, self.lookups[platform_name])
            recorded = self.writer.record(inbox_rows.row(platform_name, body, event))
        except Unauthorized as exc:
            self._log_rejected(platform_name, 401, str(exc), rest)
            return "rejected_signature", problem(401, str(exc))
        except BadPayload as exc:
            return "bad_payload", problem(400, str(exc))
        except (SQLAlchemyError, StoreUnavailable):
            log.exception("database unavailable; asking %s to retry", platform_name)
            return "unavailable", problem(503, "temporarily unable to store events", RETRY_AFTER)
        return _answer(recorded, event)


STORE_HEADERS = ("HTTP_X_SHOPIFY_SHOP_DOMAIN",)  # a store's name where a platform sends one
_STORE_REF = re.compile(r"[\w.:-]{1,100}")


class RefusalLog:
    """How many refused webhooks this process logs: at most ``limit`` lines a minute for
    each platform and status, so that a flood of forged or oversized requests cannot
    flood the log too. What is held back is counted, and said on the next line that
    goes out (``relay_webhooks_received_total`` counts every one regardless)."""

    def __init__(
        self, limit: int = 10, window: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit, self.window, self.clock = limit, window, clock
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, int], tuple[float, int, int]] = {}  # start, logged, held

    def admit(self, platform: str, status: int) -> int | None:
        """None: do not log this one; else how many were held back before it."""
        now, key = self.clock(), (platform, status)
        with self._lock:
            start, logged, held = self._windows.get(key, (now, 0, 0))
            if now - start >= self.window:
                start, logged = now, 0
            if logged >= self.limit:
                self._windows[key] = (start, logged, held + 1)
                return None
            self._windows[key] = (start, logged + 1, 0)
            return held


def _store_ref(environ: dict[str, Any], rest: str) -> str:
    """The store a refused request names: a store header, else the path's first part (a
    store id or shop; a path's later parts may be a secret token, as Zid's app path)."""
    named = [environ.get(header) for header in STORE_HEADERS] + [rest.split("/")[0]]
    return next((ref for ref in named if ref and _STORE_REF.fullmatch(ref)), "unknown")


def _lower_headers(environ: dict[str, Any]) -> dict[str, str]:
    """The request's headers by lower-case name, read straight from the WSGI environ
    (what ``request.headers`` would give, at a fraction of its cost per request)."""
    headers = {
        key[5:].replace("_", "-").lower(): value
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers[key.replace("_", "-").lower()] = environ[key]
    return headers


def _answer(recorded: Recorded, event: ReceivedEvent) -> Answer:
    if recorded.broker_down:
        # Stored: the platform's retry is acknowledged as a duplicate, the sweeper enqueues it.
        return "broker_unavailable", problem(503, "temporarily unable to queue events", RETRY_AFTER)
    if recorded.refused:
        return "refused", problem(400, "the event holds values that cannot be stored")
    if recorded.inbox_id is None:
        return "duplicate", jsonify(status="duplicate")
    if event.ignored_reason:
        return "ignored", jsonify(status="ignored", reason=event.ignored_reason)
    if event.waiting_for_store:
        return "waiting_for_store", jsonify(status="waiting_for_store", id=recorded.inbox_id)
    return "stored", jsonify(status="accepted", id=recorded.inbox_id)


def init_app(app: Flask, runtime: Runtime) -> None:
    receiver = Receiver(runtime, build_platforms(runtime.settings))
    blueprint = Blueprint("receiver", __name__)
    for rule in ("/webhooks/<platform_name>", "/webhooks/<platform_name>/<path:rest>"):
        blueprint.add_url_rule(rule, view_func=receiver.receive, methods=["POST"])
    app.register_blueprint(blueprint)
    app.extensions["relay.receiver"] = receiver
