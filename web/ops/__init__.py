"""The /ops dashboard: server-rendered pages over the relay's own state (inbox →
refresh jobs → deliveries), with retry, discard, replay and sink pause/resume.

Registered by ``web.create_app`` only when RELAY_OPS_USERS or RELAY_OPS_TOKEN is
set, and imported only then, so a receiver without it loads none of this and
/ops/* is a plain 404. It shares the web process but not the webhook path: its
pages read with bounded queries (``worker.ops``) and its actions only change
rows and enqueue, like the CLI does.
"""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    Flask,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.exceptions import HTTPException

from web.ops import cookie, csrf
from web.ops.auth import Credentials, LoginThrottle
from web.ops.charts import sparkline
from worker.runtime import Runtime

PUBLIC_ENDPOINTS = ("ops.login", "ops.static")


def init_app(app: Flask, runtime: Runtime) -> None:
    from web.ops import deliveries, inbox, login, pages

    settings = runtime.settings
    blueprint = Blueprint(
        "ops", __name__, url_prefix="/ops", template_folder="templates", static_folder="static"
    )
    credentials = Credentials(dict(settings.ops_users), settings.ops_token)
    blueprint.before_request(lambda: _guard(credentials))
    blueprint.register_error_handler(HTTPException, _error_page)
    blueprint.add_app_template_global(csrf.token, "csrf_token")
    blueprint.add_app_template_filter(sparkline, "sparkline")
    login.register(blueprint, credentials, LoginThrottle())
    for module in (pages, deliveries, inbox):
        module.register(blueprint, runtime)
    cookie.init_app(app, settings.secret_key)
    app.register_blueprint(blueprint)


def _guard(credentials: Credentials) -> Any:
    """Every page needs a logged-in operator or the Bearer token; every POST its CSRF token."""
    g.ops_token = credentials.bearer_ok()
    g.ops_user = session.get("user") if credentials.is_user(session.get("user")) else None
    csrf.check(g.ops_token)
    if request.endpoint in PUBLIC_ENDPOINTS or g.ops_token or g.ops_user:
        return None
    if request.method == "GET":
        return redirect(url_for("ops.login", next=request.full_path.rstrip("?")))
    return _error_page_for(401, "log in first")


def _error_page(error: HTTPException) -> tuple[str, int]:
    return _error_page_for(error.code or 500, error.description or error.name)


def _error_page_for(status: int, message: str) -> tuple[str, int]:
    return render_template("ops/error.html", status=status, message=message), status
