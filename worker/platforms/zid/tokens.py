"""Zid tokens refreshed before they expire (the beat job ``relay.refresh_tokens``).

Zid's tokens and its refresh tokens last about a year (``expires_in``), and a
refresh token that has lapsed leaves the merchant locked out until they
reinstall. Zid's own guidance is to refresh well before that, from a scheduled
job rather than only after a 401 (zidsa/zid-agent-skill references/oauth-flow.md,
"Refresh before expiry, not after": a daily job for tokens expiring within the
next 30–60 days). So every active Zid store whose tokens expire within
``RELAY_ZID_REFRESH_WINDOW_DAYS`` (60 by default) is refreshed, and so is one
whose expiry we do not know yet (added by hand with a refresh token): its first
refresh tells us.

Exactly once across workers: each refresh goes through the store's token lease
(``StoreContext.refresh_credentials``): of two runs that overlap, one spends
the refresh token and the other adopts the new tokens. The store is read again
just before, so a run that lists a store another run has refreshed since skips
it. A refused refresh token marks the store ``needs_reauth`` (as after a 401);
any other failure leaves the store as it was for the next run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import or_, select

from worker.errors import NeedsReauthorization, RelayError
from worker.platforms.zid import ZidPlatform
from worker.runtime import Runtime
from worker.storage.models import Store
from worker.stores import ACTIVE, StoreContext

log = logging.getLogger(__name__)


@dataclass
class TokenRun:
    """What one run did, by store id."""

    refreshed: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)


def refresh_expiring(runtime: Runtime, now: datetime) -> TokenRun:
    """Refresh the tokens of every active Zid store expiring within the window."""
    run = TokenRun()
    settings = runtime.settings
    if not (settings.zid_client_id and settings.zid_client_secret):
        log.info("Zid tokens not refreshed: ZID_CLIENT_ID and ZID_CLIENT_SECRET are not set")
        return run
    platform = ZidPlatform(settings)
    horizon = now + timedelta(days=settings.zid_refresh_window_days)
    for store_id in expiring_store_ids(runtime, horizon):
        _refresh_one(runtime, platform, store_id, horizon, run)
    return run


def expiring_store_ids(runtime: Runtime, horizon: datetime) -> list[int]:
    query = (
        select(Store.id)
        .where(Store.platform == "zid", Store.status == ACTIVE)
        .where(or_(Store.token_expires_at.is_(None), Store.token_expires_at < horizon))
        .order_by(Store.token_expires_at)
    )
    with runtime.sessions() as session:
        return list(session.scalars(query))


def _refresh_one(
    runtime: Runtime, platform: ZidPlatform, store_id: int, horizon: datetime, run: TokenRun
) -> None:
    context = _due_context(runtime, platform, store_id, horizon)
    if context is None:
        run.skipped.append(store_id)
        return
    try:
        context.refresh_credentials(platform.api.oauth.refresher(context.http))
    except NeedsReauthorization as exc:
        log.warning("Zid store %s needs re-authorization: %s", context.external_id, exc)
        run.failed[store_id] = str(exc)
    except RelayError as exc:
        log.warning("Zid store %s: tokens not refreshed, next run retries: %s", store_id, exc)
        run.failed[store_id] = str(exc)
    else:
        log.info("Zid store %s: tokens refreshed before expiry", context.external_id)
        run.refreshed.append(store_id)


def _due_context(
    runtime: Runtime, platform: ZidPlatform, store_id: int, horizon: datetime
) -> StoreContext | None:
    """The store as it is now, if it still needs a refresh and can have one."""
    with runtime.sessions() as session:
        store = session.get(Store, store_id)
        if store is None or store.status != ACTIVE:
            return None
        expires_at = store.token_expires_at
        if expires_at is not None and expires_at >= horizon:
            return None  # another run refreshed it meanwhile
        context = StoreContext(runtime, store, platform.quotas, platform.default_api_base)
    if expires_at is None and not context.credentials().get("refresh_token"):
        return None  # added by hand without a refresh token: nothing to spend
    return context
