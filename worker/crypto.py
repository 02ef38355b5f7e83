"""Secrets and personal data at rest: Fernet (AES-128-CBC + HMAC) with a key from
RELAY_SECRET_KEY. Store credentials, sink configs, customer contacts and inbox
bodies are all sealed with the same ``Cipher``.

Any string works as the secret key: it is stretched with SHA-256 into a Fernet
key, so operators can use whatever their secret manager generates. Several keys
separated by commas rotate: the first encrypts, all decrypt.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class CredentialsError(ValueError):
    pass


class Cipher:
    def __init__(self, secret_key: str) -> None:
        keys = [part.strip() for part in secret_key.split(",") if part.strip()]
        if not keys:
            raise CredentialsError("the secret key is empty")
        self._fernet = MultiFernet([Fernet(_fernet_key(key)) for key in keys])

    def seal(self, values: dict[str, Any]) -> bytes:
        return self._fernet.encrypt(json.dumps(values, sort_keys=True).encode())

    def open(self, token: bytes | None) -> dict[str, Any]:
        if not token:
            return {}
        opened: dict[str, Any] = json.loads(self.open_bytes(token, "stored credentials"))
        return opened

    def seal_bytes(self, data: bytes) -> bytes:
        """Raw bytes (an inbox body) sealed as they are: no JSON round trip."""
        return self._fernet.encrypt(data)

    def open_bytes(self, token: bytes, what: str = "stored data") -> bytes:
        try:
            return self._fernet.decrypt(token)
        except InvalidToken:
            raise CredentialsError(
                f"{what} cannot be decrypted: RELAY_SECRET_KEY differs from the "
                "key they were written with"
            ) from None


def _fernet_key(secret: str) -> bytes:
    return base64.urlsafe_b64encode(hashlib.sha256(secret.encode()).digest())
