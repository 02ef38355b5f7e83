"""What a ``/metrics`` scrape costs on big tables, and what counting costs.

    .venv/bin/python bench/metrics_cost.py [--rows 1000000] [--scrapes 15] [--old]

Builds a scratch PostgreSQL database (relay_metrics_<pid>, dropped at the end)
with ``--rows`` rows in each of ``inbox_events``, ``refresh_jobs`` and
``deliveries`` (set-based ``INSERT … SELECT generate_series`` into the tables
stripped of indexes and constraints, built afterwards: ``scratch.bulk_load``),
as retention leaves them in a busy installation: almost all finished (done,
ignored, delivered), one in a thousand pending, retrying, held, failed or dead
each; a snapshot (``customer_points``) for one customer in ten, the held ones
among them, half of those fetched again since; then ``VACUUM ANALYZE``. It
prints:

- the median time of the database gauges of a scrape (``web.health``), and with
  ``--old [REV]`` the gauges of ``web/health.py`` at revision REV
  (loaded from git into a temporary module) side by side;
- the full ``GET /metrics`` through the Flask app (counters, queues included);
- ``EXPLAIN (ANALYZE, BUFFERS)`` of each kind of query the gauges send (the
  held-customers gauge's included);
- the cost of one counter increment in prometheus-client's multiprocess mode
  (mapped memory) against a Redis ``INCR`` round trip (Redis db 13), the
  alternative for counters shared by processes.

Target: a scrape under 50 ms at 10M rows. Not a test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import project  # noqa: F401  (before anything imports worker)

# Counters are per process unless this is set before prometheus-client is imported.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="relay-bench-"))

import redis  # noqa: E402
from scratch import bulk_load, fresh_database, module_at  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.dialects import postgresql  # noqa: E402

from web import create_app, health  # noqa: E402
from worker import metrics, runtime  # noqa: E402
from worker.config import load_settings  # noqa: E402
from worker.pipeline.held import needing_attention_query  # noqa: E402
from worker.platforms.base import StoreUpdate  # noqa: E402
from worker.runtime import Runtime  # noqa: E402
from worker.storage.migrate import upgrade  # noqa: E402
from worker.storage.models import Sink  # noqa: E402
from worker.stores import save_store  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
REDIS_URL = os.environ.get("RELAY_BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")

FILL = {
    "inbox_events": """
        INSERT INTO inbox_events (platform, store_ref, event_type, dedupe_key, body, headers,
                                  status, attempts, received_at)
        SELECT 'salla', '1234509876', 'order.updated', md5(i::text), '', '{}',
               CASE i % 1000 WHEN 0 THEN 'pending' WHEN 1 THEN 'failed' WHEN 2 THEN 'processing'
                             WHEN 3 THEN 'waiting_for_store' WHEN 4 THEN 'ignored' ELSE 'done' END,
               1, now() - (i % 1209600) * interval '1 second'
        FROM generate_series(1, :rows) AS i""",
    "refresh_jobs": """
        INSERT INTO refresh_jobs (store_id, customer_id, slot, due_at, status, attempts, created_at,
                                  finished_at)
        SELECT (SELECT min(id) FROM stores), i::text, 'soon',
               now() - (i % 1209600) * interval '1 second',
               CASE i % 1000 WHEN 0 THEN 'pending' WHEN 1 THEN 'retrying' WHEN 2 THEN 'held'
                             WHEN 3 THEN 'failed' WHEN 4 THEN 'working' ELSE 'done' END,
               1, now() - (i % 1209600) * interval '1 second',
               CASE WHEN i % 1000 IN (0, 1, 4) THEN NULL
                    ELSE now() - (i % 1209600) * interval '1 second' END
        FROM generate_series(1, :rows) AS i""",
    "deliveries": """
        INSERT INTO deliveries (id, sink_id, store_id, customer_id, event_type, payload, status,
                                attempts, next_attempt_at, deferred, created_at)
        SELECT md5(i::text), (SELECT min(id) FROM sinks), (SELECT min(id) FROM stores),
               i::text, 'points.balance_changed', '{}',
               CASE i % 1000 WHEN 0 THEN 'pending' WHEN 1 THEN 'retrying' WHEN 2 THEN 'dead'
                             WHEN 3 THEN 'sending' WHEN 4 THEN 'skipped' ELSE 'delivered' END,
               1, now() - (i % 1209600) * interval '1 second', false,
               now() - (i % 1209600) * interval '1 second'
        FROM generate_series(1, :rows) AS i""",
    "customer_points": """
        INSERT INTO customer_points (store_id, customer_id, available, pending, used,
                                     next_expiry_points, excluded, fetched_at)
        SELECT (SELECT min(id) FROM stores), i::text, 100, 0, 0, 0, false,
               now() - (i % 1209600) * interval '1 second'
                     + CASE WHEN i % 2000 = 2 THEN interval '1 hour' ELSE interval '-1 hour' END
        FROM generate_series(2, :rows, 10) AS i""",
}
TABLES = ["inbox_events", "refresh_jobs", "deliveries"]  # --rows each


BASELINE = "55d86fd"  # the default --old: the gauges that grouped every row by status


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in each table")
    parser.add_argument("--scrapes", type=int, default=15)
    parser.add_argument(
        "--old",
        nargs="?",
        const=BASELINE,
        metavar="REV",
        help=f"also time web/health.py as of git revision REV (default {BASELINE})",
    )
    return parser.parse_args(argv)


def fill(relay: Runtime, rows: int) -> None:
    started = time.monotonic()
    with relay.transaction() as session:
        update = StoreUpdate(status="active", credentials={"access_token": "bench"})
        store = save_store(relay, session, "salla", "1234509876", update)
        session.add(Sink(store_id=store.id, kind="webhook", config=relay.cipher.seal({}), kinds=[]))
    with relay.engine.begin() as connection, bulk_load(connection, list(FILL)):
        for statement in FILL.values():
            connection.execute(text(statement), {"rows": rows})
    with relay.engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT")
        for table in FILL:
            connection.execute(text(f"VACUUM ANALYZE {table}"))
    print(
        f"filled {rows:,} rows in each of {', '.join(TABLES)} (and {rows // 10:,} snapshots)"
        f" in {time.monotonic() - started:.1f} s"
    )


def median_ms(run: Callable[[], object], times: int) -> float:
    run()  # warm: connections, statement caches
    spent = []
    for _ in range(times):
        started = time.perf_counter()
        run()
        spent.append((time.perf_counter() - started) * 1000)
    return statistics.median(spent)


def explain(relay: Runtime) -> None:
    """The plan of each kind of gauge query, on the deliveries table."""
    model, due, _, _ = health.TABLES["delivery"]
    queries = {
        "count of one status, capped": health.capped_count_query(model, "dead"),
        "first due of one status": health.first_due_query(model, due, "pending"),
        "every table gauge, the one statement a scrape sends": health.table_gauges()[0],
        "customers needing attention (held jobs, their snapshots)": needing_attention_query(),
    }
    with relay.engine.connect() as connection:
        for title, query in queries.items():
            sql = str(
                query.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
            )
            plan = connection.execute(text(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")).scalars()
            print(f"\n-- {title}:\n{sql}\n" + "\n".join(plan))


def old_health(old_revision: str) -> ModuleType:
    return module_at(old_revision, "web/health.py", "old_health")


def counter_costs(increments: int = 20_000) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    metrics.webhook_received("salla", "stored")
    started = time.perf_counter()
    for _ in range(increments):
        metrics.webhook_received("salla", "stored")
    mapped = (time.perf_counter() - started) / increments * 1e6
    started = time.perf_counter()
    for _ in range(increments):
        client.incr("relay:bench:counter")
    round_trip = (time.perf_counter() - started) / increments * 1e6
    client.delete("relay:bench:counter")
    print(
        f"\none counter increment: multiprocess mode {mapped:.1f} µs, "
        f"Redis INCR {round_trip:.1f} µs ({round_trip / mapped:.0f}x)"
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with fresh_database(f"relay_metrics_{os.getpid()}") as dsn:
        env = {
            "DATABASE_URL": dsn.replace("postgresql://", "postgresql+psycopg://", 1),
            "REDIS_URL": REDIS_URL,
            "RELAY_SECRET_KEY": "bench-secret-key-of-enough-length",
            "RELAY_DATA_DIR": tempfile.mkdtemp(prefix="relay-bench-data-"),
            "RELAY_LOG_LEVEL": "WARNING",
        }
        settings = load_settings(env)
        relay = runtime.configure(settings)
        try:
            upgrade(relay.engine)
            fill(relay, args.rows)
            report(relay, args)
        finally:
            runtime.configure_none()
    counter_costs()


def report(relay: Runtime, args: argparse.Namespace) -> None:
    gauges = health.DatabaseGauges(relay)
    new = median_ms(lambda: list(gauges.collect()), args.scrapes)
    print(f"database gauges of a scrape: {new:.1f} ms (median of {args.scrapes})")
    if args.old:
        old = old_health(args.old)
        before = median_ms(lambda: old._collect(relay), args.scrapes)
        print(f"web/health.py at {args.old}: {before:.1f} ms, {before / new:.0f}x this one")
    client = create_app(relay.settings).test_client()
    whole = median_ms(lambda: client.get("/metrics"), args.scrapes)
    print(f"GET /metrics (counters, queues and database gauges): {whole:.1f} ms")
    explain(relay)


if __name__ == "__main__":
    main()
