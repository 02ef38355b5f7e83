"""The sweeper: rows whose message was lost are found and rung for again."""

from __future__ import annotations

import dataclasses

import pytest

from tests.pipeline_world import SallaWorld
from worker.pipeline import inbox, sweeper
from worker.storage.models import InboxEvent

pytestmark = pytest.mark.parametrize("world", ["salla"], indirect=True)


def test_the_sweeper_finds_rows_whose_message_was_lost(world: SallaWorld) -> None:
    inbox_id = world.post()
    stale = dataclasses.replace(world.runtime, settings=dataclasses.replace(
        world.runtime.settings, stale_after_seconds=0))  # fmt: skip
    assert sweeper.sweep(stale).events == [inbox_id]
    with world.runtime.transaction() as session:
        inbox.claim(session, inbox_id)  # a worker took it and died
    assert sweeper.sweep(stale).events == [inbox_id]
    [event] = world.rows(InboxEvent)
    assert event.status == "pending"
