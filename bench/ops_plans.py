"""The cost of the ops pages (CLI and /ops) on a million deliveries: plans and times.

    .venv/bin/python bench/ops_plans.py [--rows 1000000] [--runs 5]

Builds a scratch PostgreSQL database (relay_ops_<pid>, dropped at the end) with
100 Salla stores, 2 webhook sinks each, and ``--rows`` deliveries, inbox events
and refresh jobs each, spread over 14 days (the retention window): 96 % finished
(delivered, done), about 1 % dead or failed, the rest in flight (filled bare,
indexes built afterwards: ``scratch.bulk_load``). Then, for every
listing of ``worker.ops`` — first page, a page half a million rows deep, each
filter — and for ``queues``, it captures the SQL the function runs, prints
``EXPLAIN (ANALYZE, BUFFERS)`` of its main statement and the median time of
``--runs`` calls, and flags any sequential scan. The baseline is the page as it
is usually written, ``ORDER BY … OFFSET n LIMIT 50`` with a ``COUNT(*)`` for the
page count: printed beside it as a ratio.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import project  # noqa: F401  (before anything imports worker)
from scratch import bulk_load, fresh_database
from sqlalchemy import event, text
from sqlalchemy.orm import Session

from worker import runtime
from worker.config import load_settings
from worker.ops import deliveries, inbox, queues, refresh
from worker.ops.pages import encode_cursor
from worker.runtime import Runtime
from worker.storage.migrate import upgrade

SECRET = "bench-ops-secret-key-0123456789abcdef"
SPREAD = "interval '14 days'"
BIG_TABLES = ("deliveries", "inbox_events", "refresh_jobs")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    return parser.parse_args(argv)


def status_case(column: str, rare: list[str], common: str) -> str:
    """Rare statuses 1 in 199 each, the rest common: 199 is prime to the 200 sinks and
    100 stores rows are spread over, so every sink and store has its share of each."""
    cases = " ".join(f"WHEN {column} % 199 = {n} THEN '{s}'" for n, s in enumerate(rare))
    return f"CASE {cases} ELSE '{common}' END"


def build(relay: Runtime, rows: int) -> None:
    sealed = relay.cipher.seal_bytes(b'{"event":"order.created","data":{"customer":{"id":1}}}')
    sink = relay.cipher.seal({"url": "https://hooks.example.com/relay", "secret": "s"})
    delivery_status = status_case(
        "g", ["dead", "dead", "skipped", "skipped", "pending", "pending", "retrying", "sending"],
        "delivered",
    )  # fmt: skip
    inbox_status = status_case("g", ["failed", "failed", "ignored", "pending"], "done")
    job_status = status_case("g", ["failed", "failed", "held", "pending", "retrying"], "done")
    at = f"now() - {SPREAD} * (1 - g::float / :rows)"
    statements = [
        "INSERT INTO stores (platform, external_id, name, status, timezone, locale,"
        " token_version, created_at, updated_at) SELECT 'salla', (1000000 + g)::text,"
        " 'Store ' || g, 'active', 'Asia/Riyadh', 'ar', 1, now(), now()"
        " FROM generate_series(1, 100) g",
        "INSERT INTO sinks (store_id, kind, config, kinds, rules, enabled, paused,"
        " consecutive_failures, created_at) SELECT 1 + (g - 1) / 2, 'webhook', :sink,"
        " '[\"points.balance_changed\"]', '{}', true, false, 0, now()"
        " FROM generate_series(1, 200) g",
        "INSERT INTO deliveries (id, sink_id, store_id, customer_id, event_type, payload,"
        " status, attempts, next_attempt_at, deferred, created_at) SELECT 'msg_' || md5(g::text),"
        " 1 + g % 200, 1 + (g % 200) / 2, 'c' || (g % 50000), 'points.balance_changed',"
        f" '{{\"balance_after\": 10}}', {delivery_status}, 1, {at}, false, {at}"
        " FROM generate_series(1, :rows) g",
        "INSERT INTO inbox_events (platform, store_ref, event_type, dedupe_key, customer_id, body,"
        " headers, status, attempts, received_at, processed_at) SELECT 'salla',"
        " (1000001 + g % 100)::text, (ARRAY['order.created','order.updated','customer.login'])"
        f"[1 + g % 3], md5(g::text), 'c' || (g % 50000), :body, '{{}}', {inbox_status}, 1,"
        f" {at}, {at} FROM generate_series(1, :rows) g",
        "INSERT INTO refresh_jobs (store_id, customer_id, slot, due_at, status, attempts,"
        f" created_at) SELECT 1 + g % 100, 'c' || g, 'soon', {at}, {job_status}, 1, {at}"
        " FROM generate_series(1, :rows) g",
    ]
    with relay.engine.begin() as connection:
        small, big = statements[:2], statements[2:]
        params = {"rows": rows, "sink": sink, "body": sealed}
        for statement in small:
            connection.execute(text(statement), params)
        with bulk_load(connection, BIG_TABLES):
            for statement in big:
                connection.execute(text(statement), params)
    with relay.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE"))


@contextmanager
def captured(relay: Runtime) -> Iterator[list[tuple[str, Any]]]:
    """Every statement (and its parameters) run on the engine meanwhile."""
    seen: list[tuple[str, Any]] = []

    def remember(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        seen.append((statement, params))

    event.listen(relay.engine, "before_cursor_execute", remember)
    try:
        yield seen
    finally:
        event.remove(relay.engine, "before_cursor_execute", remember)


def explain(relay: Runtime, statement: str, params: Any) -> list[str]:
    with relay.engine.connect() as connection:
        plan = connection.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", params)
        return [row[0] for row in plan]


def timed(call: Callable[[], Any], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def measure(
    relay: Runtime, name: str, call: Callable[[Session], Any], runs: int, every: bool = False
) -> float:
    """Print the plan of the call's main (longest) statement — of each with ``every`` —
    and its median time (ms); flag a sequential scan of a big table."""
    with captured(relay) as seen, relay.sessions() as session:
        call(session)

    def run() -> None:
        with relay.sessions() as session:
            call(session)

    ms = timed(run, runs)
    plain = [(sql, params) for sql, params in seen if not sql.startswith("EXPLAIN")]
    estimates = len(seen) - len(plain)  # the planner's estimates: nothing to explain
    chosen = plain if every else [max(plain, key=lambda item: len(item[0]))]
    plans = [explain(relay, statement, params) for statement, params in chosen]
    lines = [line for plan in plans for line in _shown(plan, every)]
    scans = any(f"Seq Scan on {table}" in line for line in lines for table in BIG_TABLES)
    flag = "  ** SEQUENTIAL SCAN OF A BIG TABLE **" if scans else ""
    counted = f"{len(seen)} statements" + (f", {estimates} of them EXPLAIN" if estimates else "")
    print(f"\n=== {name}: {ms:.2f} ms median of {runs} ({counted}){flag}")
    for line in lines:
        print(f"    {line}")
    return ms


def _shown(plan: list[str], brief: bool) -> list[str]:
    """The plan without buffer lines; brief: its nodes and execution time only."""
    kept = [line for line in plan if "Buffers:" not in line and "Heap Fetches" not in line]
    if not brief:
        return kept
    return [line for line in kept if line is kept[0] or "->" in line or "Execution" in line]


def offset_baseline(relay: Runtime, depth: int, runs: int) -> float:
    """The usual page: COUNT(*) for the page count, then OFFSET into the table."""

    def run() -> None:
        with relay.engine.connect() as connection:
            connection.execute(text("SELECT count(*) FROM deliveries")).scalar()
            connection.execute(
                text("SELECT * FROM deliveries ORDER BY created_at DESC, id DESC"
                     " OFFSET :depth LIMIT 50"), {"depth": depth},
            ).all()  # fmt: skip

    return timed(run, runs)


def deep_cursor(relay: Runtime, depth: int) -> str:
    with relay.engine.connect() as connection:
        at, key = connection.execute(
            text("SELECT created_at, id FROM deliveries ORDER BY created_at DESC, id DESC"
                 " OFFSET :depth LIMIT 1"), {"depth": depth},
        ).one()  # fmt: skip
    return encode_cursor(at, key)


def listings(relay: Runtime, rows: int, depth: int) -> dict[str, Callable[[Session], Any]]:
    deep = deep_cursor(relay, depth)
    store = "salla:1000007"
    return {
        "deliveries list": lambda s: deliveries.list_deliveries(s),
        f"deliveries list, {depth:,} rows deep": lambda s: deliveries.list_deliveries(
            s, cursor=deep
        ),
        "deliveries list --status dead": lambda s: deliveries.list_deliveries(s, status="dead"),
        "deliveries list --status delivered": lambda s: deliveries.list_deliveries(
            s, status="delivered"
        ),
        "deliveries list --sink 13 --status dead": lambda s: deliveries.list_deliveries(
            s, status="dead", sink_id=13
        ),
        f"deliveries list --store {store}": lambda s: deliveries.list_deliveries(s, store=store),
        "deliveries show": lambda s: deliveries.show_delivery(s, "msg_" + _md5(rows // 3)),
        "inbox list": lambda s: inbox.list_events(s),
        "inbox list --status failed": lambda s: inbox.list_events(s, status="failed"),
        f"inbox list --store {store}": lambda s: inbox.list_events(s, store=store),
        "refresh list --status failed": lambda s: refresh.list_jobs(s, status="failed"),
        "queues (table counts and ages)": lambda s: queues.table_states(s),
    }


def _md5(value: int) -> str:
    return hashlib.md5(str(value).encode()).hexdigest()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with fresh_database(f"relay_ops_{os.getpid()}") as url:
        env = {"DATABASE_URL": url, "RELAY_SECRET_KEY": SECRET, "RELAY_DATA_DIR": "/tmp"}
        relay = runtime.configure(load_settings(env))
        upgrade(relay.engine)
        started = time.perf_counter()
        build(relay, args.rows)
        print(f"built {args.rows:,} deliveries, inbox events and refresh jobs"
              f" in {time.perf_counter() - started:.0f} s")  # fmt: skip
        depth = args.rows // 2
        results = {
            name: measure(relay, name, call, args.runs, every=name.startswith("queues"))
            for name, call in listings(relay, args.rows, depth).items()
        }
        baseline = offset_baseline(relay, depth, args.runs)
        keyset = results[f"deliveries list, {depth:,} rows deep"]
        print(f"\nOFFSET {depth:,} LIMIT 50 + COUNT(*): {baseline:.1f} ms; the keyset page"
              f" at that depth: {keyset:.2f} ms ({baseline / keyset:.0f}x faster)")  # fmt: skip
        runtime.configure_none()


if __name__ == "__main__":
    main()
