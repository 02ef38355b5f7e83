"""Who may see the dashboard: an operator logged in with a password from
RELAY_OPS_USERS, or a script sending ``Authorization: Bearer <RELAY_OPS_TOKEN>``.

Passwords are checked against werkzeug hashes (salted scrypt/pbkdf2); an
unknown user is checked against a dummy hash so that the answer takes as long
as for a known one, and the token is compared with ``hmac.compare_digest``.
Failed logins are counted per client address: past ``MAX_FAILURES`` within
``WINDOW_SECONDS`` the login answers 429 until the window has passed (per web
process: gunicorn's few workers multiply the allowance by a small factor).
"""

from __future__ import annotations

import hmac
import threading
import time
from collections import deque
from collections.abc import Mapping

from flask import request
from werkzeug.security import check_password_hash, generate_password_hash

MAX_FAILURES = 5
WINDOW_SECONDS = 300.0
_DUMMY_HASH = generate_password_hash("not a password of anyone's")


class Credentials:
    """The configured operators and token."""

    def __init__(self, users: Mapping[str, str], token: str) -> None:
        self._users = dict(users)
        self._token = token

    def password_ok(self, user: str, password: str) -> bool:
        known = self._users.get(user)
        matched = check_password_hash(known or _DUMMY_HASH, password)
        return matched and known is not None

    def is_user(self, user: object) -> bool:
        return isinstance(user, str) and user in self._users

    def bearer_ok(self) -> bool:
        """The request carries the configured token (never true when none is set)."""
        scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
        if not self._token or scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(sent.strip().encode(), self._token.encode())


class LoginThrottle:
    """Failed logins per client address within a sliding window."""

    def __init__(self, max_failures: int = MAX_FAILURES, window: float = WINDOW_SECONDS) -> None:
        self.max_failures, self.window = max_failures, window
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def blocked(self, client: str) -> bool:
        with self._lock:
            blocked = len(self._recent(client)) >= self.max_failures
            if not self._failures[client]:
                del self._failures[client]  # forget addresses whose failures expired
            return blocked

    def failed(self, client: str) -> None:
        with self._lock:
            self._recent(client).append(time.monotonic())

    def _recent(self, client: str) -> deque[float]:
        failures = self._failures.setdefault(client, deque())
        cutoff = time.monotonic() - self.window
        while failures and failures[0] < cutoff:
            failures.popleft()
        return failures
