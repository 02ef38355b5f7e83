"""``loyalty-relay run``: the whole service on one machine (web, worker, beat),
and ``loyalty-relay sweep`` to ring for stuck rows by hand.

``run`` starts the same processes the Procfile names, as children of one
supervisor: if one dies the others are stopped, Ctrl-C stops all of them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from types import FrameType

import click
from kombu import Queue

from worker import dispatch, metrics
from worker.celery_app import create_celery
from worker.cli.kit import open_runtime
from worker.config import Settings


def service_commands(
    host: str, port: int, concurrency: int | None, log_level: str = "INFO"
) -> dict[str, list[str]]:
    python = sys.executable
    return {
        "web": [
            python, "-m", "gunicorn", "-c", "python:web.gunicorn_conf",
            "--bind", f"{host}:{port}", "web:create_app()",
        ],
    } | {
        f"worker{index or ''}": command
        for index, command in enumerate(worker_commands(concurrency, log_level))
    }  # fmt: skip


def worker_commands(concurrency: int | None, log_level: str = "INFO") -> list[list[str]]:
    """The Celery worker lines (the first one also runs beat), as the Procfile's.

    The pool and its size come from the settings (``RELAY_WORKER_CONCURRENCY``,
    ``worker.celery_app``) unless ``concurrency`` is given, so that ``run``, the
    Procfile and compose start the same worker."""
    python = sys.executable
    size = ["--concurrency", str(concurrency)] if concurrency else []
    return [
        [
            python, "-m", "celery", "-A", "worker.celery_app", "worker", "--beat",
            "--queues", "events,refresh,deliveries", *size, "--loglevel", log_level,
        ],
    ]  # fmt: skip


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--concurrency",
    type=click.IntRange(1, 256),
    help="Worker processes [default: RELAY_WORKER_CONCURRENCY, else 4 per core]",
)
def run(host: str, port: int, concurrency: int | None) -> None:
    """Run web receiver, worker and scheduler (embedded SQLite unless configured)."""
    runtime = open_runtime(migrate=True)
    settings = runtime.settings
    env = os.environ | {"RELAY_DATA_DIR": str(settings.data_dir)}
    # One metrics folder for web, worker and beat: the web's /metrics shows all of it,
    # so only the web serves RELAY_METRICS_PORT (worker.metrics).
    env[metrics.MULTIPROC_ENV] = str(metrics.empty_directory(settings.data_dir / "metrics"))
    click.echo(f"loyalty-relay on http://{host}:{port}  data: {settings.data_dir}")
    click.echo(
        f"database: {runtime.engine.url.get_backend_name()}  broker: {_scheme(settings.broker_url)}"
    )
    _declare_queues(settings)
    commands = service_commands(host, port, concurrency, settings.log_level)
    children = {
        name: subprocess.Popen(command, env=_child_env(name, env))
        for name, command in commands.items()
    }
    sys.exit(_supervise(children))


def _child_env(name: str, env: dict[str, str]) -> dict[str, str]:
    if name == "web":
        return env
    return {key: value for key, value in env.items() if key != "RELAY_METRICS_PORT"}


def _declare_queues(settings: Settings) -> None:
    """Create the broker's queues before the processes that use them start.

    kombu's SQLAlchemy transport (the embedded broker) creates a queue's row on
    first use without allowing for another process doing the same at that moment;
    the loser dies on the unique constraint. Declared once here, nobody races.
    """
    app = create_celery(settings)
    with app.connection_for_write() as connection:
        for name in sorted(set(dispatch.QUEUES.values())):
            Queue(name).bind(connection.default_channel).declare()


def _scheme(url: str) -> str:
    return url.split("://", 1)[0]


def _supervise(children: dict[str, subprocess.Popen[bytes]]) -> int:
    stopping = False

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while not stopping:
        exited = [name for name, child in children.items() if child.poll() is not None]
        if exited:
            click.echo(f"{', '.join(exited)} exited; stopping the others", err=True)
            break
        time.sleep(0.5)
    return _stop_all(children, failed=not stopping)


def _stop_all(children: dict[str, subprocess.Popen[bytes]], *, failed: bool) -> int:
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 20
    for child in children.values():
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
    return 1 if failed else 0


@click.command()
def sweep() -> None:
    """Re-enqueue rows stuck longer than RELAY_STALE_AFTER_SECONDS, once."""
    from worker.celery_app import create_celery
    from worker.pipeline import sweeper

    runtime = open_runtime()
    swept = sweeper.sweep(runtime)
    sweeper.ring(create_celery(runtime.settings), swept)
    click.echo(
        f"re-enqueued {len(swept.events)} events, {len(swept.refreshes)} refreshes, "
        f"{len(swept.deliveries)} deliveries"
    )
