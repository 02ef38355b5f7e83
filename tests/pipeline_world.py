"""The world the pipeline tests run events through, one for every platform: a store
with a webhook sink, the platform's sandbox and a capture server over real HTTP,
the real receiver and a real database.

What is common (runtime, platforms, sandbox state, capture log, receiver client,
store; ``process`` and ``rows``) lives in ``World``; what differs — the sandbox's
state, the store's credentials, the settings and how a delivery is built and
signed — lives in a small ``PlatformSetup`` per platform. The ``world`` fixture
(``tests/conftest.py``) is parametrized by platform name, indirectly::

    pytestmark = pytest.mark.parametrize("world", ["zid"], indirect=True)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests import factories
from tests.conftest import SALLA_SECRET
from tests.factories import MERCHANT, add_salla_store, add_webhook_sink, salla_headers
from tests.pipeline_support import all_rows, process_event
from tests.worker.platforms import appstle_support, zid_support
from web import create_app
from worker.config import Settings
from worker.pipeline import outbox
from worker.platforms import build_platforms
from worker.platforms.appstle import AppstlePlatform
from worker.platforms.base import Platform, SampleDelivery, StoreUpdate
from worker.platforms.shopify import ShopifyPlatform
from worker.platforms.shopify import samples as shopify_samples
from worker.platforms.zid import ZidPlatform
from worker.platforms.zid import samples as zid_samples
from worker.runtime import Runtime
from worker.sandbox.appstle import (
    DEMO_SHOP,
    AppstleSandboxState,
    create_appstle_sandbox,
    sign_appstle_webhook,
)
from worker.sandbox.capture import (
    CapturedDelivery,
    CaptureLog,
    capture_log,
    create_capture_app,
)
from worker.sandbox.salla import create_salla_sandbox
from worker.sandbox.salla_state import SallaSandboxState, points_entry
from worker.sandbox.server import RunningServer
from worker.sandbox.zid import DEMO_STORE, ZidSandboxState, create_zid_sandbox
from worker.signing import new_secret
from worker.storage.models import Store
from worker.stores import save_store

Serve = Callable[[Any], RunningServer]
NOW = datetime.now(UTC)
S = TypeVar("S")

ZID_CUSTOMER = "7823146"
ZID_APP_TOKEN = "zid-app-events-token"
# How ``stores add shopify --appstle-webhook-secret`` stores them.
APPSTLE_SECRETS = {
    "appstle_webhook_secrets": [appstle_support.WHSEC, appstle_support.WHSEC_PREVIOUS]
}


@dataclasses.dataclass
class Parts(Generic[S]):
    """What a platform's setup contributes to its world."""

    sandbox: S
    platforms: dict[str, Platform]
    receiver_settings: Settings  # what the receiver (the Flask app) runs with
    store: Store


class PlatformSetup(Protocol[S]):
    """One platform's sandbox and store, and how its deliveries are built and signed."""

    def prepare(self, runtime: Runtime, serve: Serve) -> Parts[S]: ...

    def post(self, client: FlaskClient, *args: Any, **kwargs: Any) -> Any: ...

    def accepted(self, client: FlaskClient, *args: Any, **kwargs: Any) -> int: ...


@dataclasses.dataclass
class World(Generic[S]):
    runtime: Runtime
    platforms: dict[str, Platform]
    sandbox: S
    capture: CaptureLog
    client: FlaskClient
    store: Store
    setup: PlatformSetup[S]

    def post(self, *args: Any, **kwargs: Any) -> Any:
        """A delivery as the platform sends it, through the receiver (see the setup)."""
        return self.setup.post(self.client, *args, **kwargs)

    def accepted(self, *args: Any, **kwargs: Any) -> int:
        """``post`` that must be accepted: the inbox id it got."""
        return self.setup.accepted(self.client, *args, **kwargs)

    def process(self, inbox_id: int) -> list[outbox.Due]:
        return process_event(self.runtime, self.platforms, inbox_id)

    def rows(self, model: Any) -> list[Any]:
        return all_rows(self.runtime, model)

    def only_update(self, platform: str, store_ref: str, customer_id: str) -> CapturedDelivery:
        """The one delivery the capture server got: verified, a balance change, for this
        platform's store (``<platform>:<store_ref>``) and customer."""
        [received] = self.capture.received()
        assert received.verified and received.type == "points.balance_changed"
        data = received.data
        assert (data["platform"], data["store"], data["customer_id"]) == (
            platform, f"{platform}:{store_ref}", customer_id,
        )  # fmt: skip
        return received

    def credentials(self) -> dict[str, Any]:
        with self.runtime.sessions() as session:
            return self.runtime.cipher.open(session.get_one(Store, self.store.id).credentials)


def accepted_id(response: TestResponse) -> int:
    assert response.status_code == 200, response.get_json()
    return int(response.get_json()["id"])


class SallaSetup:
    """A Salla merchant with 900 points expiring in 400 days and 100 in 3."""

    def prepare(self, runtime: Runtime, serve: Serve) -> Parts[SallaSandboxState]:
        salla = SallaSandboxState()
        salla.add_merchant(MERCHANT, access_token="access-1", refresh_token="refresh-1")
        salla.set_entries(
            MERCHANT, factories.CUSTOMER, [entry(900, expires_in=400), entry(100, expires_in=3)]
        )
        api = serve(create_salla_sandbox(salla))
        settings = dataclasses.replace(
            runtime.settings,
            salla_oauth_token_url=f"{api.url}/oauth2/token",
            salla_client_id=salla.client_id,
            salla_client_secret=salla.client_secret,
        )
        store = add_salla_store(runtime, api_base=api.url)
        return Parts(salla, build_platforms(settings), runtime.settings, store)

    def post(self, client: FlaskClient, event: str = "order.status.updated", **data: Any) -> int:
        """Salla's signed event; the answer must be 200 — its inbox id (0 if none)."""
        body = factories.encode(factories.salla_event(event, **data))
        response = client.post(
            "/webhooks/salla", data=body, headers=salla_headers(body, SALLA_SECRET)
        )
        assert response.status_code == 200, response.get_json()
        return int(response.get_json().get("id", 0))

    def accepted(self, client: FlaskClient, *args: Any, **kwargs: Any) -> int:
        return self.post(client, *args, **kwargs)


def entry(points: int, *, expires_in: int, used: int = 0) -> dict[str, Any]:
    """A Salla points entry created yesterday that expires ``expires_in`` days from now."""
    return points_entry(
        points, created=NOW - timedelta(days=1), expiry=NOW + timedelta(days=expires_in),
        used_points=used,
    )  # fmt: skip


class ZidSetup:
    """A Zid store with 800 points expiring in 300 days and 100 in 3; two webhook secrets."""

    def prepare(self, runtime: Runtime, serve: Serve) -> Parts[ZidSandboxState]:
        zid = ZidSandboxState()
        zid.add_store(DEMO_STORE)
        zid.add_points(DEMO_STORE, ZID_CUSTOMER, 800, expires_in_days=300, now=NOW)
        zid.add_points(DEMO_STORE, ZID_CUSTOMER, 100, expires_in_days=3, now=NOW)
        api = serve(create_zid_sandbox(zid))
        settings = zid_support.sandbox_settings(runtime.settings, api.url, zid)
        credentials = zid_support.demo_credentials(
            webhook_secrets=[zid_support.SECRET, zid_support.PREVIOUS_SECRET]
        )
        with runtime.transaction() as session:
            update = StoreUpdate(status="active", credentials=credentials)
            store = save_store(runtime, session, "zid", DEMO_STORE, update, api_base=api.url)
        app_events = dataclasses.replace(runtime.settings, zid_app_webhook_token=ZID_APP_TOKEN)
        return Parts(zid, {"zid": ZidPlatform(settings)}, app_events, store)

    def post(
        self,
        client: FlaskClient,
        event: str = "order.create",
        authorization: str = zid_support.SECRET,
        path: str | None = None,
        body: bytes | None = None,
    ) -> TestResponse:
        delivery = zid_samples.build(event, DEMO_STORE, ZID_CUSTOMER, authorization)
        return client.post(
            path or delivery.path, data=delivery.body if body is None else body,
            headers=delivery.headers,
        )  # fmt: skip

    def accepted(self, client: FlaskClient, event: str = "order.create") -> int:
        return accepted_id(self.post(client, event))


def shopify_post(client: FlaskClient, sent: SampleDelivery, **headers: str) -> TestResponse:
    return client.post(sent.path, data=sent.body, headers=sent.headers | headers)


class ShopifySetup:
    """A Shopify shop on Appstle: a Gold customer with 250.5 points, 40 expiring in 3 days."""

    def prepare(self, runtime: Runtime, serve: Serve) -> Parts[AppstleSandboxState]:
        appstle = AppstleSandboxState()
        appstle.add_shop(DEMO_SHOP, appstle_support.credentials()["appstle_api_key"])
        appstle.set_customer(
            DEMO_SHOP, appstle_support.CUSTOMER, email="sara@example.com", available=250.5,
            pending=50, tier="Gold", expiring=40, expire_at=NOW + timedelta(days=3),
        )  # fmt: skip
        api = serve(create_appstle_sandbox(appstle))
        settings = dataclasses.replace(
            runtime.settings,
            shopify_webhook_secrets=(
                appstle_support.SHOPIFY_SECRET,
                appstle_support.SHOPIFY_PREVIOUS,
            ),
        )
        with runtime.transaction() as session:
            update = StoreUpdate(status="active", credentials=appstle_support.credentials())
            store = save_store(runtime, session, "shopify", DEMO_SHOP, update, api_base=api.url)
        return Parts(appstle, {"shopify": ShopifyPlatform(settings)}, settings, store)

    def post(self, client: FlaskClient, sent: SampleDelivery, **headers: str) -> TestResponse:
        return shopify_post(client, sent, **headers)

    def accepted(
        self,
        client: FlaskClient,
        topic: str = "orders/paid",
        customer: str = appstle_support.CUSTOMER,
    ) -> int:
        sent = shopify_samples.build(topic, DEMO_SHOP, customer, appstle_support.SHOPIFY_SECRET)
        return accepted_id(shopify_post(client, sent))


class AppstleSetup:
    """A shop whose Appstle (Svix) webhooks come in: a Silver customer with 120 points.

    Until the receiver hands Appstle its own key, its lookup reads ``webhook_secrets``:
    the store holds the secrets as ``stores add shopify --appstle-webhook-secret`` does.
    """

    def prepare(self, runtime: Runtime, serve: Serve) -> Parts[AppstleSandboxState]:
        appstle = AppstleSandboxState()
        appstle.add_shop(DEMO_SHOP, appstle_support.credentials()["appstle_api_key"])
        appstle.set_customer(
            DEMO_SHOP, appstle_support.CUSTOMER, available=120, pending=0, tier="Silver",
            expiring=20, expire_at=NOW + timedelta(days=10),
        )  # fmt: skip
        api = serve(create_appstle_sandbox(appstle))
        stored = appstle_support.credentials(**APPSTLE_SECRETS)
        with runtime.transaction() as session:
            update = StoreUpdate(status="active", credentials=stored)
            store = save_store(runtime, session, "shopify", DEMO_SHOP, update, api_base=api.url)
        platforms: dict[str, Platform] = {
            "appstle": AppstlePlatform(runtime.settings),
            "shopify": ShopifyPlatform(runtime.settings),  # refreshes go by the store's platform
        }
        return Parts(appstle, platforms, runtime.settings, store)

    def post(
        self, client: FlaskClient, sent: SampleDelivery, path: str | None = None, **headers: str
    ) -> TestResponse:
        return client.post(path or sent.path, data=sent.body, headers=sent.headers | headers)

    def accepted(
        self,
        client: FlaskClient,
        event: str = "loyalty.earned",
        secret: str = appstle_support.WHSEC,
    ) -> int:
        sent = sign_appstle_webhook(event, appstle_support.CUSTOMER, secret=secret)
        return accepted_id(self.post(client, sent))


SETUPS: dict[str, PlatformSetup[Any]] = {
    "salla": SallaSetup(),
    "zid": ZidSetup(),
    "shopify": ShopifySetup(),
    "appstle": AppstleSetup(),
}

SallaWorld = World[SallaSandboxState]
ZidWorld = World[ZidSandboxState]
AppstleWorld = World[AppstleSandboxState]  # the Shopify and the Appstle worlds


def make_world(platform: str, runtime: Runtime, serve: Serve) -> World[Any]:
    """The named platform's world: its setup, plus a webhook sink to a capture server."""
    setup = SETUPS[platform]
    parts = setup.prepare(runtime, serve)
    secret = new_secret()
    capture_app = create_capture_app(secret)
    sink = serve(capture_app)
    add_webhook_sink(runtime, parts.store, f"{sink.url}/loyalty", secret)
    client = create_app(parts.receiver_settings).test_client()
    return World(
        runtime, parts.platforms, parts.sandbox, capture_log(capture_app), client, parts.store,
        setup,
    )  # fmt: skip
