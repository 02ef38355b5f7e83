"""The ops commands against a real database (SQLite and PostgreSQL), a real Redis
broker and real HTTP sinks: ``--json`` parsed, tables read, bad input refused."""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner, Result

from tests.conftest import relay_env
from tests.worker.ops.support import START, add_deliveries, add_event, add_jobs, store_and_sink
from worker import tasks
from worker.cli.app import main
from worker.pipeline import outbox
from worker.runtime import Runtime
from worker.sandbox.capture import capture_log, create_capture_app
from worker.sandbox.server import RunningServer
from worker.signing import new_secret
from worker.storage.models import Delivery, utcnow

Cli = Callable[..., Result]
SECRETS = ("huda@example.com", "+966555123987", "whsec_", "access-1", "refresh-1")


@pytest.fixture
def cli(runtime: Runtime, tmp_path: Path, redis_url: str) -> Cli:
    env = relay_env(tmp_path, runtime.settings.database_url, redis_url)
    runner = CliRunner()
    return lambda *args: runner.invoke(main, list(args), env=env, catch_exceptions=False)


def as_json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    assert not any(secret in result.output for secret in SECRETS), result.output
    return json.loads(result.output)


def test_it_lists_deliveries_page_by_page_as_json_and_as_a_table(
    runtime: Runtime, cli: Cli
) -> None:
    store, sink = store_and_sink(runtime)
    ids = add_deliveries(runtime, sink, ["dead", "delivered", "dead", "dead"])
    first = as_json(cli("deliveries", "list", "--status", "dead", "--limit", "2", "--json"))
    assert [row["id"] for row in first["items"]] == [ids[3], ids[2]]
    rest = as_json(cli("deliveries", "list", "--status", "dead", "--cursor", first["next_cursor"],
                       "--json"))  # fmt: skip
    assert [row["id"] for row in rest["items"]] == [ids[0]] and rest["next_cursor"] is None
    table = cli("deliveries", "list", "--store", store.key, "--sink", str(sink.id), "--limit", "3",
                "--since", "2026-11-30T08:00")  # fmt: skip
    lines = table.output.splitlines()
    assert lines[0].split()[:3] == ["ID", "STATUS", "SINK"] and ids[3] in lines[1]
    more = lines[-1]
    assert more.startswith("more: loyalty-relay deliveries list --sink") and "--cursor" in more
    assert "--since 2026-11-30T08:00:00+00:00" in more
    last = cli(*more.removeprefix("more: loyalty-relay ").split())
    assert ids[0] in last.output and "more:" not in last.output


def test_it_shows_a_delivery_with_its_attempts_masked(runtime: Runtime, cli: Cli) -> None:
    _, sink = store_and_sink(runtime)
    contact = {"email": "huda@example.com", "phone": "+966555123987"}
    [delivery_id] = add_deliveries(runtime, sink, ["dead"], payload={"contact": contact})
    shown = as_json(cli("deliveries", "show", delivery_id, "--json"))
    assert shown["delivery"]["status"] == "dead" and shown["attempts"] == []
    assert shown["payload"]["contact"] == {"email": "[masked]", "phone": "[masked]"}
    table = cli("deliveries", "show", delivery_id)
    assert "payload:" in table.output and "huda" not in table.output


def test_it_retries_a_dead_delivery_to_a_fixed_sink_once_with_the_same_webhook_id(
    runtime: Runtime, cli: Cli, serve: Callable[[Any], RunningServer], redis_url: str
) -> None:
    secret = new_secret()
    app = create_capture_app(secret, fail_first=1, fail_status=500)  # broken, then fixed
    _, sink = store_and_sink(runtime, f"{serve(app).url}/hook", secret)
    [delivery_id] = add_deliveries(runtime, sink, ["pending"], start=utcnow())
    once = dataclasses.replace(
        runtime, settings=dataclasses.replace(runtime.settings, delivery_max_attempts=1)
    )
    outbox.deliver(once, delivery_id)
    assert _status(runtime, delivery_id) == "dead"
    retried = as_json(cli("deliveries", "retry", delivery_id, "--json"))
    assert retried == {"retried": [delivery_id], "untouched": []}
    assert _queued(redis_url) == [delivery_id]  # rung as the sweeper rings
    outbox.deliver(runtime, delivery_id)  # what the worker does with that message
    assert as_json(cli("deliveries", "retry", delivery_id, "--json"))["retried"] == []
    bulk = cli("deliveries", "retry", "--status", "dead", "--sink", str(sink.id))
    assert bulk.output.startswith("retried 0 deliveries")
    outbox.deliver(runtime, delivery_id)  # a stray message finds nothing to send
    log = capture_log(app)
    assert [(r.id, r.status) for r in log.requests()] == [(delivery_id, 500), (delivery_id, 200)]
    assert [r.id for r in log.received()] == [delivery_id]
    assert _status(runtime, delivery_id) == "delivered"


def test_it_retries_every_dead_delivery_matching_once(
    runtime: Runtime, cli: Cli, redis_url: str
) -> None:
    _, sink = store_and_sink(runtime)
    ids = add_deliveries(runtime, sink, ["dead", "delivered", "dead", "dead"])
    since = (START + timedelta(minutes=1)).isoformat()
    first = cli("deliveries", "retry", "--status", "dead", "--sink", str(sink.id), "--since", since)
    assert first.exit_code == 0 and first.output.startswith("retried 2 deliveries"), first.output
    again = as_json(cli("deliveries", "retry", "--status", "dead", "--since", since, "--json"))
    assert again["retried"] == [] and sorted(_queued(redis_url)) == sorted(ids[2:])
    assert [_status(runtime, i) for i in ids] == ["dead", "delivered", "pending", "pending"]


def test_it_discards_deliveries_not_sent_yet(runtime: Runtime, cli: Cli) -> None:
    _, sink = store_and_sink(runtime)
    ids = add_deliveries(runtime, sink, ["dead", "delivered"])
    result = as_json(cli("deliveries", "discard", *ids, "--json"))
    assert result == {"discarded": [ids[0]], "untouched": [ids[1]]}
    assert [_status(runtime, i) for i in ids] == ["skipped", "delivered"]
    table = cli("deliveries", "list", "--status", "skipped")
    assert "discarded by operator" in table.output


def test_it_lists_shows_and_replays_inbox_events(runtime: Runtime, cli: Cli) -> None:
    store_and_sink(runtime)
    body = json.dumps({"data": {"customer": {"email": "huda@example.com", "id": 7}}}).encode()
    done = add_event(runtime, "done", body, 1)
    add_event(runtime, "pending", body, 2, event_type="customer.updated")
    listed = as_json(cli("inbox", "list", "--store", "salla:1234509876", "--event",
                         "order.created", "--json"))  # fmt: skip
    assert [row["id"] for row in listed["items"]] == [done] and listed["items"][0]["body_kept"]
    shown = as_json(cli("inbox", "show", str(done), "--json"))
    assert shown["body"]["data"]["customer"] == {"email": "[masked]", "id": 7}
    assert as_json(cli("inbox", "replay", str(done), "--json"))["replayed"] == [done]
    assert cli("inbox", "replay", str(done)).output.startswith("replayed 0 events")
    table = cli("inbox", "list", "--status", "pending")
    assert table.output.count("order.created") == 1 and "customer.updated" in table.output
    assert as_json(cli("inbox", "list", "--platform", "zid", "--json"))["items"] == []
    assert len(as_json(cli("inbox", "list", "--platform", "salla", "--json"))["items"]) == 2


def test_it_lists_and_retries_failed_refresh_jobs(
    runtime: Runtime, cli: Cli, redis_url: str
) -> None:
    store, _ = store_and_sink(runtime)
    ids = add_jobs(runtime, store, ["failed", "done", "failed"])
    failed = as_json(cli("refresh", "list", "--status", "failed", "--json"))
    assert [row["id"] for row in failed["items"]] == [ids[2], ids[0]]
    assert "HTTP 500" in cli("refresh", "list", "--store", store.key).output
    retried = cli("refresh", "retry", "--status", "failed")
    assert retried.output.startswith("retried 2 refresh jobs"), retried.output
    assert as_json(cli("refresh", "retry", str(ids[0]), "--json"))["retried"] == []
    tasks.dispatch_due()  # what the retry asked for: the store's budget hands both out
    client = redis.Redis.from_url(redis_url)
    [message] = [json.loads(raw) for raw in client.lrange("refresh", 0, -1)]  # one store's chunk
    assert sorted(json.loads(base64.b64decode(message["body"]))[0][0]) == sorted([ids[0], ids[2]])
    client.close()


def test_it_reports_queues_and_tables(runtime: Runtime, cli: Cli) -> None:
    _, sink = store_and_sink(runtime)
    add_deliveries(runtime, sink, ["dead", "pending"])
    found = as_json(cli("queues", "--json"))
    assert [q["name"] for q in found["queues"]] == ["deliveries", "events", "refresh"]
    deliveries = next(t for t in found["tables"] if t["table"] == "deliveries")
    assert {"status": "dead", "rows": 1, "exact": True, "capped": False} in deliveries["statuses"]
    table = cli("queues").output
    assert "deliveries" in table and "dead 1" in table and "OLDEST DUE" in table


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["deliveries", "list", "--since", "yesterday"], "not a time like 2h"),
        (["deliveries", "list", "--cursor", "garbage"], "not a cursor"),
        (["deliveries", "list", "--store", "salla:404"], "no store salla:404"),
        (["deliveries", "show", "msg_404"], "no delivery msg_404"),
        (["deliveries", "retry"], "ids or --status dead"),
        (["deliveries", "retry", "msg_1", "--status", "dead"], "not both"),
        (["deliveries", "retry", "msg_1", "--sink", "1"], "go with --status"),
        (["deliveries", "list", "--status", "lost"], "lost"),
        (["inbox", "show", "404"], "no inbox event 404"),
        (["inbox", "list", "--store", "nocolon"], "store key"),
        (["inbox", "list", "--platform", "nope"], "nope"),
        (["refresh", "retry"], "ids or --status failed"),
        (["refresh", "list", "--limit", "0"], "0"),
    ],
)  # fmt: skip
def test_it_refuses_bad_input_in_one_line(cli: Cli, args: list[str], message: str) -> None:
    result = cli(*args)
    assert result.exit_code == 2 and message in result.output, result.output
    assert "Traceback" not in result.output


def _status(runtime: Runtime, delivery_id: str) -> str:
    with runtime.sessions() as session:
        return session.get_one(Delivery, delivery_id).status


def _queued(redis_url: str) -> list[str]:
    """The delivery ids in the deliveries queue once the dispatch a retry asks for has run."""
    tasks.dispatch_due()
    client = redis.Redis.from_url(redis_url)
    messages = [json.loads(raw) for raw in client.lrange("deliveries", 0, -1)]
    client.close()
    ids: list[str] = []
    for message in messages:
        row_ids = json.loads(base64.b64decode(message["body"]))[0][0]
        ids += row_ids if isinstance(row_ids, list) else [row_ids]
    return ids
