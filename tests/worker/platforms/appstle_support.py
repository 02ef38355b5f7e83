"""What the Shopify and Appstle tests share: the seed fixture, secrets, a real
lookup of store secrets over a dict (no database needed) and webhook builders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from worker.platforms.base import InboundWebhook, SampleDelivery, StoreSecrets
from worker.sandbox.appstle import DEMO_API_KEY, DEMO_SHOP, DEMO_WEBHOOK_SECRET
from worker.signing import new_secret

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "appstle"
SHOPIFY_SECRET = "shpss_current-client-secret"
SHOPIFY_PREVIOUS = "shpss_previous-client-secret"
WHSEC = DEMO_WEBHOOK_SECRET
WHSEC_PREVIOUS = new_secret()
CUSTOMER = "7390123456789"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def credentials(**extra: Any) -> dict[str, Any]:
    """A shop as ``stores add shopify`` saves it, with the sandbox's API key."""
    return {"appstle_api_key": DEMO_API_KEY, **extra}


class Stores:
    """A ``StoreLookup`` over a dict: shop domain → ``StoreSecrets``; records what was asked."""

    def __init__(self, stores: dict[str, StoreSecrets] | None = None) -> None:
        self._stores = stores or {}
        self.asked: list[str] = []

    def __call__(self, external_id: str) -> StoreSecrets | None:
        self.asked.append(external_id)
        return self._stores.get(external_id)


def known_shop(*secrets: str, status: str = "active", shop: str = DEMO_SHOP) -> Stores:
    return Stores({shop: StoreSecrets(store_id=1, status=status, webhook_secrets=secrets)})


def inbound(platform: str, delivery: SampleDelivery, **headers: str | None) -> InboundWebhook:
    """``delivery`` as the receiver hands it over: names lower-cased, the path split.

    A header given as None is removed; any other value replaces the delivery's.
    """
    merged = {name.lower(): value for name, value in delivery.headers.items()}
    for name, value in headers.items():
        key = name.replace("_", "-").lower()
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    prefix = f"/webhooks/{platform}"
    rest = delivery.path[len(prefix) :] if delivery.path.startswith(prefix) else delivery.path
    path = tuple(part for part in rest.split("/") if part)
    return InboundWebhook(platform, delivery.body, merged, path)
