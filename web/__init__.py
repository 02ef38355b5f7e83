"""The web process: webhook receiver, health and metrics.

``gunicorn 'web:create_app()'``. Thin by design: verify, record, enqueue, show.
"""

from __future__ import annotations

import importlib
from typing import Any

from flask import Flask

from worker import runtime as runtime_module
from worker.config import Settings, load_settings
from worker.logs import configure_logging


def create_app(settings: Settings | None = None, **overrides: Any) -> Flask:
    settings = settings or load_settings()
    configure_logging(settings.log_level, settings.log_format)
    runtime = runtime_module.configure(settings, pool_size=10, pre_ping=False)
    app = Flask(__name__)
    app.config.update(MAX_CONTENT_LENGTH=settings.max_body_bytes, **overrides)
    app.extensions["relay.runtime"] = runtime
    # "//webhooks/salla" is no route of ours: 404, not a 308 to a merged path
    # (a platform does not follow redirects with its POST body anyway).
    app.url_map.merge_slashes = False

    from web import errors, health, receiver

    errors.init_app(app)
    receiver.init_app(app, runtime)
    health.init_app(app, runtime)
    if settings.ops_enabled:  # imported only then: the receiver alone never loads it
        importlib.import_module("web.ops").init_app(app, runtime)
    return app
