"""The web process's own Redis connection, against the real Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from worker.redis_wire import RedisWire, WireError

KEY = "relay:test:wire"


@pytest.fixture
def wire(redis_url: str) -> Iterator[RedisWire]:
    connection = RedisWire(redis_url)
    yield connection
    connection.call("DEL", KEY, KEY + ":list")
    connection.close()


def test_it_talks_to_the_database_the_url_names(wire: RedisWire, redis_url: str) -> None:
    assert wire.call("SET", KEY, b"\x00binary\r\n") == b"OK"
    other = redis.Redis.from_url(redis_url)
    assert other.get(KEY) == b"\x00binary\r\n"  # the same db number, bytes intact
    other.close()


def test_it_pipelines_commands_and_reads_every_kind_of_reply(wire: RedisWire) -> None:
    replies = wire.pipeline(
        [("RPUSH", KEY + ":list", "a", "b"), ("LRANGE", KEY + ":list", 0, -1),
         ("LINDEX", KEY + ":list", 5), ("SET", KEY, 1, "NX"), ("SET", KEY, 2, "NX")]
    )  # fmt: skip
    assert replies == [2, [b"a", b"b"], None, b"OK", None]


def test_a_refused_command_raises_and_the_next_one_works(wire: RedisWire) -> None:
    wire.call("SET", KEY, "text")
    with pytest.raises(WireError, match="not an integer"):
        wire.call("INCR", KEY)
    assert wire.call("GET", KEY) == b"text"


def test_it_reconnects_after_redis_drops_the_connection(wire: RedisWire, redis_url: str) -> None:
    wire.call("SET", KEY, "before")
    ours = wire.call("CLIENT", "ID")  # only this connection is killed, nobody else's
    admin = redis.Redis.from_url(redis_url)
    admin.client_kill_filter(_id=str(ours))
    admin.close()
    with pytest.raises(OSError):
        wire.call("GET", KEY)
    assert wire.call("GET", KEY) == b"before"


def test_a_password_in_the_url_is_sent(redis_url: str) -> None:
    host_and_db = redis_url.split("://", 1)[1]
    guarded = RedisWire(f"redis://:not-the-password@{host_and_db}")
    with pytest.raises(WireError, match="AUTH"):  # this Redis has none: it says so
        guarded.call("PING")
    guarded.close()


def test_an_unreachable_redis_is_an_os_error() -> None:
    with pytest.raises(OSError):
        RedisWire("redis://127.0.0.1:1/0", connect_timeout=0.5).call("PING")
