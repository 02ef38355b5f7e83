"""Zid: webhooks (``webhooks``), the API client (``client``), its response
schemas (``schemas``), the balance rules (``balance``), webhook registration
(``subscriptions``) and its command line (``cli``)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING

from worker.config import Settings
from worker.platforms.base import EventPlan, InboundWebhook, ReceivedEvent, StoreApi, StoreLookup
from worker.platforms.zid import webhooks
from worker.points import PointsSnapshot

if TYPE_CHECKING:
    from worker.platforms.zid.client import ZidApi, ZidOAuth
    from worker.platforms.zid.schemas import StorefrontPoints


def zid_oauth(settings: Settings) -> ZidOAuth:
    from worker.platforms.zid.client import ZidOAuth

    return ZidOAuth(
        settings.zid_oauth_token_url,
        settings.zid_client_id,
        settings.zid_client_secret,
        settings.zid_redirect_uri,
    )


class ZidPlatform:
    name = "zid"
    store_platform = "zid"
    webhook_secrets_key = "webhook_secrets"

    def __init__(self, settings: Settings) -> None:
        self.default_api_base = settings.zid_api_base
        # Reference: zidsa/zid-agent-skill references/error-handling.md (60/min per app per store)
        self.quotas: Mapping[str, tuple[int, float]] = {"api": settings.zid_quota}
        self.app_webhook_token = settings.zid_app_webhook_token
        self.app_id = settings.zid_app_id
        self._settings = settings

    @functools.cached_property
    def api(self) -> ZidApi:
        """Built at first use: the receiver never calls Zid's API, so the web process
        never loads the client (nor httpx)."""
        from worker.platforms.zid.client import ZidApi

        return ZidApi(zid_oauth(self._settings))

    def receive(self, webhook: InboundWebhook, lookup: StoreLookup) -> ReceivedEvent:
        return webhooks.receive(webhook, lookup, self.app_webhook_token, self.app_id)

    def plan(self, event_type: str, body: bytes) -> EventPlan:
        return webhooks.plan(event_type, body)

    def fetch_points(self, store: StoreApi, customer_id: str) -> PointsSnapshot:
        return self.api.fetch_points(store, customer_id)

    def fetch_storefront_points(self, store: StoreApi, customer_token: str) -> StorefrontPoints:
        """A logged-in customer's points through the storefront endpoint
        (see ``client.fetch_storefront_points``)."""
        return self.api.fetch_storefront_points(store, customer_token)
