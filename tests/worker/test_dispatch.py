"""The inbox bell on real Redis and on the embedded SQLite broker."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery

from tests.conftest import quiet_broker
from worker import dispatch
from worker.celery_app import celery_config
from worker.config import load_settings

DOWN = "redis://127.0.0.1:1/0"


def publisher(broker_url: str, tmp_path: Path) -> Celery:
    settings = load_settings({"RELAY_DATA_DIR": str(tmp_path), "REDIS_URL": broker_url})
    app = Celery("bell-test")
    app.config_from_object(celery_config(settings))
    return app


@pytest.fixture
def broker(redis_url: str) -> Iterator[redis.Redis]:
    quiet_broker(redis_url)
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def drains(client: redis.Redis) -> int:
    messages = [json.loads(m) for m in client.lrange("events", 0, -1)]
    return [m["headers"]["task"] for m in messages].count(dispatch.DRAIN_INBOX)


def test_one_drain_is_outstanding_until_it_answers(
    broker: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    bell = dispatch.inbox_bell(redis_url)
    bell.ring()
    bell.ring()
    assert drains(broker) == 1
    assert 0 < broker.pttl(dispatch.BELL_KEY) <= dispatch.BELL_TTL_MS  # a lost drain expires
    bell.answer()
    assert not broker.exists(dispatch.BELL_KEY)
    bell.ring()
    assert drains(broker) == 2


def test_a_bell_that_cannot_reach_redis_says_so(tmp_path: Path) -> None:
    bell = dispatch.inbox_bell(DOWN)
    with pytest.raises(dispatch.BrokerUnavailable):
        bell.ring()
    bell.answer()  # a drain goes on claiming rows even if it cannot clear the bell


def test_a_drain_that_was_not_sent_leaves_the_bell_clear(
    broker: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    bell = dispatch.RedisBell(dispatch.RedisDrainPublisher(DOWN), redis_url)
    with pytest.raises(dispatch.BrokerUnavailable):
        bell.ring()
    assert not broker.exists(dispatch.BELL_KEY)  # the next batch rings again


def test_the_embedded_broker_gets_a_drain_per_ring(tmp_path: Path) -> None:
    url = f"sqla+sqlite:///{tmp_path}/broker.sqlite3"
    app = publisher(url, tmp_path)
    bell = dispatch.inbox_bell(url)
    assert isinstance(bell, dispatch.EveryTimeBell)
    bell.ring()
    bell.ring()
    with app.connection_for_read() as connection:
        queue = connection.SimpleQueue("events")
        assert queue.qsize() == 2
        queue.close()


def test_the_drain_is_the_message_celery_would_send(
    broker: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """Same headers, body and routing as ``send_task``'s; a real worker runs it in
    ``tests/test_end_to_end.py`` (every webhook there reaches it through this bell)."""
    publisher(redis_url, tmp_path).send_task(dispatch.DRAIN_INBOX, queue="events", retry=False)
    dispatch.RedisDrainPublisher(redis_url).send()  # the web's, without kombu
    dispatch.DrainPublisher(redis_url).send()  # kombu's (the embedded broker's publisher)
    kombus, ours, celerys = (json.loads(m) for m in broker.lrange("events", 0, -1))
    assert set(kombus) == set(ours) and set(kombus["properties"]) == set(ours["properties"])
    assert kombus["body"] == ours["body"] and set(kombus["headers"]) == set(ours["headers"])
    assert set(ours["headers"]) == set(celerys["headers"]) | {dispatch.SENT_AT}
    assert ours["headers"]["task"] == celerys["headers"]["task"] == dispatch.DRAIN_INBOX
    assert (
        ours["headers"]["root_id"] == ours["headers"]["id"] == ours["properties"]["correlation_id"]
    )
    assert ours["body"] == celerys["body"]  # [[], {}, embed] in JSON, base64 on Redis
    for key in ("content-type", "content-encoding"):
        assert ours[key] == celerys[key]
    assert ours["properties"]["delivery_info"] == celerys["properties"]["delivery_info"]


def test_a_dispatchs_messages_are_celerys_and_go_in_one_push_in_order(
    broker: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """What ``enqueue_chunks`` pushes is what ``send_task`` would have sent, each chunk
    its own message, taken from the queue in the order given; a real worker runs them
    in ``tests/test_end_to_end.py`` (every refresh there is handed out this way)."""
    app = publisher(redis_url, tmp_path)
    app.send_task(dispatch.REFRESH_MANY, args=([1, 2],), queue="refresh", retry=False)
    [celerys] = [json.loads(m) for m in broker.lrange("refresh", 0, -1)]
    broker.delete("refresh")
    chunks = [(dispatch.REFRESH_MANY, [1, 2]), (dispatch.REFRESH_MANY, [3]),
              (dispatch.DELIVER_MANY, ["d-1"])]  # fmt: skip
    dispatch.enqueue_chunks(app, redis_url, chunks)
    taken = [json.loads(broker.rpop("refresh") or b"{}") for _ in range(2)]
    [delivery] = [json.loads(m) for m in broker.lrange("deliveries", 0, -1)]
    assert [m["headers"]["task"] for m in taken] == [dispatch.REFRESH_MANY] * 2
    assert delivery["headers"]["task"] == dispatch.DELIVER_MANY
    bodies = [json.loads(base64.b64decode(m["body"]))[0] for m in (*taken, delivery)]
    assert bodies == [[[1, 2]], [[3]], [["d-1"]]]
    ours = taken[0]
    assert ours["body"] == celerys["body"]
    assert set(ours["headers"]) == set(celerys["headers"]) | {dispatch.SENT_AT}
    assert ours["headers"]["argsrepr"] == celerys["headers"]["argsrepr"] == "([1, 2],)"
    assert ours["properties"]["delivery_info"] == celerys["properties"]["delivery_info"]
    for key in ("content-type", "content-encoding"):
        assert ours[key] == celerys[key]


def test_a_push_that_cannot_reach_redis_says_so(tmp_path: Path) -> None:
    app = publisher(DOWN, tmp_path)
    with pytest.raises(dispatch.BrokerUnavailable):
        dispatch.enqueue_chunks(app, DOWN, [(dispatch.REFRESH_MANY, [1])])
