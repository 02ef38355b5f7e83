"""Every Appstle event as Appstle sets it out (``examples.EXAMPLES``) and every variant
the published pieces allow (``examples.VARIANTS``), through the real receiver (HTTP,
signed the Standard Webhooks way under both header families) → the inbox → the
refresh request it causes, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from tests.worker.platforms.appstle_support import WHSEC, credentials
from web import create_app
from worker.pipeline import inbox
from worker.platforms.appstle import AppstlePlatform
from worker.platforms.appstle.examples import EXAMPLE_CUSTOMER, EXAMPLES, VARIANTS
from worker.platforms.appstle.samples import SVIX, UNBRANDED, encode, path_for, svix_headers
from worker.platforms.base import Platform, StoreUpdate
from worker.runtime import Runtime
from worker.sandbox.appstle import DEMO_SHOP
from worker.storage.models import InboxEvent, RefreshJob
from worker.stores import save_store


@dataclasses.dataclass
class Receiver:
    runtime: Runtime
    client: FlaskClient
    platforms: dict[str, Platform]
    store_id: int

    def post(self, document: Any, prefix: str = SVIX, msg_id: str | None = None) -> Any:
        body = encode(document)
        headers = svix_headers(WHSEC, body, prefix=prefix, msg_id=msg_id)
        return self.client.post(path_for(DEMO_SHOP), data=body, headers=headers)

    def handled(self, document: Any, prefix: str = SVIX) -> InboxEvent:
        response = self.post(document, prefix)
        assert response.status_code == 200, response.get_json()
        inbox_id = int(response.get_json()["id"])
        inbox.handle(self.runtime, self.platforms, inbox_id)
        with self.runtime.sessions() as session:
            return session.get_one(InboxEvent, inbox_id)

    def refreshes(self) -> set[tuple[int, str]]:
        with self.runtime.sessions() as session:
            return {(job.store_id, job.customer_id) for job in session.scalars(select(RefreshJob))}


@pytest.fixture
def receiver(runtime: Runtime) -> Receiver:
    with runtime.transaction() as session:
        update = StoreUpdate(
            status="active", credentials=credentials(appstle_webhook_secrets=[WHSEC])
        )
        store = save_store(runtime, session, "shopify", DEMO_SHOP, update)
    platforms: dict[str, Platform] = {"appstle": AppstlePlatform(runtime.settings)}
    return Receiver(runtime, create_app(runtime.settings).test_client(), platforms, store.id)


@pytest.mark.parametrize("prefix", [SVIX, UNBRANDED])
@pytest.mark.parametrize("event", sorted(EXAMPLES))
def test_it_reads_each_event_as_appstle_means_it(
    receiver: Receiver, event: str, prefix: str
) -> None:
    handled = receiver.handled(EXAMPLES[event], prefix)
    assert (handled.store_ref, handled.event_type, handled.status) == (DEMO_SHOP, event, "done")
    assert receiver.refreshes() == {(receiver.store_id, EXAMPLE_CUSTOMER)}
    with receiver.runtime.sessions() as session:  # a points event already: no settle re-checks
        assert {job.slot for job in session.scalars(select(RefreshJob))} == {"soon"}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_it_finds_the_customer_in_every_allowed_variant(receiver: Receiver, variant: str) -> None:
    handled = receiver.handled(VARIANTS[variant])
    assert handled.status == "done", handled.reason
    assert receiver.refreshes() == {(receiver.store_id, EXAMPLE_CUSTOMER)}


def test_it_keeps_one_row_for_one_message_under_either_header_name(receiver: Receiver) -> None:
    document = EXAMPLES["point.earned"]
    first = receiver.post(document, SVIX, msg_id="msg_one")
    again = receiver.post(document, UNBRANDED, msg_id="msg_one")
    assert first.get_json()["status"] == "accepted"
    assert again.get_json() == {"status": "duplicate"}


def test_it_refuses_an_unsigned_event_under_either_name(receiver: Receiver) -> None:
    body = encode(EXAMPLES["loyalty.earned"])
    for prefix in (SVIX, UNBRANDED):
        headers = svix_headers(WHSEC, b"other bytes", prefix=prefix)
        response = receiver.client.post(path_for(DEMO_SHOP), data=body, headers=headers)
        assert response.status_code == 401
    with receiver.runtime.sessions() as session:
        assert list(session.scalars(select(InboxEvent))) == []
