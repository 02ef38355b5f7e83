"""Appstle Loyalty's own webhooks (``webhooks``, ``samples``) for Shopify stores.

Appstle events belong to the ``shopify`` store of the shop named in the
receiving path, and their points are read with the same Appstle client as
Shopify's (``worker.platforms.shopify.client``).
"""

from __future__ import annotations

from collections.abc import Mapping

from worker.config import Settings
from worker.platforms.appstle import webhooks
from worker.platforms.appstle.webhooks import SECRETS_KEY
from worker.platforms.base import EventPlan, InboundWebhook, ReceivedEvent, StoreApi, StoreLookup
from worker.platforms.shopify.client import QUOTA_BUCKET, AppstleApi
from worker.points import PointsSnapshot


class AppstlePlatform:
    name = "appstle"
    store_platform = "shopify"
    # The credentials key holding this receiver's per-store secrets.
    webhook_secrets_key = SECRETS_KEY

    def __init__(self, settings: Settings) -> None:
        self.default_api_base = settings.appstle_api_base
        # Appstle documents no rate limits (developers.appstle.com API reference): our own
        # budget, RELAY_APPSTLE_QUOTA.
        self.quotas: Mapping[str, tuple[int, float]] = {QUOTA_BUCKET: settings.appstle_quota}
        self.api = AppstleApi()

    def receive(self, webhook: InboundWebhook, lookup: StoreLookup) -> ReceivedEvent:
        return webhooks.receive(webhook, lookup)

    def plan(self, event_type: str, body: bytes) -> EventPlan:
        return webhooks.plan(event_type, body)

    def fetch_points(self, store: StoreApi, customer_id: str) -> PointsSnapshot:
        return self.api.fetch_points(store, customer_id)
