"""The scheduler at a million customers: expiry notices and reconciliation.

    .venv/bin/python bench/scale.py [--stores 1000] [--customers 1000] [--due 20000] [--old]

Builds a scratch PostgreSQL database (relay_scale_<pid>, dropped at the end) with
``--stores`` Salla stores (all in Asia/Riyadh, so every store's reminder hour is the
same hour: the worst case), one webhook sink each, and ``--customers`` customers per
store, in set-based INSERT … SELECT generate_series statements. ``--due`` customers
(spread evenly over the stores) have points expiring within the next 7 days, the
rest in 30 to 365 days; 86 % were last fetched 2 to 30 days ago (stale for
reconciliation). Then it times, on the code in this checkout:

- ``expiry_notices`` off the reminder hour (the scan only: nothing is due);
- ``expiry_notices`` in the reminder hour: total, the largest batch, and the
  publishing of its delivery messages (``relay.deliver_many`` chunks, Redis db 13);
- ``reconcile`` (per-store spare budget);

and with ``--old [REV]``, the same on ``worker/pipeline/schedule.py`` as of revision
REV (loaded from git into a
temporary module; the old code publishes one ``relay.deliver`` per delivery), after
resetting the markers. The schema is this checkout's in both runs, so the old
figures already have the new indexes (``ix_sinks_store`` among them).

Targets: reminder hour < 30 s in total with no batch over 5 s; off-hour
scan < 1 s.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import project  # noqa: F401  (before anything imports worker)
import redis
from scratch import fresh_database, module_at
from sqlalchemy import text

from worker import dispatch, runtime, tasks
from worker.celery_app import app
from worker.config import load_settings
from worker.pipeline import schedule
from worker.runtime import Runtime
from worker.storage.migrate import upgrade

ROOT = Path(__file__).resolve().parents[1]
REDIS_URL = os.environ.get("RELAY_BENCH_SCALE_REDIS_URL", "redis://127.0.0.1:6379/13")
SECRET = "bench-scale-secret-key-0123456789abcdef"


BASELINE = "55d86fd"  # the default --old: the scheduler before the dispatcher


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stores", type=int, default=1000)
    parser.add_argument("--customers", type=int, default=1000, help="per store")
    parser.add_argument("--due", type=int, default=20000, help="expiring within 7 days")
    parser.add_argument(
        "--old",
        nargs="?",
        const=BASELINE,
        metavar="REV",
        help=f"also time schedule.py as of git revision REV (default {BASELINE})",
    )
    return parser.parse_args(argv)


def reminder_moment() -> datetime:
    """Today's 10:15 in Asia/Riyadh (07:15 UTC): inside the default reminder hour."""
    return datetime.now(UTC).replace(hour=7, minute=15, second=0, microsecond=0)


def build(relay: Runtime, stores: int, customers: int, due: int, now: datetime) -> None:
    sealed_sink = relay.cipher.seal({"url": "https://hooks.example.com/relay", "secret": "s"})
    sealed_contact = relay.cipher.seal({})
    every = max(1, (stores * customers) // max(due, 1))  # one due customer in `every`
    params: dict[str, Any] = {
        "stores": stores, "last": stores * customers - 1, "now": now, "every": every,
        "due_span": due * every, "sink": sealed_sink, "contact": sealed_contact,
    }  # fmt: skip
    statements = [
        """INSERT INTO stores (id, platform, external_id, name, status, timezone, locale,
               token_version, created_at, updated_at)
           SELECT s, 'salla', 'm' || s, 'Store ' || s, 'active', 'Asia/Riyadh', 'ar', 1,
               :now, :now FROM generate_series(1, :stores) AS s""",
        """INSERT INTO sinks (store_id, kind, config, kinds, rules, enabled, paused,
                              consecutive_failures, created_at)
           SELECT s, 'webhook', :sink, '["points.expiring_soon", "points.expired",
               "points.balance_changed"]', '{}', true, false, 0, :now
           FROM generate_series(1, :stores) AS s""",
        # Customer n belongs to store 1 + n % stores; every `every`-th of a store's expires soon.
        """INSERT INTO customer_points (store_id, customer_id, available, pending, used,
               next_expiry_at, next_expiry_points, tier, contact, excluded, fetched_at)
           SELECT 1 + (n % :stores), 'c' || n, '300', '0', '0',
               CASE WHEN (n / :stores) % :every = 0 AND n < :due_span
                    THEN :now + interval '1 hour' + (n % 144) * interval '1 hour'
                    ELSE :now + interval '30 days' + (n % 335) * interval '1 day' END,
               '100', NULL, :contact, false,
               CASE WHEN n % 100 < 86 THEN :now - interval '2 days' - (n % 28) * interval '1 day'
                    ELSE :now - (n % 20) * interval '1 hour' END
           FROM generate_series(0, :last) AS n""",
        "SELECT setval(pg_get_serial_sequence('stores', 'id'), :stores)",
    ]
    with relay.engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement), params)
    with relay.engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))


def timed(step: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = step()
    return time.perf_counter() - started, result


def new_reminder_hour(relay: Runtime, now: datetime) -> dict[str, float]:
    batches: list[float] = []
    deliveries = 0
    started = time.perf_counter()
    generator = schedule.expiry_batches(relay, now)
    while True:
        began = time.perf_counter()
        notices = next(generator, None)
        if notices is None:
            break
        batches.append(time.perf_counter() - began)
        deliveries += len(notices.deliveries)
        tasks.enqueue_deliveries(notices.deliveries)
    total = time.perf_counter() - started
    return {"total_s": total, "largest_batch_s": max(batches, default=0.0),
            "batches": len(batches), "deliveries": deliveries}  # fmt: skip


def old_reminder_hour(relay: Runtime, old: ModuleType, now: datetime) -> dict[str, float]:
    scan, notices = timed(lambda: old.expiry_notices(relay, now))

    def publish_each() -> None:
        for item in notices.deliveries:
            dispatch.enqueue(app, dispatch.DELIVER, item.delivery_id, item.countdown)

    publish, _ = timed(publish_each)
    return {"total_s": scan + publish, "largest_batch_s": scan, "batches": 1,
            "deliveries": len(notices.deliveries), "publish_s": publish}  # fmt: skip


def reset_markers(relay: Runtime) -> None:
    with relay.engine.begin() as connection:
        connection.execute(text("DELETE FROM refresh_jobs"))
        connection.execute(text("DELETE FROM deliveries"))
        connection.execute(text("DELETE FROM points_changes"))
        connection.execute(text("UPDATE customer_points SET reminded_for = NULL "
                                "WHERE reminded_for IS NOT NULL"))  # fmt: skip
    redis.Redis.from_url(REDIS_URL).flushdb()


def old_schedule(old_revision: str) -> ModuleType:
    """worker/pipeline/schedule.py at ``old_revision``, as the module ``old_schedule``."""
    return module_at(old_revision, "worker/pipeline/schedule.py", "old_schedule")


def explain(relay: Runtime, query: str, params: dict[str, Any]) -> str:
    with relay.engine.connect() as connection:
        rows = connection.execute(text("EXPLAIN " + query), params).scalars().all()
    return " / ".join(str(row).strip().lstrip("-> ") for row in rows if "Scan" in str(row))


def run(options: argparse.Namespace, old: ModuleType | None) -> None:
    now = reminder_moment()
    name = f"relay_scale_{os.getpid()}"
    with fresh_database(name) as url, tempfile.TemporaryDirectory() as data:
        env = {"DATABASE_URL": url, "RELAY_DATA_DIR": data, "RELAY_SECRET_KEY": SECRET,
               "REDIS_URL": REDIS_URL}  # fmt: skip
        relay = runtime.configure(load_settings(env))
        upgrade(relay.engine)
        redis.Redis.from_url(REDIS_URL).flushdb()
        total = options.stores * options.customers
        due = min(options.due, total)
        took, _ = timed(lambda: build(relay, options.stores, options.customers, due, now))
        print(f"built {options.stores} stores x {options.customers} customers = {total:,} "
              f"customer_points rows ({due:,} due within 7 days) in {took:.1f} s")  # fmt: skip
        print("due-expiry scan plan:", explain(relay, (
            "SELECT * FROM customer_points WHERE (reminded_for IS NULL OR reminded_for <> "
            "next_expiry_at) AND next_expiry_at BETWEEN :a AND :b LIMIT 500"
        ), {"a": now, "b": now + timedelta(days=7)}))  # fmt: skip
        print("stale scan plan:", explain(relay, (
            "SELECT customer_id FROM customer_points WHERE store_id = 1 AND fetched_at < :a "
            "ORDER BY fetched_at LIMIT 31"
        ), {"a": now - timedelta(days=1)}))  # fmt: skip
        figures = {"new": measure(relay, None, now)}
        if old is not None:
            reset_markers(relay)
            figures["old"] = measure(relay, old, now)
        report(figures)
        relay.engine.dispose()
    redis.Redis.from_url(REDIS_URL).flushdb()


def measure(relay: Runtime, old: ModuleType | None, now: datetime) -> dict[str, float]:
    module = old or schedule
    label = "--old" if old else "this checkout"
    off_hour, _ = timed(lambda: module.expiry_notices(relay, now - timedelta(hours=3)))
    print(f"[{label}] off-hour scan {off_hour:.2f} s", flush=True)
    hour = old_reminder_hour(relay, old, now) if old else new_reminder_hour(relay, now)
    print(f"[{label}] reminder hour {hour}", flush=True)
    reconcile_s, due = timed(lambda: module.reconcile(relay, now))
    print(f"[{label}] reconcile {reconcile_s:.2f} s, {len(due):,} refreshes", flush=True)
    messages = redis.Redis.from_url(REDIS_URL).llen("deliveries")
    return {"off_hour_s": off_hour, **hour, "reconcile_s": reconcile_s,
            "reconciled": len(due), "delivery_messages": messages}  # fmt: skip


def report(figures: dict[str, dict[str, float]]) -> None:
    rows = [
        ("off-hour scan (target < 1 s)", "off_hour_s", "{:.2f} s"),
        ("reminder hour, total incl. publishing (target < 30 s)", "total_s", "{:.1f} s"),
        ("largest batch (target < 5 s)", "largest_batch_s", "{:.2f} s"),
        ("batches", "batches", "{:.0f}"),
        ("reminders created", "deliveries", "{:,.0f}"),
        ("delivery messages published", "delivery_messages", "{:,.0f}"),
        ("reconcile run", "reconcile_s", "{:.1f} s"),
        ("customers reconciled per run (new: every 5 min; main: hourly)", "reconciled", "{:,.0f}"),
    ]
    columns = list(figures)  # "new": this checkout, "old": main's schedule.py
    print("\n| measure | " + " | ".join(columns) + " |")
    print("| --- | " + " | ".join("---" for _ in columns) + " |")
    for label, key, fmt in rows:
        cells = [fmt.format(figures[c][key]) if key in figures[c] else "-" for c in columns]
        print(f"| {label} | " + " | ".join(cells) + " |")


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    if min(options.stores, options.customers) < 1:
        print("--stores and --customers must be at least 1", file=sys.stderr)
        return 2
    old = old_schedule(options.old) if options.old else None
    run(options, old)  # tasks.app reads its broker from the runtime configured there
    return 0


if __name__ == "__main__":
    sys.exit(main())
