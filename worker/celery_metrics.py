"""The Celery worker's part in ``worker.metrics``: its folder, its heartbeat, its port.

- ``celeryd_init`` (the main process, before the pool forks): the instance's
  folder, so every prefork child writes where the scrape reads;
- ``worker_ready``: ``/metrics`` on ``RELAY_METRICS_PORT`` from the main process
  (``worker.metrics_server``), showing every child's samples;
- ``task_postrun``: the heartbeat, ``relay_worker_last_task_timestamp_seconds``
  (beat's sweep runs every ``RELAY_SWEEP_INTERVAL_SECONDS``, so a live worker
  beats at least that often);
- ``worker_process_shutdown`` (in the child): its live gauges are dropped.
"""

from __future__ import annotations

import os
from typing import Any

from celery.signals import celeryd_init, task_postrun, worker_process_shutdown, worker_ready

from worker import metrics, metrics_server
from worker.config import load_settings


def connect() -> None:
    """Idempotent: Celery's signals keep one receiver per function."""
    celeryd_init.connect(_choose_folder, weak=False)
    worker_ready.connect(_serve_port, weak=False)
    task_postrun.connect(_beat, weak=False)
    worker_process_shutdown.connect(_child_exited, weak=False)


def _choose_folder(**_: Any) -> None:
    metrics.use_instance_directory("worker")


def _serve_port(**_: Any) -> None:
    settings = load_settings()
    if settings.metrics_port:
        metrics_server.serve(settings.metrics_port, metrics.exposition, settings.ops_token)


def _beat(**_: Any) -> None:
    metrics.worker_task_finished()


def _child_exited(**_: Any) -> None:
    metrics.process_exited(os.getpid())
