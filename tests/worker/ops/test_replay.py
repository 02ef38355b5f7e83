"""Replaying a processed webhook through the whole pipeline (the Salla sandbox, a
capture sink over real HTTP, SQLite and PostgreSQL): a new refresh, no second
message when the points did not change, one more when they did."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.conftest import relay_env
from tests.factories import CUSTOMER, MERCHANT
from tests.pipeline_world import SallaWorld, entry
from worker.cli.app import main
from worker.pipeline import inbox, outbox, refresh
from worker.storage.models import InboxEvent, RefreshJob

pytestmark = pytest.mark.parametrize("world", ["salla"], indirect=True)


def replay(world: SallaWorld, tmp_path: Path, redis_url: str, inbox_id: int) -> None:
    """``inbox replay`` from the command line, then the worker's part in process."""
    env = relay_env(tmp_path, world.runtime.settings.database_url, redis_url)
    result = CliRunner().invoke(main, ["inbox", "replay", str(inbox_id)], env=env)
    assert result.output.startswith("replayed 1 events"), result.output
    for due in inbox.handle(world.runtime, world.platforms, inbox_id):
        outbox.send_own(world.runtime, refresh.run(world.runtime, world.platforms, due.job_id))


def test_it_replays_an_order_webhook_without_a_second_message(
    world: SallaWorld, tmp_path: Path, redis_url: str
) -> None:
    inbox_id = world.post()
    world.process(inbox_id)
    [first] = world.capture.received()
    [row] = world.rows(InboxEvent)
    assert (row.status, row.customer_id) == ("done", CUSTOMER) and row.body != b""
    fetches = world.sandbox.request_count(customer_id=CUSTOMER)
    replay(world, tmp_path, redis_url, inbox_id)
    assert world.sandbox.request_count(customer_id=CUSTOMER) > fetches  # refreshed again
    assert [job.status for job in world.rows(RefreshJob)] == ["done", "done"]
    assert world.capture.received() == [first]  # nothing changed: nothing sent
    assert world.rows(InboxEvent)[0].status == "done"


def test_it_sends_what_changed_when_a_replay_finds_new_points(
    world: SallaWorld, tmp_path: Path, redis_url: str
) -> None:
    inbox_id = world.post()
    world.process(inbox_id)
    world.sandbox.set_entries(MERCHANT, CUSTOMER, [entry(1500, expires_in=400)])
    replay(world, tmp_path, redis_url, inbox_id)
    first, second = world.capture.received()
    assert (second.data["balance_before"], second.data["balance_after"]) == (1000, 1500)
    assert first.id != second.id
