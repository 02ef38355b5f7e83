"""``sinks pause|resume|list``: a sink's state and health, against a real database,
Redis as the broker and a real signed-webhook endpoint on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis
from click.testing import Result
from sqlalchemy import select

from tests.worker.cli.test_commands import add_store, add_webhook_sink, cli, env, sink_id
from worker.pipeline import outbox
from worker.points import BALANCE_CHANGED
from worker.runtime import Runtime
from worker.sandbox.capture import CaptureLog, capture_log, create_capture_app
from worker.sandbox.server import RunningServer
from worker.signing import new_secret
from worker.storage.models import Delivery, Store

__all__ = ["cli", "env"]  # fixtures
Cli = Callable[..., Result]
Serve = Callable[[Any], RunningServer]


def webhook_sink(cli: Cli, serve: Serve, **capture: Any) -> tuple[str, CaptureLog]:
    secret = new_secret()
    app = create_capture_app(secret, **capture)
    add_store(cli)
    return sink_id(add_webhook_sink(cli, f"{serve(app).url}/hook", secret)), capture_log(app)


def queue(runtime: Runtime, count: int) -> list[str]:
    with runtime.transaction() as session:
        store = session.scalars(select(Store)).one()
        return [
            due.delivery_id
            for i in range(count)
            for due in outbox.create_deliveries(session, store, None, {
                "customer_id": str(i), "kinds": [BALANCE_CHANGED], "balance_after": i})
        ]  # fmt: skip


def waiting(runtime: Runtime) -> list[str]:
    with runtime.sessions() as session:
        return sorted(session.scalars(select(Delivery.id).where(Delivery.status == "pending")))


def test_it_pauses_and_resumes_a_sink_in_one_line_each(
    cli: Cli, serve: Serve, runtime: Runtime, redis_url: str
) -> None:
    added, log = webhook_sink(cli, serve)
    paused = cli("sinks", "pause", added, "--reason", "maintenance")
    assert paused.exit_code == 0
    until = f"its deliveries wait until `sinks resume {added}`"
    assert paused.output == f"sink {added} paused: {until}\n"
    assert cli("sinks", "pause", added).output == f"sink {added} was already paused\n"
    assert "paused by operator (maintenance)" in cli("sinks", "list").output
    assert queue(runtime, 3) == []  # nothing to enqueue while paused
    held = waiting(runtime)
    broker = redis.Redis.from_url(redis_url)
    before = broker.llen("deliveries")
    resumed = cli("sinks", "resume", added)
    assert resumed.output == f"sink {added} resumed: 3 waiting deliveries queued\n"
    assert broker.llen("deliveries") - before == 3
    assert cli("sinks", "resume", added).output == f"sink {added} was not paused\n"
    for delivery_id in held:
        outbox.deliver(runtime, delivery_id)
    assert sorted(request.id for request in log.received()) == held
    assert "enabled" in cli("sinks", "list").output


def test_it_lists_an_open_breaker_and_the_sinks_health(
    cli: Cli, serve: Serve, runtime: Runtime
) -> None:
    added, _ = webhook_sink(cli, serve, fail_first=100, fail_status=503)
    assert "0 consecutive failures, last success never, last failure never" in (
        cli("sinks", "list").output
    )
    for delivery_id in queue(runtime, runtime.settings.breaker_failures):
        outbox.deliver(runtime, delivery_id)
    listing = cli("sinks", "list").output
    assert "breaker open (next probe 20" in listing
    assert "endpoint answered 503 Service Unavailable" in listing
    assert "10 consecutive failures, last success never, last failure 20" in listing
    assert cli("sinks", "resume", added).exit_code == 0  # closes the breaker by hand
    assert "0 consecutive failures" in cli("sinks", "list").output


def test_it_names_a_missing_sink_in_one_line(cli: Cli) -> None:
    for command in ("pause", "resume"):
        result = cli("sinks", command, "999999")
        assert result.exit_code == 1
        assert result.output == "Error: no sink 999999: see loyalty-relay sinks list\n"
