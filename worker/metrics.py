"""Counters, histograms and heartbeats of an instance, summed over its processes.

A webhook is counted by whichever gunicorn worker took it, a delivery by
whichever Celery prefork child sent it, so no process alone knows a total.
prometheus-client's multiprocess mode is how they add up: each process writes
its samples to memory-mapped files in ``PROMETHEUS_MULTIPROC_DIR`` (an ``inc``
is a locked write to mapped memory, no round trip), and a scrape sums the
files of every process, dead ones included, so a restarted worker never makes
a counter go back. Counters in Redis would also be correct across processes,
but cost a round trip per increment on the receiver's hot path (measured by
``bench/metrics_cost.py`` on this 2-core machine: 13–15 µs per increment
against 310–515 µs per ``INCR``, 23–35 times as much) and do not exist in the
embedded mode, which has no Redis.

The folder belongs to one instance, and must be empty when it starts (the
files of an earlier run would be summed in): ``loyalty-relay run`` empties
``$RELAY_DATA_DIR/metrics`` and gives it to web, worker and beat alike, so one
scrape shows everything; a gunicorn master or a Celery worker started on its
own (the Procfile, compose) makes a fresh private folder when none is set and
serves its own numbers (``RELAY_METRICS_PORT``). ``process_exited`` drops a
dead process's live gauges (``mark_process_dead``).

prometheus-client is imported on first use, not with this module: the choice
between one process and many is made at its import, from the environment, so
the folder must be chosen before (``use_instance_directory``), and the web
process pays for the library only once it counts.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DELIVERED = "delivered"  # the outcome of a call the sink acknowledged

# Webhook → snapshot stored includes the debounce (5 s) and the drain; minutes mean a backlog.
REFRESH_BUCKETS = (1.0, 2.5, 5.0, 7.5, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)
# Change → delivered includes an email's collapse window (60 s) and quiet hours (hours).
DELIVERY_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0, 14400.0)


@dataclass(frozen=True)
class _Instruments:
    webhooks: Any
    platform_requests: Any
    store_requests: Any
    delivery_attempts: Any
    refresh_seconds: Any
    delivery_seconds: Any
    sweeper_last_run: Any
    worker_last_task: Any


@functools.cache
def _instruments() -> _Instruments:
    from prometheus_client import Counter, Gauge, Histogram

    return _Instruments(
        webhooks=Counter(
            "relay_webhooks_received_total",
            "Webhooks answered, by platform and outcome",
            ["platform", "outcome"],
        ),
        platform_requests=Counter(
            "relay_platform_requests_total",
            "Calls to a platform's API, by HTTP status (or error: no answer)",
            ["platform", "status"],
        ),
        store_requests=Counter(
            "relay_store_api_requests_total",
            "Calls to a platform's API for one store, by class of answer (2xx, 3xx, 4xx, "
            "429, 5xx, error)",
            ["store", "status"],
        ),
        delivery_attempts=Counter(
            "relay_delivery_attempts_total",
            "Calls to a sink, by sink kind and outcome",
            ["sink_kind", "outcome"],
        ),
        refresh_seconds=Histogram(
            "relay_refresh_seconds",
            "From the refresh request an event made to its snapshot stored",
            buckets=REFRESH_BUCKETS,
        ),
        delivery_seconds=Histogram(
            "relay_delivery_seconds",
            "From a change (its delivery row) to the sink's acknowledgement",
            buckets=DELIVERY_BUCKETS,
        ),
        sweeper_last_run=Gauge(
            "relay_sweeper_last_run_timestamp_seconds",
            "When the sweeper last finished a pass (Unix time)",
            multiprocess_mode="max",
        ),
        worker_last_task=Gauge(
            "relay_worker_last_task_timestamp_seconds",
            "When a Celery worker process last finished a task (Unix time)",
            multiprocess_mode="max",
        ),
    )


def webhook_received(platform: str, outcome: str) -> None:
    _instruments().webhooks.labels(platform, outcome).inc()


def platform_request(platform: str, status: int | None, store: str | None = None) -> None:
    """One call to a platform's API: its HTTP status, or ``error`` when none came; and,
    when the call was made for a store, that store's count by class of answer (a
    class, not the status, keeps a series per store and class however many stores)."""
    label = "error" if status is None else str(status)
    instruments = _instruments()
    instruments.platform_requests.labels(platform, label).inc()
    if store is not None:
        instruments.store_requests.labels(store, status_class(status)).inc()


def status_class(status: int | None) -> str:
    if status is None:
        return "error"
    return "429" if status == 429 else f"{status // 100}xx"


def delivery_attempt(
    sink_kind: str, outcome: str, count: int = 1, created_at: datetime | None = None
) -> None:
    """``count`` calls to a sink ended as ``outcome``; a delivered one with its
    ``created_at`` is also timed (``relay_delivery_seconds``)."""
    _instruments().delivery_attempts.labels(sink_kind, outcome).inc(count)
    if outcome == DELIVERED and created_at is not None:
        delivery_finished(created_at)


def refresh_finished(requested_at: datetime) -> None:
    _instruments().refresh_seconds.observe(_since(requested_at))


def delivery_finished(created_at: datetime) -> None:
    _instruments().delivery_seconds.observe(_since(created_at))


def sweeper_ran() -> None:
    _instruments().sweeper_last_run.set(time.time())


def worker_task_finished() -> None:
    _instruments().worker_last_task.set(time.time())


def _since(moment: datetime) -> float:
    if moment.tzinfo is None:  # SQLite hands naive UTC back
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (datetime.now(UTC) - moment).total_seconds())


def use_instance_directory(kind: str) -> str:
    """The instance's folder: the one set for it, else a fresh one of its own.

    Called by the process that starts an instance (gunicorn's master, Celery's
    main process) before any process counts; children inherit the variable.
    A folder made here is removed when its maker exits, never by a child."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        Path(given).mkdir(parents=True, exist_ok=True)
        return given
    made = tempfile.mkdtemp(prefix=f"relay-metrics-{kind}-")
    os.environ[MULTIPROC_ENV] = made
    atexit.register(_remove_if_mine, made, os.getpid())
    return made


def _remove_if_mine(path: str, maker: int) -> None:
    """At exit: forked children inherit the handler, only the maker removes."""
    if os.getpid() == maker:
        shutil.rmtree(path, ignore_errors=True)


def empty_directory(path: Path) -> Path:
    """``path``, emptied: an instance starts from zero (``loyalty-relay run``)."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def process_exited(pid: int) -> None:
    """A gunicorn worker or Celery child is gone: drop its live gauges' samples."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def exposition(extra: Iterable[Any] = ()) -> bytes:
    """The text format of every process's samples (or this one's), then ``extra``
    collectors' (gauges read at scrape time from the database or the broker)."""
    from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client.multiprocess import MultiProcessCollector

        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_Forwarded(REGISTRY))
    for collector in extra:
        registry.register(collector)
    output: bytes = generate_latest(registry)
    return output


class _Forwarded:
    """The process's default registry, seen from a scrape's own registry."""

    def __init__(self, source: Any) -> None:
        self._source = source

    def collect(self) -> Any:
        return self._source.collect()
