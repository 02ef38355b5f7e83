"""CSRF protection for the dashboard's forms: a random token kept in the signed
session, sent back in each form as ``csrf_token`` and compared in constant time.

Every POST under /ops is checked before its view runs (a missing or wrong token
is a 400), login included, so a page on another site can neither act for a
logged-in operator nor log them into an account of its choosing. A request
authenticated by the Bearer token carries no cookie for a browser to replay
and is not asked for one. The SameSite=Strict cookie is the second lock.
"""

from __future__ import annotations

import hmac
import secrets

from flask import abort, request, session

FIELD = "csrf_token"
SESSION_KEY = "csrf"


def token() -> str:
    """This session's token (made on first use); templates put it in every form."""
    if SESSION_KEY not in session:
        session[SESSION_KEY] = secrets.token_urlsafe(32)
    value: str = session[SESSION_KEY]
    return value


def check(token_authenticated: bool) -> None:
    """Abort with 400 unless a POST carries this session's token."""
    if request.method != "POST" or token_authenticated:
        return
    expected = session.get(SESSION_KEY)
    sent = request.form.get(FIELD, "")
    if not expected or not hmac.compare_digest(str(expected).encode(), sent.encode()):
        abort(400, "missing or wrong CSRF token: reload the page and try again")
