"""One hot store: many customers' order webhooks on one Salla store, and a quiet
store's customer during that backlog.

    .venv/bin/python bench/hot_store.py [--customers 2000] [--time-scale 10]
                                        [--concurrency 2] [--quiet-probes 3]

Not a test. Production mode: the receiver under gunicorn and a Celery worker with
beat, as ``loyalty-relay run`` starts them (``worker.cli.serve.service_commands``),
on a scratch PostgreSQL database and a Redis database of its own (one of 1-12
that no test session holds, claimed with the test sessions' own key, or
``RELAY_BENCH_HOT_REDIS_URL``; 13-15 belong to the other benchmarks). A Salla API stand-in
(``worker.sandbox.salla``: two pages of history per customer, its own rate window)
and a signed-webhook sink (``worker.sandbox.capture``) run in this process. The
webhooks are Salla's published ``order.created`` example (``worker.platforms.salla
.examples``) with the store and customer put in, signed as Salla signs.

The merchant's defaults hold (quota 500 per 10 min, debounce 5 s, settle checks
after 60 s and 600 s), except that ``--time-scale N`` shortens the quota window
and the settle delays N times (500 per 60 s, 6 s and 60 s at the default 10) so
that the run takes minutes, not hours: every ratio between them stays, the
debounce does not (it is part of the quiet store's latency). ``--time-scale 1``
is the unscaled run (about 90 minutes for 2,000 customers).

Prints the first refreshes' drain pace beside the budget's, whether any settle
re-check of the hot store fetched before its last first refresh, fetches per
customer, the quiet store's webhook→delivery latency (target < 10 s), and what
the broker held (countdown messages, unacknowledged messages).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import project  # noqa: F401  (before anything imports worker)
import redis
from ingest import free_port
from scratch import fresh_database
from sqlalchemy import select

from worker import quota, runtime
from worker.cli.serve import service_commands
from worker.config import load_settings
from worker.pipeline import refresh
from worker.pipeline.schedule import CALLS_PER_REFRESH
from worker.platforms.base import StoreUpdate
from worker.platforms.salla.samples import encode, sample_event, signed_headers
from worker.points import CHANGE_KINDS
from worker.runtime import Runtime
from worker.sandbox.capture import capture_log, create_capture_app
from worker.sandbox.salla import create_salla_sandbox
from worker.sandbox.salla_state import SallaSandboxState, points_entry
from worker.sandbox.server import RunningServer, serve_in_thread
from worker.signing import new_secret
from worker.storage.migrate import upgrade
from worker.storage.models import CustomerPoints, RefreshJob, Sink, Store
from worker.stores import save_store

ROOT = Path(__file__).resolve().parents[1]
REDIS_BASE = "redis://127.0.0.1:6379"
SESSION_KEY = "relay:test-session"  # how test sessions hold a Redis database (tests/conftest.py)
SECRET = "bench-salla-webhook-secret"
HOT, QUIET = "1100000001", "1100000002"
LIMIT, WINDOW, SETTLE = 500, 600.0, (60.0, 600.0)  # the merchant's defaults
ENTRIES_PER_CUSTOMER = 61  # two pages of Salla's 60
QUEUES = ("events", "refresh", "deliveries")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=2000, help="hot store customers (2000)")
    parser.add_argument("--time-scale", type=float, default=10.0, help="quota window ÷ N (10)")
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes (2)")
    parser.add_argument("--quiet-probes", type=int, default=3, help="quiet-store webhooks (3)")
    return parser.parse_args(argv)


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Broker:
    """What Redis held, sampled once a second during the run."""

    url: str
    peak: dict[str, int] = field(default_factory=lambda: dict.fromkeys(QUEUES, 0))
    countdowns: int = 0  # messages carrying an eta, at the worst sample
    unacked: int = 0  # messages a worker took and has not acknowledged, at the worst sample
    stop: threading.Event = field(default_factory=threading.Event)

    def watch(self) -> None:
        client = redis.Redis.from_url(self.url)
        while not self.stop.wait(1.0):
            countdowns = 0
            for queue in QUEUES:
                messages = client.lrange(queue, 0, -1)
                self.peak[queue] = max(self.peak[queue], len(messages))
                countdowns += sum(_has_eta(raw) for raw in messages)
            countdowns += sum(_has_eta(raw) for raw in client.hvals("unacked"))
            self.countdowns = max(self.countdowns, countdowns)
            self.unacked = max(self.unacked, int(client.hlen("unacked")))
        client.close()


def _has_eta(raw: bytes | str) -> bool:
    document = json.loads(raw)
    message = document[0] if isinstance(document, list) else document  # unacked: [msg, …]
    return bool(message.get("headers", {}).get("eta"))


@dataclass
class World:
    runtime: Runtime
    salla: SallaSandboxState
    sink: Any  # the capture log
    port: int


@contextmanager
def own_redis() -> Iterator[str]:
    """A Redis database nobody else uses during the run, emptied before and after."""
    url = os.environ.get("RELAY_BENCH_HOT_REDIS_URL")
    for number in [] if url else range(1, 13):
        client = redis.Redis.from_url(f"{REDIS_BASE}/{number}")
        if client.set(SESSION_KEY, f"bench {os.getpid()}", nx=True, ex=4 * 3600):
            url = f"{REDIS_BASE}/{number}"
            break
        client.close()
    if url is None:
        raise SystemExit("every Redis database 1-12 is held by a test session")
    client = redis.Redis.from_url(url)
    _empty(client)
    try:
        yield url
    finally:
        _empty(client)
        client.delete(SESSION_KEY)
        client.close()


def _empty(client: redis.Redis) -> None:
    """Everything but the key that holds the database for us."""
    for key in client.scan_iter():
        if key != SESSION_KEY.encode():
            client.delete(key)


def environment(dsn: str, redis_url: str, data: Path, scale: float) -> dict[str, str]:
    return os.environ | {
        "DATABASE_URL": dsn.replace("postgresql://", "postgresql+psycopg://", 1),
        "REDIS_URL": redis_url,
        "RELAY_SECRET_KEY": "bench-secret-key",
        "SALLA_WEBHOOK_SECRET": SECRET,
        "RELAY_DATA_DIR": str(data),
        "RELAY_LOG_LEVEL": "WARNING",
        "RELAY_ALLOW_PRIVATE_URLS": "1",  # the stand-ins listen on 127.0.0.1
        "RELAY_SALLA_QUOTA": f"{LIMIT}/{WINDOW / scale:g}",
        "RELAY_SETTLE_DELAYS": ",".join(f"{delay / scale:g}" for delay in SETTLE),
        "PYTHONPATH": str(ROOT),
    }


def stand_ins(customers: int, scale: float) -> tuple[SallaSandboxState, RunningServer, Any, str]:
    salla = SallaSandboxState(rate_limit=LIMIT, rate_window=WINDOW / scale)
    now = datetime.now(UTC)
    history = [points_entry(10, created=now - timedelta(days=n), expiry=None)
               for n in range(ENTRIES_PER_CUSTOMER)]  # fmt: skip
    for merchant in (HOT, QUIET):
        salla.add_merchant(merchant, access_token=f"token-{merchant}", refresh_token="r")
    for n in range(customers):
        salla.set_entries(HOT, hot_customer(n), history)
    for n in range(10):
        salla.set_entries(QUIET, quiet_customer(n), history)
    secret = new_secret()
    capture = create_capture_app(secret)
    return salla, serve_in_thread(create_salla_sandbox(salla)), capture, secret


def hot_customer(n: int) -> str:
    return str(500_000 + n)


def quiet_customer(n: int) -> str:
    return str(900_000 + n)


def prepare(env: Mapping[str, str], api: str, sink_url: str, secret: str) -> Runtime:
    relay = runtime.configure(load_settings(env))
    upgrade(relay.engine)
    with relay.transaction() as session:
        for merchant in (HOT, QUIET):
            credentials = {"access_token": f"token-{merchant}", "refresh_token": "r"}
            update = StoreUpdate(status="active", credentials=credentials)
            store = save_store(relay, session, "salla", merchant, update, api_base=api)
            config = relay.cipher.seal({"url": f"{sink_url}/{merchant}", "secret": secret})
            session.add(Sink(store_id=store.id, kind="webhook", config=config,
                             kinds=list(CHANGE_KINDS)))  # fmt: skip
        session.flush()
        quiet = session.scalars(select(Store).where(Store.external_id == QUIET)).one()
        for n in range(10):  # known with another balance: their refresh is a change to send
            session.add(CustomerPoints(
                store_id=quiet.id, customer_id=quiet_customer(n), available=Decimal(1),
                pending=Decimal(0), used=Decimal(0), next_expiry_points=Decimal(0),
                fetched_at=datetime.now(UTC) - timedelta(days=1)))  # fmt: skip
    return relay


@contextmanager
def service(env: Mapping[str, str], port: int, concurrency: int, logs: Path) -> Iterator[None]:
    processes = []
    for name, command in service_commands("127.0.0.1", port, concurrency, "WARNING").items():
        with (logs / f"{name}.log").open("wb") as output:
            processes.append(subprocess.Popen(command, cwd=ROOT, env=dict(env), stdout=output,
                                              stderr=output, start_new_session=True))  # fmt: skip
    try:
        _wait_for_port(port)
        yield
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def _wait_for_port(port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            http.client.HTTPConnection("127.0.0.1", port, timeout=1).connect()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"the receiver did not listen on {port} within 60 s")


def post(connection: http.client.HTTPConnection, merchant: str, customer: str) -> None:
    body = encode(sample_event("order.created", merchant, customer))
    connection.request("POST", "/webhooks/salla", body=body, headers=signed_headers(body, SECRET))
    response = connection.getresponse()
    response.read()
    if response.status != 200:
        raise SystemExit(f"the receiver answered {response.status} to a signed webhook")


def burst(port: int, customers: int, lanes: int = 4) -> float:
    """Every hot customer's webhook, from ``lanes`` connections; returns the seconds taken."""
    started = time.monotonic()

    def lane(first: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for n in range(first, customers, lanes):
            post(connection, HOT, hot_customer(n))
        connection.close()

    threads = [threading.Thread(target=lane, args=(n,)) for n in range(lanes)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.monotonic() - started


def quiet_latency(world: World, n: int, timeout: float = 180.0) -> float | None:
    """Seconds from a quiet customer's webhook to its delivery at the sink (None: not seen)."""
    connection = http.client.HTTPConnection("127.0.0.1", world.port, timeout=30)
    sent = time.monotonic()
    post(connection, QUIET, quiet_customer(n))
    connection.close()
    while time.monotonic() - sent < timeout:
        if sum(d.path == f"/{QUIET}" for d in world.sink.received()) > n:
            return time.monotonic() - sent
        time.sleep(0.05)
    return None


def jobs(relay: Runtime, merchant: str) -> list[RefreshJob]:
    with relay.sessions() as session:
        store = session.scalars(select(Store).where(Store.external_id == merchant)).one()
        return list(session.scalars(select(RefreshJob).where(RefreshJob.store_id == store.id)))


def wait_for_drain(relay: Runtime, deadline: float) -> None:
    """Until every hot-store job has finished (first refreshes and re-checks)."""
    while time.monotonic() < deadline:
        rows = jobs(relay, HOT)
        left = sum(j.status in ("pending", "retrying", "working") for j in rows)
        firsts = sum(j.slot == refresh.SOON and j.status == "done" for j in rows)
        progress(f"hot store: {firsts} first refreshes done, {left} jobs left")
        if not left:
            return
        time.sleep(15)
    progress("deadline reached before the hot store drained")


def fetched(job: RefreshJob) -> bool:
    return job.claimed_at is not None and job.last_error != refresh.ALREADY_FETCHED


def report(
    args: argparse.Namespace, world: World, broker: Broker, latencies: list[float | None]
) -> None:
    rows = jobs(world.runtime, HOT)
    window = WINDOW / args.time_scale
    print(f"\nhot store: {args.customers} customers, quota {LIMIT}/{window:g} s (500 per 10 min "
          f"÷{args.time_scale:g}), settle checks after "
          f"{', '.join(f'{d / args.time_scale:g}' for d in SETTLE)} s, debounce 5 s, "
          f"{args.concurrency} worker processes")  # fmt: skip
    print(drain_line(rows, args.time_scale))
    print(checks_line(rows))
    print(fetches_line(rows, world.salla, args.customers))
    shown = ", ".join("not delivered in 180 s" if s is None else f"{s:.1f} s" for s in latencies)
    print(f"quiet store during the backlog: webhook→delivery {shown} (target < 10 s)")
    print(f"broker: countdown messages at most {broker.countdowns}, unacknowledged at most "
          f"{broker.unacked}, queue peaks {broker.peak}")  # fmt: skip


def drain_line(rows: list[RefreshJob], scale: float) -> str:
    """The first refreshes' pace once the burst's tokens are spent, beside the budget's."""
    firsts = sorted(j.finished_at for j in rows if j.slot == refresh.SOON and j.finished_at)
    burst_size, rate = quota.shape(LIMIT, WINDOW / scale)
    pace = rate / CALLS_PER_REFRESH * 60
    after_burst = firsts[int(burst_size // CALLS_PER_REFRESH) :]
    steady = (len(after_burst) - 1) / (after_burst[-1] - after_burst[0]).total_seconds() * 60
    started = min(j.created_at for j in rows)
    whole = (firsts[-1] - started).total_seconds()
    return (
        f"  first refreshes: {len(firsts)} drained {whole:.0f} s after the first webhook "
        f"(unscaled: {whole * scale / 60:.0f} min); after the burst of {burst_size:.0f} calls "
        f"{steady:.1f}/min, the budget allows {pace:.1f}/min at {CALLS_PER_REFRESH} calls "
        f"per refresh: {steady / pace:.2f}× its pace"
    )


def checks_line(rows: list[RefreshJob]) -> str:
    checks = [j for j in rows if j.slot != refresh.SOON]
    last_first = max(j.claimed_at for j in rows if j.slot == refresh.SOON and j.claimed_at)
    early = [j for j in checks if fetched(j) and j.claimed_at and j.claimed_at < last_first]
    answered = sum(j.last_error == refresh.ALREADY_FETCHED for j in checks)
    return (
        f"  settle re-checks: {len(checks)}; {sum(map(fetched, checks))} fetched, {answered} "
        f"answered by a later fetch; fetched before the last first refresh: {len(early)}"
    )


def fetches_line(rows: list[RefreshJob], salla: SallaSandboxState, customers: int) -> str:
    calls = Counter(seen.customer_id for seen in salla.requests())
    per_customer = [calls.get(hot_customer(n), 0) for n in range(customers)]
    fetches = Counter(j.customer_id for j in rows if fetched(j))
    spread = Counter(fetches.values())
    return (
        f"  fetches per customer: mean {statistics.mean(fetches.values()):.2f} "
        f"({', '.join(f'{n} customers {k}×' for k, n in sorted(spread.items()))}); "
        f"API calls per customer: mean {statistics.mean(per_customer):.2f}"
    )


def backlog_and_probes(args: argparse.Namespace, world: World) -> list[float | None]:
    """The burst, the quiet store's webhooks during its backlog, then the drain."""
    progress(f"posting {args.customers} order webhooks for the hot store")
    progress(f"burst sent in {burst(world.port, args.customers):.1f} s")
    latencies = []
    for n in range(args.quiet_probes):
        time.sleep(30)  # the inbox has drained; the hot store's refreshes have not
        latencies.append(quiet_latency(world, n))
        progress(f"quiet store probe {n + 1}: {latencies[-1]}")
    expected = args.customers / (quota.shape(LIMIT, WINDOW / args.time_scale)[1] / 2)
    wait_for_drain(world.runtime, time.monotonic() + expected * 2 + 300)
    return latencies


def run(args: argparse.Namespace) -> None:
    salla, api, capture, secret = stand_ins(args.customers, args.time_scale)
    sink = serve_in_thread(capture)
    with (
        tempfile.TemporaryDirectory() as scratch,
        fresh_database(f"relay_hot_{os.getpid()}") as dsn,
        own_redis() as redis_url,
    ):
        (Path(scratch) / "data").mkdir()
        env = environment(dsn, redis_url, Path(scratch) / "data", args.time_scale)
        relay = prepare(env, api.url, sink.url, secret)
        world = World(relay, salla, capture_log(capture), free_port())
        broker = Broker(redis_url)
        with service(env, world.port, args.concurrency, Path(scratch)):
            threading.Thread(target=broker.watch, daemon=True).start()
            latencies = backlog_and_probes(args, world)
            broker.stop.set()
            report(args, world, broker, latencies)
        relay.engine.dispose()
    api.stop()
    sink.stop()


def main(argv: list[str] | None = None) -> int:
    run(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
