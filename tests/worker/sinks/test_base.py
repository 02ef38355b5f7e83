"""The sink contract: statuses to failures, Retry-After, deliveries and the registry."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from worker.errors import PermanentError, TransientError
from worker.http import MAX_RETRY_AFTER, MIN_RETRY_AFTER, build_client, parse_retry_after
from worker.signing import new_secret
from worker.sinks import SINKS, get_sink
from worker.sinks.base import EndpointGone, OutboundDelivery, SinkContext, classify_http_status
from worker.sinks.email import EmailSink
from worker.sinks.hubspot import HubSpotSink
from worker.sinks.klaviyo import KlaviyoSink
from worker.sinks.webhook import WebhookSink

FAR_FUTURE = "Wed, 21 Oct 2099 07:28:00 GMT"
PAST = "Wed, 21 Oct 2015 07:28:00 GMT"
OK = None

STATUSES: list[tuple[int, str | None, type[Exception] | None, float | None]] = [
    (200, None, OK, None),
    (201, None, OK, None),
    (204, None, OK, None),
    (301, None, PermanentError, None),
    (400, None, PermanentError, None),
    (401, None, PermanentError, None),
    (404, None, PermanentError, None),
    (408, None, TransientError, None),
    (409, None, PermanentError, None),
    (410, None, EndpointGone, None),
    (429, None, TransientError, None),
    (429, "120", TransientError, 120.0),
    (429, "0", TransientError, MIN_RETRY_AFTER),  # one floor for platforms and sinks
    (429, FAR_FUTURE, TransientError, MAX_RETRY_AFTER),
    (429, PAST, TransientError, MIN_RETRY_AFTER),
    (429, "86400", TransientError, MAX_RETRY_AFTER),
    (429, "soon", TransientError, None),
    (429, "-5", TransientError, None),
    (500, None, TransientError, None),
    (502, None, TransientError, None),
    (503, None, TransientError, None),
    (503, "30", TransientError, 30.0),
    (504, None, TransientError, None),
]


@pytest.mark.parametrize(("status", "retry_after", "raises", "delay"), STATUSES)
def test_it_classifies_http_statuses(
    status: int, retry_after: str | None, raises: type[Exception] | None, delay: float | None
) -> None:
    if raises is None:
        classify_http_status(status, retry_after)
        return
    with pytest.raises(raises) as caught:
        classify_http_status(status, retry_after)
    assert str(caught.value).startswith(f"endpoint answered {status} ")
    if isinstance(caught.value, TransientError):
        assert caught.value.retry_after == delay


def test_it_names_the_status_in_the_message() -> None:
    with pytest.raises(EndpointGone, match="^endpoint answered 410 Gone$"):
        classify_http_status(410, None)
    assert issubclass(EndpointGone, PermanentError)


def test_it_reads_retry_after_as_an_http_date() -> None:
    now = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
    assert parse_retry_after("Sat, 01 Mar 2025 09:32:00 GMT", now) == 120.0
    assert parse_retry_after("Saturday, 01-Mar-25 09:31:00 GMT", now) == 60.0
    assert parse_retry_after("  90 ", now) == 90.0
    assert parse_retry_after("", now) is None
    assert parse_retry_after("1.5", now) is None


def test_it_rejects_a_delivery_without_what_receivers_rely_on() -> None:
    fields: dict[str, Any] = {
        "id": "msg_1",
        "event_type": "points.balance_changed",
        "payload": {},
        "created_at": datetime.now(UTC),
        "attempt": 1,
    }
    OutboundDelivery(**fields)
    for change in ({"id": ""}, {"created_at": datetime.now()}, {"attempt": 0}):
        with pytest.raises(ValueError):
            OutboundDelivery(**(fields | change))


def test_it_finds_sinks_by_kind() -> None:
    assert get_sink("webhook") is WebhookSink
    assert SINKS == {
        "webhook": WebhookSink,
        "hubspot": HubSpotSink,
        "klaviyo": KlaviyoSink,
        "email": EmailSink,
    }


def test_it_names_the_known_kinds_for_an_unknown_one() -> None:
    with pytest.raises(KeyError) as caught:
        get_sink("hubspot-typo")
    assert (
        str(caught.value)
        == "unknown sink kind 'hubspot-typo' (known: email, hubspot, klaviyo, webhook)"
    )


def test_it_normalises_a_valid_webhook_config() -> None:
    old, new = new_secret(), new_secret()
    config = {"url": "https://hooks.example.com/loyalty", "secret": f" {old}   {new} "}
    assert WebhookSink.validate_config(config) == {
        "url": "https://hooks.example.com/loyalty",
        "secret": f"{old} {new}",
    }


SECRET = new_secret()
BAD_CONFIGS: list[tuple[dict[str, Any], str]] = [
    ({}, "url: Missing data for required field.; secret: Missing data"),
    ({"url": "ftp://example.com/x", "secret": SECRET}, "url: Not a valid URL."),
    ({"url": "example.com/x", "secret": SECRET}, "url: Not a valid URL."),
    ({"url": "https://", "secret": SECRET}, "url: Not a valid URL."),
    ({"url": "http://localhost:8080/", "secret": "whsec_not base64!"}, "secret: the secret is not"),
    ({"url": "http://localhost:8080/", "secret": "whsec_"}, "secret: the secret is empty"),
    ({"url": "http://localhost:8080/", "secret": "  "}, "secret: give at least one"),
    ({"url": "http://localhost:8080/", "secret": 42}, "secret: Not a valid string."),
    ({"url": "http://localhost:8080/", "secret": SECRET, "secrte": 1}, "secrte: Unknown field."),
]


@pytest.mark.parametrize(("config", "message"), BAD_CONFIGS)
def test_it_explains_a_bad_webhook_config(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        WebhookSink.validate_config(config)
    assert str(caught.value).startswith(message)
    assert SECRET.removeprefix("whsec_") not in str(caught.value)


def test_it_stops_a_sink_whose_stored_config_went_bad() -> None:
    with (
        build_client(timeout=1.0, allow_private=True) as http,
        pytest.raises(PermanentError, match="config"),
    ):
        WebhookSink({"url": "gopher://x", "secret": SECRET}, SinkContext(http))


class CountingWebhookSink(WebhookSink):
    """A webhook sink that counts its validations."""

    checks = 0

    @classmethod
    def validate_config(cls, config: Any) -> dict[str, Any]:
        cls.checks += 1
        return super().validate_config(config)


def test_it_validates_a_stored_config_once_per_process_until_it_changes() -> None:
    good = {"url": "https://hooks.example/relay", "secret": SECRET}
    with build_client(timeout=1.0, allow_private=True) as http:
        sinks = [CountingWebhookSink(dict(good), SinkContext(http)) for _ in range(3)]
        assert CountingWebhookSink.checks == 1
        assert all(sink.config == {"url": good["url"], "secret": SECRET} for sink in sinks)
        sinks[0].config["url"] = "https://changed.example/"  # an adapter's copy, not the memo
        assert CountingWebhookSink(dict(good), SinkContext(http)).config["url"] == good["url"]
        CountingWebhookSink(good | {"url": "https://other.example/relay"}, SinkContext(http))
        assert CountingWebhookSink.checks == 2
        for _ in range(2):  # a bad config is never remembered as good
            with pytest.raises(PermanentError, match="config"):
                CountingWebhookSink(good | {"url": "gopher://x"}, SinkContext(http))
        assert CountingWebhookSink.checks == 4


def test_the_worker_compiles_the_sinks_url_pattern_before_it_forks_its_pool() -> None:
    from celery.signals import worker_init
    from marshmallow import validate

    import worker.celery_app  # noqa: F401  (connects its signal handlers)

    memo = validate.URL._regex._memoized
    memo.clear()
    worker_init.send(sender=None)  # what the worker's main process sends before the fork
    warmed = set(memo)
    memo.clear()
    WebhookSink.validate_config({"url": "https://hooks.example/relay", "secret": SECRET})
    assert set(memo) <= warmed and warmed  # the sinks' first check finds it made
