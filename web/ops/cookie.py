"""The dashboard's login cookie: signed with a key derived from RELAY_SECRET_KEY.

The key is an HMAC of the secret key under a purpose label, so the cookie's
signature says nothing about the key that seals credentials, and rotating
RELAY_SECRET_KEY (first key) logs everyone out. The cookie is HttpOnly,
SameSite=Strict, scoped to ``/ops``, and Secure unless the dashboard is reached
on localhost (where plain HTTP is the only way in during development).
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlsplit

from flask import Flask, request
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import URLSafeTimedSerializer

PURPOSE = b"loyalty-relay ops session v1"
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
MAX_AGE_SECONDS = 12 * 3600


def derive_key(secret_key: str) -> bytes:
    """The first (encrypting) key of RELAY_SECRET_KEY, under the session's purpose."""
    first = secret_key.split(",")[0].strip()
    return hmac.new(first.encode(), PURPOSE, hashlib.sha256).digest()


class OpsSessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie with our own key and a per-request Secure flag."""

    def __init__(self, key: bytes) -> None:
        self.key = key

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(
            self.key,
            salt=self.salt,
            serializer=self.serializer,
            signer_kwargs={
                "key_derivation": self.key_derivation,
                "digest_method": self.digest_method,
            },
        )

    def get_cookie_secure(self, app: Flask) -> bool:
        return urlsplit(f"//{request.host}").hostname not in LOCAL_HOSTS


def init_app(app: Flask, secret_key: str) -> None:
    app.session_interface = OpsSessionInterface(derive_key(secret_key))
    app.config.update(
        SESSION_COOKIE_NAME="relay_ops",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_PATH="/ops",
        PERMANENT_SESSION_LIFETIME=MAX_AGE_SECONDS,
    )
