"""Snapshots: what a refresh stores, and the change it finds against the stored one."""

from __future__ import annotations

import pytest

from tests.factories import CUSTOMER, MERCHANT
from tests.pipeline_world import SallaWorld
from worker.storage.models import CustomerPoints, RefreshJob

pytestmark = pytest.mark.parametrize("world", ["salla"], indirect=True)


def test_it_keeps_the_contact_an_event_gives_encrypted(world: SallaWorld) -> None:
    world.process(world.post())  # the sample order names c@example.com
    [row] = world.rows(CustomerPoints)
    assert row.contact and b"c@example.com" not in row.contact
    assert world.runtime.cipher.open(row.contact)["email"] == "c@example.com"


def test_it_sends_nothing_when_nothing_changed(world: SallaWorld) -> None:
    world.process(world.post())
    assert world.process(world.post("customer.updated")) == []
    assert len(world.capture.received()) == 1
    assert [job.status for job in world.rows(RefreshJob)] == ["done", "done"]


def test_it_sends_the_change_when_points_are_credited(world: SallaWorld) -> None:
    world.process(world.post())
    world.sandbox.add_points(MERCHANT, CUSTOMER, 250)
    world.process(world.post("order.updated"))
    latest = world.capture.received()[-1].data
    assert (latest["balance_before"], latest["balance_after"]) == (1000, 1250)
    [points] = world.rows(CustomerPoints)
    assert points.available == 1250


def test_a_contact_that_did_not_change_is_not_sealed_again(world: SallaWorld) -> None:
    """Sealing is fresh each time (Fernet's IV and timestamp): equal bytes after later
    refreshes, one with no change and one with a change, show the contact was kept as
    stored rather than encrypted anew on every refresh."""
    world.process(world.post())
    world.process(world.post("customer.updated"))  # its sample adds the phone
    [first] = world.rows(CustomerPoints)
    assert world.runtime.cipher.open(first.contact)["phone"] == "+966512345678"

    world.process(world.post("customer.updated"))  # nothing changed
    world.sandbox.add_points(MERCHANT, CUSTOMER, 250)
    world.process(world.post("order.updated"))  # a change, written with its deliveries

    [now] = world.rows(CustomerPoints)
    assert now.available == 1250
    assert first.contact and now.contact == first.contact
    assert world.runtime.cipher.open(now.contact)["email"] == "c@example.com"
