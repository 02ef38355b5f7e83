"""Salla: webhooks (``webhooks``), the Merchant API client (``client``), its
response schemas (``schemas``) and the balance rules (``balance``)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING

from worker.config import Settings
from worker.platforms.base import EventPlan, InboundWebhook, ReceivedEvent, StoreApi, StoreLookup
from worker.platforms.salla import webhooks
from worker.points import PointsSnapshot

if TYPE_CHECKING:
    from worker.platforms.salla.client import SallaApi


class SallaPlatform:
    name = "salla"
    store_platform = "salla"
    webhook_secrets_key = "webhook_secrets"

    def __init__(self, settings: Settings) -> None:
        self.default_api_base = settings.salla_api_base
        # Reference: https://docs.salla.dev/421125m0 — customer endpoints: 500 per 10 minutes.
        self.quotas: Mapping[str, tuple[int, float]] = {"customers": settings.salla_quota}
        self._app_secrets = settings.salla_webhook_secrets
        self._settings = settings

    @functools.cached_property
    def _api(self) -> SallaApi:
        """Built at the first points read: the receiver never reads points, so the web
        process never loads the client (nor httpx)."""
        from worker.platforms.salla.client import SallaApi

        settings = self._settings
        return SallaApi(
            settings.salla_oauth_token_url, settings.salla_client_id, settings.salla_client_secret
        )

    def receive(self, webhook: InboundWebhook, lookup: StoreLookup) -> ReceivedEvent:
        return webhooks.receive(webhook, lookup, self._app_secrets)

    def plan(self, event_type: str, body: bytes) -> EventPlan:
        return webhooks.plan(event_type, body)

    def fetch_points(self, store: StoreApi, customer_id: str) -> PointsSnapshot:
        return self._api.fetch_points(store, customer_id)
