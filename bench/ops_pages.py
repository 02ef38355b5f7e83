"""The cost of the /ops dashboard's own pages on a million rows: plans and times.

    .venv/bin/python bench/ops_pages.py [--rows 1000000] [--runs 5]

Builds the scratch database of ``bench/ops_plans.py`` (100 stores, 200 sinks,
``--rows`` deliveries, inbox events and refresh jobs over 14 days), adds one
attempt per delivery and the finish times the overview counts by, then prints
``EXPLAIN (ANALYZE)`` and the median time of each query behind the Overview,
Stores and Sinks pages (``worker.ops.overview``, ``stores``, ``sinks``), flagging
any sequential scan of a big table; then the median time of each whole page
served by the Flask app (HTML rendered, Bearer token), listings included.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import project  # noqa: F401  (before anything imports worker)
from ops_plans import SECRET, _md5, build, measure, timed
from scratch import fresh_database
from sqlalchemy import text

from web import create_app
from worker import runtime
from worker.config import load_settings
from worker.ops import overview, queues, sinks, stores
from worker.runtime import Runtime
from worker.storage.migrate import upgrade

TOKEN = "bench-ops-token-0123456789abcdef"
FINISHED = [
    "UPDATE deliveries SET delivered_at = next_attempt_at WHERE status = 'delivered'",
    "UPDATE refresh_jobs SET finished_at = due_at WHERE status IN ('done', 'held', 'failed')",
    "INSERT INTO delivery_attempts (delivery_id, sink_id, number, started_at, finished_at,"
    " outcome, status_code, duration_ms) SELECT id, sink_id, 1, next_attempt_at,"
    " next_attempt_at, CASE status WHEN 'delivered' THEN 'delivered' ELSE 'retrying' END,"
    " CASE status WHEN 'delivered' THEN 200 ELSE 503 END, 80 FROM deliveries",
]


def finish(relay: Runtime) -> None:
    with relay.engine.begin() as connection:
        for statement in FINISHED:
            connection.execute(text(statement))
    with relay.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE"))


def queries(relay: Runtime) -> dict[str, Any]:
    quotas: dict[str, Any] = {"salla": {"customers": (500, 600.0)}}
    return {
        "overview: per-minute series (3 tables)": lambda s: overview.series(s),
        "overview: dead and failing (queue report)": lambda s: overview.counts(
            s, queues.table_states(s)
        ),
        "overview: stores needing attention": lambda s: stores.needing_attention(s),
        "stores page (50 stores)": lambda s: stores.summaries(s, quotas),
        "sinks page (50 sinks)": lambda s: sinks.health(s),
    }


def pages(relay: Runtime, rows: int, runs: int) -> None:
    env = {"DATABASE_URL": relay.settings.database_url, "RELAY_SECRET_KEY": SECRET,
           "RELAY_DATA_DIR": "/tmp", "RELAY_OPS_TOKEN": TOKEN}  # fmt: skip
    client = create_app(load_settings(env)).test_client()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    paths = ["/ops/", "/ops/deliveries", "/ops/deliveries?status=dead",
             f"/ops/deliveries/msg_{_md5(rows // 3)}", "/ops/inbox", "/ops/stores",
             "/ops/sinks"]  # fmt: skip
    print("\n=== whole pages (Flask test client, HTML rendered)")
    for path in paths:
        assert client.get(path, headers=headers).status_code == 200, path
        ms = timed(lambda path=path: client.get(path, headers=headers), runs)
        print(f"    {path:<48} {ms:8.1f} ms median of {runs}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with fresh_database(f"relay_ops_pages_{os.getpid()}") as url:
        env = {"DATABASE_URL": url, "RELAY_SECRET_KEY": SECRET, "RELAY_DATA_DIR": "/tmp"}
        relay = runtime.configure(load_settings(env))
        upgrade(relay.engine)
        started = time.perf_counter()
        build(relay, args.rows)
        finish(relay)
        print(f"built {args.rows:,} rows per table in {time.perf_counter() - started:.0f} s")
        for name, call in queries(relay).items():
            measure(relay, name, call, args.runs, every=True)
        pages(relay, args.rows, args.runs)
        runtime.configure_none()


if __name__ == "__main__":
    main()
