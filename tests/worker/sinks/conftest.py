"""Fixtures for sinks: a real capture server on 127.0.0.1, a real httpx client."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from worker.http import build_client
from worker.sandbox.capture import CaptureLog, capture_log, create_capture_app
from worker.signing import new_secret
from worker.sinks.base import OutboundDelivery, SinkContext
from worker.sinks.webhook import WebhookSink

Serve = Callable[[Flask], str]
StartCapture = Callable[..., tuple[str, CaptureLog]]


@pytest.fixture
def secret() -> str:
    return new_secret()


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Serve a Flask app over real HTTP until the test ends; returns its base URL.

    Stand-in for ``worker.sandbox.server.serve_in_thread`` until that module lands.
    """
    running: list[tuple[BaseWSGIServer, threading.Thread]] = []

    def start(app: Flask) -> str:
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
        thread.start()
        running.append((server, thread))
        return f"http://127.0.0.1:{server.port}"

    yield start
    for server, thread in running:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def start_capture(serve: Serve, secret: str) -> StartCapture:
    """Start a capture receiver for ``secret`` (options as ``create_capture_app``)."""

    def start(**options: Any) -> tuple[str, CaptureLog]:
        app = create_capture_app(options.pop("secret", secret), **options)
        return serve(app) + "/hooks/loyalty", capture_log(app)

    return start


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with build_client(timeout=5.0, allow_private=True) as client:
        yield client


@pytest.fixture
def make_sink(http: httpx.Client, secret: str) -> Callable[..., WebhookSink]:
    def make(
        url: str, *, sink_secret: str | None = None, client: httpx.Client | None = None
    ) -> WebhookSink:
        config = {"url": url, "secret": sink_secret or secret}
        return WebhookSink(config, SinkContext(client or http))

    return make


@pytest.fixture
def make_delivery() -> Callable[..., OutboundDelivery]:
    def make(**overrides: Any) -> OutboundDelivery:
        values: dict[str, Any] = {
            "id": "msg_2mJ0rQ7dNnXhH5l6",
            "event_type": "points.balance_changed",
            "payload": {"customer_id": "1270", "balance_before": 120, "balance_after": 170},
            "created_at": datetime(2025, 3, 1, 9, 30, tzinfo=UTC),
            "attempt": 1,
        }
        return OutboundDelivery(**(values | overrides))

    return make
