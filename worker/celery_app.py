"""The Celery application: ``celery -A worker.celery_app worker|beat``.

Configuration is added lazily (read from the environment when Celery first
needs it, not at import). Every task acks late, so a killed worker's message
is redelivered, and every task is idempotent, so redelivery is harmless.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from celery.signals import setup_logging, worker_init, worker_process_init

from worker import broker_redis, celery_metrics, runtime
from worker.config import ConfigError, Settings, load_settings
from worker.dispatch import (
    DISPATCH,
    EXPIRY_NOTICES,
    QUEUES,
    RECONCILE,
    RECONCILE_INTERVAL,
    REFRESH_TOKENS,
    RETENTION,
    SWEEP,
)
from worker.logs import configure_logging


def celery_config(settings: Settings) -> dict[str, Any]:
    redis = settings.broker_url.startswith(("redis://", "rediss://"))
    plain_redis = settings.broker_url.startswith("redis://")
    transport_options: dict[str, Any] = {}
    if redis:
        # Fail fast when Redis is down (the receiver answers 503). No message
        # carries a countdown (worker.pipeline.dispatcher); an unacked one is
        # redelivered after an hour.
        transport_options = {
            "visibility_timeout": 3600,
            "socket_connect_timeout": 2,
            "socket_timeout": 5,
        }
    return {
        "broker_url": settings.broker_url,
        # One Redis client per channel rather than one per ack (worker.broker_redis).
        **({"broker_transport": broker_redis.TRANSPORT} if plain_redis else {}),
        "broker_transport_options": transport_options,
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": 2,
        "task_ignore_result": True,
        "result_backend": None,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": 1,
        "worker_pool": "prefork",  # the cost is CPU: threads and gevent share one interpreter
        "worker_concurrency": settings.worker_concurrency,
        "task_routes": {name: {"queue": queue} for name, queue in QUEUES.items()},
        "task_default_queue": "events",
        "task_serializer": "json",
        "accept_content": ["json"],
        "worker_hijack_root_logger": False,
        "beat_schedule": beat_schedule(settings),
        "beat_schedule_filename": str(settings.data_dir / "celerybeat-schedule"),
        "timezone": "UTC",
    }


def beat_schedule(settings: Settings) -> dict[str, Any]:
    """Every periodic job, in one place."""
    return {
        # Due refresh jobs and deliveries, from their tables (worker.pipeline.dispatcher).
        # A tick not taken within a few seconds expires: the next one does the same work.
        "dispatch-due-work": _every(DISPATCH, settings.dispatch_interval_seconds, expires=5.0),
        "sweep-stuck-rows": _every(SWEEP, settings.sweep_interval_seconds),
        # Every quarter hour: reminders go out in each store's local reminder hour.
        "expiry-notices": _every(EXPIRY_NOTICES, 900.0),
        # Every 5 min, each store's share of its budget for 5 min (worker.pipeline.schedule).
        "reconcile-stale-customers": _every(RECONCILE, RECONCILE_INTERVAL),
        # Hourly: Zid tokens expiring within RELAY_ZID_REFRESH_WINDOW_DAYS are refreshed early.
        "refresh-expiring-tokens": _every(REFRESH_TOKENS, 3600.0),
        # Hourly: finished rows past RELAY_RETENTION_DAYS / _DEAD_DAYS, 1,000 per statement.
        "retention": _every(RETENTION, 3600.0),
    }


def _every(task: str, seconds: float, expires: float | None = None) -> dict[str, Any]:
    return {
        "task": task,
        "schedule": seconds,
        "options": {"queue": QUEUES[task], "expires": expires or seconds},
    }


def create_celery(settings: Settings | None = None) -> Celery:
    """The worker's app (settings read lazily), or a publisher bound to ``settings``."""
    app = Celery("loyalty-relay", include=["worker.tasks"] if settings is None else [])
    if settings is None:
        app.add_defaults(lambda: celery_config(runtime.current().settings))
    else:
        app.config_from_object(celery_config(settings))
    return app


app = create_celery()
celery_metrics.connect()


@worker_init.connect
def _before_the_pool(**_: Any) -> None:
    from worker import platforms, sinks  # the worker's main process only: never the web

    sinks.warm()
    platforms.warm()


@worker_process_init.connect
def _fresh_connections(**_: Any) -> None:
    # Forked pool processes must not share the parent's database connections.
    settings = runtime.configure(load_settings()).settings
    configure_logging(settings.log_level, settings.log_format)


@setup_logging.connect
def _one_handler_chain(loglevel: int | str | None = None, **_: Any) -> None:
    """Celery configures no logging of its own when this signal has a receiver.

    Worker and beat then log through the same scrubbing handler as the web
    process, once per record. The level is the more verbose of ``--loglevel``
    and ``RELAY_LOG_LEVEL``.
    """
    try:
        settings = load_settings()
    except ConfigError as exc:  # the worker reports it again when it reads its settings
        configure_logging(loglevel or "INFO")
        logging.getLogger(__name__).error("%s", exc)
        return
    level = min(_level(settings.log_level), _level(loglevel or logging.WARNING))
    configure_logging(level, settings.log_format)


def _level(value: int | str) -> int:
    level = value if isinstance(value, int) else logging.getLevelName(str(value).upper())
    return level if isinstance(level, int) else logging.INFO
