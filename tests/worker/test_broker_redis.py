"""The worker's Redis transport: kombu's, with one client per channel for its commands."""

from __future__ import annotations

import json
from pathlib import Path

from kombu import Connection, Exchange, Queue
from kombu.transport import redis as kombu_redis

from worker import broker_redis
from worker.celery_app import celery_config, create_celery
from worker.config import load_settings


def test_redis_brokers_get_the_transport_and_rediss_keeps_kombus(tmp_path: Path) -> None:
    def config(url: str) -> dict[str, object]:
        env = {"RELAY_DATA_DIR": str(tmp_path), "REDIS_URL": url}
        return celery_config(load_settings(env))

    assert config("redis://127.0.0.1:6379/0")["broker_transport"] == broker_redis.TRANSPORT
    secure = config("rediss://127.0.0.1:6380/0?ssl_cert_reqs=required")
    assert "broker_transport" not in secure  # kombu picks TLS by the name "rediss"
    assert "broker_transport" not in config(f"sqla+sqlite:///{tmp_path}/broker.db")


def test_acks_and_publishes_share_one_client_and_lose_nothing(redis_url: str) -> None:
    queue = Queue("broker-redis-test", Exchange("broker-redis-test"), "broker-redis-test")
    with Connection(redis_url, transport=broker_redis.TRANSPORT) as connection:
        channel = connection.default_channel
        assert isinstance(channel, broker_redis.Channel)
        clients: set[int] = set()
        stock = kombu_redis.Channel.conn_or_acquire

        with connection.Producer(serializer="json") as producer:
            for n in range(5):
                producer.publish({"n": n}, exchange=queue.exchange, routing_key=queue.routing_key,
                                 declare=[queue])  # fmt: skip
        got: list[int] = []
        with connection.SimpleQueue(queue) as simple:
            for _ in range(5):
                message = simple.get(timeout=5)
                got.append(message.payload["n"])
                with channel.conn_or_acquire() as client:
                    clients.add(id(client))
                message.ack()
            with channel.conn_or_acquire() as client:
                assert client.llen(queue.name) == 0
                unacked = [json.loads(v) for v in client.hvals(channel.unacked_key)]
            # each ack reached Redis (other tests' unacked messages may share the db)
            assert [entry for entry in unacked if entry[1] == queue.exchange.name] == []
        assert sorted(got) == [0, 1, 2, 3, 4]
        assert len(clients) == 1  # kombu's own channel built one per call
        with stock(channel) as first, stock(channel) as second:
            assert first is not second  # what the transport exists to avoid

        pool = channel.pool
        channel._after_fork()  # kombu drops its pools in a forked child
        with channel.conn_or_acquire() as client:
            assert client.connection_pool is channel.pool is not pool
            assert client.ping()


def test_the_worker_app_connects_through_it(redis_url: str, tmp_path: Path) -> None:
    env = {"RELAY_DATA_DIR": str(tmp_path), "REDIS_URL": redis_url}
    app = create_celery(load_settings(env))
    with app.connection_for_write() as connection:
        assert isinstance(connection.default_channel, broker_redis.Channel)
