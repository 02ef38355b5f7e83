"""Gunicorn settings for the receiver: ``gunicorn -c python:web.gunicorn_conf 'web:create_app()'``.

Threaded workers: a webhook spends most of its time waiting on the database
commit, so a few processes with many threads keep both cores busy.
"""

import os

bind = os.environ.get("RELAY_BIND", f"0.0.0.0:{os.environ.get('PORT', '8000')}")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("RELAY_WEB_THREADS", "8"))
keepalive = 5
timeout = 30
graceful_timeout = 20
accesslog = os.environ.get("RELAY_ACCESS_LOG") or None
