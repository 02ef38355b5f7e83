"""Appstle Loyalty's own webhooks (``webhooks``, ``samples``) for Shopify stores.

Appstle events belong to the ``shopify`` store of the shop named in the
receiving path, and their points are read with the same Appstle client as
Shopify's (``worker.platforms.shopify.client``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING

from worker.config import Settings
from worker.platforms.appstle import webhooks
from worker.platforms.appstle.webhooks import SECRETS_KEY
from worker.platforms.base import EventPlan, InboundWebhook, ReceivedEvent, StoreApi, StoreLookup
from worker.platforms.shopify import QUOTA_BUCKET
from worker.points import PointsSnapshot

if TYPE_CHECKING:
    from worker.platforms.shopify.client import AppstleApi


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

    @functools.cached_property
    def api(self) -> AppstleApi:
        """Built at the first points read: the receiver never reads points, so the web
        process never loads the client (nor httpx)."""
        from worker.platforms.shopify.client import AppstleApi

        return AppstleApi()

    def receive(self, webhook: InboundWebhook, lookup: StoreLookup) -> ReceivedEvent:
        return webhooks.receive(webhook, lookup)

    def plan(self, event_type: str, body: bytes) -> EventPlan:
        return webhooks.plan(event_type, body)

    def fetch_points(self, store: StoreApi, customer_id: str) -> PointsSnapshot:
        return self.api.fetch_points(store, customer_id)
