"""Stores: registration, the receiver's secret lookup, and ``StoreContext`` —
the database-backed ``StoreApi`` a platform client works through.

The token refresh is the delicate part: refresh tokens are single use, so of
all the workers that see a 401 at the same moment exactly one may call the
token endpoint. It claims a lease on the store row with a conditional update
(``token_version`` unchanged and no live lease), refreshes, and writes both new
tokens with ``token_version + 1`` in the same statement that drops the lease.
The others wait for the version to move and use the new token.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, bindparam, or_, select, update
from sqlalchemy.orm import Session

from worker.errors import NeedsReauthorization, TransientError
from worker.platforms.base import StoreSecrets, StoreUpdate
from worker.runtime import Runtime
from worker.scrub import scrub_error
from worker.storage import plain
from worker.storage.models import Store, utcnow
from worker.storage.upsert import rows_changed

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

REFRESH_LEASE = timedelta(seconds=60)
REFRESH_WAIT_SECONDS = 30.0
ACTIVE = "active"
PAUSED = "paused"  # the app's subscription or trial lapsed: no API calls until it resumes
NEEDS_REAUTH = "needs_reauth"
UNINSTALLED = "uninstalled"
# Stores that make no API calls and take no new work, whatever the platform.
STOPPED = frozenset({PAUSED, UNINSTALLED})


def find_store(session: Session, platform: str, external_id: str) -> Store | None:
    query = select(Store).where(Store.platform == platform, Store.external_id == external_id)
    return session.scalars(query).one_or_none()


_STORES = cast(Table, Store.__table__)
_SECRETS = plain.hot(
    select(_STORES.c.id, _STORES.c.status, _STORES.c.credentials).where(
        _STORES.c.platform == bindparam("platform"),
        _STORES.c.external_id == bindparam("external_id"),
    )
)


def store_secrets(
    runtime: Runtime, platform: str, external_id: str, key: str = "webhook_secrets"
) -> StoreSecrets | None:
    """The receiver's lookup (``web.receiver.StoreLookupCache`` loads it for each store
    every ``LOOKUP_TTL`` in each web process): one statement that stands alone
    (``Runtime.statement``: no BEGIN and ROLLBACK round trips) on the driver's path,
    no ORM object, and the credentials opened through ``Cipher.open_kept``, which
    decrypts a store's sealed bytes once per process. Through a session it was three
    round trips and about 0.8–1.3 ms of CPU, a fifth of the receiver's CPU in
    ``bench/worker.py`` (200 stores, each looked up again as its TTL ran out)."""
    params = {"platform": platform, "external_id": external_id}
    with runtime.statement() as connection:
        row = plain.execute(connection, _SECRETS, params).one_or_none()
    if row is None:
        return None
    credentials = runtime.cipher.open_kept(row.credentials)
    secrets = tuple(s for s in credentials.get(key, ()) if isinstance(s, str))
    return StoreSecrets(store_id=row.id, status=row.status, webhook_secrets=secrets)


def save_store(
    runtime: Runtime,
    session: Session,
    platform: str,
    external_id: str,
    update_: StoreUpdate,
    **fields: Any,
) -> Store:
    """Create or update a store, merging credentials (never dropping ones not given)."""
    store = find_store(session, platform, external_id)
    if store is None:
        store = Store(platform=platform, external_id=external_id, token_version=1)
        store.timezone = runtime.settings.default_timezone
        session.add(store)
    credentials = runtime.cipher.open(store.credentials) | update_.credentials
    store.credentials = runtime.cipher.seal(credentials)
    if update_.credentials:
        store.token_version = (store.token_version or 0) + 1
    if update_.token_expires_at is not None:
        store.token_expires_at = update_.token_expires_at
    status = next_status(store.status, update_)
    if status is not None:
        store.status, store.status_reason = status, update_.status_reason
    for name, value in fields.items():
        if value is not None:
            setattr(store, name, value)
    session.flush()
    return store


def stopped_reason(store: Store) -> str:
    """Why a store takes no work: ``store is paused: trial expired``. An uninstalled
    store's reason stays on the store; every platform's events say the same."""
    if store.status == UNINSTALLED:
        return "store has uninstalled the app"
    return f"store is {store.status}" + (f": {store.status_reason}" if store.status_reason else "")


def next_status(current: str | None, update_: StoreUpdate) -> str | None:
    """The status an update leads to, or None to leave the store as it is.

    New credentials (an install, an authorization, ``stores add``) set any status.
    Without them an event may uninstall any store and pause an active one, but it
    only resumes a *paused* one: an uninstalled store, or one whose tokens were
    refused, needs new credentials before it may call the API again.
    """
    wanted = update_.status
    if wanted is None or update_.credentials or current is None or wanted == UNINSTALLED:
        return wanted
    if wanted in (ACTIVE, PAUSED) and current not in (ACTIVE, PAUSED):
        return None
    return wanted


class StoreContext:
    """A store seen by its platform client; every shared decision goes through the database."""

    def __init__(
        self,
        runtime: Runtime,
        store: Store,
        quotas: Mapping[str, tuple[int, float]],
        default_api_base: str,
    ) -> None:
        # Imported here: the receiver looks stores up with this module and calls no API,
        # so the web process loads neither an HTTP client nor the budgets' Redis client.
        from worker import http

        self.runtime = runtime
        self.store_id = store.id
        self.key = store.key
        self.external_id = store.external_id
        self.api_base = (store.api_base or default_api_base).rstrip("/")
        self.timezone = store.timezone
        self.http: httpx.Client = http.shared_client(
            runtime.settings.http_timeout_seconds,
            allow_private=runtime.settings.allow_private_urls,
            counted_as=store.platform,
        )
        self._quotas = quotas
        self._budget = runtime.budget
        self._version = store.token_version
        self._credentials = runtime.cipher.open_kept(store.credentials)
        self._reloaded = False

    def credentials(self) -> dict[str, Any]:
        return dict(self._credentials)

    def take_quota(self, bucket: str) -> None:
        limit, window = self._quotas[bucket]
        self._budget.take(self._budget_key(bucket), limit, window)

    def observe_rate_headers(self, bucket: str, headers: Mapping[str, str]) -> None:
        limit, _ = self._quotas[bucket]
        self._budget.observe(self._budget_key(bucket), limit, headers)

    def refresh_credentials(
        self, refresh: Callable[[dict[str, Any]], StoreUpdate]
    ) -> dict[str, Any]:
        deadline = time.monotonic() + REFRESH_WAIT_SECONDS
        while not self._claim_refresh():
            if time.monotonic() > deadline:
                raise TransientError("a token refresh is in progress in another worker")
            time.sleep(0.2)
        if self._reloaded:
            return self.credentials()
        try:
            fresh = refresh(self.credentials())
        except NeedsReauthorization as exc:
            self._release(status=NEEDS_REAUTH, reason=str(exc))
            log.warning("store %s needs re-authorization: %s", self.key, scrub_error(str(exc), 200))
            raise
        except BaseException:
            self._release()
            raise
        self._store_refreshed(fresh)
        return self.credentials()

    def _budget_key(self, bucket: str) -> str:
        return f"store:{self.store_id}:{bucket}"

    def _claim_refresh(self) -> bool:
        """True when we hold the lease, or another worker already refreshed (``_reloaded``)."""
        now = utcnow()
        self._reloaded = False
        with self.runtime.transaction() as session:
            claimed = rows_changed(
                session,
                update(Store)
                .where(Store.id == self.store_id, Store.token_version == self._version)
                .where(Store.status == ACTIVE)
                .where(or_(Store.refresh_lock_until.is_(None), Store.refresh_lock_until < now))
                .values(refresh_lock_until=now + REFRESH_LEASE),
            )
            if claimed:
                return True
            store = session.get(Store, self.store_id)
            return store is not None and self._adopt_if_newer(store)

    def _adopt_if_newer(self, store: Store) -> bool:
        if store.status == NEEDS_REAUTH:
            raise NeedsReauthorization(store.status_reason or "store needs re-authorization")
        if store.token_version == self._version:
            return False
        self._version = store.token_version
        self._credentials = self.runtime.cipher.open_kept(store.credentials)
        self._reloaded = True
        return True

    def _store_refreshed(self, fresh: StoreUpdate) -> None:
        # Merge into the row as it is now, not as we loaded it: webhook secrets
        # saved meanwhile (``zid register-webhooks``) must survive the refresh.
        with self.runtime.transaction() as session:
            store = session.get_one(Store, self.store_id, with_for_update=True)
            credentials = self.runtime.cipher.open(store.credentials) | fresh.credentials
            store.credentials = self.runtime.cipher.seal(credentials)
            store.token_version = self._version + 1
            store.token_expires_at = fresh.token_expires_at
            store.refresh_lock_until = None
        self._version += 1
        self._credentials = credentials

    def _release(self, *, status: str | None = None, reason: str | None = None) -> None:
        values: dict[str, Any] = {"refresh_lock_until": None}
        if status is not None:
            values |= {"status": status, "status_reason": reason, "updated_at": utcnow()}
        with self.runtime.transaction() as session:
            session.execute(update(Store).where(Store.id == self.store_id).values(**values))
