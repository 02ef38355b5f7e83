"""Standard Webhooks signatures: HMAC-SHA256 over ``{id}.{timestamp}.{body}``.

We sign our outbound webhooks with it and verify inbound Appstle (Svix) ones,
so the verifier takes the header names as parameters. Verification fails with
one exception type, ``SignatureError``, whatever is wrong with the headers: a
receiver answers 401 for all of them, and a ``ValueError`` escaping from a
malformed header would otherwise become a 500 that the sender keeps retrying.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Iterable, Mapping
from secrets import token_bytes

from worker.errors import Unauthorized

SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE = 300
_TIMESTAMP = re.compile(r"[0-9]{1,12}")  # ASCII digits only: int() also accepts "١٢", "+1", "1_0"


class SignatureError(Unauthorized):
    """A webhook's signature headers are missing, malformed, stale or do not match."""


class InvalidSecret(ValueError):
    """A configured secret is not ``whsec_`` + base64; a configuration error, never a 401."""


def new_secret() -> str:
    """A fresh 32-byte secret in the ``whsec_`` form, for sinks created from the CLI."""
    return SECRET_PREFIX + base64.b64encode(token_bytes(32)).decode()


def decode_secret(secret: str) -> bytes:
    """The HMAC key inside ``whsec_<base64>``.

    The prefix and the padding are optional, as in the reference libraries, so
    secrets copied from any Standard Webhooks sender work.
    """
    encoded = secret.strip().removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidSecret("the secret is not whsec_ followed by base64") from None
    if not key:
        raise InvalidSecret("the secret is empty")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: one ``v1,<base64>`` per space-separated secret.

    Several secrets let a receiver rotate: it accepts the message while it knows any of them.
    """
    keys = _keys(secret)
    if not keys:
        raise InvalidSecret("no secret to sign with")
    signatures = (base64.b64encode(_digest(key, msg_id, timestamp, body)) for key in keys)
    return " ".join(f"v1,{signature.decode()}" for signature in signatures)


def verify(
    secrets: str | Iterable[str],
    headers: Mapping[str, str],
    body: bytes,
    tolerance: int = DEFAULT_TOLERANCE,
    *,
    id_header: str = "webhook-id",
    timestamp_header: str = "webhook-timestamp",
    signature_header: str = "webhook-signature",
) -> None:
    """Raise ``SignatureError`` unless ``body`` was signed with one of ``secrets`` just now.

    ``secrets`` is a list or a space-separated string (the rotation form); the
    timestamp must be within ``tolerance`` seconds of our clock to stop replays.
    A malformed *configured* secret raises ``InvalidSecret``: that is our
    configuration to fix, not the sender's request.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    msg_id = _header(lowered, id_header)
    timestamp = _timestamp(_header(lowered, timestamp_header), tolerance)
    received = _signatures(_header(lowered, signature_header), signature_header)
    for key in _keys(secrets):
        expected = _digest(key, msg_id, timestamp, body)
        if any(hmac.compare_digest(expected, signature) for signature in received):
            return
    raise SignatureError("no signature matches the body and secret")


def _keys(secrets: str | Iterable[str]) -> list[bytes]:
    text = secrets if isinstance(secrets, str) else " ".join(secrets)
    return [decode_secret(part) for part in text.split()]


def _digest(key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return hmac.new(key, signed, hashlib.sha256).digest()


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name.lower(), "").strip()
    if not value:
        raise SignatureError(f"missing {name} header")
    return value


def _timestamp(raw: str, tolerance: int) -> int:
    if not _TIMESTAMP.fullmatch(raw):
        raise SignatureError("the timestamp is not unix seconds")
    timestamp, now = int(raw), time.time()
    if timestamp < now - tolerance:
        raise SignatureError("the timestamp is too old")
    if timestamp > now + tolerance:
        raise SignatureError("the timestamp is in the future")
    return timestamp


def _signatures(raw: str, name: str) -> list[bytes]:
    """The decodable ``v1`` signatures; other versions are skipped, as the spec asks."""
    found = []
    for token in raw.split():
        version, _, encoded = token.partition(",")
        if version == "v1" and (signature := _b64(encoded)):
            found.append(signature)
    if not found:
        raise SignatureError(f"{name} holds no v1 signature")
    return found


def _b64(encoded: str) -> bytes | None:
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):  # ValueError: non-ASCII characters
        return None
