"""Shopify shops whose loyalty points live in Appstle: Shopify's webhooks
(``webhooks``), the Appstle API client (``client``), its answer's schema
(``schemas``), the mapping to a snapshot (``balance``), shop and customer refs
(``identity``), samples (``samples``) and ``stores add shopify`` (``cli``).

Appstle's own loyalty webhooks arrive through ``worker.platforms.appstle``;
both receivers feed the same ``shopify`` stores.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING

from worker.config import Settings
from worker.platforms.base import EventPlan, InboundWebhook, ReceivedEvent, StoreApi, StoreLookup
from worker.platforms.shopify import webhooks
from worker.points import PointsSnapshot

if TYPE_CHECKING:
    from worker.platforms.shopify.client import AppstleApi

QUOTA_BUCKET = "appstle"  # the client's (``worker.platforms.shopify.client.QUOTA_BUCKET``)


class ShopifyPlatform:
    name = "shopify"
    store_platform = "shopify"
    # The credentials key holding this receiver's per-store secrets.
    webhook_secrets_key = "webhook_secrets"

    def __init__(self, settings: Settings) -> None:
        self.default_api_base = settings.appstle_api_base
        # Appstle documents no rate limits (developers.appstle.com API reference): our own
        # budget, RELAY_APPSTLE_QUOTA.
        self.quotas: Mapping[str, tuple[int, float]] = {QUOTA_BUCKET: settings.appstle_quota}
        self._app_secrets = settings.shopify_webhook_secrets

    @functools.cached_property
    def api(self) -> AppstleApi:
        """Built at the first points read: the receiver never reads points, so the web
        process never loads the client (nor httpx)."""
        from worker.platforms.shopify.client import AppstleApi

        return AppstleApi()

    def receive(self, webhook: InboundWebhook, lookup: StoreLookup) -> ReceivedEvent:
        return webhooks.receive(webhook, lookup, self._app_secrets)

    def plan(self, event_type: str, body: bytes) -> EventPlan:
        return webhooks.plan(event_type, body)

    def fetch_points(self, store: StoreApi, customer_id: str) -> PointsSnapshot:
        return self.api.fetch_points(store, customer_id)
