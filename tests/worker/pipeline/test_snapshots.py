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
