"""A Salla store with a webhook sink, the Salla sandbox and a capture server over real
HTTP: the world the pipeline tests run events through."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from flask.testing import FlaskClient

from tests.conftest import SALLA_SECRET
from tests.factories import (
    CUSTOMER,
    MERCHANT,
    add_salla_store,
    add_webhook_sink,
    encode,
    salla_event,
    salla_headers,
)
from tests.pipeline_support import all_rows, process_event
from web import create_app
from worker.pipeline import outbox
from worker.platforms import build_platforms
from worker.platforms.base import Platform
from worker.runtime import Runtime
from worker.sandbox.capture import CaptureLog, capture_log, create_capture_app
from worker.sandbox.salla import create_salla_sandbox
from worker.sandbox.salla_state import SallaSandboxState, points_entry
from worker.sandbox.server import RunningServer
from worker.signing import new_secret
from worker.storage.models import (
    Store,
)

Serve = Callable[[Any], RunningServer]
NOW = datetime.now(UTC)


@dataclasses.dataclass
class World:
    runtime: Runtime
    platforms: dict[str, Platform]
    salla: SallaSandboxState
    capture: CaptureLog
    client: FlaskClient
    store: Store

    def post(self, event: str = "order.status.updated", **data: Any) -> int:
        body = encode(salla_event(event, **data))
        response = self.client.post(
            "/webhooks/salla", data=body, headers=salla_headers(body, SALLA_SECRET)
        )
        assert response.status_code == 200, response.get_json()
        return int(response.get_json().get("id", 0))

    def process(self, inbox_id: int) -> list[outbox.Due]:
        return process_event(self.runtime, self.platforms, inbox_id)

    def rows(self, model: Any) -> list[Any]:
        return all_rows(self.runtime, model)


def make_world(runtime: Runtime, serve: Serve) -> World:
    salla = SallaSandboxState()
    salla.add_merchant(MERCHANT, access_token="access-1", refresh_token="refresh-1")
    salla.set_entries(MERCHANT, CUSTOMER, [entry(900, expires_in=400), entry(100, expires_in=3)])
    api = serve(create_salla_sandbox(salla))
    settings = dataclasses.replace(
        runtime.settings,
        salla_oauth_token_url=f"{api.url}/oauth2/token",
        salla_client_id=salla.client_id,
        salla_client_secret=salla.client_secret,
    )
    secret = new_secret()
    capture_app = create_capture_app(secret)
    sink = serve(capture_app)
    client = create_app(runtime.settings).test_client()
    store = add_salla_store(runtime, api_base=api.url)
    add_webhook_sink(runtime, store, f"{sink.url}/loyalty", secret)
    return World(runtime, build_platforms(settings), salla, capture_log(capture_app), client, store)


def entry(points: int, *, expires_in: int, used: int = 0) -> dict[str, Any]:
    return points_entry(
        points, created=NOW - timedelta(days=1), expiry=NOW + timedelta(days=expires_in),
        used_points=used,
    )  # fmt: skip
