"""The inbox row the receiver stores: bounded by its columns, its body sealed.

Apart from ``worker.pipeline.inbox`` (which processes rows in a worker) so that
the web process, which only writes rows, does not load the pipeline behind it
(refreshes, the outbox, every sink: about 3 MB per web worker,
``bench/web_memory.py``). ``worker.pipeline.inbox`` re-exports all of it.

Bodies carry tokens (Salla's ``app.store.authorize``) and customers' emails
and phones, so ``sealed`` encrypts a body before the INSERT; a row recorded as
ignored keeps none.
"""

from __future__ import annotations

import re
from typing import Any

from worker.crypto import Cipher
from worker.platforms.base import ReceivedEvent
from worker.storage.models import utcnow

PENDING, PROCESSING, DONE, IGNORED, FAILED = "pending", "processing", "done", "ignored", "failed"
# An event for a store not registered yet (its install is being processed): kept
# until the store appears, then pending again; ignored after RELAY_STORE_WAIT_SECONDS.
WAITING = "waiting_for_store"


def row(platform: str, body: bytes, event: ReceivedEvent) -> dict[str, Any]:
    """The inbox row for a verified delivery (written by ``web.ingest.InboxWriter``)."""
    return {
        "platform": platform,
        "store_ref": _bounded_id(event.store_ref),
        "event_type": _storable(event.event_type, EVENT_TYPE_LIMIT),
        "dedupe_key": event.dedupe_key,
        "body": body,
        "headers": event.headers,
        "status": _status(event),
        "reason": _storable(event.ignored_reason),
        "attempts": 0,
        "received_at": utcnow(),
    }


def _status(event: ReceivedEvent) -> str:
    if event.ignored_reason:
        return IGNORED
    return WAITING if event.waiting_for_store else PENDING


# What no database text column takes, though a signed JSON body may spell it:
# NUL ("\u0000", refused by PostgreSQL) and lone surrogates ("\ud800", not UTF-8).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def sealed(row: dict[str, Any], cipher: Cipher) -> dict[str, Any]:
    """The row as it is stored: its body encrypted, or none for an ignored event."""
    body = b"" if row["status"] == IGNORED else cipher.seal_bytes(row["body"])
    return row | {"body": body}


def _storable(text: str | None, limit: int | None = None) -> str | None:
    return _UNSTORABLE.sub("\N{REPLACEMENT CHARACTER}", text[:limit]) if text else text


# Each row is bounded by its columns before it joins a batch, so that no value a
# platform sends can fail the group commit of everyone else's webhooks.
EVENT_TYPE_LIMIT = 100  # String(100) in worker.storage.models
STORE_REF_LIMIT = 255


def _bounded_id(store_ref: str | None) -> str | None:
    """A store id too long for its column names no store (cut short it would name another)."""
    if store_ref is None or len(store_ref) > STORE_REF_LIMIT:
        return None
    return _storable(store_ref)
