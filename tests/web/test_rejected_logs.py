"""Every refused webhook (401, 413) is logged once, at WARNING, with its platform and the
store its path or headers name — never its body, never a secret from its headers or path."""

from __future__ import annotations

import logging

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.factories import encode, salla_event
from web import create_app
from web.receiver import RefusalLog
from worker.config import Settings
from worker.runtime import Runtime


@pytest.fixture
def client(runtime: Runtime, settings: Settings) -> FlaskClient:
    app: Flask = create_app(settings)
    return app.test_client()


def refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    return [message for message in messages if "webhook refused" in message]


def test_it_logs_a_bad_signature_once_without_the_body(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    body = encode(salla_event())  # names the customer's address
    answer = client.post("/webhooks/salla", data=body, headers={"Authorization": "Bearer forged"})
    assert answer.status_code == 401
    [line] = refusals(caplog)
    assert line.startswith("webhook refused with 401 (salla, store unknown)")
    assert "c@example.com" not in line and "forged" not in line


def test_it_names_the_store_a_header_gives(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    headers = {"X-Shopify-Shop-Domain": "demo.myshopify.com", "X-Shopify-Hmac-Sha256": "Zm9v"}
    answer = client.post("/webhooks/shopify", data=b"{}", headers=headers)
    assert answer.status_code == 401
    [line] = refusals(caplog)
    assert "(shopify, store demo.myshopify.com)" in line and "Zm9v" not in line


def test_it_never_logs_a_token_in_the_path(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    answer = client.post("/webhooks/zid/app/guessed-path-token", data=b"{}")
    assert answer.status_code == 401
    [line] = refusals(caplog)
    assert "guessed-path-token" not in line


def test_it_logs_an_oversized_body_once(
    client: FlaskClient, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    body = b"x" * (settings.max_body_bytes + 1)
    answer = client.post("/webhooks/zid/30/order.create", data=body)
    assert answer.status_code == 413
    [line] = refusals(caplog)
    assert line.startswith("webhook refused with 413 (zid, store 30)")


def test_a_flood_of_forged_webhooks_logs_ten_lines_a_minute(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    body = encode(salla_event())
    for _ in range(25):
        answer = client.post("/webhooks/salla", data=body, headers={"Authorization": "x"})
        assert answer.status_code == 401  # every one refused, whether logged or not
    assert len(refusals(caplog)) == 10
    answer = client.post("/webhooks/zid/30/order.create", data=b"{}")  # another platform
    assert answer.status_code == 401 and len(refusals(caplog)) == 11


def test_the_next_minute_says_how_many_were_held_back() -> None:
    now = [0.0]
    log = RefusalLog(limit=2, window=60.0, clock=lambda: now[0])
    assert [log.admit("salla", 401) for _ in range(5)] == [0, 0, None, None, None]
    assert log.admit("salla", 413) == 0  # each status has its own allowance
    now[0] = 61.0
    assert log.admit("salla", 401) == 3  # said on the first line of the next minute
    assert log.admit("salla", 401) == 0 and log.admit("salla", 401) is None
