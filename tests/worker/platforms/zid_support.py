"""What the Zid tests share: fixture files, the sandbox's demo credentials as a
store holds them, and a real lookup of webhook secrets (no database needed)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from worker.config import Settings
from worker.platforms.base import InboundWebhook, StoreSecrets
from worker.platforms.zid.subscriptions import BasicCredentials
from worker.sandbox.zid import (
    DEMO_AUTHORIZATION,
    DEMO_MANAGER_TOKEN,
    DEMO_REFRESH_TOKEN,
    DEMO_STORE,
    ZidSandboxState,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "zid"
SECRET = BasicCredentials("relay-test", "correct horse battery staple").header
PREVIOUS_SECRET = BasicCredentials("relay-old", "old password").header


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def sandbox_settings(settings: Settings, api_url: str, zid: ZidSandboxState) -> Settings:
    """``settings`` with Zid's OAuth app pointed at the sandbox served at ``api_url``."""
    return dataclasses.replace(
        settings,
        zid_oauth_token_url=f"{api_url}/oauth/token",
        zid_client_id=zid.client_id,
        zid_client_secret=zid.client_secret,
        zid_redirect_uri=zid.redirect_uri,
    )


def demo_credentials(**extra: Any) -> dict[str, Any]:
    """The sandbox demo store's tokens, as ``stores add zid`` saves them."""
    return {
        "authorization": DEMO_AUTHORIZATION,
        "manager_token": DEMO_MANAGER_TOKEN,
        "refresh_token": DEMO_REFRESH_TOKEN,
        **extra,
    }


class Stores:
    """A ``StoreLookup`` over a dict: external id → ``StoreSecrets``."""

    def __init__(self, *stores: StoreSecrets, ids: tuple[str, ...] = (DEMO_STORE,)) -> None:
        self._stores = dict(zip(ids, stores, strict=True))
        self.asked: list[str] = []

    def __call__(self, external_id: str) -> StoreSecrets | None:
        self.asked.append(external_id)
        return self._stores.get(external_id)


def known_store(*secrets: str, status: str = "active") -> Stores:
    return Stores(StoreSecrets(store_id=1, status=status, webhook_secrets=secrets))


def webhook(
    body: bytes,
    authorization: str | None = SECRET,
    path: tuple[str, ...] = (DEMO_STORE, "order.create"),
) -> InboundWebhook:
    headers = {"content-type": "application/json"}
    if authorization is not None:
        headers["authorization"] = authorization
    return InboundWebhook("zid", body, headers, path)
