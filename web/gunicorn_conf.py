"""Gunicorn settings for the receiver: ``gunicorn -c python:web.gunicorn_conf 'web:create_app()'``.

A webhook spends most of its life waiting on the inbox commit, and under a
spike many wait at once. On PostgreSQL the workers are gevent: hundreds of
requests per process wait cooperatively, join the same group commit
(``web.ingest``) and never fight over the GIL, which measured about 1.6 times
the throughput of threads on the same two cores (``bench/ingest.py``). psycopg,
redis-py, kombu and SQLAlchemy all cooperate once gevent has patched the
standard library. On SQLite (the embedded default) they are threads instead:
``sqlite3`` calls would block every request of a gevent process while the
database is locked. ``RELAY_WEB_WORKER_CLASS`` overrides the choice.
"""

import os
from collections.abc import Mapping


def choose_worker_class(env: Mapping[str, str]) -> str:
    if env.get("RELAY_WEB_WORKER_CLASS"):
        return env["RELAY_WEB_WORKER_CLASS"]
    return "gevent" if env.get("DATABASE_URL", "").startswith("postgres") else "gthread"


bind = os.environ.get("RELAY_BIND", f"0.0.0.0:{os.environ.get('PORT', '8000')}")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = choose_worker_class(os.environ)

# --- The edge: connection limits (README.md, "Security", "The edge") ---------
# A gevent worker serves at most ``worker_connections`` at once, and a slow
# client holds one until its body deadline (RELAY_BODY_TIMEOUT_SECONDS) cuts
# it. A greenlet and a socket cost a few kB, so the limit is set well above the
# thousands of slow clients one host can open; the buffering proxy in front
# (deploy/nginx) is what keeps them away from gunicorn in the first place.
worker_connections = int(os.environ.get("RELAY_WEB_CONNECTIONS", "5000"))  # gevent: per worker
backlog = int(os.environ.get("RELAY_WEB_BACKLOG", "4096"))
# --- end of the edge's block -------------------------------------------------

threads = int(os.environ.get("RELAY_WEB_THREADS", "8"))  # gthread: per worker
keepalive = 5
timeout = 30
graceful_timeout = 20
accesslog = os.environ.get("RELAY_ACCESS_LOG") or None

# Control socket (gunicorn 25.1+, ``gunicornc``): its default path,
# $XDG_RUNTIME_DIR/gunicorn.ctl or ~/.gunicorn/gunicorn.ctl, is the same for every
# gunicorn of one user, so a second instance took over the first one's socket. Off
# unless RELAY_GUNICORN_CONTROL_SOCKET names a path of this instance's own (mode 0600).
# Reference: https://docs.gunicorn.org/en/stable/settings.html#control-socket
control_socket_disable = not os.environ.get("RELAY_GUNICORN_CONTROL_SOCKET")
if not control_socket_disable:
    control_socket = os.environ["RELAY_GUNICORN_CONTROL_SOCKET"]


# --- Metrics: one folder per instance for prometheus-client's multiprocess mode ---
# Chosen in the master before any worker starts (worker.metrics); a dead worker's
# live gauges are dropped. Imported here, not at the top: the module stays light.
def on_starting(server: object) -> None:
    from worker import metrics

    metrics.use_instance_directory("web")


def child_exit(server: object, worker: object) -> None:
    from worker import metrics

    metrics.process_exited(getattr(worker, "pid"))  # noqa: B009 - gunicorn's Worker, untyped
