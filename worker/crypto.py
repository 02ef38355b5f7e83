"""Secrets and personal data at rest: Fernet (AES-128-CBC + HMAC) with a key from
RELAY_SECRET_KEY. Store credentials, sink configs, customer contacts and inbox
bodies are all sealed with the same ``Cipher``.

RELAY_SECRET_KEY should be a Fernet key (``loyalty-relay keygen`` prints one):
32 random bytes, used as they are. Any other string is a passphrase: it is
stretched with HKDF-SHA256 into a Fernet key and a warning says so, because a
passphrase holds only the entropy someone typed into it (production refuses
one shorter than 16 characters, ``worker.config``). Several keys separated by
commas rotate: the first encrypts, all decrypt.

Data written before this scheme used ``SHA-256(key string)`` as the Fernet key,
for every key, Fernet-shaped or not. Those derivations are kept for decrypting
only, after the current ones, so existing rows still open; each row is written
with the current derivation the next time it is saved (a token refresh, a
``stores add``), and the fallback can go once no row needs it.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import logging
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

log = logging.getLogger(__name__)
HKDF_SALT = b"loyalty-relay"
HKDF_INFO = b"RELAY_SECRET_KEY credentials v2"
KEPT = 4096  # opened credentials and sink configs a process remembers (``open_kept``)


class CredentialsError(ValueError):
    pass


class Cipher:
    def __init__(self, secret_key: str) -> None:
        keys = [part.strip() for part in secret_key.split(",") if part.strip()]
        if not keys:
            raise CredentialsError("the secret key is empty")
        if not all(is_fernet_key(key) for key in keys):
            log.warning(
                "RELAY_SECRET_KEY is not a Fernet key: it is stretched with HKDF, but it is "
                "only as strong as what was typed. Generate one with `loyalty-relay keygen`."
            )
        current = [Fernet(fernet_key(key)) for key in keys]
        legacy = [Fernet(_legacy_sha256_key(key)) for key in keys]
        self._fernet = MultiFernet(current + legacy)
        self._kept = functools.lru_cache(maxsize=KEPT)(self._opened_json)

    def seal(self, values: dict[str, Any]) -> bytes:
        return self._fernet.encrypt(json.dumps(values, sort_keys=True).encode())

    def open(self, token: bytes | None) -> dict[str, Any]:
        if not token:
            return {}
        opened: dict[str, Any] = json.loads(self.open_bytes(token, "stored credentials"))
        return opened

    def open_kept(self, token: bytes | None) -> dict[str, Any]:
        """``open`` for a store's credentials and a sink's config: values every refresh
        of the store reads again, remembered per process by their sealed bytes (a
        changed value is sealed anew, so it is never answered from memory). Spares a
        refresh two decryptions, about a twentieth of its CPU. A customer's contact
        is opened with ``open``, each time: it is read once and not kept. The dict is
        a copy; what it holds is shared, read it only."""
        return dict(self._kept(token)) if token else {}

    def _opened_json(self, token: bytes) -> dict[str, Any]:
        return self.open(token)

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


def is_fernet_key(key: str) -> bool:
    """32 bytes in URL-safe base64, as ``Fernet.generate_key()`` makes them."""
    try:
        return len(base64.urlsafe_b64decode(key.encode())) == 32 and len(key) == 44
    except (binascii.Error, ValueError):
        return False


def fernet_key(key: str) -> bytes:
    """A Fernet key used as given, or a passphrase stretched with HKDF-SHA256."""
    if is_fernet_key(key):
        return key.encode()
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=HKDF_SALT, info=HKDF_INFO)
    return base64.urlsafe_b64encode(hkdf.derive(key.encode()))


def _legacy_sha256_key(key: str) -> bytes:
    """The derivation of earlier versions, for reading what they wrote."""
    return base64.urlsafe_b64encode(hashlib.sha256(key.encode()).digest())


def generate_key() -> str:
    return Fernet.generate_key().decode()
