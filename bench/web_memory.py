"""Resident memory of the web process: each gunicorn worker's RSS after N signed webhooks.

``python bench/web_memory.py [--webhooks 200]``. Not a test. Starts the
production web configuration (``web.gunicorn_conf``, ``web:create_app()``) and,
with the same configuration, the bare route (``bench/bare.py``), on a scratch
PostgreSQL database and Redis db 14 (flushed), sends N signed Salla webhooks to
each over HTTP, scrapes ``/metrics`` a few times (a 404 on the bare route), then
reads ``VmRSS`` of every worker (``/proc/<pid>/status``)
and prints them with the receiver/bare ratio. RSS counts pages shared with the
master, as ``ps`` and the issue's 93 MB did.
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import sys
from pathlib import Path
from tempfile import TemporaryDirectory

import project  # noqa: F401  (before anything imports worker)
from ingest import (
    APPS,
    Options,
    flushed_redis,
    gunicorn,
    ignore_interrupts,
    payload_line,
    post,
    prepare_schema,
    relay_env,
)
from scratch import fresh_database

REDIS_URL = os.environ.get("RELAY_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")


def worker_pids(port: int) -> list[int]:
    """The gunicorn workers serving ``port``: children of the master listening on it."""
    master = _listener(port)
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return sorted(int(pid) for pid in children)


def _listener(port: int) -> int:
    """The master: the oldest process holding the socket listening on ``port``."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                inodes.add(f"socket:[{fields[9]}]")
    holders = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            links = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
        except OSError:
            continue
        if links & inodes:
            holders.append(int(pid))
    return min(holders)


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def send(port: int, count: int) -> dict[int | None, int]:
    statuses: dict[int | None, int] = {}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for serial in range(count):
        signature, body = payload_line(serial).rstrip(b"\n").split(b" ", 1)
        status = post(connection, signature.decode(), body)
        statuses[status] = statuses.get(status, 0) + 1
    connection.close()
    return statuses


def scrape(port: int, workers: int) -> None:
    """GET /metrics on fresh connections until each worker has likely answered one:
    a scraped worker's RSS is what production sees (every 15 s)."""
    for _ in range(4 * workers):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("GET", "/metrics")
        connection.getresponse().read()
        connection.close()


def measure(app: str, env: dict[str, str], options: Options, count: int, log: Path) -> list[int]:
    with gunicorn(app, env, options, log) as port:
        statuses = send(port, count)
        pids = worker_pids(port)
        scrape(port, len(pids))
        sizes = [rss_kb(pid) for pid in pids]
    print(f"{app:<20} answers {statuses}  RSS per worker: {', '.join(_mb(s) for s in sizes)}")
    return sizes


def _mb(kb: float) -> str:
    return f"{kb / 1024:.1f} MB"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--webhooks", type=int, default=200, help="signed webhooks per app")
    args = parser.parse_args(argv)
    options = Options(1, 1, 1, 1, 1, workers=None, threads=None, json=False)
    with TemporaryDirectory() as scratch, fresh_database(f"relay_memory_{os.getpid()}") as dsn:
        directory = Path(scratch)
        env = relay_env(directory, dsn)
        prepare_schema(env)
        with flushed_redis(REDIS_URL):
            bare = measure(APPS["bare"], env, options, args.webhooks, directory / "bare.log")
            receiver = measure(APPS["receiver"], env, options, args.webhooks, directory / "web.log")
        ignore_interrupts()
    mean_bare, mean_receiver = sum(bare) / len(bare), sum(receiver) / len(receiver)
    print(
        f"mean per worker: receiver {_mb(mean_receiver)}, bare {_mb(mean_bare)}, "
        f"ratio {mean_receiver / mean_bare:.2f}"
    )


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(main())
