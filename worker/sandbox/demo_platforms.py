"""What the demo needs to know of each platform: its sandbox, its store, how to
credit points there and which webhooks to fire. Adding a platform to the demo
is one more function in ``DEMO_PLATFORMS``."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from worker.sandbox import appstle as appstle_sandbox
from worker.sandbox import salla as salla_sandbox
from worker.sandbox import zid as zid_sandbox
from worker.sandbox import zid_records
from worker.sandbox.appstle import AppstleSandboxState
from worker.sandbox.server import RunningServer, serve_in_thread
from worker.sandbox.zid_state import ZidSandboxState


@dataclass(frozen=True)
class Webhook:
    receiver: str  # e.g. "salla", or "appstle" for a Shopify store's loyalty events
    event: str
    secret: str  # what that receiver's samples.build signs with


@dataclass
class DemoPlatform:
    name: str  # the store's platform, e.g. "salla"
    store_id: str
    customer: str
    credentials: dict[str, Any]
    first: Webhook
    after_credit: Webhook
    credit: Callable[[int], None]
    server: Callable[[str, int], AbstractContextManager[RunningServer]]
    env: Callable[[str], dict[str, str]] = field(default=lambda _url: {})


SALLA_SECRET = "demo-webhook-secret"
ZID_BASIC = "Basic ZGVtbzpkZW1vLXBhc3N3b3Jk"  # demo:demo-password
SHOPIFY_SECRET = "demo-shopify-client-secret"


def salla() -> DemoPlatform:
    state = salla_sandbox.SallaSandboxState.with_demo_store()
    return DemoPlatform(
        name="salla",
        store_id=salla_sandbox.DEMO_MERCHANT,
        customer=salla_sandbox.DEMO_CUSTOMER,
        credentials={
            "access_token": salla_sandbox.DEMO_ACCESS_TOKEN,
            "refresh_token": salla_sandbox.DEMO_REFRESH_TOKEN,
        },
        # Sent as Salla publishes them (worker/platforms/salla/examples.py, via samples.build):
        # the status change names its customer at data.order.customer, the order at data.customer.
        first=Webhook("salla", "order.status.updated", SALLA_SECRET),
        after_credit=Webhook("salla", "order.updated", SALLA_SECRET),
        credit=lambda points: _ignore(
            state.add_points(
                salla_sandbox.DEMO_MERCHANT,
                salla_sandbox.DEMO_CUSTOMER,
                points,
                expires_in_days=180,
            )
        ),
        server=lambda host, port: serve_in_thread(
            salla_sandbox.create_salla_sandbox(state), host, port
        ),
        env=lambda url: {
            "SALLA_WEBHOOK_SECRET": SALLA_SECRET,
            "SALLA_OAUTH_TOKEN_URL": f"{url}/oauth2/token",
            "SALLA_CLIENT_ID": salla_sandbox.DEMO_CLIENT_ID,
            "SALLA_CLIENT_SECRET": salla_sandbox.DEMO_CLIENT_SECRET,
        },
    )


def zid() -> DemoPlatform:
    state = ZidSandboxState.with_demo_store()
    return DemoPlatform(
        name="zid",
        store_id=zid_records.DEMO_STORE,
        customer=zid_records.DEMO_CUSTOMER,
        credentials={
            "authorization": zid_records.DEMO_AUTHORIZATION,
            "manager_token": zid_records.DEMO_MANAGER_TOKEN,
            "refresh_token": zid_records.DEMO_REFRESH_TOKEN,
            "webhook_secrets": [ZID_BASIC],
        },
        # Zid's published Order examples (worker.platforms.zid.examples), ids substituted.
        first=Webhook("zid", "order.create", ZID_BASIC),
        after_credit=Webhook("zid", "order.status.update", ZID_BASIC),
        credit=lambda points: _ignore(
            state.add_points(zid_records.DEMO_STORE, zid_records.DEMO_CUSTOMER, points)
        ),
        server=lambda host, port: serve_in_thread(
            zid_sandbox.create_zid_sandbox(state), host, port
        ),
        env=lambda url: {
            "ZID_OAUTH_TOKEN_URL": f"{url}/oauth/token",
            "ZID_CLIENT_ID": zid_records.DEMO_CLIENT_ID,
            "ZID_CLIENT_SECRET": zid_records.DEMO_CLIENT_SECRET,
            "ZID_REDIRECT_URI": zid_records.DEMO_REDIRECT_URI,
        },
    )


def shopify() -> DemoPlatform:
    """Shopify's published ``orders/paid`` sample (``shopify/examples.py``), then Appstle's
    ``loyalty.earned`` (``appstle/examples.py``), both about the demo customer."""
    state = AppstleSandboxState.with_demo_store()
    return DemoPlatform(
        name="shopify",
        store_id=appstle_sandbox.DEMO_SHOP,
        customer=appstle_sandbox.DEMO_CUSTOMER,
        credentials={
            "appstle_api_key": appstle_sandbox.DEMO_API_KEY,
            "appstle_webhook_secrets": [appstle_sandbox.DEMO_WEBHOOK_SECRET],
        },
        first=Webhook("shopify", "orders/paid", SHOPIFY_SECRET),
        after_credit=Webhook("appstle", "loyalty.earned", appstle_sandbox.DEMO_WEBHOOK_SECRET),
        credit=lambda points: _ignore(
            state.add_points(appstle_sandbox.DEMO_SHOP, appstle_sandbox.DEMO_CUSTOMER, points)
        ),
        server=lambda host, port: serve_in_thread(
            appstle_sandbox.create_appstle_sandbox(state), host, port
        ),
        env=lambda _url: {"SHOPIFY_CLIENT_SECRET": SHOPIFY_SECRET},
    )


def _ignore(_: object) -> None:
    return None


DEMO_PLATFORMS: tuple[Callable[[], DemoPlatform], ...] = (salla, zid, shopify)
