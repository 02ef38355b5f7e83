"""Log in and out. A successful login starts a fresh session (new CSRF token),
so a session fixed before login is worth nothing after it."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, session, url_for
from werkzeug.wrappers.response import Response

from web.ops.auth import Credentials, LoginThrottle


def register(blueprint: Blueprint, credentials: Credentials, throttle: LoginThrottle) -> None:
    @blueprint.route("/login", methods=["GET", "POST"])
    def login() -> Response | tuple[str, int] | str:
        if request.method == "GET":
            return render_template("ops/login.html", next=_next_page(), error=None)
        client = request.remote_addr or "unknown"
        if throttle.blocked(client):
            return _form("too many failed logins: wait a few minutes", 429)
        user = request.form.get("user", "")
        if not credentials.password_ok(user, request.form.get("password", "")):
            throttle.failed(client)
            return _form("wrong user or password", 401)
        session.clear()
        session.permanent = True
        session["user"] = user
        return redirect(_next_page(), 303)

    @blueprint.post("/logout")
    def logout() -> Response:
        session.clear()
        return redirect(url_for("ops.login"), 303)


def _form(error: str, status: int) -> tuple[str, int]:
    return render_template("ops/login.html", next=_next_page(), error=error), status


def _next_page() -> str:
    """Where to go after login: a dashboard path, never another site."""
    target = request.values.get("next", "")
    if target.startswith("/ops") and not target.startswith("/ops/login"):
        return target
    return url_for("ops.overview")
