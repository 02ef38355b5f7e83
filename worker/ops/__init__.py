"""The ops query layer: what the ``queues``/``deliveries``/``inbox``/``refresh``
commands and the ``/ops`` dashboard show and do, as plain functions over a
Session (or the Runtime) returning frozen dataclasses. No click, no Flask here:
both front ends call the same functions, so they list, mask and retry alike.

Every listing is keyset-paginated (``worker.ops.pages``) and every count is
bounded (``worker.ops.queues``): the pages stay cheap at millions of rows.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from worker.storage.models import Store
from worker.stores import find_store


class OpsError(ValueError):
    """Bad input to an ops function (an unknown store, a malformed cursor): one line."""


class NotFound(OpsError):
    """No row with that id."""


def store_by_key(session: Session, key: str) -> Store:
    """The store a key like ``salla:1234509876`` names; ``OpsError`` when none does."""
    platform, sep, external_id = key.partition(":")
    if not sep or not platform or not external_id:
        raise OpsError(f"{key!r} is not a store key like salla:1234509876")
    store = find_store(session, platform, external_id)
    if store is None:
        raise OpsError(f"no store {key}: see loyalty-relay stores list")
    return store
